package session

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sessiond/sessiond/session/provider"
	pt "github.com/sessiond/sessiond/session/provider/providertest"
)

func TestApproxTokens(t *testing.T) {
	for s, want := range map[string]int64{"": 0, "a": 1, "abcd": 1, "abcde": 2, "héllo": 2, strings.Repeat("x", 400): 100} {
		if got := approxTokens(s); got != want {
			t.Errorf("approxTokens(%q) = %d, want %d", s, got, want)
		}
	}
	m := provider.Message{Role: provider.RoleAssistant, Content: []provider.Content{
		provider.Text{Text: strings.Repeat("t", 40)},                       // 10
		provider.Image{Mime: "image/png", Data: []byte("x")},               // 1600
		provider.ToolCall{ID: "c", Name: "read", Input: []byte(`{"a":1}`)}, // 8 + 1 + 2
		provider.ToolResult{CallID: "c", Output: strings.Repeat("o", 80)},  // 8 + 20
		provider.Reasoning{Text: "abcd"},                                   // 1
	}}
	if got, want := approxMessage(m), int64(4+10+imageTokens+11+28+1); got != want {
		t.Errorf("approxMessage = %d, want %d", got, want)
	}
	req := provider.Request{
		System:   strings.Repeat("s", 40),
		Tools:    []provider.Tool{{Name: "read", Description: strings.Repeat("d", 20), Schema: json.RawMessage(`{"type":"object"}`)}},
		Messages: []provider.Message{m, {Role: provider.RoleUser, Content: []provider.Content{provider.Text{Text: "hi"}}}},
	}
	base := int64(4+10) + int64(8+1+5+5)
	if got := approxBase(req); got != base {
		t.Errorf("approxBase = %d, want %d", got, base)
	}
	if got, want := approxRequest(req), base+approxMessage(m)+5; got != want {
		t.Errorf("approxRequest = %d, want %d", got, want)
	}
}

func TestContextBudget(t *testing.T) {
	for _, c := range []struct {
		window, maxOut, reserve int64
	}{
		{200_000, 64_000, 32_000}, // capped at what a request asks for
		{128_000, 16_384, 16_384},
		{4_000, 16_384, 2_000}, // a small configured window keeps half
		{0, 0, provider.DefaultMaxOutput},
	} {
		b := contextBudgetOf(provider.ModelInfo{ContextWindow: c.window, MaxOutput: c.maxOut})
		w := orDefault(c.window, provider.DefaultContextWindow)
		if b.reserve != c.reserve || b.budget != w-c.reserve || b.compactAt != b.budget*8/10 || b.elideTo != b.budget*6/10 {
			t.Errorf("budget of %d/%d = %+v", c.window, c.maxOut, b)
		}
	}
	b := contextBudgetOf(provider.ModelInfo{ContextWindow: 10_000, MaxOutput: 1_000})
	if got := b.keepTokens(2_200); got != (7_200-2_200)*4/10 {
		t.Errorf("keepTokens = %d", got)
	}
	if got := b.keepTokens(9_000); got != 0 {
		t.Errorf("keepTokens with a base over the threshold = %d", got)
	}
}

func orDefault(v, def int64) int64 {
	if v == 0 {
		return def
	}
	return v
}

// ctxMsg builds a stored message with one text part.
func ctxMsg(id, role, text string) MessageWithParts {
	return MessageWithParts{Info: Message{ID: id, Role: role}, Parts: []Part{{ID: id + "p", MessageID: id, Type: PartText, Text: text}}}
}

// ctxMarker builds a marker as it reads back from the store (keep is a
// JSON number).
func ctxMarker(id, kind, summary string, keep int) MessageWithParts {
	return MessageWithParts{Info: Message{ID: id, Role: RoleSystem}, Parts: []Part{{
		ID: id + "p", MessageID: id, Type: PartCompaction, Text: summary,
		Metadata: map[string]any{metaKind: kind, metaKeep: float64(keep)},
	}}}
}

func TestViewContext(t *testing.T) {
	ids := func(v contextView) string {
		var out []string
		for _, m := range v.msgs {
			out = append(out, m.Info.ID)
		}
		return strings.Join(out, " ")
	}
	u1, a1, u2, a2, u3 := ctxMsg("m1", RoleUser, "1"), ctxMsg("m2", RoleAssistant, "2"), ctxMsg("m3", RoleUser, "3"), ctxMsg("m4", RoleAssistant, "4"), ctxMsg("m5", RoleUser, "5")
	for _, c := range []struct {
		name    string
		all     []MessageWithParts
		want    string
		summary string
		kept    int
	}{
		{"no marker", []MessageWithParts{u1, a1, u2}, "m1 m2 m3", "", 0},
		{"clear", []MessageWithParts{u1, a1, ctxMarker("c1", MarkerClear, "", 0), u2, a2}, "m3 m4", "", 0},
		{"compaction keeping two", []MessageWithParts{u1, a1, u2, a2, ctxMarker("c1", MarkerAuto, "S", 2), u3}, "m3 m4 m5", "S", 2},
		{"the latest marker wins", []MessageWithParts{u1, ctxMarker("c1", MarkerClear, "", 0), a1, u2, a2, ctxMarker("c2", MarkerManual, "S2", 0), u3}, "m5", "S2", 0},
		{"an earlier marker among the kept", []MessageWithParts{u1, ctxMarker("c1", MarkerAuto, "S1", 1), a1, ctxMarker("c2", MarkerAuto, "S2", 3), u3}, "m1 m2 m5", "S2", 2},
		{"keep beyond the start", []MessageWithParts{u1, a1, ctxMarker("c1", MarkerAuto, "S", 9)}, "m1 m2", "S", 2},
		{"a compaction part of a user message is no marker", []MessageWithParts{u1, {Info: Message{ID: "m2", Role: RoleUser}, Parts: []Part{{Type: PartCompaction, Text: "x"}}}}, "m1 m2", "", 0},
	} {
		v := viewContext(c.all)
		if got := ids(v); got != c.want || v.summary != c.summary || v.kept != c.kept {
			t.Errorf("%s: msgs %q summary %q kept %d, want %q %q %d", c.name, got, v.summary, v.kept, c.want, c.summary, c.kept)
		}
	}
}

func TestCompactSplit(t *testing.T) {
	u, a := RoleUser, RoleAssistant
	for _, c := range []struct {
		name    string
		roles   []string
		tokens  []int64
		protect int
		keep    int64
		want    int
	}{
		{"manual: everything", []string{u, a, u, a}, []int64{10, 10, 10, 10}, 4, 0, 4},
		{"empty", nil, nil, 0, 100, 0},
		{"only the running turn", []string{u, a}, []int64{500, 0}, 0, 100, 0},
		{"keeps what fits, from a user message", []string{u, a, u, a, u, a}, []int64{100, 10, 100, 10, 100, 0}, 4, 250, 2},
		{"never splits a user message from its answer", []string{u, a, u, a, u, a}, []int64{100, 10, 100, 200, 100, 0}, 4, 250, 4},
		{"the running turn stays even when too big", []string{u, a, u, a}, []int64{100, 10, 900, 900}, 2, 100, 2},
		{"protect beyond the end", []string{u, a}, []int64{10, 10}, 7, 0, 2},
	} {
		if got := compactSplit(c.roles, c.tokens, c.protect, c.keep); got != c.want {
			t.Errorf("%s: compactSplit = %d, want %d", c.name, got, c.want)
		}
	}
}

func TestElideToolResults(t *testing.T) {
	big := strings.Repeat("x", 4000) // 1000 tokens
	call := func(id string) provider.Message {
		return provider.Message{Role: provider.RoleAssistant, Content: []provider.Content{provider.ToolCall{ID: id, Name: "read"}}}
	}
	result := func(id, out string) provider.Message {
		return provider.Message{Role: provider.RoleTool, Content: []provider.Content{provider.ToolResult{CallID: id, Output: out}}}
	}
	msgs := []provider.Message{
		{Role: provider.RoleUser, Content: []provider.Content{provider.Text{Text: big}}},
		call("1"), result("1", big+"1"),
		call("2"), result("2", "short"),
		call("3"), result("3", big+"3"),
		call("4"), result("4", big+"4"),
	}
	before := fmt.Sprint(msgs)
	if got := elideToolResults(msgs, 0); &got[0] != &msgs[0] {
		t.Error("nothing to save made a copy")
	}
	out := elideToolResults(msgs, 1200)
	outputs := func(ms []provider.Message) []string {
		var o []string
		for _, m := range ms {
			for _, c := range m.Content {
				if r, ok := c.(provider.ToolResult); ok {
					o = append(o, r.Output[len(r.Output)-1:])
				}
			}
		}
		return o
	}
	// 1 and 3 go (about 975 tokens saved each), "short" is not worth it,
	// and 4, the latest, stays even though more was asked for.
	if got, want := outputs(out), []string{")", "t", ")", "4"}; !slices.Equal(got, want) {
		t.Errorf("outputs end in %q, want %q", got, want)
	}
	if got := outputs(elideToolResults(msgs, 10_000)); got[3] != "4" {
		t.Errorf("the latest results were elided: %q", got)
	}
	if got := outputs(elideToolResults(msgs, 10)); !slices.Equal(got, []string{")", "t", "3", "4"}) {
		t.Errorf("elided more than needed: %q", got)
	}
	if fmt.Sprint(msgs) != before {
		t.Error("elideToolResults changed its input")
	}
	if out[0].Content[0].(provider.Text).Text != big {
		t.Error("a user message was elided")
	}
}

// ---------------------------------------------------------------------

// modelLoader points provider "fake" at srv with model described by the
// config's model table entry.
func modelLoader(t *testing.T, srv *pt.Server, typ, model string, window, maxOutput int64) ProviderLoader {
	t.Helper()
	return configLoader(t, map[string]any{
		"model": "fake/" + model,
		"providers": map[string]any{"fake": map[string]any{
			"type": typ, "baseURL": srv.URL, "apiKey": pt.APIKey,
			"models": map[string]any{model: map[string]any{"contextWindow": window, "maxOutput": maxOutput}},
		}},
	})
}

// switchLoader is a loader the test can swap once it has measured the
// session (the tiny window depends on the system prompt's size).
func switchLoader(first ProviderLoader) (ProviderLoader, *atomic.Pointer[ProviderLoader]) {
	var cur atomic.Pointer[ProviderLoader]
	cur.Store(&first)
	return func(dir string) (*provider.Registry, error) { return (*cur.Load())(dir) }, &cur
}

// body is a recorded request as text.
func body(r pt.Request) string { return string(r.Body) }

func (f *agentFixture) context(id string) ContextResult {
	f.t.Helper()
	c, err := f.svc.Context(f.ctx, ContextParams{SessionID: id})
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

func markerPart(t *testing.T, m MessageWithParts) Part {
	t.Helper()
	p, ok := markerOf(m)
	if !ok || m.Info.Role != RoleSystem || len(m.Parts) != 1 {
		t.Fatalf("not a marker: %+v", m)
	}
	return p
}

// TestClearHidesEarlierMessages: over both wires, the request after a
// clear carries none of the earlier messages, which stay listed with the
// marker after them.
func TestClearHidesEarlierMessages(t *testing.T) {
	for _, w := range wires {
		t.Run(w.name, func(t *testing.T) {
			t.Parallel()
			reply := func(s string) pt.Response {
				return pt.Reply(pt.Text(s), pt.Tokens(pt.Usage{Input: 10, Output: 2}), pt.Finish("stop"))
			}
			srv := w.start(t, reply("noted"), reply("what word?"))
			f := newAgentFixture(t, serverLoader(t, srv, w.typ, w.model))
			ses := f.create(CreateParams{})
			f.prompt(ses.ID, "remember the word alpha-1234")

			n := f.pub.len()
			got, err := f.svc.Clear(f.ctx, ClearParams{SessionID: ses.ID})
			if err != nil {
				t.Fatal(err)
			}
			if got.MessageCount != 3 || got.Version <= ses.Version {
				t.Errorf("session after clear = %+v", got)
			}
			// (The prompt's runner may still announce it went idle.)
			ty := slices.DeleteFunc(types(f.pub.since(n), ses.ID), func(s string) bool { return s == "session.status" })
			if !slices.Equal(ty, []string{"message.updated", "part.updated", "session.updated"}) {
				t.Errorf("events = %v", ty)
			}
			msgs := f.messages(ses.ID)
			if len(msgs) != 3 {
				t.Fatalf("messages = %v", partsOfAll(msgs))
			}
			if p := markerPart(t, msgs[2]); p.Metadata[metaKind] != MarkerClear || p.Text != "" || metaInt(p.Metadata, metaKeep) != 0 {
				t.Errorf("clear marker = %+v", p)
			}
			// A second clear finds the context empty and records nothing.
			if again, err := f.svc.Clear(f.ctx, ClearParams{SessionID: ses.ID}); err != nil || again.MessageCount != 3 || again.Version != got.Version {
				t.Errorf("second clear = %+v, %v", again, err)
			}

			f.prompt(ses.ID, "which word did I give you?")
			reqs := srv.Requests()
			if len(reqs) != 2 {
				t.Fatalf("%d requests", len(reqs))
			}
			if !strings.Contains(body(reqs[0]), "alpha-1234") {
				t.Fatal("the first request lacks the word")
			}
			b := body(reqs[1])
			if strings.Contains(b, "alpha-1234") || strings.Contains(b, "noted") || !strings.Contains(b, "which word did I give you?") {
				t.Errorf("the request after the clear = %s", b)
			}
			if !strings.Contains(b, "You are the build agent") {
				t.Error("the system prompt went with the clear")
			}
			if msgs := f.messages(ses.ID); len(msgs) != 5 || msgs[0].Parts[0].Text != "remember the word alpha-1234" {
				t.Errorf("messages after = %v", partsOfAll(msgs))
			}
		})
	}
}

// TestClearAndCompactBusy: a running turn (or a queued prompt) makes
// clear and compact answer Busy; a stopped session answers Closed.
func TestClearAndCompactBusy(t *testing.T) {
	fp := &fakeProvider{calls: make(chan *fakeCall)}
	f := newAgentFixture(t, fakeLoader(t, fp))
	ses := f.create(CreateParams{})
	run := f.promptAsync(f.ctx, PromptParams{SessionID: ses.ID, Parts: []PromptPart{{Type: PartText, Text: "hi"}}})
	call := fp.next(t)
	if _, err := f.svc.Clear(f.ctx, ClearParams{SessionID: ses.ID}); !errors.Is(err, ErrBusy) {
		t.Errorf("clear while busy: %v", err)
	}
	if _, err := f.svc.Compact(f.ctx, CompactParams{SessionID: ses.ID}); !errors.Is(err, ErrBusy) {
		t.Errorf("compact while busy: %v", err)
	}
	call.send(t, provider.TextDone{Text: "hello"})
	call.end(t, provider.FinishStop)
	if _, err := run.wait(t); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "idle", func() bool { return f.status(ses.ID).State == "idle" })
	if _, err := f.svc.Clear(f.ctx, ClearParams{SessionID: ses.ID}); err != nil {
		t.Errorf("clear when idle: %v", err)
	}
	if _, err := f.svc.Stop(f.ctx, ses.ID); err != nil {
		t.Fatal(err)
	}
	_, err := f.svc.Clear(f.ctx, ClearParams{SessionID: ses.ID})
	wantClosed(t, err, ses.ID, LifecycleStopped)
	_, err = f.svc.Context(f.ctx, ContextParams{SessionID: "ses_nope"})
	var nf *NotFoundError
	if !errors.As(err, &nf) {
		t.Errorf("context of an absent session: %v", err)
	}
}

// TestContextNumbers: session/context counts the system prompt and each
// message, takes the model's own count of its last call when there is
// one, and the budget from the configured model.
func TestContextNumbers(t *testing.T) {
	srv := pt.NewOpenAI(t, pt.Reply(pt.Text("fine"), pt.Tokens(pt.Usage{Input: 900, Output: 40, CacheRead: 100, Reasoning: 10}), pt.Finish("stop")))
	f := newAgentFixture(t, modelLoader(t, srv, provider.TypeOpenAI, "ctx-model", 50_000, 4_000))
	ses := f.create(CreateParams{})

	c := f.context(ses.ID)
	if c.BudgetTokens != 46_000 || c.CompactAtTokens != 36_800 || c.ContextWindow != 50_000 || c.MaxOutput != 4_000 ||
		c.Model == nil || *c.Model != (ModelRef{ProviderID: "fake", ModelID: "ctx-model"}) {
		t.Errorf("budget = %+v", c)
	}
	if len(c.Items) != 1 || c.Items[0].Kind != ContextSystem || c.Items[0].Tokens < 500 || !c.Estimated || c.CurrentTokens != c.Items[0].Tokens {
		t.Fatalf("empty context = %+v", c)
	}
	system := c.Items[0].Tokens

	text := strings.Repeat("word ", 200) // 1000 bytes
	asst := f.prompt(ses.ID, text)
	c = f.context(ses.ID)
	msgs := f.messages(ses.ID)
	want := []ContextItem{
		{Kind: ContextSystem, Tokens: system},
		{Kind: ContextMessage, MessageID: msgs[0].Info.ID, Role: RoleUser, Tokens: 4 + 250},
		{Kind: ContextMessage, MessageID: asst.Info.ID, Role: RoleAssistant, Tokens: 4 + 1},
	}
	if !slices.Equal(c.Items, want) {
		t.Errorf("items = %+v, want %+v", c.Items, want)
	}
	if c.Estimated || c.CurrentTokens != 1050 {
		t.Errorf("current = %d (estimated %v), want the model's 1050", c.CurrentTokens, c.Estimated)
	}

	if _, err := f.svc.Clear(f.ctx, ClearParams{SessionID: ses.ID}); err != nil {
		t.Fatal(err)
	}
	c = f.context(ses.ID)
	if len(c.Items) != 1 || !c.Estimated || c.CurrentTokens != system {
		t.Errorf("context after clear = %+v", c)
	}

	// With no provider configured the numbers are the defaults'.
	g := newAgentFixture(t, configLoader(t, nil))
	other := g.create(CreateParams{})
	c = g.context(other.ID)
	if c.Model != nil || c.ContextWindow != provider.DefaultContextWindow || c.BudgetTokens != provider.DefaultContextWindow-provider.DefaultMaxOutput || len(c.Items) != 1 {
		t.Errorf("context without a provider = %+v", c)
	}
}

// tinyWindow gives a model a window in which automatic compaction starts
// at base+room tokens, base being the system prompt and tools.
func tinyWindow(base, room int64) (window, maxOutput int64) {
	maxOutput = 256
	return int64(math.Ceil(float64(base+room)*100/compactAtPercent)) + maxOutput, maxOutput
}

// TestAutoCompaction: near the window a turn first summarises the oldest
// turns with a model call, then sends the summary and the recent messages
// only; the old messages stay listed, the summary is a marker; later turns
// and a fork go on from the marker, and the next compaction folds the
// previous summary in.
func TestAutoCompaction(t *testing.T) {
	reply := func(s string) pt.Response {
		return pt.Reply(pt.Text(s), pt.Tokens(pt.Usage{Input: 10, Output: 2}), pt.Finish("stop"))
	}
	summary := func(s string) pt.Response {
		return pt.Reply(pt.Text(s), pt.Tokens(pt.Usage{Input: 300, Output: 30}), pt.Finish("stop"))
	}
	srv := pt.NewOpenAI(t, reply("ok-1"), reply("ok-2"), summary("SUMMARY-ONE"), reply("ok-3"), reply("ok-4"))
	load, cur := switchLoader(modelLoader(t, srv, provider.TypeOpenAI, "tiny", 1_000_000, 256))
	f := newAgentFixture(t, load)
	ses := f.create(CreateParams{})
	base := f.context(ses.ID).Items[0].Tokens
	window, maxOut := tinyWindow(base, 1000)
	tiny := modelLoader(t, srv, provider.TypeOpenAI, "tiny", window, maxOut)
	cur.Store(&tiny)

	// Each prompt is about 400 tokens: the third turn's request passes
	// base+1000, and the 400 tokens it may keep hold only its own prompt.
	prompt := func(id string, n int) MessageWithParts {
		return f.prompt(id, fmt.Sprintf("old-%d %s", n, strings.Repeat("z", 1600)))
	}
	prompt(ses.ID, 1)
	prompt(ses.ID, 2)
	if got := len(srv.Requests()); got != 2 {
		t.Fatalf("%d requests before the window filled", got)
	}
	n := f.pub.len()
	asst3 := prompt(ses.ID, 3)
	reqs := srv.Requests()
	if len(reqs) != 4 {
		t.Fatalf("%d requests, want a summary call and the turn's", len(reqs))
	}
	sum := reqs[2]
	if b := body(sum); !strings.Contains(b, "old-1") || !strings.Contains(b, "old-2") || !strings.Contains(b, "ok-1") || strings.Contains(b, "old-3") ||
		sum.JSON["tools"] != nil || !strings.Contains(b, "working summary") {
		t.Errorf("summary request = %s", b)
	}
	turn := body(reqs[3])
	if !strings.Contains(turn, "SUMMARY-ONE") || !strings.Contains(turn, "old-3") || strings.Contains(turn, "old-1") || strings.Contains(turn, "old-2") {
		t.Errorf("the turn's request after compaction = %.600s", turn)
	}
	if asst3.Parts[len(asst3.Parts)-2].Text != "ok-3" {
		t.Errorf("turn 3 = %v", partsOf(asst3))
	}
	msgs := f.messages(ses.ID)
	if len(msgs) != 7 || msgs[0].Parts[0].Text[:5] != "old-1" {
		t.Fatalf("messages = %v", partsOfAll(msgs))
	}
	mk := markerPart(t, msgs[6])
	if mk.Text != "SUMMARY-ONE" || mk.Metadata[metaKind] != MarkerAuto || metaInt(mk.Metadata, metaKeep) != 2 || metaInt(mk.Metadata, metaSummarized) != 4 {
		t.Errorf("marker = %+v", mk)
	}
	if info := msgs[6].Info; info.Tokens == nil || info.Tokens.Input != 300 || info.Model == nil || info.Model.ModelID != "tiny" {
		t.Errorf("marker message = %+v", info)
	}
	if ty := types(f.pub.since(n), ses.ID); !slices.Contains(ty, "message.updated") {
		t.Errorf("events = %v", ty)
	}
	if u, _ := f.svc.Usage(f.ctx, UsageParams{SessionID: ses.ID}); u.Input != 330 || u.Output != 36 {
		t.Errorf("usage = %+v, want the summary call counted", u)
	}
	c := f.context(ses.ID)
	if len(c.Items) != 4 || c.Items[1].Kind != ContextSummary || c.Items[1].MessageID != msgs[6].Info.ID || c.Items[2].MessageID != msgs[4].Info.ID {
		t.Errorf("context items = %+v", c.Items)
	}

	// The next turn still fits: the marker keeps applying.
	prompt(ses.ID, 4)
	reqs = srv.Requests()
	if b := body(reqs[4]); !strings.Contains(b, "SUMMARY-ONE") || !strings.Contains(b, "old-3") || !strings.Contains(b, "old-4") || strings.Contains(b, "old-2") {
		t.Errorf("turn 4's request = %.600s", b)
	}

	// A fork copies the messages under new IDs; the marker means the
	// same there. Its next turn passes the threshold again: the new
	// summary folds in the previous one.
	fork, err := f.svc.Fork(f.ctx, ForkParams{SessionID: ses.ID})
	if err != nil {
		t.Fatal(err)
	}
	srv.Enqueue(summary("SUMMARY-TWO"), reply("ok-5"))
	prompt(fork.ID, 5)
	reqs = srv.Requests()
	if len(reqs) != 7 {
		t.Fatalf("%d requests", len(reqs))
	}
	if b := body(reqs[5]); !strings.Contains(b, "previous-summary") || !strings.Contains(b, "SUMMARY-ONE") || !strings.Contains(b, "old-3") ||
		!strings.Contains(b, "old-4") || strings.Contains(b, "old-1") || strings.Contains(b, "old-5") {
		t.Errorf("second summary request = %s", b)
	}
	if b := body(reqs[6]); !strings.Contains(b, "SUMMARY-TWO") || !strings.Contains(b, "old-5") || strings.Contains(b, "SUMMARY-ONE") || strings.Contains(b, "old-4") {
		t.Errorf("the fork's request = %.600s", b)
	}
	if got := len(f.messages(ses.ID)); got != 9 {
		t.Errorf("the source has %d messages, want 9", got)
	}
}

// TestAutoCompactionElidesWithinTurn: when the running turn alone passes
// the threshold there is nothing older to summarise: the oldest tool
// outputs are left out of the request, the latest kept, and the stored
// parts keep every output.
func TestAutoCompactionElidesWithinTurn(t *testing.T) {
	srv := pt.NewOpenAI(t,
		pt.Reply(pt.Tool("r1", "read", `{"path":"a.txt"}`), pt.Finish("tool_calls")),
		pt.Reply(pt.Tool("r2", "read", `{"path":"b.txt"}`), pt.Finish("tool_calls")),
		pt.Reply(pt.Text("done"), pt.Finish("stop")),
	)
	load, cur := switchLoader(modelLoader(t, srv, provider.TypeOpenAI, "tiny", 1_000_000, 256))
	f := newAgentFixture(t, load)
	ses := f.create(CreateParams{})
	base := f.context(ses.ID).Items[0].Tokens
	window, maxOut := tinyWindow(base, 1500)
	tiny := modelLoader(t, srv, provider.TypeOpenAI, "tiny", window, maxOut)
	cur.Store(&tiny)
	line := strings.Repeat("q", 99) + "\n"
	f.write("a.txt", "FILE-A\n"+strings.Repeat(line, 40))
	f.write("b.txt", "FILE-B\n"+strings.Repeat(line, 40))

	asst := f.prompt(ses.ID, "read both")
	reqs := srv.Requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3 (no summary call: nothing older to summarise)", len(reqs))
	}
	if b := body(reqs[1]); !strings.Contains(b, "FILE-A") {
		t.Errorf("step 2 lacks a.txt")
	}
	if b := body(reqs[2]); strings.Contains(b, "FILE-A") || !strings.Contains(b, "FILE-B") || !strings.Contains(b, "left out to keep the conversation") {
		t.Errorf("step 3 = %.800s", b)
	}
	for _, p := range asst.Parts {
		if p.Type == PartTool && p.CallID == "r1" && !strings.Contains(p.State.Output, "FILE-A") {
			t.Errorf("the stored output was elided: %.100s", p.State.Output)
		}
	}
	if len(f.messages(ses.ID)) != 2 {
		t.Error("a marker was recorded")
	}
}

// TestCompactManual: session/compact summarises the whole context with
// the given focus; the next request carries the summary alone; a context
// with nothing new is not compacted again.
func TestCompactManual(t *testing.T) {
	reply := func(s string) pt.Response {
		return pt.Reply(pt.Text(s), pt.Tokens(pt.Usage{Input: 10, Output: 2}), pt.Finish("stop"))
	}
	srv := pt.NewAnthropic(t, reply("first answer"), reply("second answer"),
		pt.Reply(pt.Text("MANUAL-SUMMARY"), pt.Tokens(pt.Usage{Input: 50, Output: 5}), pt.Finish("stop")), reply("third answer"))
	f := newAgentFixture(t, serverLoader(t, srv, provider.TypeAnthropic, "claude-haiku-4-5"))
	ses := f.create(CreateParams{})

	// Nothing to compact: no model call.
	res, err := f.svc.Compact(f.ctx, CompactParams{SessionID: ses.ID})
	if err != nil || res.Compacted || res.Message != nil || len(srv.Requests()) != 0 {
		t.Fatalf("compact of an empty session = %+v, %v", res, err)
	}
	f.prompt(ses.ID, "design the beta-api "+strings.Repeat("b", 2000))
	f.prompt(ses.ID, "and the gamma-cli "+strings.Repeat("g", 2000))
	res, err = f.svc.Compact(f.ctx, CompactParams{SessionID: ses.ID, Instructions: "keep the API names"})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Compacted || res.Message == nil || res.TokensAfter >= res.TokensBefore {
		t.Fatalf("compact = %+v", res)
	}
	p := markerPart(t, *res.Message)
	if p.Text != "MANUAL-SUMMARY" || p.Metadata[metaKind] != MarkerManual || metaInt(p.Metadata, metaKeep) != 0 {
		t.Errorf("marker = %+v", p)
	}
	if b := body(srv.Requests()[2]); !strings.Contains(b, "beta-api") || !strings.Contains(b, "second answer") || !strings.Contains(b, "keep the API names") {
		t.Errorf("summary request = %s", b)
	}
	again, err := f.svc.Compact(f.ctx, CompactParams{SessionID: ses.ID})
	if err != nil || again.Compacted || len(srv.Requests()) != 3 {
		t.Errorf("second compact = %+v, %v", again, err)
	}
	f.prompt(ses.ID, "now the delta")
	b := body(srv.Requests()[3])
	if !strings.Contains(b, "MANUAL-SUMMARY") || !strings.Contains(b, "now the delta") || strings.Contains(b, "beta-api") || strings.Contains(b, "first answer") {
		t.Errorf("request after compact = %.600s", b)
	}
	if got := len(f.messages(ses.ID)); got != 7 {
		t.Errorf("%d messages listed, want 7", got)
	}

	// A model override that names nothing usable is refused before the
	// session is touched.
	if _, err := f.svc.Compact(f.ctx, CompactParams{SessionID: ses.ID, Model: &ModelRef{ProviderID: "fake"}}); err == nil {
		t.Error("compact with half a model ref succeeded")
	}
	// A provider failure records nothing.
	srv.Enqueue(pt.Fail(400, "bad request"))
	before := f.get(ses.ID)
	var pe *provider.ProviderError
	if _, err := f.svc.Compact(f.ctx, CompactParams{SessionID: ses.ID}); !errors.As(err, &pe) {
		t.Errorf("compact with a failing provider: %v", err)
	}
	if after := f.get(ses.ID); after.MessageCount != before.MessageCount || after.Version != before.Version {
		t.Errorf("a failed compaction changed the session: %+v", after)
	}
}

// TestClearAndRevert: a clear on a reverted session first moves the
// hidden messages into a fork, as a new turn does, so its marker is
// visible; a revert to before a marker hides it, and the model sees the
// earlier messages again.
func TestClearAndRevert(t *testing.T) {
	reply := func(s string) pt.Response {
		return pt.Reply(pt.Text(s), pt.Tokens(pt.Usage{Input: 10, Output: 2}), pt.Finish("stop"))
	}
	srv := pt.NewOpenAI(t, reply("r1"), reply("r2"), reply("r3"))
	f := newAgentFixture(t, serverLoader(t, srv, provider.TypeOpenAI, "gpt-4o-mini"))
	ses := f.create(CreateParams{})
	f.prompt(ses.ID, "first kappa")
	f.prompt(ses.ID, "second lambda")
	msgs := f.messages(ses.ID)
	if _, err := f.svc.Revert(f.ctx, RevertParams{SessionID: ses.ID, MessageID: msgs[2].Info.ID}); err != nil {
		t.Fatal(err)
	}
	got, err := f.svc.Clear(f.ctx, ClearParams{SessionID: ses.ID})
	if err != nil {
		t.Fatal(err)
	}
	if got.Revert != nil || got.MessageCount != 3 {
		t.Errorf("session after clear = %+v", got)
	}
	after := f.messages(ses.ID)
	if len(after) != 3 || after[1].Info.ID != msgs[1].Info.ID {
		t.Fatalf("messages = %v", partsOfAll(after))
	}
	markerPart(t, after[2])
	children, _ := f.svc.List(f.ctx, ListParams{})
	undone := 0
	for _, s := range children.Sessions {
		if s.ForkedFrom != nil && s.ForkedFrom.SessionID == ses.ID {
			undone++
		}
	}
	if undone != 1 {
		t.Errorf("%d forks hold the reverted messages, want 1", undone)
	}

	// Reverting to the marker hides it: the next prompt sees the first
	// turn again.
	if _, err := f.svc.Revert(f.ctx, RevertParams{SessionID: ses.ID, MessageID: after[2].Info.ID}); err != nil {
		t.Fatal(err)
	}
	f.prompt(ses.ID, "third mu")
	if b := body(srv.Requests()[2]); !strings.Contains(b, "first kappa") || strings.Contains(b, "second lambda") {
		t.Errorf("request after reverting the clear = %.600s", b)
	}
}
