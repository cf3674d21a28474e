package e2e

import (
	"testing"

	"github.com/sessiond/sessiond/rpc"
	"github.com/sessiond/sessiond/session"
)

// A stopped session takes no more turns: an editor learns why from
// error code -32013, data.kind "Closed" and data.lifecycle, and the refused
// call leaves no message behind.
func TestStoppedSessionRefusesTurnsWithClosed(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	s.serve()
	c := s.dial()
	ses := c.create(session.CreateParams{Directory: s.dir("ws")})
	var stopped session.Session
	c.call("session/stop", map[string]any{"sessionID": ses.ID}, &stopped)
	if stopped.Lifecycle != session.LifecycleStopped {
		t.Fatalf("session/stop left lifecycle %q, want %q", stopped.Lifecycle, session.LifecycleStopped)
	}

	calls := []struct {
		method string
		params any
	}{
		{"session/shell", session.ShellParams{SessionID: ses.ID, Command: "echo hi > f"}},
		{"session/prompt", textPrompt(ses.ID, "hello")},
	}
	for _, call := range calls {
		e := c.callErr(call.method, call.params)
		errCheck(t, call.method+" on a stopped session", e, rpc.CodeClosed, "")
		if e.Code != -32013 || e.Data["kind"] != "Closed" {
			t.Errorf("%s: code %d kind %v, want -32013 Closed", call.method, e.Code, e.Data["kind"])
		}
		if e.Data["lifecycle"] != session.LifecycleStopped {
			t.Errorf("%s: data.lifecycle = %v, want %q", call.method, e.Data["lifecycle"], session.LifecycleStopped)
		}
	}
	var msgs []session.MessageWithParts
	c.call("session/messages", map[string]any{"sessionID": ses.ID}, &msgs)
	if len(msgs) != 0 {
		t.Errorf("refused turns left %d message(s): %s", len(msgs), mustJSON(msgs))
	}
}
