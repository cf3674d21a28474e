package e2e

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/rpc"
	"github.com/sessiond/sessiond/session"
	"github.com/sessiond/sessiond/store"
)

var (
	transports = []string{"socket", "stdio", "standalone"}
	framings   = []string{"lsp", "ndjson"}
)

// openRaw gives a raw connection over one of the ways a client reaches
// sessiond: the daemon's socket (a `sessiond serve` the test starts), a
// `sessiond stdio` relay (which auto-starts the daemon), or
// `sessiond stdio --standalone`. The process is nil for the socket.
func openRaw(t *testing.T, s *sandbox, transport, framing string) (*rawConn, *stdioProc) {
	t.Helper()
	switch transport {
	case "socket":
		s.serve("--idle-timeout", "5m")
		c, _ := s.dialRaw(framing)
		return c, nil
	case "stdio":
		p := s.stdio("stdio")
		return p.raw(framing), p
	case "standalone":
		p := s.stdio("stdio", "--standalone")
		return p.raw(framing), p
	}
	t.Fatalf("unknown transport %q", transport)
	return nil, nil
}

func result[T any](t *testing.T, m wireMsg) T {
	t.Helper()
	var v T
	if m.Error != nil {
		t.Fatalf("want a result, got error %d %q (data %v)", m.Error.Code, m.Error.Message, m.Error.Data)
	}
	if err := json.Unmarshal(m.Result, &v); err != nil {
		t.Fatalf("decode result %s: %v", m.Result, err)
	}
	return v
}

func TestFramingAndLifecycle(t *testing.T) {
	t.Parallel()
	for _, tr := range transports {
		for _, fr := range framings {
			t.Run(tr+"/"+fr, func(t *testing.T) {
				t.Parallel()
				s := newSandbox(t)
				c, p := openRaw(t, s, tr, fr)

				init := result[struct {
					ServerInfo struct {
						Name    string `json:"name"`
						Version string `json:"version"`
					} `json:"serverInfo"`
					Capabilities struct {
						Framing string   `json:"framing"`
						Events  bool     `json:"events"`
						Methods []string `json:"methods"`
					} `json:"capabilities"`
				}](t, c.call(`1`, "initialize", map[string]any{"processId": nil, "clientInfo": map[string]any{"name": "e2e"}}))
				if init.ServerInfo.Name != "sessiond" || init.ServerInfo.Version == "" {
					t.Errorf("serverInfo = %+v", init.ServerInfo)
				}
				if init.Capabilities.Framing != fr {
					t.Errorf("capabilities.framing = %q, want %q", init.Capabilities.Framing, fr)
				}
				for _, m := range []string{"session/create", "session/list", "workspace/open", "events/subscribe", "daemon/status"} {
					if !slices.Contains(init.Capabilities.Methods, m) {
						t.Errorf("capabilities.methods lacks %s: %v", m, init.Capabilities.Methods)
					}
				}
				c.notify("initialized", map[string]any{})

				// String ids come back as strings; what clients add around
				// a message (headers, blank lines, CRLF) is accepted.
				if fr == "lsp" {
					body := `{"jsonrpc":"2.0","id":"two","method":"daemon/status"}`
					c.sendRaw("Content-Type: application/vscode-jsonrpc; charset=utf-8\r\ncontent-length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
				} else {
					c.sendRaw("\n\r\n" + `{"jsonrpc":"2.0","id":"two","method":"daemon/status"}` + "\r\n")
				}
				st := result[struct {
					PID int `json:"pid"`
				}](t, c.response(`"two"`))
				switch tr {
				case "standalone":
					if st.PID != p.cmd.Process.Pid {
						t.Errorf("standalone answered from pid %d, want its own pid %d", st.PID, p.cmd.Process.Pid)
					}
				default:
					o, err := owner(s.data)
					if err != nil {
						t.Fatalf("no daemon.json: %v", err)
					}
					if st.PID != o.PID || (p != nil && st.PID == p.cmd.Process.Pid) {
						t.Errorf("answered from pid %d; the daemon is %d", st.PID, o.PID)
					}
				}

				if m := c.call(`3`, "shutdown", nil); m.Error != nil || string(m.Result) != "null" {
					t.Fatalf("shutdown: %s", m)
				}
				m := c.call(`4`, "daemon/status", nil)
				if m.Error == nil || m.Error.Code != rpc.CodeInvalidRequest || !strings.Contains(m.Error.Message, "shutting down") {
					t.Fatalf("request after shutdown: want -32600 \"shutting down\", got %s", m)
				}
				c.notify("exit", nil)
				c.expectEOF()
				if p != nil {
					if code := p.wait(); code != 0 {
						t.Fatalf("%s exited with %d after exit; stderr:\n%s", tr, code, p.stderr.String())
					}
				}
				if tr != "standalone" {
					// One client's exit is not the daemon's.
					if st := s.dial().status(); st.PID <= 0 {
						t.Fatalf("daemon/status after a client's exit: %+v", st)
					}
				}
			})
		}
	}
}

// badInput is one thing a broken or hostile client may send.
type badInput struct {
	name  string
	raw   string // sent as is; else body is framed
	body  string
	only  string // a framing, when the input only makes sense in one
	code  int64  // 0: must not be answered
	id    string // JSON id the error must echo; "" means null
	msg   string // substring of the error message
	field string // data.field of InvalidParams
}

var badInputs = []badInput{
	{name: "unparsable JSON", body: `{"jsonrpc":"2.0","id":1,"method":`, code: rpc.CodeParseError, msg: "parse error"},
	{name: "not JSON", body: `hello there`, code: rpc.CodeParseError},
	{name: "batch", body: `[{"jsonrpc":"2.0","id":1,"method":"daemon/status"}]`, code: rpc.CodeInvalidRequest, msg: "batch"},
	{name: "empty batch", body: `[]`, code: rpc.CodeInvalidRequest, msg: "batch"},
	{name: "a number", body: `42`, code: rpc.CodeInvalidRequest},
	{name: "a string", body: `"hi"`, code: rpc.CodeInvalidRequest},
	{name: "no method", body: `{"jsonrpc":"2.0","id":5}`, code: rpc.CodeInvalidRequest, id: `5`, msg: "method"},
	{name: "method not a string", body: `{"jsonrpc":"2.0","id":6,"method":7}`, code: rpc.CodeInvalidRequest, id: `6`, msg: "method"},
	{name: "params a string", body: `{"jsonrpc":"2.0","id":7,"method":"daemon/status","params":"x"}`, code: rpc.CodeInvalidRequest, id: `7`, msg: "params"},
	{name: "id an object", body: `{"jsonrpc":"2.0","id":{},"method":"daemon/status"}`, code: rpc.CodeInvalidRequest, msg: "id"},
	{name: "id negative", body: `{"jsonrpc":"2.0","id":-1,"method":"daemon/status"}`, code: rpc.CodeInvalidRequest, id: `-1`, msg: "id"},
	{name: "method and result", body: `{"jsonrpc":"2.0","id":8,"method":"daemon/status","result":1}`, code: rpc.CodeInvalidRequest, id: `8`},
	{name: "unknown method", body: `{"jsonrpc":"2.0","id":"m","method":"no/such"}`, code: rpc.CodeMethodNotFound, id: `"m"`, msg: "no/such"},
	{name: "wrong params type", body: `{"jsonrpc":"2.0","id":9,"method":"session/get","params":{"sessionID":5}}`, code: rpc.CodeInvalidParams, id: `9`, field: "sessionID"},
	{name: "stray response", body: `{"jsonrpc":"2.0","id":99,"result":{}}`},
	{name: "stray error response", body: `{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}`},
	{name: "unknown notification", body: `{"jsonrpc":"2.0","method":"no/such/notification"}`},
	{name: "notification with wrong params", body: `{"jsonrpc":"2.0","method":"session/get","params":{"sessionID":1}}`},
	{name: "cancel of an unknown id", body: `{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":12345}}`},
	{name: "Content-Length not a number", only: "lsp", raw: "Content-Length: abc\r\n\r\n{}", code: rpc.CodeParseError, msg: "Content-Length"},
	{name: "Content-Length negative", only: "lsp", raw: "Content-Length: -5\r\n\r\n", code: rpc.CodeParseError, msg: "negative"},
	{name: "no Content-Length", only: "lsp", raw: "Content-Type: application/json\r\n\r\n{}", code: rpc.CodeParseError, msg: "Content-Length"},
	{name: "header line without colon", only: "lsp", raw: "hello\r\n\r\n", code: rpc.CodeParseError, msg: "header"},
	{name: "empty body", only: "lsp", raw: "Content-Length: 0\r\n\r\n", code: rpc.CodeParseError, msg: "empty"},
	{name: "blank lines", only: "ndjson", raw: "\n\r\n \t \n"},
}

func TestBadInputKeepsConnection(t *testing.T) {
	t.Parallel()
	for _, tr := range transports {
		for _, fr := range framings {
			t.Run(tr+"/"+fr, func(t *testing.T) {
				t.Parallel()
				s := newSandbox(t)
				c, p := openRaw(t, s, tr, fr)
				result[json.RawMessage](t, c.call(`0`, "initialize", map[string]any{}))
				for i, in := range badInputs {
					if in.only != "" && in.only != fr {
						continue
					}
					if in.raw != "" {
						c.sendRaw(in.raw)
					} else {
						c.send(in.body)
					}
					// The next request must be answered, whatever the bad
					// input did; the bad input's own answer may come
					// before or after it.
					okID := fmt.Sprintf(`"ok-%d"`, i)
					c.request(okID, "daemon/status", nil)
					var bad *wireMsg
					for got := false; !got; {
						m := c.read()
						switch {
						case string(m.ID) == okID:
							if m.Error != nil {
								t.Fatalf("%s: the request after it failed: %s", in.name, m)
							}
							got = true
						case bad == nil && m.Error != nil:
							bad = &m
						default:
							t.Fatalf("%s: unexpected message %s", in.name, m)
						}
					}
					if in.code == 0 {
						if bad != nil {
							t.Errorf("%s: must not be answered, got %s", in.name, bad)
						}
						continue
					}
					if bad == nil {
						bad = new(c.read())
					}
					errCheck(t, in.name, bad.Error, in.code, in.field)
					wantID := cmp.Or(in.id, "null")
					if string(bad.ID) != wantID {
						t.Errorf("%s: error reply id = %s, want %s", in.name, bad.ID, wantID)
					}
					if !strings.Contains(bad.Error.Message, in.msg) {
						t.Errorf("%s: message %q does not mention %q", in.name, bad.Error.Message, in.msg)
					}
				}
				if p != nil && p.exited() {
					t.Fatalf("%s exited; stderr:\n%s", tr, p.stderr.String())
				}
				// Nor did any of it hurt the daemon.
				if tr != "standalone" {
					s.dial().status()
				}
			})
		}
	}
}

func TestOversizedMessage(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	s.serve("--max-message-size", "4096")
	for _, fr := range framings {
		t.Run(fr, func(t *testing.T) {
			c, _ := s.dialRaw(fr)
			for _, size := range []int{8 << 10, 1 << 20} {
				c.request(`1`, "session/get", map[string]any{"sessionID": strings.Repeat("x", size)})
				m := c.read()
				if m.Error == nil {
					t.Fatalf("%d-byte message: want an error, got %s", size, m)
				}
				errCheck(t, "oversized", m.Error, rpc.CodeInvalidRequest, "")
				if !strings.Contains(m.Error.Message, "exceeds") || !strings.Contains(m.Error.Message, "--max-message-size") {
					t.Errorf("message %q does not say what is wrong and how to fix it", m.Error.Message)
				}
				if m.Error.Data["limit"] != float64(4096) {
					t.Errorf("data.limit = %v, want 4096", m.Error.Data["limit"])
				}
				// Just under the limit is read and answered.
				m = c.call(`2`, "session/get", map[string]any{"sessionID": "ses_" + strings.Repeat("x", 3000)})
				errCheck(t, "under the limit", m.Error, rpc.CodeNotFound, "")
			}
		})
	}
}

func TestWrongParamsNameTheField(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	s.serve()
	c := s.dial()
	dir := s.dir("ws")
	ses := c.create(session.CreateParams{Directory: dir, Title: "t"})
	cases := []struct {
		method string
		params any
		field  string
	}{
		{"session/get", map[string]any{}, "sessionID"},
		{"session/get", map[string]any{"sessionID": 5}, "sessionID"},
		{"session/get", []any{1, 2}, "params"},
		{"session/create", map[string]any{"directory": dir, "title": 5}, "title"},
		{"session/create", map[string]any{}, "directory"},
		{"session/create", map[string]any{"directory": "relative/dir"}, "directory"},
		{"session/create", map[string]any{"directory": s.base + "/does/not/exist"}, "directory"},
		{"session/create", map[string]any{"parentID": "ses_gone"}, "parentID"},
		{"session/create", map[string]any{"directory": dir, "model": map[string]any{"providerID": "x"}}, "model"},
		{"session/update", map[string]any{"sessionID": ses.ID, "title": "  "}, "title"},
		{"session/update", map[string]any{"sessionID": ses.ID, "archived": "yes"}, "archived"},
		{"session/list", map[string]any{"limit": -1}, "limit"},
		{"session/list", map[string]any{"limit": 100000}, "limit"},
		{"session/list", map[string]any{"cursor": "bogus"}, "cursor"},
		{"session/messages", map[string]any{"sessionID": ses.ID, "limit": "ten"}, "limit"},
		{"session/appendEvent", map[string]any{"sessionID": ses.ID, "event": map[string]any{}}, "event.author"},
		{"session/appendEvent", map[string]any{"sessionID": ses.ID, "event": map[string]any{"author": "user", "content": []any{map[string]any{"type": "nope"}}}}, "event.content[0].type"},
		{"session/appendEvent", map[string]any{"sessionID": ses.ID, "event": map[string]any{"author": "user", "actions": map[string]any{"stateDelta": map[string]any{"bad:x": 1}}}}, "event.actions.stateDelta.bad:x"},
		{"session/appendEvent", map[string]any{"sessionID": ses.ID, "event": map[string]any{"author": "a", "branch": "a..b"}}, "event.branch"},
		{"session/state/update", map[string]any{"sessionID": ses.ID}, "delta"},
		{"session/state/update", map[string]any{"sessionID": ses.ID, "delta": map[string]any{"weird:k": 1}}, "delta.weird:k"},
		{"session/state/get", map[string]any{"sessionID": ses.ID, "key": "nope:k"}, "key"},
		{"session/events", map[string]any{"sessionID": ses.ID, "since": 10, "until": 5}, "until"},
		{"workspace/open", map[string]any{}, "directory"},
		{"workspace/open", map[string]any{"directory": "."}, "directory"},
		{"workspace/close", map[string]any{}, "projectID"},
		{"events/subscribe", map[string]any{}, "projectID"},
	}
	for _, tc := range cases {
		what := tc.method + " " + mustJSON(tc.params)
		e := c.callErr(tc.method, tc.params)
		errCheck(t, what, e, rpc.CodeInvalidParams, tc.field)
	}
	// The session the bad calls named is untouched.
	if got := c.get(ses.ID); got.Title != "t" || got.Version != ses.Version {
		t.Errorf("session changed by rejected calls: %+v", got)
	}
}

func TestUnknownIDsAreNotFound(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	s.serve()
	c := s.dial()
	dir := s.dir("ws")
	live := c.create(session.CreateParams{Directory: dir})
	gone := c.create(session.CreateParams{Directory: dir})
	other := c.create(session.CreateParams{Directory: dir})
	msg := c.say(other.ID, "user", "elsewhere").MessageID
	c.call("session/delete", map[string]any{"sessionID": gone.ID}, nil)
	unknownProject := store.NewIDGen().New(store.KindProject)

	cases := []struct {
		method string
		params map[string]any
		id     string
	}{
		{"session/get", map[string]any{"sessionID": gone.ID}, gone.ID},
		{"session/get", map[string]any{"sessionID": "ses_nonsense"}, "ses_nonsense"},
		{"session/update", map[string]any{"sessionID": gone.ID, "title": "x"}, gone.ID},
		{"session/delete", map[string]any{"sessionID": gone.ID}, gone.ID},
		{"session/messages", map[string]any{"sessionID": gone.ID}, gone.ID},
		{"session/message", map[string]any{"sessionID": live.ID, "messageID": msg}, msg},
		{"session/children", map[string]any{"sessionID": gone.ID}, gone.ID},
		{"session/status", map[string]any{"sessionID": gone.ID}, gone.ID},
		{"session/pause", map[string]any{"sessionID": gone.ID}, gone.ID},
		{"session/appendEvent", map[string]any{"sessionID": gone.ID, "event": map[string]any{"author": "user"}}, gone.ID},
		{"session/events", map[string]any{"sessionID": gone.ID}, gone.ID},
		{"session/state/get", map[string]any{"sessionID": gone.ID}, gone.ID},
		{"session/state/update", map[string]any{"sessionID": gone.ID, "delta": map[string]any{"k": 1}}, gone.ID},
		{"workspace/close", map[string]any{"projectID": unknownProject}, unknownProject},
		{"events/subscribe", map[string]any{"projectID": unknownProject}, unknownProject},
		{"events/subscribe", map[string]any{"sessionID": gone.ID}, gone.ID},
	}
	for _, tc := range cases {
		what := tc.method + " " + mustJSON(tc.params)
		e := c.callErr(tc.method, tc.params)
		errCheck(t, what, e, rpc.CodeNotFound, "")
		if e.Data["id"] != tc.id {
			t.Errorf("%s: data.id = %v, want %s", what, e.Data["id"], tc.id)
		}
		if !strings.Contains(e.Message, tc.id) {
			t.Errorf("%s: message %q does not name %s", what, e.Message, tc.id)
		}
	}
	// Nothing was created by asking after the dead.
	if got := c.list(session.ListParams{}).Sessions; len(got) != 2 {
		t.Errorf("sessions after the NotFound calls: %d, want 2", len(got))
	}
}

// TestCancelRequest cancels a request that waits in its session's queue.
// The request ahead of it returns 4 MiB that the test does not read yet, so
// it stays in progress (its reply cannot be written) while the cancel
// arrives: the outcome is deterministic.
func TestCancelRequest(t *testing.T) {
	t.Parallel()
	for _, tr := range []string{"socket", "standalone"} {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			s := newSandbox(t)
			c, _ := openRaw(t, s, tr, "ndjson")
			result[json.RawMessage](t, c.call(`1`, "initialize", map[string]any{}))
			dir := s.dir("ws")
			ses := result[session.Session](t, c.call(`2`, "session/create", map[string]any{"directory": dir}))
			big := strings.Repeat("x", 4<<20)
			result[json.RawMessage](t, c.call(`3`, "session/state/update", map[string]any{"sessionID": ses.ID, "delta": map[string]any{"big": big, "small": 1}}))

			c.request(`10`, "session/state/get", map[string]any{"sessionID": ses.ID})
			c.request(`11`, "session/state/get", map[string]any{"sessionID": ses.ID, "key": "small"})
			c.request(`12`, "session/get", map[string]any{"sessionID": ses.ID})
			c.notify("$/cancelRequest", map[string]any{"id": 11})
			c.request(`13`, "daemon/status", nil)
			got := map[string]wireMsg{}
			for len(got) < 4 {
				m := c.read()
				if _, dup := got[string(m.ID)]; dup {
					t.Fatalf("two replies to id %s", m.ID)
				}
				got[string(m.ID)] = m
			}
			st := result[session.StateResult](t, got["10"])
			if len(st.State["big"]) != len(big)+2 {
				t.Errorf("state/get before the cancelled one: big has %d bytes", len(st.State["big"]))
			}
			errCheck(t, "cancelled request", got["11"].Error, rpc.CodeRequestCancelled, "")
			if g := result[session.Session](t, got["12"]); g.ID != ses.ID {
				t.Errorf("request queued after the cancelled one: %+v", g)
			}
			result[json.RawMessage](t, got["13"])

			// Cancelling what is already answered changes nothing.
			c.notify("$/cancelRequest", map[string]any{"id": 10})
			m := c.call(`14`, "session/state/get", map[string]any{"sessionID": ses.ID, "key": "small"})
			if st := result[session.StateResult](t, m); string(st.State["small"]) != "1" {
				t.Errorf("state after cancels: %s", m.Result)
			}
		})
	}
}

// TestScriptPipesRequests is `printf '...' | sessiond stdio`: every request
// sent before stdin ends is answered, then the process exits 0.
func TestScriptPipesRequests(t *testing.T) {
	t.Parallel()
	for _, tr := range []string{"stdio", "standalone"} {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			s := newSandbox(t)
			dir := s.dir("ws")
			const n = 10
			args := []string{"stdio"}
			if tr == "standalone" {
				args = append(args, "--standalone")
			}
			p := s.stdio(args...)
			c := p.raw("ndjson")
			var script strings.Builder
			for i := range n {
				fmt.Fprintf(&script, `{"jsonrpc":"2.0","id":%d,"method":"session/create","params":{"directory":%q,"title":"s%d"}}`+"\n", i, dir, i)
			}
			c.sendRaw(script.String())
			p.stdin.Close()
			seen := map[string]bool{}
			for len(seen) < n {
				m := c.read()
				if m.Method != "" {
					continue // the change feed of the sessions it creates
				}
				result[session.Session](t, m)
				if seen[string(m.ID)] {
					t.Fatalf("two answers to id %s", m.ID)
				}
				seen[string(m.ID)] = true
			}
			c.expectEOF()
			if code := p.wait(); code != 0 {
				t.Fatalf("exit code %d; stderr:\n%s", code, p.stderr.String())
			}
			// What the script did is stored.
			var cl *client
			if tr == "standalone" {
				q := s.stdio("stdio", "--standalone")
				cl = newClient(t, q.rwc())
			} else {
				cl = s.dial()
			}
			if got := cl.list(session.ListParams{Directory: dir}).Sessions; len(got) != n {
				t.Fatalf("%d sessions stored, want %d", len(got), n)
			}
		})
	}
}
