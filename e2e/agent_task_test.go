package e2e

import (
	"strings"
	"testing"

	"github.com/sessiond/sessiond/session"
	"github.com/sessiond/sessiond/session/provider"
	pt "github.com/sessiond/sessiond/session/provider/providertest"
)

// A model's task call runs a child session through the real daemon: the
// child is listed under its parent with its own messages and file changes,
// and its answer comes back to the parent as the tool's result.
func TestAgentTaskRunsChildSession(t *testing.T) {
	w, _ := agSetup(t, provider.TypeOpenAI, "gpt-4o-mini",
		// The parent delegates.
		pt.Reply(pt.Tool("t1", "task", `{"description":"write notes","prompt":"write notes.txt"}`), pt.Finish("tool_calls")),
		// The child writes a file and answers.
		pt.Reply(pt.Tool("w1", "write", `{"path":"notes.txt","content":"from the child\n"}`), pt.Finish("tool_calls")),
		pt.Reply(pt.Text("notes.txt is written."), pt.Finish("stop")),
		// The parent finishes.
		pt.Reply(pt.Text("The subtask wrote the notes."), pt.Finish("stop")),
	)
	parent := w.session(session.CreateParams{Title: "parent"})
	var m session.MessageWithParts
	w.c.call("session/prompt", textPrompt(parent.ID, "delegate"), &m)

	var task *session.Part
	for i := range m.Parts {
		if m.Parts[i].Type == session.PartTool && m.Parts[i].Tool == "task" {
			task = &m.Parts[i]
		}
	}
	if task == nil || task.State.Status != "completed" || !strings.Contains(task.State.Output, "notes.txt is written.") {
		t.Fatalf("task part = %+v; want completed with the child's answer", task)
	}
	if got := w.read("notes.txt"); got != "from the child\n" {
		t.Errorf("notes.txt = %q", got)
	}

	var children []session.Session
	w.c.call("session/children", map[string]any{"sessionID": parent.ID}, &children)
	if len(children) != 1 || children[0].Depth != 1 || children[0].RootID != parent.ID || children[0].Title != "write notes" {
		t.Fatalf("children = %s; want one child at depth 1 titled by the task", mustJSON(children))
	}
	child := children[0]
	if !strings.Contains(task.State.Output, child.ID) {
		t.Errorf("task output %q does not name the child session %s", task.State.Output, child.ID)
	}
	var msgs []session.MessageWithParts
	w.c.call("session/messages", map[string]any{"sessionID": child.ID}, &msgs)
	if len(msgs) != 2 || msgs[0].Info.Role != session.RoleUser || msgs[1].Info.Role != session.RoleAssistant {
		t.Fatalf("child messages = %d; want its own user and assistant message", len(msgs))
	}
	var diff []map[string]any
	w.c.call("session/diff", map[string]any{"sessionID": child.ID}, &diff)
	if len(diff) != 1 || diff[0]["path"] != "notes.txt" {
		t.Errorf("child's diff = %s; want notes.txt", mustJSON(diff))
	}
}

// A client that cannot answer permission requests (it has no handler for
// them) gets the call rejected, with the reason in the tool result, and
// nothing written.
func TestAgentPermissionRefusedWithoutAnAnswer(t *testing.T) {
	w, _ := agSetup(t, provider.TypeOpenAI, "gpt-4o-mini",
		pt.Reply(pt.Tool("w1", "write", `{"path":"a.txt","content":"a"}`), pt.Finish("tool_calls")),
		pt.Reply(pt.Text("ok"), pt.Finish("stop")),
	)
	ses := w.session(session.CreateParams{Permission: []byte(`{"write":"ask"}`)})
	var m session.MessageWithParts
	w.c.call("session/prompt", textPrompt(ses.ID, "go"), &m)
	if len(m.Parts) < 2 || m.Parts[1].Tool != "write" || m.Parts[1].State.Status != "error" || m.Parts[1].State.Error == "" {
		t.Fatalf("write part = %s; want a rejected call with the reason", mustJSON(m.Parts))
	}
	if got := w.read("a.txt"); !strings.HasPrefix(got, "<") {
		t.Errorf("a.txt = %q; the rejected write ran", got)
	}
	t.Logf("reason given: %s", m.Parts[1].State.Error)
}
