package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sourcegraph/jsonrpc2"
)

// echoMux serves "echo", which returns its params.
func echoMux() *Mux {
	m := NewMux()
	Handle(m, "echo", func(_ context.Context, _ *Conn, p json.RawMessage) (json.RawMessage, error) {
		return p, nil
	})
	return m
}

func TestFramingDetection(t *testing.T) {
	const (
		req  = `{"jsonrpc":"2.0","id":1,"method":"echo","params":{"a":1}}`
		req2 = `{"jsonrpc":"2.0","id":2,"method":"echo","params":{"a":1}}`
	)
	lsp := func(headers string) string {
		return fmt.Sprintf("Content-Length: %d\r\n%s\r\n%s", len(req), headers, req)
	}
	lsp2 := fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(req2), req2)
	tests := []struct {
		name   string
		opt    Framing
		input  string
		want   Framing
		copies int // how many times req is in input
	}{
		{"ndjson", FramingAuto, req + "\n", FramingNDJSON, 1},
		{"ndjson crlf and blank lines", FramingAuto, "\r\n\n" + req + "\r\n\r\n\n" + req2 + "\r\n", FramingNDJSON, 2},
		{"ndjson leading spaces", FramingAuto, "  \t" + req + "\n", FramingNDJSON, 1},
		{"lsp", FramingAuto, lsp(""), FramingLSP, 1},
		{"lsp with Content-Type", FramingAuto, lsp("Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n"), FramingLSP, 1},
		{"lsp Content-Type first", FramingAuto, "Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n" + lsp(""), FramingLSP, 1},
		{"lsp lowercase header", FramingAuto, strings.Replace(lsp(""), "Content-Length", "content-length", 1), FramingLSP, 1},
		{"lsp leading newline", FramingAuto, "\r\n" + lsp(""), FramingLSP, 1},
		{"lsp back to back", FramingAuto, lsp("") + lsp2, FramingLSP, 2},
		{"forced lsp", FramingLSP, lsp(""), FramingLSP, 1},
		{"forced ndjson", FramingNDJSON, req + "\n", FramingNDJSON, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, c := startServer(t, echoMux(), ServerOptions{Framing: tt.opt})
			p := newPeer(t, conn, tt.want)
			p.raw(tt.input)
			seen := map[any]bool{}
			for range tt.copies {
				r := p.reply()
				if seen[r.ID] || string(r.Result) != `{"a":1}` {
					t.Fatalf("reply = %+v", r)
				}
				seen[r.ID] = true
			}
			if got := c.Framing(); got != tt.want {
				t.Errorf("Framing() = %v, want %v", got, tt.want)
			}
			p.alive()
		})
	}
}

func TestFramingString(t *testing.T) {
	for f, want := range map[Framing]string{FramingAuto: "auto", FramingLSP: "lsp", FramingNDJSON: "ndjson", Framing(9): "Framing(9)"} {
		if got := f.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", f, got, want)
		}
	}
}

func TestBadInput(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		code    int64 // 0: no reply expected
		id      any
		message string
	}{
		{"truncated JSON", `{"jsonrpc":"2.0","id":1,"method":`, CodeParseError, nil, "parse error: unexpected end of JSON input; the message was ignored"},
		{"not JSON", `hello there`, CodeParseError, nil, "parse error: invalid character 'h'"},
		{"trailing garbage", `{"id":1,"method":"echo"} x`, CodeParseError, nil, "parse error"},
		{"batch", `[{"jsonrpc":"2.0","id":1,"method":"echo"}]`, CodeInvalidRequest, nil, "batch requests (JSON arrays) are not supported; send requests one at a time"},
		{"empty batch", `[]`, CodeInvalidRequest, nil, "batch requests"},
		{"number", `42`, CodeInvalidRequest, nil, "got a number"},
		{"string", `"echo"`, CodeInvalidRequest, nil, "got a string"},
		{"null", `null`, CodeInvalidRequest, nil, "got a null"},
		{"neither request nor response", `{"jsonrpc":"2.0","id":7}`, CodeInvalidRequest, float64(7), `neither "method"`},
		{"method not a string", `{"jsonrpc":"2.0","id":8,"method":5}`, CodeInvalidRequest, float64(8), `"method" must be a string, got number`},
		{"method and result", `{"jsonrpc":"2.0","id":9,"method":"echo","result":1}`, CodeInvalidRequest, float64(9), `both "method" and "result"/"error"`},
		{"id object", `{"jsonrpc":"2.0","id":{"x":1},"method":"echo"}`, CodeInvalidRequest, nil, `"id" must be a string or a number, got object`},
		{"id bool", `{"jsonrpc":"2.0","id":true,"method":"echo"}`, CodeInvalidRequest, nil, `got boolean`},
		{"id negative", `{"jsonrpc":"2.0","id":-1,"method":"echo"}`, CodeInvalidRequest, float64(-1), `non-negative integer, got -1`},
		{"id fraction", `{"jsonrpc":"2.0","id":1.5,"method":"echo"}`, CodeInvalidRequest, 1.5, `got 1.5`},
		{"id null", `{"jsonrpc":"2.0","id":null,"method":"echo"}`, CodeInvalidRequest, nil, `"id" is null; give each request a string or integer id, or leave "id" out to send a notification`},
		{"params string", `{"jsonrpc":"2.0","id":"p","method":"echo","params":"x"}`, CodeInvalidRequest, "p", `"params" must be an object or an array, got string`},
		{"params number", `{"jsonrpc":"2.0","id":10,"method":"echo","params":3}`, CodeInvalidRequest, float64(10), `got number`},
		{"response to nothing", `{"jsonrpc":"2.0","id":123,"result":{}}`, 0, nil, ""},
		{"error report without id", `{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}`, 0, nil, ""},
		{"bad response id", `{"jsonrpc":"2.0","id":[1],"result":1}`, 0, nil, ""},
	}
	for _, framing := range []Framing{FramingNDJSON, FramingLSP} {
		for _, tt := range tests {
			t.Run(framing.String()+"/"+tt.name, func(t *testing.T) {
				conn, _ := startServer(t, echoMux(), ServerOptions{Framing: framing})
				p := newPeer(t, conn, framing)
				p.send(tt.body)
				if tt.code == 0 {
					p.alive()
					return
				}
				r := p.reply()
				if r.Error == nil {
					t.Fatalf("reply %+v has no error", r)
				}
				if r.Error.Code != tt.code || r.Error.Data["kind"] != KindOf(tt.code) {
					t.Errorf("code %d kind %v, want %d %s", r.Error.Code, r.Error.Data["kind"], tt.code, KindOf(tt.code))
				}
				if r.ID != tt.id {
					t.Errorf("id = %#v, want %#v", r.ID, tt.id)
				}
				if !strings.Contains(r.Error.Message, tt.message) {
					t.Errorf("message %q does not contain %q", r.Error.Message, tt.message)
				}
				p.alive()
			})
		}
	}
}

func TestParseErrorWireFormat(t *testing.T) {
	conn, _ := startServer(t, echoMux(), ServerOptions{})
	p := newPeer(t, conn, FramingNDJSON)
	p.send(`{`)
	got := string(p.frame())
	want := `{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error: unexpected end of JSON input; the message was ignored","data":{"kind":"ParseError"}}}`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestMalformedLSPHeader(t *testing.T) {
	const req = `{"jsonrpc":"2.0","id":1,"method":"echo","params":{"a":1}}`
	tests := []struct {
		name, input, message string
	}{
		{"no Content-Length", "Content-Type: text/plain\r\n\r\n" + req, "no Content-Length header"},
		{"non-numeric", "Content-Length: abc\r\n\r\n" + req, `Content-Length "abc" is not a number`},
		{"negative", "Content-Length: -5\r\n\r\n" + req, "Content-Length -5 is negative"},
		{"not a header", "this is not a header\r\n\r\n" + req, "is not a \"Name: value\" header line"},
		{"garbage before next header", "Content-Length: 1x\r\n\r\n" + req + "more garbage\r\n", "is not a number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, _ := startServer(t, echoMux(), ServerOptions{Framing: FramingLSP})
			p := newPeer(t, conn, FramingLSP)
			p.alive()
			p.raw(tt.input)
			r := p.reply()
			if r.Error == nil || r.Error.Code != CodeParseError || r.Error.Data["kind"] != KindParseError || r.ID != nil {
				t.Fatalf("reply = %+v, want a parse error", r)
			}
			if !strings.Contains(r.Error.Message, tt.message) {
				t.Errorf("message %q does not contain %q", r.Error.Message, tt.message)
			}
			// The stream resynchronises on the next header, even straight
			// after a body with no line break.
			p.alive()
			p.alive()
		})
	}
}

func TestOversized(t *testing.T) {
	const limit = 1000
	pad := func(n int) string {
		// A valid request of exactly n bytes.
		head, tail := `{"jsonrpc":"2.0","id":"big","method":"echo","params":{"pad":"`, `"}}`
		return head + strings.Repeat("x", n-len(head)-len(tail)) + tail
	}
	tests := []struct {
		name string
		size int
		ok   bool
	}{
		{"at the limit", limit, true},
		{"one over", limit + 1, false},
		{"fits the read buffer", 5000, false},
		{"bigger than the read buffer", 1 << 20, false},
	}
	for _, framing := range []Framing{FramingNDJSON, FramingLSP} {
		for _, tt := range tests {
			t.Run(framing.String()+"/"+tt.name, func(t *testing.T) {
				conn, _ := startServer(t, echoMux(), ServerOptions{Framing: framing, MaxMessageBytes: limit})
				p := newPeer(t, conn, framing)
				body := pad(tt.size)
				if len(body) != tt.size {
					t.Fatalf("bad test body size %d", len(body))
				}
				go func() { p.send(body) }() // may block until the server reads
				r := p.reply()
				if tt.ok {
					if r.Error != nil || r.ID != "big" {
						t.Fatalf("reply = %+v, want success", r)
					}
					p.alive()
					return
				}
				if r.Error == nil || r.Error.Code != CodeInvalidRequest || r.Error.Data["kind"] != KindInvalidRequest {
					t.Fatalf("reply = %+v, want InvalidRequest", r)
				}
				want := fmt.Sprintf("message of %d bytes exceeds the 1000 bytes limit; split it or raise --max-message-size", tt.size)
				if r.Error.Message != want {
					t.Errorf("message %q, want %q", r.Error.Message, want)
				}
				if r.Error.Data["limit"] != float64(limit) {
					t.Errorf("data.limit = %v", r.Error.Data["limit"])
				}
				p.alive()
			})
		}
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{64 << 20: "64 MiB", 1 << 10: "1 KiB", 1000: "1000 bytes", 1536: "1536 bytes", 3 << 10: "3 KiB"} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

// repeatReader yields n copies of one byte from a small block.
type repeatReader struct {
	block []byte
	n     int64
}

func newRepeatReader(b byte, n int64) *repeatReader {
	return &repeatReader{block: bytes.Repeat([]byte{b}, 64<<10), n: n}
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	k := copy(p[:min(int64(len(p)), r.n)], r.block)
	r.n -= int64(k)
	return k, nil
}

// fakeConn is a ReadWriteCloser over a reader, recording what is written.
type fakeConn struct {
	io.Reader
	out bytes.Buffer
}

func (f *fakeConn) Write(p []byte) (int, error) { return f.out.Write(p) }
func (f *fakeConn) Close() error                { return nil }

func TestOversizedMemoryBounded(t *testing.T) {
	const (
		limit = 1 << 20
		huge  = 128 << 20
		good  = `{"jsonrpc":"2.0","id":1,"method":"echo"}`
	)
	tests := []struct {
		name    string
		framing Framing
		input   io.Reader
	}{
		{"ndjson", FramingNDJSON, io.MultiReader(strings.NewReader(`{"x":"`), newRepeatReader('a', huge), strings.NewReader("\"}\n"+good+"\n"))},
		{"lsp", FramingLSP, io.MultiReader(strings.NewReader(fmt.Sprintf("Content-Length: %d\r\n\r\n", huge)), newRepeatReader('a', huge), strings.NewReader(fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(good), good)))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fc := &fakeConn{Reader: tt.input}
			s := NewStream(fc, StreamOptions{Framing: tt.framing, MaxMessageBytes: limit, Logger: quietLogger()})
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			var msg json.RawMessage
			if err := s.ReadObject(&msg); err != nil {
				t.Fatalf("ReadObject: %v", err)
			}
			runtime.ReadMemStats(&after)
			if string(msg) != good {
				t.Errorf("read %s, want the message after the oversized one", msg)
			}
			// An NDJSON line is buffered until it passes the limit; growing the
			// buffer by doubling costs at most twice the limit in total.
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 2*limit+256<<10 {
				t.Errorf("allocated %d bytes to skip a %d byte message (limit %d)", alloc, huge, limit)
			}
			if !strings.Contains(fc.out.String(), "exceeds the 1 MiB limit") {
				t.Errorf("no oversize error written: %q", fc.out.String())
			}
		})
	}
}

func TestReadObjectErrorsOnlyOnIO(t *testing.T) {
	tests := []struct {
		name    string
		framing Framing
		input   string
		want    error
	}{
		{"empty ndjson", FramingNDJSON, "", io.EOF},
		{"blank lines then EOF", FramingNDJSON, "\n\r\n  \n", io.EOF},
		{"garbage then EOF", FramingNDJSON, "not json\n[1]\n", io.EOF},
		{"empty lsp", FramingLSP, "", io.EOF},
		{"lsp header cut", FramingLSP, "Content-Length: 10\r\n", io.ErrUnexpectedEOF},
		{"lsp body cut", FramingLSP, "Content-Length: 10\r\n\r\n{}", io.ErrUnexpectedEOF},
		{"lsp bad header then EOF", FramingLSP, "Content-Length: x\r\n\r\n{}", io.EOF},
		{"auto empty", FramingAuto, "", io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewStream(&fakeConn{Reader: strings.NewReader(tt.input)}, StreamOptions{Framing: tt.framing, Logger: quietLogger()})
			var msg json.RawMessage
			if err := s.ReadObject(&msg); err != tt.want {
				t.Errorf("ReadObject = %v (msg %s), want %v", err, msg, tt.want)
			}
		})
	}
}

func TestNDJSONLastLineWithoutNewline(t *testing.T) {
	const good = `{"jsonrpc":"2.0","id":1,"method":"echo"}`
	s := NewStream(&fakeConn{Reader: strings.NewReader(good)}, StreamOptions{Logger: quietLogger()})
	var msg json.RawMessage
	if err := s.ReadObject(&msg); err != nil || string(msg) != good {
		t.Fatalf("ReadObject = %v, %s", err, msg)
	}
	if err := s.ReadObject(&msg); err != io.EOF {
		t.Fatalf("second ReadObject = %v, want EOF", err)
	}
}

func TestWriteObjectFraming(t *testing.T) {
	tests := []struct {
		framing Framing
		want    string
	}{
		{FramingNDJSON, "{\"a\":1}\n"},
		{FramingLSP, "Content-Length: 7\r\n\r\n{\"a\":1}"},
		{FramingAuto, "{\"a\":1}\n"}, // nothing detected yet: NDJSON
	}
	for _, tt := range tests {
		t.Run(tt.framing.String(), func(t *testing.T) {
			fc := &fakeConn{Reader: strings.NewReader("")}
			s := NewStream(fc, StreamOptions{Framing: tt.framing})
			if err := s.WriteObject(json.RawMessage("{\n\"a\": 1}")); err != nil {
				t.Fatal(err)
			}
			if got := fc.out.String(); got != tt.want {
				t.Errorf("wrote %q, want %q", got, tt.want)
			}
		})
	}
}

func TestEachMember(t *testing.T) {
	obj := []byte(` { "a" : [1,{"b":"}"}], "s\u0061" :"x\"y" , "n":-1.5e3,"o":{"sessionID":"no"},"sessionID":"top"} `)
	got := map[string]string{}
	eachMember(bytes.TrimSpace(obj), func(k, v []byte) { got[string(k)] = string(v) })
	want := map[string]string{"a": `[1,{"b":"}"}]`, "sa": `"x\"y"`, "n": "-1.5e3", "o": `{"sessionID":"no"}`, "sessionID": `"top"`}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
	for in, want := range map[string]string{
		`{"sessionID":"ses_1","x":1}`:  "ses_1",
		`{"x":{"sessionID":"inner"}}`:  "",
		`{"sessionID":5}`:              "",
		`{"sessionID":"a\"b"}`:         `a"b`,
		`[{"sessionID":"in array"}]`:   "",
		`{"sessionid":"wrong case"}`:   "",
		`{"sessionID":""}`:             "",
		`{"a":"\\","sessionID":"ok"}`:  "ok",
		`{"a":"\\\"","sessionID":"k"}`: "k",
	} {
		if got := sessionKey(json.RawMessage(in)); got != want {
			t.Errorf("sessionKey(%s) = %q, want %q", in, got, want)
		}
	}
}

func TestStreamConcurrentWrites(t *testing.T) {
	a, b := socketPair(t)
	s := NewStream(a, StreamOptions{Framing: FramingLSP})
	const writers, each = 8, 100
	done := make(chan struct{})
	go func() {
		defer close(done)
		p := newPeer(t, b, FramingLSP)
		for range writers * each {
			b, err := p.readFrame()
			if err != nil || !json.Valid(b) {
				t.Errorf("frame %q: %v", b, err)
				return
			}
		}
	}()
	for w := range writers {
		go func() {
			for i := range each {
				_ = s.WriteObject(map[string]any{"w": w, "i": i, "pad": strings.Repeat("p", 3000)})
			}
		}()
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("timed out")
	}
}

// TestStreamWithPlainJSONRPC2 checks the Stream as a jsonrpc2.ObjectStream
// on its own, decoding requests into jsonrpc2's message type.
func TestStreamWithPlainJSONRPC2(t *testing.T) {
	a, b := socketPair(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := jsonrpc2.HandlerWithError(func(_ context.Context, _ *jsonrpc2.Conn, r *jsonrpc2.Request) (any, error) {
		return map[string]any{"method": r.Method, "params": r.Params}, nil
	})
	jc := jsonrpc2.NewConn(ctx, NewStream(b, StreamOptions{Logger: quietLogger()}), h, jsonrpc2.SetLogger(printfLogger{quietLogger()}))
	defer jc.Close()
	p := newPeer(t, a, FramingLSP)
	p.send(`[1]`)
	if r := p.reply(); r.Error == nil || r.Error.Code != CodeInvalidRequest {
		t.Fatalf("batch reply %+v", r)
	}
	r := p.call(`{"jsonrpc":"2.0","id":"x","method":"m","params":{"a":[1,2]}}`)
	if r.ID != "x" || string(r.Result) != `{"method":"m","params":{"a":[1,2]}}` {
		t.Fatalf("reply %+v %s", r, r.Result)
	}
}

// chunkReader returns at most n bytes per Read, so that a message and the
// header after it reach the stream split at every possible place.
type chunkReader struct {
	r io.Reader
	n int
}

func (c chunkReader) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.n)]) }

// lspFrames splits what a stream wrote into the bodies of its LSP frames.
func lspFrames(t *testing.T, out []byte) []string {
	t.Helper()
	var bodies []string
	for len(out) > 0 {
		head, rest, ok := bytes.Cut(out, []byte("\r\n\r\n"))
		v, isLen := bytes.CutPrefix(head, []byte("Content-Length: "))
		n, err := strconv.Atoi(string(v))
		if !ok || !isLen || err != nil || n > len(rest) {
			t.Fatalf("not an LSP frame: %q", out)
		}
		bodies = append(bodies, string(rest[:n]))
		out = rest[n:]
	}
	return bodies
}

func TestLSPWrongContentLength(t *testing.T) {
	const limit = 1 << 20
	msg := func(id int, pad int) string {
		// "Content-Length: 5" in a string never looks like a header.
		return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"echo","params":{"s":"Content-Length: 5","pad":"%s"}}`, id, strings.Repeat("x", pad))
	}
	frame := func(body string, length int) string {
		return "Content-Length: " + strconv.Itoa(length) + "\r\n\r\n" + body
	}
	exact := func(body string) string { return frame(body, len(body)) }
	m1, m2, m3 := msg(1, 0), msg(2, 0), msg(3, 0)
	big := msg(1, 300<<10) // more than the read buffer
	// Line breaks between tokens are JSON white space.
	pretty := "{\"jsonrpc\":\"2.0\",\r\n\"id\":1,\r\n\"method\":\"echo\",\r\n\"params\":{\"s\":\"Content-Length: 12\"}}"
	huge := msg(1, limit+(200<<10))
	next := exact(m2) + exact(m3)
	tests := []struct {
		name   string
		input  string
		want   []string // messages read, in order
		errors []string // what the error replies say, in order
	}{
		{"exact", exact(m1) + next, []string{m1, m2, m3}, nil},
		{"white space between tokens, and a header in a string", exact(pretty) + next, []string{pretty, m2, m3}, nil},
		{"lowercase and Content-Type", "content-type: application/vscode-jsonrpc; charset=utf-8\r\ncontent-length:" + strconv.Itoa(len(m1)) + "\r\n\r\n" + m1 + next, []string{m1, m2, m3}, nil},
		{"short by one", frame(m1, len(m1)-1) + next, []string{m2, m3}, []string{"the body ends before its JSON does (Content-Length " + strconv.Itoa(len(m1)-1)}},
		{"10 bytes", frame(m1, 10) + next, []string{m2, m3}, []string{"the body ends before its JSON does"}},
		{"short, next header after Content-Type", frame(m1, 20) + "Content-Type: application/vscode-jsonrpc\r\n" + next, []string{m2, m3}, []string{"the body ends before its JSON does"}},
		{"short, the rest has line breaks", frame(pretty, 30) + next, []string{m2, m3}, []string{"the body ends before its JSON does"}},
		{"short, the rest longer than the read buffer", frame(big, 100<<10) + next, []string{m2, m3}, []string{"the body ends before its JSON does"}},
		{"long by one", frame(m1, len(m1)+1) + next, []string{m2, m3}, []string{fmt.Sprintf(`parse error: the JSON message ends after %d of the %d bytes Content-Length gave, and "C" follows`, len(m1), len(m1)+1)}},
		{"long into the next header", frame(m1, len(m1)+10) + next, []string{m2, m3}, []string{"the JSON message ends after"}},
		{"long into the next body", frame(m1, len(m1)+30) + next, []string{m2, m3}, []string{"the JSON message ends after"}},
		{"long past the next frame", frame(m1, len(m1)+len(exact(m2))+5) + next, []string{m2, m3}, []string{"the JSON message ends after"}},
		{"long, body bigger than the read buffer", frame(big, len(big)+2) + next, []string{m2, m3}, []string{"the JSON message ends after"}},
		{"over the limit, but the next frame is inside", frame(m1, limit+1) + next, []string{m2, m3}, []string{"Content-Length 1048577 is longer than the message, another Content-Length header follows inside it"}},
		{"over the limit", exact(huge) + next, []string{m2, m3}, []string{"exceeds the 1 MiB limit"}},
		{"junk before a header", "hello Content-Length: " + strconv.Itoa(len(m1)) + "\r\n\r\n" + m1 + next, []string{m1, m2, m3}, []string{`malformed LSP header: "hello" before the Content-Length header`}},
		{"empty, then a body", frame("", 0) + m1 + next, []string{m2, m3}, []string{"empty message"}},
		{"bad header, then a body", "Content-Length: 1x\r\n\r\n" + m1 + next, []string{m2, m3}, []string{`Content-Length "1x" is not a number`}},
		{"no Content-Length, junk lines", "Content-Type: x\r\n\r\n" + m1 + "\r\nmore: junk\r\n\r\n" + next, []string{m2, m3}, []string{"no Content-Length header"}},
	}
	for _, tt := range tests {
		for _, chunk := range []int{len(tt.input), 7} {
			how := "at once"
			if chunk < len(tt.input) {
				how = fmt.Sprintf("%d bytes at a time", chunk)
			}
			t.Run(tt.name+"/"+how, func(t *testing.T) {
				fc := &fakeConn{Reader: chunkReader{strings.NewReader(tt.input), chunk}}
				s := NewStream(fc, StreamOptions{Framing: FramingLSP, MaxMessageBytes: limit, Logger: quietLogger()})
				var got []string
				for {
					var m json.RawMessage
					err := s.ReadObject(&m)
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Fatalf("ReadObject: %v (read so far: %d messages)", err, len(got))
					}
					got = append(got, string(m))
				}
				if !slices.Equal(got, tt.want) {
					t.Errorf("read %d messages %.200q\nwant %d %.200q", len(got), got, len(tt.want), tt.want)
				}
				replies := lspFrames(t, fc.out.Bytes())
				if len(replies) != len(tt.errors) {
					t.Fatalf("wrote %d error replies, want %d: %q", len(replies), len(tt.errors), replies)
				}
				for i, r := range replies {
					var e struct {
						ID    any    `json:"id"`
						Error *Error `json:"error"`
					}
					if err := json.Unmarshal([]byte(r), &e); err != nil || e.Error == nil || e.ID != nil {
						t.Fatalf("reply %s is not an error with id null", r)
					}
					wantCode := CodeParseError
					if strings.Contains(tt.errors[i], "exceeds") {
						wantCode = CodeInvalidRequest
					}
					if e.Error.Code != wantCode || !strings.Contains(e.Error.Message, tt.errors[i]) {
						t.Errorf("reply %d: %d %q, want %d and %q", i, e.Error.Code, e.Error.Message, wantCode, tt.errors[i])
					}
				}
			})
		}
	}
}

func TestTrailingContentLength(t *testing.T) {
	tests := []struct {
		line string
		v    int64
		at   int
		ok   bool
	}{
		{"Content-Length: 62\r\n", 62, 0, true},
		{"content-length:7\n", 7, 0, true},
		{"CONTENT-LENGTH: \t 12 \t\r\n", 12, 0, true},
		{`{"a":1}Content-Length: 5` + "\r\n", 5, 7, true},
		{"Content-Length: 62", 0, 0, false},                      // no line break yet
		{"Content-Length: \r\n", 0, 0, false},                    // no number
		{"Content-Length: -5\r\n", 0, 0, false},                  // not a plain number
		{"Content-Length: 5x\r\n", 0, 0, false},                  // not a plain number
		{"Content-Type: utf-8\r\n", 0, 0, false},                 // another header
		{"Length: 5\r\n", 0, 0, false},                           // another header
		{"Content-Length: 1234567890123456789\r\n", 0, 0, false}, // too many digits
		{"\r\n", 0, 0, false},
	}
	for _, tt := range tests {
		v, at, ok := trailingContentLength([]byte(tt.line))
		if v != tt.v || at != tt.at || ok != tt.ok {
			t.Errorf("trailingContentLength(%q) = %d, %d, %v; want %d, %d, %v", tt.line, v, at, ok, tt.v, tt.at, tt.ok)
		}
	}
}

// A notification whose params are already encoded is written as they are,
// in either framing, however large.
func TestNotifyRawParams(t *testing.T) {
	big := `{"text":"` + strings.Repeat("n", 3<<20) + `"}`
	for _, framing := range []Framing{FramingNDJSON, FramingLSP} {
		for _, params := range []string{`{"a":1}`, big} {
			t.Run(fmt.Sprintf("%s/%d bytes", framing, len(params)), func(t *testing.T) {
				conn, c := startServer(t, echoMux(), ServerOptions{Framing: framing})
				p := newPeer(t, conn, framing)
				p.alive()
				go c.Notify(context.Background(), "session/event", json.RawMessage(params))
				got := p.frame()
				want := `{"jsonrpc":"2.0","method":"session/event","params":` + params + `}`
				if string(got) != want {
					t.Errorf("wrote %.200q…, want %.200q…", got, want)
				}
				p.alive()
			})
		}
	}
}

// The messages a Mux's connections read are counted, bad ones too, so a
// server can tell when its clients went quiet.
func TestMessagesRead(t *testing.T) {
	mux := echoMux()
	conn, _ := startServer(t, mux, ServerOptions{Framing: FramingNDJSON})
	p := newPeer(t, conn, FramingNDJSON)
	p.alive()
	p.send("not json")
	p.reply()
	p.send(`{"jsonrpc":"2.0","method":"echo"}`) // a notification
	p.alive()
	if got := mux.MessagesRead(); got != 4 {
		t.Errorf("MessagesRead = %d, want 4", got)
	}
}

// Large messages hand their read buffer to the request instead of copying
// it; the next large message must then get a buffer of its own, or it
// would overwrite the params of the first while its handler still runs.
func TestLargeParamsKeepTheirBytes(t *testing.T) {
	for _, framing := range []Framing{FramingNDJSON, FramingLSP} {
		t.Run(framing.String(), func(t *testing.T) {
			held := make(chan struct{})
			got := make(chan json.RawMessage, 2)
			m := NewMux()
			Handle(m, "hold", func(_ context.Context, _ *Conn, p json.RawMessage) (struct{}, error) {
				<-held
				got <- p
				return struct{}{}, nil
			})
			conn, _ := startServer(t, m, ServerOptions{Framing: framing})
			p := newPeer(t, conn, framing)
			want := map[byte]string{}
			for _, fill := range []byte{'a', 'b'} {
				params := `{"pad":"` + strings.Repeat(string(fill), 2*keepBufferBytes) + `"}`
				want[fill] = params
				go p.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":"%c","method":"hold","params":%s}`, fill, params))
				eventually(t, "the message to be read", func() bool { return m.MessagesRead() == uint64(len(want)) })
			}
			close(held)
			for range 2 {
				r := p.reply()
				if r.Error != nil {
					t.Fatalf("reply %+v", r)
				}
				params := <-got
				if string(params) != want[params[8]] {
					t.Errorf("params of a held request changed: starts %.20q, ends %.20q", params, params[len(params)-20:])
				}
			}
		})
	}
}
