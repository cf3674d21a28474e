package e2e

import (
	"strconv"
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

// A Content-Length that does not match the body (counting characters
// instead of bytes, counting a newline that is not sent) spoils that one
// message: it is answered with one ParseError, is not run, and the
// well-formed frames sent right after it are answered as usual.
func TestLSPWrongContentLengthKeepsNextFrame(t *testing.T) {
	t.Parallel()
	for _, tr := range pipeTransports {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			s := newSandbox(t)
			c, _ := openRaw(t, s, tr, "lsp")
			result[map[string]any](t, c.call(`1`, "initialize", map[string]any{}))
			dir := s.dir("ws")
			create := func(id int) string {
				return `{"jsonrpc":"2.0","id":` + strconv.Itoa(id) + `,"method":"session/create","params":{"directory":` + mustJSON(dir) + `,"title":"spoilt ` + strconv.Itoa(id) + `"}}`
			}
			status := func(id int) string {
				return `{"jsonrpc":"2.0","id":` + strconv.Itoa(id) + `,"method":"daemon/status"}`
			}
			next := 100
			for _, tt := range []struct {
				name   string
				length func(n int) int // the Content-Length sent for a body of n bytes
			}{
				{"10 bytes", func(int) int { return 10 }},
				{"one byte short", func(n int) int { return n - 1 }},
				{"half", func(n int) int { return n / 2 }},
				{"two bytes long", func(n int) int { return n + 2 }},
				{"into the next header", func(n int) int { return n + 12 }},
				{"into the next body", func(n int) int { return n + 40 }},
				{"past the next frame", func(n int) int { return n + 120 }},
			} {
				bad, good := next, next+1
				next += 2
				body := create(bad)
				// The spoilt frame and good ones in one write, so the
				// daemon sees them back to back, and enough of them for a
				// length that is too long to run into.
				in := "Content-Length: " + strconv.Itoa(tt.length(len(body))) + "\r\n\r\n" + body
				want := map[string]bool{}
				for i := range 4 {
					in += c.frame(status(good + 1000*i))
					want[strconv.Itoa(good+1000*i)] = true
				}
				c.sendRaw(in)
				// The error comes first: the stream answers it before it
				// reads on.
				expectWireError(t, c, tt.name, rpc.CodeParseError, "Content-Length")
				// Then the replies to the frames after it, in any order
				// (they run concurrently), and no second error for the
				// rest of the spoilt frame.
				for len(want) > 0 {
					m := c.read()
					if !want[string(m.ID)] || m.Error != nil {
						t.Fatalf("%s: want the replies to %v, got %s", tt.name, want, m)
					}
					delete(want, string(m.ID))
				}
			}
			// None of the spoilt session/create calls ran.
			if got := sessionsIn(t, c, `2`, dir); len(got) != 0 {
				t.Errorf("spoilt frames created %d sessions: %+v", len(got), got)
			}
		})
	}
}
