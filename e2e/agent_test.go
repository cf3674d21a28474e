package e2e

// End-to-end tests of the agent turn loop (DESIGN §2 session/prompt,
// §6): the real daemon binary talks to fake model servers this test
// process runs (providertest, in the OpenAI and Anthropic wire formats),
// configured through the user config file in the sandbox's HOME.

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sessiond/sessiond/rpc"
	"github.com/sessiond/sessiond/session"
	"github.com/sessiond/sessiond/session/provider"
	pt "github.com/sessiond/sessiond/session/provider/providertest"
	"github.com/sessiond/sessiond/workspace/snapshot"
)

// agWorld is a daemon whose user config points the provider "fake" at a
// fake model server, a workspace and a client that opened it.
type agWorld struct {
	t  *testing.T
	s  *sandbox
	c  *client
	ws string
}

// agSetup starts a fake server of typ answering with responses (none: no
// provider configured at all), a daemon configured to use it, and a
// client with the workspace open.
func agSetup(t *testing.T, typ, model string, responses ...pt.Response) (*agWorld, *pt.Server) {
	t.Helper()
	ws, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var srv *pt.Server
	if typ != "" {
		if typ == provider.TypeOpenAI {
			srv = pt.NewOpenAI(t, responses...)
		} else {
			srv = pt.NewAnthropic(t, responses...)
		}
	}
	s := newSandbox(t)
	if srv != nil {
		cfg := map[string]any{
			"model": "fake/" + model,
			"providers": map[string]any{"fake": map[string]any{
				"type": typ, "baseURL": srv.URL, "apiKey": pt.APIKey,
			}},
		}
		dir := filepath.Join(s.base, "home", ".config", "sessiond")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(mustJSON(cfg)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := s.command("serve")
	// The test's own keys must not reach the daemon: only the config file
	// says which provider to use.
	cmd.Env = slices.DeleteFunc(cmd.Env, func(kv string) bool {
		return strings.HasPrefix(kv, "OPENAI_") || strings.HasPrefix(kv, "ANTHROPIC_")
	})
	d := s.start(cmd)
	s.waitListening(d)
	w := &agWorld{t: t, s: s, c: s.dial(), ws: ws}
	w.c.open(ws)
	return w, srv
}

func (w *agWorld) session(p session.CreateParams) session.Session {
	w.t.Helper()
	p.Directory = w.ws
	return w.c.create(p)
}

func textPrompt(sessionID, text string) map[string]any {
	return map[string]any{"sessionID": sessionID, "parts": []any{map[string]any{"type": "text", "text": text}}}
}

func (w *agWorld) read(rel string) string {
	b, err := os.ReadFile(filepath.Join(w.ws, filepath.FromSlash(rel)))
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return string(b)
}

func agParts(m session.MessageWithParts) []string {
	out := make([]string, len(m.Parts))
	for i, p := range m.Parts {
		out[i] = p.Type
		if p.Type == session.PartTool {
			out[i] = "tool:" + p.Tool + ":" + p.State.Status
		}
	}
	return out
}

// agDeltas collects the streamed deltas of a session's parts, by part ID.
func agDeltas(evs []event, sessionID string) map[string]string {
	out := map[string]string{}
	for _, e := range evs {
		if e.Type != "part.updated" || e.sessionID() != sessionID {
			continue
		}
		var p struct {
			Properties struct {
				Delta *string `json:"delta"`
			} `json:"properties"`
		}
		json.Unmarshal(e.Raw, &p)
		if p.Properties.Delta != nil {
			out[e.Properties.Part.ID] += *p.Properties.Delta
		}
	}
	return out
}

// TestAgentPromptEditsFilesAndTimeTravels: a prompt whose model writes a
// file, edits it and runs bash over it; deltas stream as events; the
// diff shows the file; revert and unrevert take it away and bring it
// back; usage and cost add up over the model calls.
func TestAgentPromptEditsFilesAndTimeTravels(t *testing.T) {
	t.Parallel()
	u1 := pt.Usage{Input: 1000, Output: 50, CacheRead: 200}
	u2 := pt.Usage{Input: 1200, Output: 40}
	u3 := pt.Usage{Input: 1300, Output: 30}
	u4 := pt.Usage{Input: 1400, Output: 20}
	w, srv := agSetup(t, provider.TypeOpenAI, "gpt-4o-mini",
		pt.Reply(pt.Text("I will "), pt.Text("write it."), pt.Tool("w1", "write", `{"path":"src/hello.txt",`, `"content":"hello\n"}`),
			pt.Tokens(u1), pt.Finish("tool_calls")),
		pt.Reply(pt.Tool("e1", "edit", `{"path":"src/hello.txt","old_string":"hello","new_string":"hello, world"}`), pt.Tokens(u2), pt.Finish("tool_calls")),
		pt.Reply(pt.Tool("b1", "bash", `{"command":"echo bye >> src/hello.txt && cat src/hello.txt"}`), pt.Tokens(u3), pt.Finish("tool_calls")),
		pt.Reply(pt.Text("Done: "), pt.Text("hello.txt has two lines."), pt.Tokens(u4), pt.Finish("stop")),
	)
	if err := os.WriteFile(filepath.Join(w.ws, "keep.txt"), []byte("keep\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ses := w.session(session.CreateParams{Title: "agent"})
	var m session.MessageWithParts
	w.c.call("session/prompt", textPrompt(ses.ID, "write hello"), &m)

	if got := w.read("src/hello.txt"); got != "hello, world\nbye\n" {
		t.Fatalf("src/hello.txt = %q", got)
	}
	want := []string{
		"step-start", "text", "tool:write:completed", "patch", "step-finish",
		"step-start", "tool:edit:completed", "patch", "step-finish",
		"step-start", "tool:bash:completed", "patch", "step-finish",
		"step-start", "text", "step-finish", "patch",
	}
	if got := agParts(m); !slices.Equal(got, want) {
		t.Fatalf("parts =\n%v\nwant\n%v", got, want)
	}
	if m.Info.Finish != "stop" || m.Info.Error != nil || m.Info.Snapshot == nil || m.Parts[14].Text != "Done: hello.txt has two lines." {
		t.Errorf("message = %s", mustJSON(m.Info))
	}
	if out := m.Parts[10].State.Output; !strings.Contains(out, "hello, world\nbye") {
		t.Errorf("bash output = %q", out)
	}

	// The text streamed delta by delta; the deltas add up to the parts.
	deltas := agDeltas(w.c.events.all(), ses.ID)
	if deltas[m.Parts[1].ID] != "I will write it." || deltas[m.Parts[14].ID] != "Done: hello.txt has two lines." {
		t.Errorf("deltas = %v", deltas)
	}

	// The model saw the tool results.
	reqs := srv.Requests()
	if len(reqs) != 4 || !strings.Contains(string(reqs[3].Body), "hello, world") {
		t.Fatalf("%d requests; the last: %s", len(reqs), reqs[len(reqs)-1].Body)
	}

	var diffs []snapshot.FileDiff
	w.c.call("session/diff", map[string]any{"sessionID": ses.ID, "patch": true}, &diffs)
	if len(diffs) != 1 || diffs[0].Path != "src/hello.txt" || diffs[0].Status != "added" || !strings.Contains(diffs[0].Patch, "+hello, world") {
		t.Fatalf("diff = %s", mustJSON(diffs))
	}

	var usage session.UsageResult
	w.c.call("session/usage", map[string]any{"sessionID": ses.ID}, &usage)
	sum := provider.Usage{}
	for _, u := range []pt.Usage{u1, u2, u3, u4} {
		sum = sum.Add(provider.Usage{Input: u.Input, Output: u.Output, Reasoning: u.Reasoning, CacheRead: u.CacheRead, CacheWrite: u.CacheWrite})
	}
	cost := provider.Cost(provider.NewModelTable().Lookup("gpt-4o-mini"), sum)
	if usage.TotalTokens != sum.Total() || usage.Input != sum.Input || usage.Output != sum.Output || usage.CacheRead != sum.CacheRead ||
		math.Abs(usage.TotalCost-cost) > 1e-9 || math.Abs(m.Info.Cost-cost) > 1e-9 || usage.ByModel["fake/gpt-4o-mini"].TotalTokens != sum.Total() {
		t.Errorf("usage = %s, message cost %v; want %d tokens costing %v", mustJSON(usage), m.Info.Cost, sum.Total(), cost)
	}
	if m.Info.Tokens == nil || m.Info.Tokens.Input != sum.Input {
		t.Errorf("message tokens = %+v", m.Info.Tokens)
	}

	// Revert to the prompt: the file goes, keep.txt stays; unrevert.
	var rs session.Session
	w.c.call("session/revert", map[string]any{"sessionID": ses.ID, "messageID": m.Info.ParentID}, &rs)
	if got := w.read("src/hello.txt"); !strings.HasPrefix(got, "<") || w.read("keep.txt") != "keep\n" {
		t.Errorf("after revert: hello.txt %q, keep.txt %q", got, w.read("keep.txt"))
	}
	var msgs []session.MessageWithParts
	w.c.call("session/messages", map[string]any{"sessionID": ses.ID}, &msgs)
	if len(msgs) != 0 {
		t.Errorf("after revert %d messages are visible", len(msgs))
	}
	w.c.call("session/unrevert", map[string]any{"sessionID": ses.ID}, &rs)
	if got := w.read("src/hello.txt"); got != "hello, world\nbye\n" {
		t.Errorf("after unrevert hello.txt = %q", got)
	}
	w.c.call("session/messages", map[string]any{"sessionID": ses.ID}, &msgs)
	if len(msgs) != 2 || msgs[0].Info.Role != "user" || msgs[1].Info.ID != m.Info.ID {
		t.Errorf("after unrevert messages = %d", len(msgs))
	}
	var st map[string]session.Status
	w.c.call("session/status", map[string]any{"sessionID": ses.ID}, &st)
	if s := st[ses.ID]; s.State != "idle" || s.Queued != 0 || s.MessageCount != 2 {
		t.Errorf("status = %+v", s)
	}
}

// TestAgentQueueAndAbort: while a prompt streams (and then hangs), a
// second one from another client waits in the queue; aborting the first
// answers it with Aborted and keeps its partial message; the second then
// runs.
func TestAgentQueueAndAbort(t *testing.T) {
	t.Parallel()
	w, _ := agSetup(t, provider.TypeAnthropic, "claude-haiku-4-5",
		pt.Reply(pt.Text("partial answer"), pt.Hang()),
		pt.Reply(pt.Text("second answer"), pt.Tokens(pt.Usage{Input: 10, Output: 2}), pt.Finish("stop")),
		pt.Fail(400, "prompt is too long"),
	)
	ses := w.session(session.CreateParams{})
	c2 := w.s.dial()

	type result struct {
		m   session.MessageWithParts
		err error
	}
	call := func(c *client, params any) chan result {
		ch := make(chan result, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), patience)
			defer cancel()
			var r result
			r.err = c.Call(ctx, "session/prompt", params, &r.m)
			ch <- r
		}()
		return ch
	}
	first := call(w.c, textPrompt(ses.ID, "first"))
	// The first turn has streamed its text and hangs.
	w.c.events.expectWhere(t, "part.updated", ses.ID, func(e event) bool {
		return strings.Contains(string(e.Raw), `"delta":"partial answer"`)
	})
	second := call(c2, textPrompt(ses.ID, "second"))
	waitUntil(t, "the second prompt to be queued", func() bool {
		var st map[string]session.Status
		w.c.call("session/status", map[string]any{"sessionID": ses.ID}, &st)
		return st[ses.ID].State == "busy" && st[ses.ID].Queued == 1
	})

	var ab session.AbortResult
	c2.call("session/abort", map[string]any{"sessionID": ses.ID}, &ab)
	if !ab.Aborted || ab.MessageID == "" {
		t.Fatalf("abort = %+v", ab)
	}
	r := <-first
	var re *rpc.Error
	if !errors.As(r.err, &re) || re.Code != rpc.CodeAborted || re.Data["messageID"] != ab.MessageID || re.Kind() != "Aborted" {
		t.Fatalf("first prompt: %v (%s)", r.err, mustJSON(re))
	}
	var kept session.MessageWithParts
	w.c.call("session/message", map[string]any{"sessionID": ses.ID, "messageID": ab.MessageID}, &kept)
	if kept.Info.Error == nil || kept.Info.Error.Kind != "Aborted" || len(kept.Parts) < 2 || kept.Parts[1].Text != "partial answer" ||
		kept.Parts[1].Metadata["aborted"] != true {
		t.Errorf("kept message = %s", mustJSON(kept))
	}

	r = <-second
	if r.err != nil || len(r.m.Parts) < 2 || r.m.Parts[1].Text != "second answer" {
		t.Fatalf("second prompt: %v %s", r.err, mustJSON(r.m))
	}
	var msgs []session.MessageWithParts
	w.c.call("session/messages", map[string]any{"sessionID": ses.ID}, &msgs)
	var roles []string
	for _, m := range msgs {
		roles = append(roles, m.Info.Role)
	}
	if !slices.Equal(roles, []string{"user", "assistant", "user", "assistant"}) || msgs[1].Info.ID != ab.MessageID || msgs[3].Info.ID != r.m.Info.ID {
		t.Errorf("messages = %v", roles)
	}

	// promptAsync answers at once with the user message's ID.
	var pa session.PromptAsyncResult
	w.c.call("session/promptAsync", textPrompt(ses.ID, "third"), &pa)
	if !strings.HasPrefix(pa.MessageID, "msg_") {
		t.Fatalf("promptAsync = %+v", pa)
	}
	// The provider refuses it: the turn ends with the provider's error on
	// its message.
	e := w.c.events.expectWhere(t, "message.updated", ses.ID, func(e event) bool {
		m := e.message()
		return m.ParentID == pa.MessageID && m.Error != nil && m.Time.Completed != 0
	})
	if m := e.message(); m.Error.Kind != "ProviderError" || !strings.Contains(m.Error.Message, "prompt is too long") {
		t.Errorf("third turn's error = %+v", m.Error)
	}
}

// TestAgentNoProvider: with nothing configured a prompt is refused with
// NoProvider, saying what to set, and nothing is stored.
func TestAgentNoProvider(t *testing.T) {
	t.Parallel()
	w, _ := agSetup(t, "", "")
	ses := w.session(session.CreateParams{})
	e := w.c.callErr("session/prompt", textPrompt(ses.ID, "hi"))
	if e.Code != rpc.CodeNoProvider || e.Kind() != "NoProvider" || !strings.Contains(e.Message, "ANTHROPIC_API_KEY") || !strings.Contains(e.Message, "config.json") {
		t.Fatalf("error = %s", mustJSON(e))
	}
	e = w.c.callErr("session/promptAsync", map[string]any{"sessionID": ses.ID, "parts": []any{map[string]any{"type": "text", "text": "hi"}},
		"model": map[string]any{"providerID": "ollama", "modelID": "llama3"}})
	if e.Code != rpc.CodeNoProvider || !strings.Contains(e.Message, "ollama") {
		t.Fatalf("error = %s", mustJSON(e))
	}
	var msgs []session.MessageWithParts
	w.c.call("session/messages", map[string]any{"sessionID": ses.ID}, &msgs)
	if len(msgs) != 0 || w.c.get(ses.ID).MessageCount != 0 {
		t.Errorf("%d messages stored", len(msgs))
	}
	e = w.c.callErr("session/prompt", map[string]any{"sessionID": ses.ID, "parts": []any{map[string]any{"type": "file", "path": "../etc/passwd"}}})
	if e.Code != rpc.CodeInvalidParams || e.Data["field"] != "parts[0].path" {
		t.Errorf("bad file part: %s", mustJSON(e))
	}
}

// TestAgentPermissionAsksTheClient: a rule that says ask sends
// session/requestPermission to the client that sent the prompt, and the
// tool runs only once it answers allow; deny refuses the tool.
func TestAgentPermissionAsksTheClient(t *testing.T) {
	t.Parallel()
	w, _ := agSetup(t, provider.TypeOpenAI, "gpt-4o-mini",
		pt.Reply(pt.Tool("w1", "write", `{"path":"a.txt","content":"a"}`), pt.Tool("b1", "bash", `{"command":"touch b.txt"}`), pt.Finish("tool_calls")),
		pt.Reply(pt.Text("ok"), pt.Finish("stop")),
	)
	var mu sync.Mutex
	var asked []session.PermissionRequest
	conn, err := net.Dial("unix", w.s.socket)
	if err != nil {
		t.Fatal(err)
	}
	c := rpc.Dial(context.Background(), conn, rpc.ClientOptions{Logger: quiet,
		OnCall: func(ctx context.Context, method string, params json.RawMessage) (any, error) {
			if method != "session/requestPermission" {
				return nil, rpc.NewError(rpc.CodeMethodNotFound, "no %s here", method)
			}
			var req session.PermissionRequest
			json.Unmarshal(params, &req)
			mu.Lock()
			asked = append(asked, req)
			mu.Unlock()
			return session.PermissionResult{Outcome: session.OutcomeAllowOnce}, nil
		}})
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	ses := w.session(session.CreateParams{Permission: json.RawMessage(`{"write":"ask","bash":"deny"}`)})
	var m session.MessageWithParts
	if err := c.Call(ctx, "session/prompt", textPrompt(ses.ID, "go"), &m); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(asked) != 1 || asked[0].Tool != "write" || asked[0].SessionID != ses.ID || asked[0].MessageID != m.Info.ID || len(asked[0].Options) == 0 {
		t.Errorf("asked = %s", mustJSON(asked))
	}
	if got := agParts(m)[1:3]; !slices.Equal(got, []string{"tool:write:completed", "tool:bash:error"}) {
		t.Fatalf("parts = %v", agParts(m))
	}
	if !strings.Contains(m.Parts[2].State.Error, "denied") || w.read("a.txt") != "a" || !strings.HasPrefix(w.read("b.txt"), "<") {
		t.Errorf("bash = %+v; a.txt %q", m.Parts[2].State, w.read("a.txt"))
	}
}
