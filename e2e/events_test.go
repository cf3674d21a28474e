package e2e

import (
	"encoding/json"
	"testing"

	"github.com/sessiond/sessiond/session"
)

// An editor shows a session's run state from session.status events; the
// daemon sends one whenever the state may have changed, here after an
// abort of an idle session.
func TestSessionStatusEventArrives(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	s.serve()
	c := s.dial()
	ses := c.create(session.CreateParams{Directory: s.dir("ws")})
	var res map[string]any
	c.call("session/abort", map[string]any{"sessionID": ses.ID}, &res)
	e := c.events.expect(t, "session.status", ses.ID)
	if e.Properties.Status.State != "idle" {
		t.Errorf("session.status after aborting an idle session: state %q, want idle: %s", e.Properties.Status.State, e.Raw)
	}
}

// Every event type the daemon sends decodes, and names its session where
// it has one: a wait for an event of any type can match.
func TestEventHelperDecodesEveryType(t *testing.T) {
	tests := []struct {
		params string
		want   string
	}{
		{`{"type":"session.created","properties":{"info":{"id":"ses_1","title":"t"}}}`, "ses_1"},
		{`{"type":"session.updated","properties":{"info":{"id":"ses_1"}}}`, "ses_1"},
		{`{"type":"session.deleted","properties":{"info":{"id":"ses_1"}}}`, "ses_1"},
		{`{"type":"session.status","properties":{"sessionID":"ses_1","status":{"state":"busy","queued":1}}}`, "ses_1"},
		{`{"type":"session.reverted","properties":{"sessionID":"ses_1","revert":{"messageID":"msg_1"},"conflicts":[{"path":"a","reason":"b"}]}}`, "ses_1"},
		{`{"type":"session.unreverted","properties":{"sessionID":"ses_1","revert":null}}`, "ses_1"},
		{`{"type":"message.updated","properties":{"info":{"id":"msg_1","sessionID":"ses_1","role":"user"}}}`, "ses_1"},
		{`{"type":"message.removed","properties":{"sessionID":"ses_1","messageID":"msg_1"}}`, "ses_1"},
		{`{"type":"part.updated","properties":{"part":{"id":"prt_1","sessionID":"ses_1","messageID":"msg_1","type":"text","text":"x"},"delta":"x"}}`, "ses_1"},
		{`{"type":"todo.updated","properties":{"sessionID":"ses_1","todos":[{"content":"a","status":"pending"}]}}`, "ses_1"},
		{`{"type":"file.changed","properties":{"projectID":"prj_1","root":"/w","path":"a.txt","kind":"created"}}`, ""},
	}
	for _, tt := range tests {
		e := decodeEvent(json.RawMessage(tt.params))
		if e.Err != nil {
			t.Errorf("%s does not decode: %v", tt.params, e.Err)
		}
		if got := e.sessionID(); got != tt.want {
			t.Errorf("%s: sessionID() = %q, want %q", tt.params, got, tt.want)
		}
	}
	if e := decodeEvent(json.RawMessage(`{"type":"session.status","properties":{"sessionID":"ses_1","status":{"state":"retry","attempt":2}}}`)); e.Properties.Status.State != "retry" || e.Properties.Status.Attempt != 2 {
		t.Errorf("session.status decodes to %+v", e.Properties.Status)
	}
}
