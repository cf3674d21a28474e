package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/session"
)

// session/abort stops a running session/shell as it stops a prompt: the
// command's process group is killed and the turn is recorded as aborted.
func TestAbortStopsShell(t *testing.T) {
	s := newSandbox(t)
	s.serve("--idle-timeout", "0")
	runner, aborter := s.dial(), s.dial()
	ses := runner.create(session.CreateParams{Directory: s.dir("ws")})

	type result struct {
		m   session.MessageWithParts
		err error
	}
	done := make(chan result, 1)
	go func() {
		var m session.MessageWithParts
		err := runner.Call(t.Context(), "session/shell", session.ShellParams{SessionID: ses.ID, Command: "sleep 300"}, &m)
		done <- result{m, err}
	}()
	waitUntil(t, "the shell turn to start", func() bool {
		var st map[string]session.Status
		aborter.call("session/status", map[string]any{"sessionID": ses.ID}, &st)
		return st[ses.ID].State == "busy"
	})
	var res session.AbortResult
	aborter.call("session/abort", map[string]any{"sessionID": ses.ID}, &res)
	if !res.Aborted || res.MessageID == "" {
		t.Fatalf("abort = %+v; want the running shell turn aborted", res)
	}
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("session/shell after abort: %v", r.err)
		}
		st := r.m.Parts[0].State
		if st.Status != "error" || !strings.Contains(st.Error, "session/abort") || r.m.Info.ID != res.MessageID {
			t.Errorf("shell part after abort = %+v (message %s, abort named %s)", st, r.m.Info.ID, res.MessageID)
		}
	case <-time.After(patience):
		t.Fatal("session/shell did not return after session/abort")
	}
}
