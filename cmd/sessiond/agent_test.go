package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/rpc"
	"github.com/sessiond/sessiond/session"
	"github.com/sessiond/sessiond/session/tools"
)

func TestPromptParams(t *testing.T) {
	p, err := promptParams("fix it", []string{"a.go", "/abs/b.go"}, "/work/ws", promptFlags{agent: "plan", model: "openrouter/anthropic/claude", variant: "high"})
	if err != nil {
		t.Fatal(err)
	}
	want := []session.PromptPart{{Type: "text", Text: "fix it"}, {Type: "file", Path: "/work/ws/a.go"}, {Type: "file", Path: "/abs/b.go"}}
	if len(p.Parts) != len(want) {
		t.Fatalf("parts = %+v", p.Parts)
	}
	for i := range want {
		if p.Parts[i] != want[i] {
			t.Errorf("part %d = %+v, want %+v", i, p.Parts[i], want[i])
		}
	}
	if p.Agent != "plan" || p.Variant != "high" || p.Model == nil || p.Model.ProviderID != "openrouter" || p.Model.ModelID != "anthropic/claude" {
		t.Errorf("params = %+v model %+v", p, p.Model)
	}

	if p, err := promptParams("", []string{"x.png"}, "/w", promptFlags{}); err != nil || len(p.Parts) != 1 || p.Parts[0].Type != "file" {
		t.Errorf("file only: %+v, %v", p.Parts, err)
	}
	if _, err := promptParams("  ", nil, "/w", promptFlags{}); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty prompt: %v", err)
	}
	for _, bad := range []string{"gpt-4o", "/gpt-4o", "openai/"} {
		if _, err := promptParams("x", nil, "/w", promptFlags{model: bad}); err == nil || !strings.Contains(err.Error(), "provider/model") {
			t.Errorf("--model %s: %v", bad, err)
		}
	}
}

func TestTitleFrom(t *testing.T) {
	for in, want := range map[string]string{
		"  add a flag\nand tests": "add a flag",
		strings.Repeat("é", 70):   strings.Repeat("é", 59) + "…",
		"":                        "",
	} {
		if got := titleFrom(in); got != want {
			t.Errorf("titleFrom(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPermAnswer(t *testing.T) {
	for in, want := range map[string]string{
		"y": session.OutcomeAllowOnce, " yes\r": session.OutcomeAllowOnce, "Y": session.OutcomeAllowOnce,
		"a": session.OutcomeAllowAlways, "always": session.OutcomeAllowAlways,
		"n": session.OutcomeRejectOnce, "no": session.OutcomeRejectOnce,
		"N": session.OutcomeRejectAlways, "never": session.OutcomeRejectAlways,
		"": "", "maybe": "",
	} {
		got, ok := permAnswer(in)
		if got != want || ok != (want != "") {
			t.Errorf("permAnswer(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}

func TestToolLabel(t *testing.T) {
	for _, tt := range []struct{ tool, input, want string }{
		{"write", `{"path":"a.txt","content":"x"}`, "write a.txt"},
		{"bash", `{"command":"go test ./...\necho done"}`, "bash go test ./... …"},
		{"grep", `{"pattern":"TODO","path":""}`, "grep TODO"},
		{"todowrite", `{"todos":[{},{}]}`, "todowrite (2 items)"},
		{"list", `{}`, "list"},
		{"read", `not json`, "read"},
		{"bash", `{"command":"` + strings.Repeat("x", 100) + `"}`, "bash " + strings.Repeat("x", 71) + "…"},
	} {
		if got := toolLabel(tt.tool, json.RawMessage(tt.input)); got != tt.want {
			t.Errorf("toolLabel(%s, %s) = %q, want %q", tt.tool, tt.input, got, tt.want)
		}
	}
}

func TestFmtCostAndTokens(t *testing.T) {
	for c, want := range map[float64]string{0: "$0.00", 0.00001: "<$0.0001", 0.00042: "$0.0004", 0.0123: "$0.01", 12.345: "$12.35"} {
		if got := fmtCost(c); got != want {
			t.Errorf("fmtCost(%v) = %q, want %q", c, got, want)
		}
	}
	if got := tokensLine(4900, 140, 0, 200, 0); got != "5,240 tokens (4,900 in, 140 out, 200 cache read)" {
		t.Errorf("tokensLine = %q", got)
	}
}

func TestPromptFooter(t *testing.T) {
	m := session.MessageWithParts{
		Info: session.Message{Model: &session.ModelRef{ProviderID: "fake", ModelID: "gpt-4o-mini"},
			Tokens: &session.Tokens{Input: 1000, Output: 50, Cache: session.CacheUsage{Read: 200}}, Cost: 0.00042},
		Parts: []session.Part{{Type: session.PartPatch, Files: []string{"a.txt"}}, {Type: session.PartPatch, Files: []string{"a.txt"}}},
	}
	want := "── fake/gpt-4o-mini · 1,250 tokens (1,000 in, 50 out, 200 cache read) · $0.0004 · 1.5s · 1 file changed: a.txt"
	if got := promptFooter(m, 1500*time.Millisecond); got != want {
		t.Errorf("footer =\n %q\nwant\n %q", got, want)
	}
}

func TestAbortLines(t *testing.T) {
	got := strings.Join(abortLines(session.AbortResult{Aborted: true, MessageID: "msg_1", Cleared: 2}, session.AbortParams{SessionID: "ses_1", ClearQueue: true}), "\n")
	if !strings.Contains(got, "partial message msg_1 is kept") || !strings.Contains(got, "Dropped 2 queued prompts") {
		t.Errorf("aborted: %q", got)
	}
	got = strings.Join(abortLines(session.AbortResult{}, session.AbortParams{SessionID: "ses_1", ClearQueue: true}), "\n")
	if got != "No turn of ses_1 was running; nothing to abort.\nNo prompt was queued." {
		t.Errorf("nothing: %q", got)
	}
}

func TestAbortedLine(t *testing.T) {
	withMsg := rpc.NewError(rpc.CodeAborted, "the turn was aborted").With("messageID", "msg_9")
	if got := abortedLine(withMsg, "ses_1", true); !strings.HasPrefix(got, "aborted: the partial answer msg_9") {
		t.Errorf("with message: %q", got)
	}
	if got := abortedLine(errors.New("call session/prompt: context canceled"), "ses_1", false); got != "aborted: the prompt was dropped before its turn started" {
		t.Errorf("queued: %q", got)
	}
}

func TestTodo(t *testing.T) {
	todos := []tools.Todo{
		{Content: "a", Status: tools.TodoCompleted}, {Content: "b", Status: tools.TodoInProgress},
		{Content: "c", Status: tools.TodoPending}, {Content: "d", Status: tools.TodoPending}, {Content: "e", Status: "odd"},
	}
	var marks []string
	for _, td := range todos {
		marks = append(marks, todoMark(td.Status))
	}
	if got := strings.Join(marks, ""); got != "[x][>][ ][ ][?]" {
		t.Errorf("marks = %s", got)
	}
	if got := todoSummary(todos); got != "── 1 of 5 done, 1 in progress, 2 pending" {
		t.Errorf("summary = %q", got)
	}
}

func TestWriteUsage(t *testing.T) {
	var b bytes.Buffer
	writeUsage(&b, "ses_1", session.UsageResult{})
	if !strings.Contains(b.String(), "No tokens spent yet") {
		t.Errorf("empty: %q", b.String())
	}
	b.Reset()
	writeUsage(&b, "ses_1", session.UsageResult{
		TotalTokens: 1350, Input: 1200, Output: 150, TotalCost: 0.5,
		ByModel: map[string]session.ModelUsage{
			"openai/gpt-4o":      {TotalTokens: 1100, Input: 1000, Output: 100, Cost: 0.5},
			"ollama/llama3.2:1b": {TotalTokens: 250, Input: 200, Output: 50},
		},
	})
	want := `tokens  1,350 tokens (1,200 in, 150 out)
cost    $0.50

MODEL               TOKENS  INPUT  OUTPUT  REASONING  CACHE READ  CACHE WRITE   COST
ollama/llama3.2:1b     250    200      50          0           0            0  $0.00
openai/gpt-4o        1,100  1,000     100          0           0            0  $0.50
`
	if b.String() != want {
		t.Errorf("usage =\n%s\nwant\n%s", b.String(), want)
	}
}

// event builds a session/event notification's params.
func event(typ string, props any) json.RawMessage {
	b, _ := json.Marshal(map[string]any{"type": typ, "properties": props})
	return b
}

func TestStreamView(t *testing.T) {
	var out, errw bytes.Buffer
	v := newStreamView(&out, &errw)
	v.reasoning = true
	v.expect(session.PromptParams{SessionID: "ses_1", Parts: []session.PromptPart{{Type: "text", Text: "write it"}}})
	send := func(typ string, props any) { v.notify("session/event", event(typ, props)) }
	text := func(id, msg, typ, s string) session.Part {
		return session.Part{ID: id, SessionID: "ses_1", MessageID: msg, Type: typ, Text: s}
	}
	tool := func(id, status, input, errText string) session.Part {
		return session.Part{ID: id, SessionID: "ses_1", MessageID: "msg_a2", Type: session.PartTool, Tool: "write",
			State: &session.ToolState{Status: status, Input: json.RawMessage(input), Error: errText}}
	}

	// Another client's prompt runs first: its turn is not shown.
	send("message.updated", map[string]any{"info": session.Message{ID: "msg_u1", SessionID: "ses_1", Role: "user"}})
	send("part.updated", map[string]any{"part": text("prt_1", "msg_u1", "text", "something else")})
	send("message.updated", map[string]any{"info": session.Message{ID: "msg_a1", SessionID: "ses_1", Role: "assistant", ParentID: "msg_u1"}})
	send("part.updated", map[string]any{"part": text("prt_2", "msg_a1", "text", "not ours"), "delta": "not ours"})
	if v.started() || out.Len() != 0 {
		t.Fatalf("another prompt's turn was taken for ours: %q", out.String())
	}

	// Ours, with a file's synthetic part that does not count as text.
	send("message.updated", map[string]any{"info": session.Message{ID: "msg_u2", SessionID: "ses_1", Role: "user"}})
	send("part.updated", map[string]any{"part": text("prt_3", "msg_u2", "text", "write it")})
	send("message.updated", map[string]any{"info": session.Message{ID: "msg_a2", SessionID: "ses_1", Role: "assistant", ParentID: "msg_u2"}})
	if !v.started() {
		t.Fatal("our turn was not recognised")
	}
	send("part.updated", map[string]any{"part": text("prt_r", "msg_a2", "reasoning", "hmm"), "delta": "hmm"})
	send("part.updated", map[string]any{"part": text("prt_t", "msg_a2", "text", "I will "), "delta": "I will "})
	send("part.updated", map[string]any{"part": text("prt_t", "msg_a2", "text", "I will write it."), "delta": "write it."})
	send("part.updated", map[string]any{"part": text("prt_x", "ses_other", "text", "other session")})
	send("part.updated", map[string]any{"part": tool("prt_w", "pending", `{}`, "")})
	send("part.updated", map[string]any{"part": tool("prt_w", "running", `{"path":"a.txt"}`, "")})
	send("part.updated", map[string]any{"part": tool("prt_w", "running", `{"path":"a.txt"}`, "")}) // permission asked: saved again
	send("part.updated", map[string]any{"part": tool("prt_w", "completed", `{"path":"a.txt"}`, "")})
	send("part.updated", map[string]any{"part": tool("prt_e", "error", `{"path":"b.txt"}`, "permission rejected: the user rejected write (b.txt)")})
	send("session.status", map[string]any{"sessionID": "ses_1", "status": session.Status{State: "retry", Attempt: 1}})
	send("session.status", map[string]any{"sessionID": "ses_1", "status": session.Status{State: "retry", Attempt: 1}})

	// The answer comes before the last text's events.
	final := session.MessageWithParts{
		Info: session.Message{ID: "msg_a2", SessionID: "ses_1", Model: &session.ModelRef{ProviderID: "fake", ModelID: "m"},
			Tokens: &session.Tokens{Input: 10, Output: 5}, Error: &session.MessageError{Kind: "StepLimit", Message: "stopped after 50 model calls"}},
		Parts: []session.Part{
			text("prt_r", "msg_a2", "reasoning", "hmm"), text("prt_t", "msg_a2", "text", "I will write it."),
			tool("prt_w", "completed", `{"path":"a.txt"}`, ""),
			tool("prt_e", "error", `{"path":"b.txt"}`, "permission rejected: the user rejected write (b.txt)"),
			{ID: "prt_p", SessionID: "ses_1", MessageID: "msg_a2", Type: session.PartPatch, Files: []string{"a.txt"}},
			text("prt_d", "msg_a2", "text", "Done."),
		},
	}
	v.finish(final, 2*time.Second)
	send("part.updated", map[string]any{"part": text("prt_d", "msg_a2", "text", "Done."), "delta": "Done."}) // late: ignored

	if want := "hmm\nI will write it.\nDone.\n"; out.String() != want {
		t.Errorf("stdout = %q, want %q", out.String(), want)
	}
	wantErr := "· write a.txt\n✓ write a.txt\n✗ write b.txt: permission rejected: the user rejected write (b.txt)\n" +
		"· the model provider failed; retrying (attempt 1)\n" +
		"sessiond: stopped after 50 model calls\n" +
		"── fake/m · 15 tokens (10 in, 5 out) · $0.00 · 2s · 1 file changed: a.txt\n"
	if errw.String() != wantErr {
		t.Errorf("stderr =\n%s\nwant\n%s", errw.String(), wantErr)
	}
}

func TestStreamViewTerminal(t *testing.T) {
	var out, errw bytes.Buffer
	v := newStreamView(&out, &errw)
	v.ttyErr, v.shared, v.color, v.colorErr = true, true, true, true
	v.reasoning = false
	v.expect(session.PromptParams{SessionID: "s", Parts: []session.PromptPart{{Type: "file", Path: "/w/a.png"}}})
	send := func(typ string, props any) { v.notify("session/event", event(typ, props)) }
	send("message.updated", map[string]any{"info": session.Message{ID: "u", SessionID: "s", Role: "user"}})
	send("part.updated", map[string]any{"part": session.Part{ID: "f", SessionID: "s", MessageID: "u", Type: "file", Path: "a.png"}})
	send("message.updated", map[string]any{"info": session.Message{ID: "m", SessionID: "s", Role: "assistant", ParentID: "u"}})
	send("part.updated", map[string]any{"part": session.Part{ID: "r", SessionID: "s", MessageID: "m", Type: "reasoning", Text: "secret"}})
	send("part.updated", map[string]any{"part": session.Part{ID: "t", SessionID: "s", MessageID: "m", Type: "text", Text: "Looking"}})
	run := session.Part{ID: "b", SessionID: "s", MessageID: "m", Type: "tool", Tool: "bash", State: &session.ToolState{Status: "running", Input: json.RawMessage(`{"command":"ls"}`)}}
	send("part.updated", map[string]any{"part": run})
	run.State = &session.ToolState{Status: "completed", Input: run.State.Input}
	send("part.updated", map[string]any{"part": run})
	v.close()
	if out.String() != "Looking\n" {
		t.Errorf("stdout = %q (reasoning must be hidden, the line ended before the tool's)", out.String())
	}
	if want := "· bash ls\r\x1b[K\x1b[32m✓\x1b[0m bash ls\n"; errw.String() != want {
		t.Errorf("stderr = %q, want %q", errw.String(), want)
	}
}
