package e2e

import (
	"strings"
	"testing"

	"github.com/sessiond/sessiond/rpc"
	"github.com/sessiond/sessiond/session"
)

// pipeTransports are the ways an editor reaches sessiond over a pipe: the
// relay to the daemon's socket, and a standalone connection.
var pipeTransports = []string{"stdio", "standalone"}

// expectWireError reads the next message and checks it is the error reply
// the stream writes for bad input: the code, its data.kind and id null.
func expectWireError(t *testing.T, c *rawConn, what string, code int64, msg string) {
	t.Helper()
	m := c.read()
	if m.Method != "" {
		t.Fatalf("%s: want an error reply, got notification %s", what, m)
	}
	errCheck(t, what, m.Error, code, "")
	if string(m.ID) != "null" {
		t.Errorf("%s: error reply id = %s, want null", what, m.ID)
	}
	if !strings.Contains(m.Error.Message, msg) {
		t.Errorf("%s: message %q does not mention %q", what, m.Error.Message, msg)
	}
}

// sessionsIn lists the sessions of dir over a raw connection.
func sessionsIn(t *testing.T, c *rawConn, id, dir string) []session.Session {
	t.Helper()
	return result[session.ListResult](t, c.call(id, "session/list", map[string]any{"directory": dir})).Sessions
}

// A request whose id is null cannot be answered by id, and JSON-RPC
// reserves null for replies that have none: it is answered with
// InvalidRequest and id null, and not run.
func TestNullIDIsInvalidRequest(t *testing.T) {
	t.Parallel()
	for _, tr := range pipeTransports {
		for _, fr := range framings {
			t.Run(tr+"/"+fr, func(t *testing.T) {
				t.Parallel()
				s := newSandbox(t)
				c, _ := openRaw(t, s, tr, fr)
				result[map[string]any](t, c.call(`1`, "initialize", map[string]any{}))
				dir := s.dir("ws")

				c.send(`{"jsonrpc":"2.0","id":null,"method":"session/create","params":{"directory":` + mustJSON(dir) + `}}`)
				expectWireError(t, c, "id null", rpc.CodeInvalidRequest, `"id" is null`)

				// It changed nothing, and the connection goes on.
				if got := sessionsIn(t, c, `2`, dir); len(got) != 0 {
					t.Errorf("the request with id null created %d sessions", len(got))
				}
				// A notification (no id at all) is still a notification.
				c.notify("initialized", map[string]any{})
				result[map[string]any](t, c.call(`3`, "daemon/status", nil))
			})
		}
	}
}
