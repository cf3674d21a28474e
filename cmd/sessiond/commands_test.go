package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/rpc"
	"github.com/sessiond/sessiond/session"
)

func TestMessageCounts(t *testing.T) {
	for _, tt := range []struct {
		total  int
		byRole map[string]int
		want   string
	}{
		{0, nil, "0"},
		{5, map[string]int{"assistant": 2, "user": 3}, "5 (3 user, 2 assistant)"},
		{4, map[string]int{"system": 1, "assistant": 1, "user": 2, "tool": 0}, "4 (2 user, 1 assistant, 1 system)"},
	} {
		if got := messageCounts(tt.total, tt.byRole); got != tt.want {
			t.Errorf("messageCounts(%d, %v) = %q, want %q", tt.total, tt.byRole, got, tt.want)
		}
	}
}

func TestSummarySource(t *testing.T) {
	model := &session.ModelRef{ProviderID: "openai", ModelID: "gpt-4o"}
	for _, tt := range []struct {
		name string
		s    session.SessionSummary
		want string
	}{
		{"extractive without a model", session.SessionSummary{Extractive: true, Note: "extractive, without a model: no model provider is configured"},
			"── extractive (no model) · no model provider is configured"},
		{"extractive asked for", session.SessionSummary{Extractive: true, Note: "an extractive summary was asked for"},
			"── extractive (no model) · an extractive summary was asked for"},
		{"model at once", session.SessionSummary{Model: model, TokensUsed: 1234},
			"── by openai/gpt-4o · from all its messages at once · 1,234 tokens"},
		{"model incremental, pending", session.SessionSummary{Model: model, IsIncremental: true, Pending: 2},
			"── by openai/gpt-4o · incremental (built on the earlier summary) · 2 messages pending (newer than the summary, too few yet for a model call; ask again later, or --extractive for all of them now)"},
	} {
		if got := summarySource(tt.s); got != tt.want {
			t.Errorf("%s:\n got %q\nwant %q", tt.name, got, tt.want)
		}
	}
}

func TestWriteSummary(t *testing.T) {
	var b strings.Builder
	writeSummary(&b, "ses_1", session.SessionSummary{
		Text: "Fixed the retry queue.\n", MessageCount: 2, MessagesByRole: map[string]int{"user": 1, "assistant": 1},
		KeyTopics: []string{"queue", "retry"}, Participants: []string{"user", "build"}, Extractive: true,
	})
	want := `Fixed the retry queue.

Key topics:     queue, retry
Participants:   user, build
Files changed:  none
Messages:       2 (1 user, 1 assistant)
── extractive (no model)
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	writeSummary(&b, "ses_1", session.SessionSummary{Extractive: true})
	if !strings.HasPrefix(b.String(), "(nothing to summarize yet: run a turn with `sessiond prompt ses_1 TEXT`") {
		t.Errorf("empty summary: got\n%s", b.String())
	}
}

func TestWriteInit(t *testing.T) {
	msg := session.MessageWithParts{Info: session.Message{ID: "msg_1"}}
	wrote := msg
	wrote.Parts = []session.Part{{Type: session.PartPatch, Files: []string{"AGENTS.md"}}}
	for _, tt := range []struct {
		name string
		res  session.InitResult
		want string
	}{
		{"factual", session.InitResult{Mode: session.InitModeFactual, Path: "AGENTS.md", Message: msg, Note: "built without a model"},
			"Wrote /ws/AGENTS.md from what the workspace's files show (factual, no model).\nNote: built without a model\nMessage: msg_1\nUndo with: sessiond revert ses_1 msg_1\n"},
		{"agent", session.InitResult{Mode: session.InitModeAgent, Path: "AGENTS.md", Message: wrote},
			"Wrote /ws/AGENTS.md: the agent studied the workspace in a turn (agent).\nMessage: msg_1\nUndo with: sessiond revert ses_1 msg_1\n"},
		{"agent wrote nothing", session.InitResult{Mode: session.InitModeAgent, Path: "AGENTS.md", Message: msg, Note: "the agent's turn ended without writing AGENTS.md"},
			"/ws/AGENTS.md was not written: the agent's turn (agent) ended without writing it.\nMessage: msg_1\nUndo with: sessiond revert ses_1 msg_1\n"},
	} {
		var b strings.Builder
		writeInit(&b, "ses_1", "/ws/AGENTS.md", tt.res)
		if b.String() != tt.want {
			t.Errorf("%s:\n got %q\nwant %q", tt.name, b.String(), tt.want)
		}
	}
}

func TestExistingHint(t *testing.T) {
	refused := rpc.NewError(rpc.CodeInvalidParams, "AGENTS.md already exists in /ws; pass force: true to replace it").With("field", "force")
	err := existingHint(refused, "ses_1")
	if rpcCode(err) != rpc.CodeInvalidParams {
		t.Errorf("the hint lost the protocol error (exit 3): %v", err)
	}
	want := "AGENTS.md already exists in /ws; pass force: true to replace it\nsessiond: run `sessiond init ses_1 --force` to replace it; `sessiond revert` undoes that"
	if err.Error() != want {
		t.Errorf("got %q\nwant %q", err.Error(), want)
	}
	other := rpc.NewError(rpc.CodeInvalidParams, "instructions: too long").With("field", "instructions")
	if got := existingHint(other, "ses_1"); got != error(other) {
		t.Errorf("another InvalidParams changed: %v", got)
	}
	plain := errors.New("boom")
	if got := existingHint(plain, "ses_1"); got != plain {
		t.Errorf("a plain error changed: %v", got)
	}
}
