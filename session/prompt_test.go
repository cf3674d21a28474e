package session

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/session/provider"
	pt "github.com/sessiond/sessiond/session/provider/providertest"
	"github.com/sessiond/sessiond/session/tools"
)

// TestPromptStreamsTextAndReasoning: over both wire formats, a prompt's
// reasoning and text stream into one part each, published delta by
// delta; every part is stored before the event that shows it complete;
// tokens and cost land on the message and in the session's usage.
func TestPromptStreamsTextAndReasoning(t *testing.T) {
	for _, w := range wires {
		t.Run(w.name, func(t *testing.T) {
			t.Parallel()
			usage := pt.Usage{Input: 100, Output: 20, Reasoning: 5, CacheRead: 10}
			srv := w.start(t, pt.Reply(pt.Reasoning("think "), pt.Reasoning("hard"), pt.Text("Hello, "), pt.Text("world."),
				pt.Tokens(usage), pt.Finish("stop")))
			f := newAgentFixture(t, serverLoader(t, srv, w.typ, w.model))
			ses := f.create(CreateParams{})

			var mu sync.Mutex
			var problems []string
			f.hooks.setHook(func(c Change) {
				if c.Type != "part.updated" {
					return
				}
				props := c.Properties.(map[string]any)
				if _, streaming := props["delta"]; streaming {
					// A delta event carries the delta only, not the text so
					// far: that would grow with every delta of the turn.
					if p := props["part"].(Part); p.Text != "" {
						mu.Lock()
						problems = append(problems, "delta event carries the whole text: "+p.Text)
						mu.Unlock()
					}
					return
				}
				p := props["part"].(Part)
				got, ok := f.storedPart(p)
				if !ok || !jsonEqual(t, got, p) {
					mu.Lock()
					problems = append(problems, toolArgs(t, p))
					mu.Unlock()
				}
			})
			n := f.pub.len()
			m := f.prompt(ses.ID, "hi")

			if got, want := partsOf(m), []string{PartStepStart, PartReasoning, PartText, PartStepFinish}; !slices.Equal(got, want) {
				t.Fatalf("parts = %v, want %v", got, want)
			}
			if m.Parts[1].Text != "think hard" || m.Parts[2].Text != "Hello, world." {
				t.Errorf("reasoning %q, text %q", m.Parts[1].Text, m.Parts[2].Text)
			}
			if w.typ == provider.TypeAnthropic && m.Parts[1].Metadata["signature"] == nil {
				t.Errorf("anthropic thinking kept no signature: %v", m.Parts[1].Metadata)
			}
			info := m.Info
			if info.Role != RoleAssistant || info.Finish != "stop" || info.Error != nil || info.Time.Completed == 0 || info.Snapshot == nil {
				t.Errorf("assistant message = %+v", info)
			}
			if info.Model == nil || *info.Model != (ModelRef{ProviderID: "fake", ModelID: w.model}) || info.Agent != "build" {
				t.Errorf("model %+v agent %q", info.Model, info.Agent)
			}
			wantTok := Tokens{Input: 100, Output: 20, Reasoning: 5, Cache: CacheUsage{Read: 10}}
			if info.Tokens == nil || *info.Tokens != wantTok {
				t.Errorf("tokens = %+v, want %+v", info.Tokens, wantTok)
			}
			wantCost := provider.Cost(provider.NewModelTable().Lookup(w.model), provider.Usage{Input: 100, Output: 20, Reasoning: 5, CacheRead: 10})
			if wantCost == 0 || math.Abs(info.Cost-wantCost) > 1e-12 {
				t.Errorf("cost = %v, want %v", info.Cost, wantCost)
			}

			msgs := f.messages(ses.ID)
			if len(msgs) != 2 || msgs[0].Info.Role != RoleUser || msgs[0].Parts[0].Text != "hi" || msgs[1].Info.ID != info.ID {
				t.Fatalf("messages = %v", partsOfAll(msgs))
			}
			if info.ParentID != msgs[0].Info.ID {
				t.Errorf("parentID = %q, want the user message %q", info.ParentID, msgs[0].Info.ID)
			}
			if got := f.get(ses.ID); got.MessageCount != 2 {
				t.Errorf("messageCount = %d, want 2", got.MessageCount)
			}

			// Deltas, in order, add up to each part.
			deltas := map[string]string{}
			for _, c := range f.pub.since(n) {
				if c.Type != "part.updated" {
					continue
				}
				props := c.Properties.(map[string]any)
				if d, ok := props["delta"].(string); ok {
					deltas[props["part"].(Part).Type] += d
				}
			}
			if deltas[PartText] != "Hello, world." || deltas[PartReasoning] != "think hard" {
				t.Errorf("deltas = %q", deltas)
			}
			mu.Lock()
			if len(problems) > 0 {
				t.Errorf("parts published as complete before they were stored: %v", problems)
			}
			mu.Unlock()

			u, err := f.svc.Usage(f.ctx, UsageParams{SessionID: ses.ID})
			if err != nil {
				t.Fatal(err)
			}
			if u.TotalTokens != 135 || u.Input != 100 || u.Output != 20 || u.Reasoning != 5 || u.CacheRead != 10 ||
				math.Abs(u.TotalCost-wantCost) > 1e-12 || len(u.ByModel) != 1 || u.ByModel["fake/"+w.model].TotalTokens != 135 {
				t.Errorf("usage = %+v", u)
			}

			req := srv.Requests()[0].JSON
			tls, _ := req["tools"].([]any)
			if len(tls) != len(tools.All()) || !strings.Contains(string(srv.Requests()[0].Body), "build agent") {
				t.Errorf("request has %d tools and body %s", len(tls), srv.Requests()[0].Body)
			}
		})
	}
}

func partsOfAll(ms []MessageWithParts) [][]string {
	var out [][]string
	for _, m := range ms {
		out = append(out, append([]string{m.Info.Role}, partsOf(m)...))
	}
	return out
}

// TestPromptRunsToolsStepByStep: the model writes, edits and runs bash;
// each step is snapshotted with a patch part for what it changed, the
// tool results go back to the model, the turn's diff shows the file,
// and revert and unrevert undo and redo it.
func TestPromptRunsToolsStepByStep(t *testing.T) {
	for _, w := range wires {
		t.Run(w.name, func(t *testing.T) {
			t.Parallel()
			srv := w.start(t,
				pt.Reply(pt.Text("Writing."), pt.Tool("c1", "write", `{"path":"notes/a.txt",`, `"content":"one\n"}`), pt.Finish("tool_calls")),
				pt.Reply(pt.Tool("c2", "edit", `{"path":"notes/a.txt","old_string":"one","new_string":"two"}`), pt.Finish("tool_calls")),
				pt.Reply(pt.Tool("c3", "bash", `{"command":"echo three >> notes/a.txt"}`), pt.Tool("c4", "read", `{"path":"notes/a.txt"}`), pt.Finish("tool_calls")),
				pt.Reply(pt.Text("Done."), pt.Tokens(pt.Usage{Input: 7, Output: 3}), pt.Finish("stop")),
			)
			f := newAgentFixture(t, serverLoader(t, srv, w.typ, w.model))
			f.write("keep.txt", "keep\n")
			ses := f.create(CreateParams{})
			m := f.prompt(ses.ID, "make notes")

			if got := f.read("notes/a.txt"); got != "two\nthree\n" {
				t.Fatalf("notes/a.txt = %q", got)
			}
			want := []string{
				PartStepStart, PartText, "tool:write:completed", PartPatch, PartStepFinish,
				PartStepStart, "tool:edit:completed", PartPatch, PartStepFinish,
				PartStepStart, "tool:bash:completed", "tool:read:completed", PartPatch, PartStepFinish,
				PartStepStart, PartText, PartStepFinish, PartPatch,
			}
			if got := partsOf(m); !slices.Equal(got, want) {
				t.Fatalf("parts =\n%v\nwant\n%v", got, want)
			}
			// Snapshots chain: each step starts where the last one ended.
			var starts, finishes []string
			for _, p := range m.Parts {
				switch p.Type {
				case PartStepStart:
					starts = append(starts, p.Snapshot)
				case PartStepFinish:
					finishes = append(finishes, p.Snapshot)
				case PartPatch:
					if !slices.Equal(p.Files, []string{"notes/a.txt"}) {
						t.Errorf("patch files = %v", p.Files)
					}
				}
			}
			if starts[0] != m.Info.Snapshot.Before || finishes[len(finishes)-1] != m.Info.Snapshot.After {
				t.Errorf("message snapshots %+v, steps %v → %v", m.Info.Snapshot, starts, finishes)
			}
			for i := 1; i < len(starts); i++ {
				if starts[i] != finishes[i-1] {
					t.Errorf("step %d starts at %s, step %d ended at %s", i+1, starts[i], i, finishes[i-1])
				}
			}
			if starts[1] == starts[0] || starts[2] == starts[1] {
				t.Errorf("steps that changed files kept the same snapshot: %v", starts)
			}
			read := m.Parts[11]
			if !strings.Contains(read.State.Output, "three") || read.State.Title == "" {
				t.Errorf("read part = %+v", read.State)
			}
			bash := m.Parts[10]
			if bash.Metadata["exitCode"] != 0 {
				t.Errorf("bash metadata = %v", bash.Metadata)
			}

			// The results went back to the model, with each call's ID.
			reqs := srv.Requests()
			if len(reqs) != 4 {
				t.Fatalf("%d requests, want 4", len(reqs))
			}
			for i, id := range []string{"c1", "c2", "c3"} {
				if body := string(reqs[i+1].Body); !strings.Contains(body, id) || !strings.Contains(body, "make notes") {
					t.Errorf("request %d does not carry %s and the prompt: %s", i+2, id, body)
				}
			}
			if !strings.Contains(string(reqs[3].Body), "three") {
				t.Errorf("the read result did not reach the model: %s", reqs[3].Body)
			}

			diffs, err := f.svc.Diff(f.ctx, DiffParams{SessionID: ses.ID})
			if err != nil {
				t.Fatal(err)
			}
			if len(diffs) != 1 || diffs[0].Path != "notes/a.txt" || diffs[0].Status != "added" {
				t.Fatalf("diff = %+v", diffs)
			}
			userID := m.Info.ParentID
			if _, err := f.svc.Revert(f.ctx, RevertParams{SessionID: ses.ID, MessageID: userID}); err != nil {
				t.Fatal(err)
			}
			if got := f.read("notes/a.txt"); !strings.HasPrefix(got, "<") || f.read("keep.txt") != "keep\n" {
				t.Errorf("after revert notes/a.txt = %q, keep.txt = %q", got, f.read("keep.txt"))
			}
			if _, err := f.svc.Unrevert(f.ctx, UnrevertParams{SessionID: ses.ID}); err != nil {
				t.Fatal(err)
			}
			if got := f.read("notes/a.txt"); got != "two\nthree\n" {
				t.Errorf("after unrevert notes/a.txt = %q", got)
			}
		})
	}
}

// TestPromptQueueRunsInOrder: a prompt to a busy session waits in its
// queue (status busy, queued 1) and runs after the turn, seeing it in
// its history; the messages sort in the order the prompts ran.
func TestPromptQueueRunsInOrder(t *testing.T) {
	t.Parallel()
	fp := &fakeProvider{calls: make(chan *fakeCall)}
	f := newAgentFixture(t, fakeLoader(t, fp))
	ses := f.create(CreateParams{})
	a := f.promptAsync(f.ctx, PromptParams{SessionID: ses.ID, Parts: []PromptPart{{Type: PartText, Text: "first"}}})
	c1 := fp.next(t)
	b, err := f.svc.PromptAsync(f.ctx, PromptParams{SessionID: ses.ID, Parts: []PromptPart{{Type: PartText, Text: "second"}}})
	if err != nil {
		t.Fatal(err)
	}
	if st := f.status(ses.ID); st.State != "busy" || st.Queued != 1 {
		t.Errorf("status while busy = %+v, want busy with 1 queued", st)
	}
	all, _ := f.svc.Status(f.ctx, "")
	if _, ok := all[ses.ID]; !ok {
		t.Errorf("session/status {} does not list the busy session: %v", all)
	}
	c1.send(t, provider.TextDelta{Text: "one"}, provider.TextDone{Text: "one"})
	c1.end(t, provider.FinishStop)
	ma, err := a.wait(t)
	if err != nil {
		t.Fatal(err)
	}
	c2 := fp.next(t)
	hist := c2.req.Messages
	if len(hist) != 3 || hist[0].Role != provider.RoleUser || hist[1].Role != provider.RoleAssistant || hist[2].Role != provider.RoleUser {
		t.Fatalf("second call's history = %+v", hist)
	}
	if hist[1].Content[0].(provider.Text).Text != "one" || hist[2].Content[0].(provider.Text).Text != "second" {
		t.Errorf("second call's history = %+v", hist)
	}
	c2.send(t, provider.TextDone{Text: "two"})
	c2.end(t, provider.FinishStop)
	waitFor(t, "the session to go idle", func() bool { return f.status(ses.ID).State == "idle" })

	msgs := f.messages(ses.ID)
	if len(msgs) != 4 {
		t.Fatalf("messages = %v", partsOfAll(msgs))
	}
	if msgs[1].Info.ID != ma.Info.ID || msgs[2].Info.ID != b.MessageID || msgs[3].Info.ParentID != b.MessageID {
		t.Errorf("order = %v; first answer %s, second prompt %s", messageIDs(msgs), ma.Info.ID, b.MessageID)
	}
	if msgs[3].Parts[1].Text != "two" {
		t.Errorf("second answer = %v", partsOf(msgs[3]))
	}
	if st := f.status(ses.ID); st.Queued != 0 || st.MessageCount != 4 {
		t.Errorf("status after = %+v", st)
	}
	var statuses int
	for _, c := range f.pub.since(0) {
		if c.Type == "session.status" {
			statuses++
		}
	}
	if statuses < 3 {
		t.Errorf("%d session.status events", statuses)
	}
}

// TestPromptAbort: abort mid-stream keeps the partial message marked
// aborted and answers the prompt with *AbortedError; the queued prompt
// runs next. With clearQueue the queued prompts are dropped unrun.
func TestPromptAbort(t *testing.T) {
	t.Parallel()
	fp := &fakeProvider{calls: make(chan *fakeCall)}
	f := newAgentFixture(t, fakeLoader(t, fp))
	ses := f.create(CreateParams{})
	text := func(s string) PromptParams {
		return PromptParams{SessionID: ses.ID, Parts: []PromptPart{{Type: PartText, Text: s}}}
	}
	a := f.promptAsync(f.ctx, text("long"))
	c1 := fp.next(t)
	c1.send(t, provider.TextDelta{Text: "partial "}, provider.ToolCallStart{ID: "x", Name: "read"})
	if _, err := f.svc.PromptAsync(f.ctx, text("next")); err != nil {
		t.Fatal(err)
	}
	res, err := f.svc.Abort(f.ctx, AbortParams{SessionID: ses.ID})
	if err != nil {
		t.Fatal(err)
	}
	_, perr := a.wait(t)
	var ae *AbortedError
	if !errors.As(perr, &ae) || ae.MessageID == "" || !res.Aborted || res.MessageID != ae.MessageID {
		t.Fatalf("prompt err = %v, abort = %+v", perr, res)
	}
	m, err := f.svc.Message(f.ctx, MessageParams{SessionID: ses.ID, MessageID: ae.MessageID})
	if err != nil {
		t.Fatal(err)
	}
	if m.Info.Error == nil || m.Info.Error.Kind != ErrorKindAborted || m.Info.Time.Completed == 0 || m.Info.Snapshot == nil {
		t.Errorf("aborted message = %+v", m.Info)
	}
	if got := partsOf(m); !slices.Equal(got, []string{PartStepStart, PartText, "tool:read:error"}) {
		t.Fatalf("aborted parts = %v", got)
	}
	if p := m.Parts[1]; p.Text != "partial " || p.Metadata["aborted"] != true || p.Time.End == 0 {
		t.Errorf("partial text part = %+v", p)
	}
	if p := m.Parts[2]; !strings.Contains(p.State.Error, "abort") {
		t.Errorf("unfinished tool part = %+v", p.State)
	}

	// The queued prompt was not dropped: it runs now.
	c2 := fp.next(t)
	c2.send(t, provider.TextDone{Text: "ok"})
	c2.end(t, provider.FinishStop)
	waitFor(t, "the queue to drain", func() bool { return f.status(ses.ID).State == "idle" })
	if n := len(f.messages(ses.ID)); n != 4 {
		t.Fatalf("%d messages, want 4", n)
	}

	// clearQueue drops what waits; its callers hear why.
	a = f.promptAsync(f.ctx, text("again"))
	c3 := fp.next(t)
	b := f.promptAsync(f.ctx, text("dropped 1"))
	if _, err := f.svc.PromptAsync(f.ctx, text("dropped 2")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two queued prompts", func() bool { return f.status(ses.ID).Queued == 2 })
	res, err = f.svc.Abort(f.ctx, AbortParams{SessionID: ses.ID, ClearQueue: true})
	if err != nil || !res.Aborted || res.Cleared != 2 {
		t.Fatalf("abort with clearQueue = %+v, %v", res, err)
	}
	if _, err := b.wait(t); !errors.As(err, &ae) || ae.MessageID != "" {
		t.Errorf("dropped prompt err = %v", err)
	}
	if _, err := a.wait(t); !errors.As(err, &ae) {
		t.Errorf("aborted prompt err = %v", err)
	}
	_ = c3
	waitFor(t, "idle", func() bool { return f.status(ses.ID).State == "idle" })
	if n := len(f.messages(ses.ID)); n != 6 {
		t.Errorf("%d messages, want 6 (the dropped prompts store nothing)", n)
	}

	// Aborting an idle session stops nothing.
	res, err = f.svc.Abort(f.ctx, AbortParams{SessionID: ses.ID})
	if err != nil || res.Aborted {
		t.Errorf("abort of an idle session = %+v, %v", res, err)
	}
	if _, err := f.svc.Abort(f.ctx, AbortParams{SessionID: "ses_nope"}); err == nil {
		t.Error("abort of an unknown session succeeded")
	}
}

// TestPromptAbortStopsRunningBash: abort kills a running bash call; its
// part is an error saying so, and the files it changed are snapshotted.
func TestPromptAbortStopsRunningBash(t *testing.T) {
	t.Parallel()
	srv := pt.NewOpenAI(t, pt.Reply(pt.Tool("b1", "bash", `{"command":"echo started > started.txt; sleep 60"}`), pt.Finish("tool_calls")))
	f := newAgentFixture(t, serverLoader(t, srv, provider.TypeOpenAI, "gpt-4o-mini"))
	ses := f.create(CreateParams{})
	a := f.promptAsync(f.ctx, PromptParams{SessionID: ses.ID, Parts: []PromptPart{{Type: PartText, Text: "run it"}}})
	waitFor(t, "bash to start", func() bool { return f.read("started.txt") == "started\n" })
	start := time.Now()
	if _, err := f.svc.Abort(f.ctx, AbortParams{SessionID: ses.ID}); err != nil {
		t.Fatal(err)
	}
	_, err := a.wait(t)
	var ae *AbortedError
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("abort took %s", d)
	}
	m, _ := f.svc.Message(f.ctx, MessageParams{SessionID: ses.ID, MessageID: ae.MessageID})
	want := []string{PartStepStart, "tool:bash:error", PartPatch, PartStepFinish, PartPatch}
	if got := partsOf(m); !slices.Equal(got, want) {
		t.Fatalf("parts = %v, want %v", got, want)
	}
	if st := m.Parts[1].State; !strings.Contains(st.Error, "abort") || m.Parts[1].Metadata["aborted"] != true {
		t.Errorf("bash part = %+v %v", st, m.Parts[1].Metadata)
	}
	if !slices.Equal(m.Parts[2].Files, []string{"started.txt"}) {
		t.Errorf("step patch = %v", m.Parts[2].Files)
	}
}

// TestPromptNoProvider: with no model configured the prompt is refused
// with a message saying what to set, and nothing is stored.
func TestPromptNoProvider(t *testing.T) {
	t.Parallel()
	f := newAgentFixture(t, configLoader(t, nil))
	ses := f.create(CreateParams{})
	n := f.pub.len()
	_, err := f.svc.Prompt(f.ctx, PromptParams{SessionID: ses.ID, Parts: []PromptPart{{Type: PartText, Text: "hi"}}})
	var npe *provider.NoProviderError
	if !errors.As(err, &npe) || !strings.Contains(err.Error(), "ANTHROPIC_API_KEY") || !strings.Contains(err.Error(), "OPENAI_API_KEY") {
		t.Fatalf("err = %v, want a NoProviderError naming what to set", err)
	}
	_, err = f.svc.PromptAsync(f.ctx, PromptParams{SessionID: ses.ID, Parts: []PromptPart{{Type: PartText, Text: "hi"}},
		Model: &ModelRef{ProviderID: "ollama", ModelID: "qwen3"}})
	if !errors.As(err, &npe) || !strings.Contains(err.Error(), `"ollama"`) {
		t.Fatalf("err = %v, want a NoProviderError about ollama", err)
	}
	if msgs := f.messages(ses.ID); len(msgs) != 0 || f.get(ses.ID).MessageCount != 0 {
		t.Errorf("stored %d messages", len(msgs))
	}
	if got := types(f.pub.since(n), ""); len(got) != 0 {
		t.Errorf("published %v", got)
	}
	if st := f.status(ses.ID); st.State != "idle" {
		t.Errorf("status = %+v", st)
	}
}

// TestPromptRejectsBadParams: bad prompts are refused before anything
// runs, naming the field.
func TestPromptRejectsBadParams(t *testing.T) {
	t.Parallel()
	fp := &fakeProvider{calls: make(chan *fakeCall)}
	f := newAgentFixture(t, fakeLoader(t, fp))
	f.write("dir/file.txt", "x")
	ses := f.create(CreateParams{})
	outside := newDir(t)
	text := []PromptPart{{Type: PartText, Text: "hi"}}
	for _, tc := range []struct {
		p     PromptParams
		field string
	}{
		{PromptParams{SessionID: ses.ID}, "parts"},
		{PromptParams{SessionID: ses.ID, Parts: []PromptPart{{Type: PartText, Text: "  "}}}, "parts"},
		{PromptParams{SessionID: ses.ID, Parts: []PromptPart{{Type: "image"}}}, "parts[0].type"},
		{PromptParams{SessionID: ses.ID, Parts: []PromptPart{{Type: PartFile}}}, "parts[0].path"},
		{PromptParams{SessionID: ses.ID, Parts: []PromptPart{{Type: PartFile, Path: "missing.txt"}}}, "parts[0].path"},
		{PromptParams{SessionID: ses.ID, Parts: []PromptPart{{Type: PartFile, Path: "../x"}}}, "parts[0].path"},
		{PromptParams{SessionID: ses.ID, Parts: []PromptPart{{Type: PartFile, Path: outside}}}, "parts[0].path"},
		{PromptParams{SessionID: ses.ID, Parts: []PromptPart{{Type: PartFile, Path: "dir"}}}, "parts[0].path"},
		{PromptParams{SessionID: ses.ID, Parts: text, Agent: "wizard"}, "agent"},
		{PromptParams{SessionID: ses.ID, Parts: text, Variant: "extreme"}, "variant"},
		{PromptParams{SessionID: ses.ID, Parts: text, Model: &ModelRef{ProviderID: "fake"}}, "model"},
		{PromptParams{Parts: text}, "sessionID"},
	} {
		_, err := f.svc.Prompt(f.ctx, tc.p)
		wantParamErr(t, err, tc.field)
	}
	_, err := f.svc.Prompt(f.ctx, PromptParams{SessionID: "ses_nope", Parts: text})
	wantNotFound(t, err, "session", "ses_nope")
	if _, err := f.svc.Stop(f.ctx, ses.ID); err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.Prompt(f.ctx, PromptParams{SessionID: ses.ID, Parts: text})
	wantClosed(t, err, ses.ID, LifecycleStopped)
	if n := len(f.messages(ses.ID)); n != 0 {
		t.Errorf("%d messages stored", n)
	}
	_, err = f.svc.Create(f.ctx, CreateParams{Directory: f.dir, Permission: json.RawMessage(`{"bash":"sometimes"}`)})
	wantParamErr(t, err, "permission")
	_, err = f.svc.Create(f.ctx, CreateParams{Directory: f.dir, Permission: json.RawMessage(`{"teleport":"allow"}`)})
	wantParamErr(t, err, "permission")
}

// TestPromptFileParts: a file part's content reaches the model with the
// prompt, and stays in the history for later calls.
func TestPromptFileParts(t *testing.T) {
	t.Parallel()
	srv := pt.NewOpenAI(t, pt.Reply(pt.Text("seen"), pt.Finish("stop")), pt.Reply(pt.Text("still seen"), pt.Finish("stop")))
	f := newAgentFixture(t, serverLoader(t, srv, provider.TypeOpenAI, "gpt-4o-mini"))
	f.write("src/main.go", "package main // MARKER\n")
	sub := mkdirs(t, f.ws, "src")
	// In a repository the session's directory is below the workspace root:
	// a file part's path starts there.
	if out, err := exec.Command("git", "init", "-q", f.ws).CombinedOutput(); err != nil {
		t.Skipf("git init: %v %s", err, out)
	}
	ses := f.create(CreateParams{Directory: sub})
	ctx := f.ctx
	m, err := f.svc.Prompt(ctx, PromptParams{SessionID: ses.ID, Parts: []PromptPart{
		{Type: PartText, Text: "look at"}, {Type: PartFile, Path: "main.go"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(srv.Requests()[0].Body), "MARKER") {
		t.Errorf("the file did not reach the model: %s", srv.Requests()[0].Body)
	}
	user, _ := f.svc.Message(ctx, MessageParams{SessionID: ses.ID, MessageID: m.Info.ParentID})
	if got := partsOf(user); !slices.Equal(got, []string{PartText, PartFile, PartText}) || user.Parts[1].Path != "src/main.go" {
		t.Errorf("user parts = %v %+v", got, user.Parts)
	}
	f.prompt(ses.ID, "and again")
	if !strings.Contains(string(srv.Requests()[1].Body), "MARKER") {
		t.Errorf("the file left the history: %s", srv.Requests()[1].Body)
	}
}

// TestPromptRetryShowsStatus: a 429 before any output is retried, and
// meanwhile the session's status is retry with the attempt and its time.
func TestPromptRetryShowsStatus(t *testing.T) {
	t.Parallel()
	srv := pt.NewAnthropic(t, pt.Fail(429, "slow down"), pt.Reply(pt.Text("ok"), pt.Finish("stop")))
	entered, release := make(chan struct{}), make(chan struct{})
	f := newAgentFixture(t, serverLoader(t, srv, provider.TypeAnthropic, "claude-haiku-4-5"),
		WithRetryPolicy(provider.RetryPolicy{MaxAttempts: 3, Sleep: func(ctx context.Context, d time.Duration) error {
			close(entered)
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}}))
	ses := f.create(CreateParams{})
	a := f.promptAsync(f.ctx, PromptParams{SessionID: ses.ID, Parts: []PromptPart{{Type: PartText, Text: "hi"}}})
	select {
	case <-entered:
	case <-time.After(agentWait):
		t.Fatal("no retry")
	}
	st := f.status(ses.ID)
	if st.State != "retry" || st.Attempt != 2 || st.Next == 0 {
		t.Errorf("status while retrying = %+v", st)
	}
	close(release)
	m, err := a.wait(t)
	if err != nil || m.Parts[1].Text != "ok" {
		t.Fatalf("after retry: %v %v", partsOf(m), err)
	}
	waitFor(t, "idle", func() bool { return f.status(ses.ID).State == "idle" })
}

// TestPromptProviderError: a provider failure is recorded on the message
// and answered with the *provider.ProviderError.
func TestPromptProviderError(t *testing.T) {
	t.Parallel()
	srv := pt.NewOpenAI(t, pt.Fail(400, "context too long"))
	f := newAgentFixture(t, serverLoader(t, srv, provider.TypeOpenAI, "gpt-4o-mini"))
	ses := f.create(CreateParams{})
	_, err := f.svc.Prompt(f.ctx, PromptParams{SessionID: ses.ID, Parts: []PromptPart{{Type: PartText, Text: "hi"}}})
	var pe *provider.ProviderError
	if !errors.As(err, &pe) || pe.Status != 400 || !strings.Contains(err.Error(), "context too long") {
		t.Fatalf("err = %v", err)
	}
	msgs := f.messages(ses.ID)
	if len(msgs) != 2 || msgs[1].Info.Error == nil || msgs[1].Info.Error.Kind != ErrorKindProviderError {
		t.Fatalf("messages = %v", partsOfAll(msgs))
	}
}

// TestPromptStepLimit: a model that never stops calling tools is cut off
// after MaxSteps calls; the message says why.
func TestPromptStepLimit(t *testing.T) {
	t.Parallel()
	call := pt.Reply(pt.Tool("r", "list", `{}`), pt.Finish("tool_calls"))
	srv := pt.NewOpenAI(t, call, call, call)
	f := newAgentFixture(t, serverLoader(t, srv, provider.TypeOpenAI, "gpt-4o-mini"), WithAgentLimits(AgentLimits{MaxSteps: 2}))
	ses := f.create(CreateParams{})
	m := f.prompt(ses.ID, "loop")
	if m.Info.Error == nil || m.Info.Error.Kind != ErrorKindStepLimit || len(srv.Requests()) != 2 {
		t.Errorf("message error %+v after %d requests", m.Info.Error, len(srv.Requests()))
	}
}

// fakeAsker answers permission requests with outcomes in turn.
type fakeAsker struct {
	mu       sync.Mutex
	outcomes []string
	asked    []PermissionRequest
}

func (a *fakeAsker) AskPermission(ctx context.Context, req PermissionRequest) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.asked = append(a.asked, req)
	if len(a.outcomes) == 0 {
		return "", errors.New("no answer")
	}
	o := a.outcomes[0]
	a.outcomes = a.outcomes[1:]
	return o, nil
}

// TestPromptPermissions: deny rules refuse a tool, ask rules ask the
// prompt's client and follow its answer (allow_always sticks), and with
// nobody to ask the call is rejected with the reason.
func TestPromptPermissions(t *testing.T) {
	t.Parallel()
	srv := pt.NewOpenAI(t,
		pt.Reply(pt.Tool("w1", "write", `{"path":"a.txt","content":"a"}`), pt.Tool("b1", "bash", `{"command":"touch b.txt"}`),
			pt.Tool("w2", "write", `{"path":"docs/x.md","content":"x"}`), pt.Finish("tool_calls")),
		pt.Reply(pt.Text("ok"), pt.Finish("stop")),
		pt.Reply(pt.Tool("w3", "write", `{"path":"c.txt","content":"c"}`), pt.Finish("tool_calls")),
		pt.Reply(pt.Text("ok"), pt.Finish("stop")),
		pt.Reply(pt.Tool("w4", "write", `{"path":"d.txt","content":"d"}`), pt.Finish("tool_calls")),
		pt.Reply(pt.Text("ok"), pt.Finish("stop")),
	)
	f := newAgentFixture(t, serverLoader(t, srv, provider.TypeOpenAI, "gpt-4o-mini"))
	ses := f.create(CreateParams{Permission: json.RawMessage(`{"bash":"deny","write":{"*":"ask","docs/*":"allow"}}`)})
	asker := &fakeAsker{outcomes: []string{OutcomeAllowAlways}}
	run := func(a PermissionAsker) MessageWithParts {
		m, err := f.svc.Prompt(f.ctx, PromptParams{SessionID: ses.ID, Parts: []PromptPart{{Type: PartText, Text: "go"}}, Asker: a})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	m := run(asker)
	if got := partsOf(m)[1:4]; !slices.Equal(got, []string{"tool:write:completed", "tool:bash:error", "tool:write:completed"}) {
		t.Fatalf("parts = %v", partsOf(m))
	}
	if !strings.Contains(m.Parts[2].State.Error, "permission denied") || f.read("b.txt")[0] != '<' {
		t.Errorf("bash was not denied: %+v", m.Parts[2].State)
	}
	if len(asker.asked) != 1 || asker.asked[0].Tool != "write" || asker.asked[0].Pattern != "a.txt" ||
		asker.asked[0].MessageID != m.Info.ID || len(asker.asked[0].Options) != 4 {
		t.Errorf("asked = %+v", asker.asked)
	}
	if f.read("a.txt") != "a" || f.read("docs/x.md") != "x" {
		t.Error("allowed writes did not happen")
	}
	// allow_always: no question this time, even with nobody to ask.
	m = run(nil)
	if m.Parts[1].State.Status != ToolCompleted || len(asker.asked) != 1 {
		t.Errorf("allow_always did not stick: %+v", m.Parts[1].State)
	}
	// A new session: nobody to ask means no.
	ses = f.create(CreateParams{Permission: json.RawMessage(`{"write":"ask"}`)})
	m = run(nil)
	if st := m.Parts[1].State; st.Status != ToolError || !strings.Contains(st.Error, "no connected client") || f.read("d.txt")[0] != '<' {
		t.Errorf("write without an asker = %+v", st)
	}
}

// TestPromptTodoAndPlanAgent: todowrite keeps the list session/todo
// returns and publishes todo.updated; the plan agent has no write tool.
func TestPromptTodoAndPlanAgent(t *testing.T) {
	t.Parallel()
	todos := `{"todos":[{"content":"write tests","status":"in_progress"},{"content":"ship","status":"pending","priority":"high"}]}`
	srv := pt.NewOpenAI(t,
		pt.Reply(pt.Tool("t1", "todowrite", todos), pt.Finish("tool_calls")),
		pt.Reply(pt.Text("planned"), pt.Finish("stop")),
		pt.Reply(pt.Tool("w1", "write", `{"path":"a.txt","content":"a"}`), pt.Finish("tool_calls")),
		pt.Reply(pt.Text("could not"), pt.Finish("stop")),
	)
	f := newAgentFixture(t, serverLoader(t, srv, provider.TypeOpenAI, "gpt-4o-mini"))
	ses := f.create(CreateParams{})
	if got, err := f.svc.Todo(f.ctx, TodoParams{SessionID: ses.ID}); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("todo before = %v, %v", got, err)
	}
	f.prompt(ses.ID, "plan")
	got, err := f.svc.Todo(f.ctx, TodoParams{SessionID: ses.ID})
	if err != nil || len(got) != 2 || got[0].Status != tools.TodoInProgress || got[1].Priority != tools.PriorityHigh || got[0].ID != "1" {
		t.Fatalf("todo = %+v, %v", got, err)
	}
	if !slices.Contains(types(f.pub.since(0), ""), "todo.updated") {
		t.Error("no todo.updated event")
	}
	m, err := f.svc.Prompt(f.ctx, PromptParams{SessionID: ses.ID, Agent: "plan", Parts: []PromptPart{{Type: PartText, Text: "write"}}})
	if err != nil {
		t.Fatal(err)
	}
	if st := m.Parts[1].State; st.Status != ToolError || !strings.Contains(st.Error, "no tool") || m.Info.Agent != "plan" {
		t.Errorf("plan agent's write = %+v", st)
	}
	if tls, _ := srv.Requests()[2].JSON["tools"].([]any); len(tls) != 5 {
		t.Errorf("the plan agent was offered %d tools, want 5", len(tls))
	}
	if _, err := f.svc.Todo(f.ctx, TodoParams{SessionID: "ses_nope"}); err == nil {
		t.Error("todo of an unknown session succeeded")
	}
}

// TestPromptCloseAbortsTurns: closing the service aborts the running
// turn, records it, and refuses new prompts.
func TestPromptCloseAbortsTurns(t *testing.T) {
	t.Parallel()
	fp := &fakeProvider{calls: make(chan *fakeCall)}
	f := newAgentFixture(t, fakeLoader(t, fp))
	ses := f.create(CreateParams{})
	a := f.promptAsync(f.ctx, PromptParams{SessionID: ses.ID, Parts: []PromptPart{{Type: PartText, Text: "x"}}})
	fp.next(t).send(t, provider.TextDelta{Text: "so far"})
	f.svc.Close()
	_, err := a.wait(t)
	var ae *AbortedError
	if !errors.As(err, &ae) || !strings.Contains(err.Error(), "shutting down") {
		t.Fatalf("err = %v", err)
	}
	msgs := f.messages(ses.ID)
	if len(msgs) != 2 || msgs[1].Info.Error == nil || msgs[1].Parts[1].Text != "so far" {
		t.Errorf("messages = %v", partsOfAll(msgs))
	}
	if _, err := f.svc.PromptAsync(f.ctx, PromptParams{SessionID: ses.ID, Parts: []PromptPart{{Type: PartText, Text: "x"}}}); !errors.Is(err, ErrShuttingDown) {
		t.Errorf("prompt after close: %v", err)
	}
}

// TestPromptCancelledRequest: cancelling a prompt's context aborts its
// turn; a queued prompt whose context ends leaves the queue unrun.
func TestPromptCancelledRequest(t *testing.T) {
	t.Parallel()
	fp := &fakeProvider{calls: make(chan *fakeCall)}
	f := newAgentFixture(t, fakeLoader(t, fp))
	ses := f.create(CreateParams{})
	p := PromptParams{SessionID: ses.ID, Parts: []PromptPart{{Type: PartText, Text: "x"}}}
	ctx1, cancel1 := context.WithCancel(f.ctx)
	a := f.promptAsync(ctx1, p)
	c := fp.next(t)
	ctx2, cancel2 := context.WithCancel(f.ctx)
	b := f.promptAsync(ctx2, p)
	waitFor(t, "a queued prompt", func() bool { return f.status(ses.ID).Queued == 1 })
	cancel2()
	if _, err := b.wait(t); !errors.Is(err, context.Canceled) {
		t.Errorf("queued prompt err = %v", err)
	}
	if st := f.status(ses.ID); st.Queued != 0 {
		t.Errorf("status = %+v", st)
	}
	cancel1()
	if _, err := a.wait(t); !errors.Is(err, context.Canceled) {
		t.Errorf("running prompt err = %v", err)
	}
	<-c.ctx.Done()
	waitFor(t, "idle", func() bool { return f.status(ses.ID).State == "idle" })
	msgs := f.messages(ses.ID)
	if len(msgs) != 2 || msgs[1].Info.Error == nil || msgs[1].Info.Error.Kind != ErrorKindAborted {
		t.Errorf("messages = %v", partsOfAll(msgs))
	}
}

// TestPromptToolCallsDecideTheLoop: a server that says "stop" after tool
// calls still gets their results; malformed arguments and unknown tools
// are answered with tool errors the model sees.
func TestPromptToolCallsDecideTheLoop(t *testing.T) {
	t.Parallel()
	srv := pt.NewOpenAI(t,
		pt.Reply(pt.Tool("m1", "read", `{"path":`), pt.Tool("u1", "fly", `{}`), pt.Finish("stop")),
		pt.Reply(pt.Text("after"), pt.Finish("stop")),
	)
	f := newAgentFixture(t, serverLoader(t, srv, provider.TypeOpenAI, "gpt-4o-mini"))
	ses := f.create(CreateParams{})
	m := f.prompt(ses.ID, "go")
	want := []string{PartStepStart, "tool:read:error", "tool:fly:error", PartStepFinish, PartStepStart, PartText, PartStepFinish}
	if got := partsOf(m); !slices.Equal(got, want) {
		t.Fatalf("parts = %v, want %v", got, want)
	}
	if !strings.Contains(m.Parts[1].State.Error, "not valid JSON") || !strings.Contains(m.Parts[2].State.Error, `no tool "fly"`) {
		t.Errorf("errors = %q, %q", m.Parts[1].State.Error, m.Parts[2].State.Error)
	}
	if body := string(srv.Requests()[1].Body); !strings.Contains(body, "not valid JSON") || !strings.Contains(body, "u1") {
		t.Errorf("the errors did not reach the model: %s", body)
	}
}

// TestPromptPermissionsFromConfig: rules also come from the user's config
// file and the project's .sessiond/config.json. The session's own rules
// win, then the user's, then the project's: a cloned repository can add
// rules but not loosen the user's.
func TestPromptPermissionsFromConfig(t *testing.T) {
	t.Parallel()
	srv := pt.NewOpenAI(t,
		pt.Reply(pt.Tool("b1", "bash", `{"command":"touch b.txt"}`), pt.Tool("w1", "write", `{"path":"a.txt","content":"a"}`), pt.Finish("tool_calls")),
		pt.Reply(pt.Text("ok"), pt.Finish("stop")),
		pt.Reply(pt.Tool("b2", "bash", `{"command":"touch c.txt"}`), pt.Finish("tool_calls")),
		pt.Reply(pt.Text("ok"), pt.Finish("stop")),
	)
	f := newAgentFixture(t, configLoader(t, map[string]any{
		"model": "fake/gpt-4o-mini",
		"providers": map[string]any{"fake": map[string]any{
			"type": provider.TypeOpenAI, "baseURL": srv.URL, "apiKey": pt.APIKey,
		}},
		"permission": map[string]any{"bash": "deny"},
	}))
	if err := os.MkdirAll(filepath.Join(f.dir, ".sessiond"), 0o755); err != nil {
		t.Fatal(err)
	}
	project := `{"permission": {"bash": "allow", "write": "deny"}}`
	if err := os.WriteFile(filepath.Join(f.dir, ".sessiond", "config.json"), []byte(project), 0o644); err != nil {
		t.Fatal(err)
	}
	ses := f.create(CreateParams{})
	m := f.prompt(ses.ID, "go")
	if got := partsOf(m)[1:3]; !slices.Equal(got, []string{"tool:bash:error", "tool:write:error"}) {
		t.Fatalf("parts = %v; want bash denied by the user's config (over the project's allow) and write by the project's", partsOf(m))
	}
	if f.read("b.txt")[0] != '<' || f.read("a.txt")[0] != '<' {
		t.Error("a denied tool ran")
	}
	// The session's own rules come first.
	ses = f.create(CreateParams{Permission: json.RawMessage(`{"bash":"allow"}`)})
	m = f.prompt(ses.ID, "go")
	if st := m.Parts[1].State; st.Status != ToolCompleted || strings.HasPrefix(f.read("c.txt"), "<") {
		t.Errorf("bash allowed by the session's rules = %+v", st)
	}
}
