package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type part struct {
	Text string `json:"text"`
}

type typedParams struct {
	Title string `json:"title"`
	Count int    `json:"count"`
	Parts []part `json:"parts"`
	Flag  bool   `json:"flag"`
}

func (p typedParams) Validate() error {
	switch {
	case p.Title == "":
		return InvalidParams("title", "title is required")
	case p.Title == "plain":
		return errors.New("plain errors become InvalidParams")
	}
	return nil
}

type ptrValidated struct{ N int }

func (p *ptrValidated) Validate() error {
	if p.N < 0 {
		return InvalidParams("N", "N must not be negative")
	}
	return nil
}

func TestInvalidParams(t *testing.T) {
	m := echoMux()
	Handle(m, "typed", func(_ context.Context, _ *Conn, p typedParams) (typedParams, error) { return p, nil })
	Handle(m, "ptr", func(_ context.Context, _ *Conn, p ptrValidated) (int, error) { return p.N, nil })
	Handle(m, "pointer", func(_ context.Context, _ *Conn, p *typedParams) (bool, error) { return p == nil, nil })
	Handle(m, "list", func(_ context.Context, _ *Conn, p []int) (int, error) { return len(p), nil })
	tests := []struct {
		name, method, params string
		field, message       string // field "": success
		result               string
	}{
		{"wrong type", "typed", `{"title":1}`, "title", `"title": expected string, got number`, ""},
		{"integer from string", "typed", `{"title":"t","count":"x"}`, "count", `"count": expected integer, got string`, ""},
		{"integer from fraction", "typed", `{"title":"t","count":1.5}`, "count", `"count": expected integer, got number 1.5`, ""},
		{"bool", "typed", `{"title":"t","flag":"yes"}`, "flag", `"flag": expected boolean, got string`, ""},
		{"nested", "typed", `{"title":"t","parts":[{"text":true}]}`, "parts.text", `"parts.text": expected string, got boolean`, ""},
		{"array for a slice field", "typed", `{"title":"t","parts":{}}`, "parts", `"parts": expected array, got object`, ""},
		{"array for a struct", "typed", `[1,2]`, "params", `params must be an object, got array`, ""},
		{"object for a slice", "list", `{"a":1}`, "params", `params must be an array, got object`, ""},
		{"missing params validated", "typed", ``, "title", `title is required`, ""},
		{"null params validated", "typed", `null`, "title", `title is required`, ""},
		{"plain Validate error", "typed", `{"title":"plain"}`, "params", `invalid params: plain errors become InvalidParams`, ""},
		{"pointer receiver Validate", "ptr", `{"N":-1}`, "N", `N must not be negative`, ""},
		{"unknown fields ignored", "typed", `{"title":"t","future":{"x":1}}`, "", "", `{"title":"t","count":0,"parts":null,"flag":false}`},
		{"missing params for pointer", "pointer", ``, "", "", `true`},
		{"array params", "list", `[1,2,3]`, "", "", `3`},
	}
	conn, _ := startServer(t, m, ServerOptions{})
	p := newPeer(t, conn, FramingNDJSON)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p.t = t
			params := ""
			if tt.params != "" {
				params = `,"params":` + tt.params
			}
			r := p.call(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":%q%s}`, i, tt.method, params))
			if tt.field == "" {
				if r.Error != nil || string(r.Result) != tt.result {
					t.Fatalf("got result %s error %+v, want %s", r.Result, r.Error, tt.result)
				}
				return
			}
			if r.Error == nil || r.Error.Code != CodeInvalidParams || r.Error.Data["kind"] != KindInvalidParams {
				t.Fatalf("reply %+v, want InvalidParams", r)
			}
			if r.Error.Data["field"] != tt.field || r.Error.Message != tt.message {
				t.Errorf("field %v message %q, want %q %q", r.Error.Data["field"], r.Error.Message, tt.field, tt.message)
			}
		})
	}
}

func TestDispatchErrors(t *testing.T) {
	logs := &logBuffer{}
	m := echoMux()
	Handle(m, "fail", func(context.Context, *Conn, struct{}) (any, error) {
		return nil, fmt.Errorf("open store: %w", errors.New("secret detail"))
	})
	Handle(m, "notfound", func(context.Context, *Conn, struct{}) (any, error) {
		return nil, fmt.Errorf("lookup: %w", NewError(CodeNotFound, "session %q not found; list sessions with session/list", "ses_1"))
	})
	Handle(m, "panic", func(context.Context, *Conn, struct{}) (any, error) { panic("boom") })
	Handle(m, "unencodable", func(context.Context, *Conn, struct{}) (any, error) { return func() {}, nil })
	var notified atomic.Int32
	HandleNotification(m, "note", func(context.Context, *Conn, struct{}) { notified.Add(1) })
	conn, _ := startServer(t, m, ServerOptions{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	p := newPeer(t, conn, FramingNDJSON)

	tests := []struct {
		name, request string
		code          int64
		message       string
	}{
		{"unknown method", `{"jsonrpc":"2.0","id":1,"method":"nope"}`, CodeMethodNotFound, `unknown method "nope"; see docs/protocol.md for the methods sessiond serves`},
		{"internal error hides detail", `{"jsonrpc":"2.0","id":2,"method":"fail"}`, CodeInternalError, "internal error in sessiond; the daemon log has the details, please report it if it persists"},
		{"rpc error passes through wrapping", `{"jsonrpc":"2.0","id":3,"method":"notfound"}`, CodeNotFound, `session "ses_1" not found; list sessions with session/list`},
		{"panic", `{"jsonrpc":"2.0","id":4,"method":"panic"}`, CodeInternalError, "internal error: the panic handler crashed; the daemon log has the details, please report it"},
		{"unencodable result", `{"jsonrpc":"2.0","id":5,"method":"unencodable"}`, CodeInternalError, "internal error: the result of unencodable could not be encoded; the daemon log has the details"},
		{"notification method as request", `{"jsonrpc":"2.0","id":6,"method":"note"}`, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p.t = t
			r := p.call(tt.request)
			if tt.code == 0 {
				if r.Error != nil || string(r.Result) != "null" {
					t.Fatalf("reply %+v, want null", r)
				}
				return
			}
			if r.Error == nil || r.Error.Code != tt.code || r.Error.Data["kind"] != KindOf(tt.code) || r.Error.Message != tt.message {
				t.Fatalf("reply error %+v, want %d %q", r.Error, tt.code, tt.message)
			}
			p.alive()
		})
	}
	p.t = t

	// Notifications get no reply, known or not.
	p.send(`{"jsonrpc":"2.0","method":"nope"}`)
	p.send(`{"jsonrpc":"2.0","method":"$/setTrace","params":{"value":"off"}}`)
	p.send(`{"jsonrpc":"2.0","method":"note"}`)
	p.send(`{"jsonrpc":"2.0","method":"initialized","params":{}}`)
	p.alive()
	eventually(t, "notification handled", func() bool { return notified.Load() == 2 })

	out := logs.String()
	// The log has what the client must not see, and the panic's stack.
	for _, want := range []string{"secret detail", "method=fail", "boom", "stack=", "conn_test.go", "unencodable"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

func TestDuplicateRequestID(t *testing.T) {
	m := echoMux()
	release := make(chan struct{})
	Handle(m, "block", func(context.Context, *Conn, struct{}) (string, error) {
		<-release
		return "done", nil
	})
	conn, _ := startServer(t, m, ServerOptions{})
	p := newPeer(t, conn, FramingNDJSON)
	p.send(`{"jsonrpc":"2.0","id":1,"method":"block"}`)
	r := p.call(`{"jsonrpc":"2.0","id":1,"method":"echo"}`)
	if r.Error == nil || r.Error.Code != CodeInvalidRequest || !strings.Contains(r.Error.Message, "already used") {
		t.Fatalf("reply %+v, want InvalidRequest for a reused id", r)
	}
	close(release)
	if r := p.reply(); string(r.Result) != `"done"` {
		t.Fatalf("reply %+v", r)
	}
	// Once answered, the id may be used again.
	if r := p.call(`{"jsonrpc":"2.0","id":1,"method":"echo","params":[1]}`); string(r.Result) != `[1]` {
		t.Fatalf("reply %+v", r)
	}
}

type seqParams struct {
	SessionID string `json:"sessionID"`
	N         int    `json:"n"`
}

func TestOrdering(t *testing.T) {
	var (
		mu      sync.Mutex
		order   = map[string][]int{}
		running = map[string]int{}
		overlap []string
		active  int
		peak    int
	)
	m := NewMux()
	Handle(m, "record", func(_ context.Context, _ *Conn, p seqParams) (int, error) {
		mu.Lock()
		running[p.SessionID]++
		if p.SessionID != "" && running[p.SessionID] > 1 {
			overlap = append(overlap, p.SessionID)
		}
		active++
		peak = max(peak, active)
		mu.Unlock()
		time.Sleep(time.Duration(rand.IntN(500)) * time.Microsecond)
		mu.Lock()
		order[p.SessionID] = append(order[p.SessionID], p.N)
		running[p.SessionID]--
		active--
		mu.Unlock()
		return p.N, nil
	})
	conn, c := startServer(t, m, ServerOptions{})
	p := newPeer(t, conn, FramingNDJSON)

	sessions := []string{"ses_a", "ses_b", "ses_c", ""}
	const perSession = 40
	id := 0
	for n := range perSession {
		for _, s := range sessions {
			id++
			p.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"record","params":{"sessionID":%q,"n":%d}}`, id, s, n))
		}
	}
	for range id {
		if r := p.reply(); r.Error != nil {
			t.Fatalf("reply %+v", r)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(overlap) > 0 {
		t.Errorf("requests of one session overlapped: %v", overlap)
	}
	if peak < 2 {
		t.Errorf("at most %d request ran at a time; sessions should interleave", peak)
	}
	for _, s := range sessions[:3] {
		got := order[s]
		for i := range got {
			if got[i] != i {
				t.Fatalf("session %s ran in order %v, want arrival order", s, got)
			}
		}
		if len(got) != perSession {
			t.Errorf("session %s ran %d requests, want %d", s, len(got), perSession)
		}
	}
	// Queue workers exit once idle.
	eventually(t, "queues to drain", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.queues) == 0 && len(c.inflight) == 0
	})
}

func TestUnorderedSkipsQueue(t *testing.T) {
	m := NewMux()
	started, release := make(chan struct{}), make(chan struct{})
	Handle(m, "session/prompt", func(_ context.Context, _ *Conn, p seqParams) (string, error) {
		close(started)
		<-release
		return "prompted", nil
	})
	Handle(m, "session/status", func(_ context.Context, _ *Conn, p seqParams) (string, error) {
		return "busy", nil
	}, Unordered())
	Handle(m, "session/get", func(_ context.Context, _ *Conn, p seqParams) (string, error) {
		return "got", nil
	})
	conn, _ := startServer(t, m, ServerOptions{})
	p := newPeer(t, conn, FramingNDJSON)
	p.send(`{"jsonrpc":"2.0","id":1,"method":"session/prompt","params":{"sessionID":"s"}}`)
	<-started
	p.send(`{"jsonrpc":"2.0","id":2,"method":"session/get","params":{"sessionID":"s"}}`)
	if r := p.call(`{"jsonrpc":"2.0","id":3,"method":"session/status","params":{"sessionID":"s"}}`); r.ID != float64(3) || string(r.Result) != `"busy"` {
		t.Fatalf("unordered reply %+v, want id 3 first", r)
	}
	if r := p.call(`{"jsonrpc":"2.0","id":4,"method":"session/get","params":{"sessionID":"other"}}`); r.ID != float64(4) {
		t.Fatalf("other session reply %+v, want id 4 first", r)
	}
	close(release)
	for _, want := range []float64{1, 2} {
		if r := p.reply(); r.ID != want {
			t.Fatalf("reply %+v, want id %v", r, want)
		}
	}
}

func TestCancel(t *testing.T) {
	m := echoMux()
	started := make(chan string, 10)
	var ranQueued atomic.Bool
	Handle(m, "slow", func(ctx context.Context, _ *Conn, p seqParams) (any, error) {
		started <- p.SessionID
		<-ctx.Done()
		return nil, fmt.Errorf("waiting for the turn: %w", ctx.Err())
	})
	Handle(m, "stubborn", func(ctx context.Context, _ *Conn, p seqParams) (string, error) {
		started <- p.SessionID
		<-ctx.Done()
		return "finished anyway", nil
	})
	Handle(m, "queued", func(context.Context, *Conn, seqParams) (string, error) {
		ranQueued.Store(true)
		return "ran", nil
	})
	conn, _ := startServer(t, m, ServerOptions{})
	p := newPeer(t, conn, FramingNDJSON)

	cancelled := func(r reply, id any) {
		t.Helper()
		if r.ID != id || r.Error == nil || r.Error.Code != CodeRequestCancelled || r.Error.Data["kind"] != KindRequestCancelled {
			t.Fatalf("reply %+v, want RequestCancelled for %v", r, id)
		}
	}

	// A running request: its context is cancelled, the handler returns ctx.Err().
	p.send(`{"jsonrpc":"2.0","id":1,"method":"slow","params":{"sessionID":"s1"}}`)
	<-started
	p.send(`{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":1}}`)
	cancelled(p.reply(), float64(1))

	// A queued request is answered at once and never runs.
	p.send(`{"jsonrpc":"2.0","id":"run","method":"slow","params":{"sessionID":"s2"}}`)
	<-started
	p.send(`{"jsonrpc":"2.0","id":"wait","method":"queued","params":{"sessionID":"s2"}}`)
	p.send(`{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":"wait"}}`)
	cancelled(p.reply(), "wait")
	p.send(`{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":"run"}}`)
	cancelled(p.reply(), "run")
	p.alive()
	if ranQueued.Load() {
		t.Error("the cancelled queued request ran")
	}

	// A handler that ignores cancellation still gets its result through.
	p.send(`{"jsonrpc":"2.0","id":2,"method":"stubborn"}`)
	<-started
	p.send(`{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":2}}`)
	if r := p.reply(); string(r.Result) != `"finished anyway"` {
		t.Fatalf("reply %+v", r)
	}

	// Cancelling what is not running is harmless.
	p.send(`{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":12345}}`)
	p.send(`{"jsonrpc":"2.0","method":"$/cancelRequest","params":{}}`)
	p.send(`{"jsonrpc":"2.0","method":"$/cancelRequest"}`)
	p.alive()
}

func TestLifecycle(t *testing.T) {
	var closed atomic.Int32
	m := echoMux()
	conn, c := startServer(t, m, ServerOptions{
		Framing: FramingLSP,
		Initialize: func(_ context.Context, c *Conn, params json.RawMessage) (any, error) {
			var p struct {
				ClientInfo struct{ Name string } `json:"clientInfo"`
			}
			if err := json.Unmarshal(params, &p); err != nil {
				return nil, InvalidParams("params", "bad initialize params: %v", err)
			}
			return map[string]any{"serverInfo": map[string]string{"name": "sessiond"}, "client": p.ClientInfo.Name, "conn": c.ID()}, nil
		},
		OnClose: func(*Conn) { closed.Add(1) },
	})
	p := newPeer(t, conn, FramingLSP)

	p.alive() // requests before initialize are allowed
	r := p.call(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"processId":null,"clientInfo":{"name":"nvim"},"capabilities":{}}}`)
	want := fmt.Sprintf(`{"client":"nvim","conn":%d,"serverInfo":{"name":"sessiond"}}`, c.ID())
	if r.Error != nil || string(r.Result) != want {
		t.Fatalf("initialize = %s %+v, want %s", r.Result, r.Error, want)
	}
	p.send(`{"jsonrpc":"2.0","method":"initialized","params":{}}`)
	p.alive()

	if r := p.call(`{"jsonrpc":"2.0","id":2,"method":"shutdown"}`); r.Error != nil || string(r.Result) != "null" {
		t.Fatalf("shutdown = %+v", r)
	}
	r = p.call(`{"jsonrpc":"2.0","id":3,"method":"echo"}`)
	if r.Error == nil || r.Error.Code != CodeInvalidRequest || r.Error.Message != `server is shutting down; only "exit" is accepted after "shutdown"` {
		t.Fatalf("request after shutdown = %+v", r)
	}
	p.send(`{"jsonrpc":"2.0","method":"exit"}`)
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("exit did not close the connection")
	}
	if closed.Load() != 1 {
		t.Errorf("OnClose ran %d times", closed.Load())
	}
	if c.Context().Err() == nil {
		t.Error("Context not cancelled after close")
	}
	if _, err := p.readFrame(); err == nil {
		t.Error("connection still open after exit")
	}
}

func TestInitializeDefault(t *testing.T) {
	conn, _ := startServer(t, echoMux(), ServerOptions{})
	p := newPeer(t, conn, FramingNDJSON)
	if r := p.call(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`); string(r.Result) != `{"capabilities":{}}` {
		t.Fatalf("initialize = %+v", r)
	}
}

func TestCloseCancelsRequests(t *testing.T) {
	m := NewMux()
	started := make(chan struct{})
	cancelled := make(chan struct{})
	Handle(m, "wait", func(ctx context.Context, _ *Conn, _ seqParams) (any, error) {
		close(started)
		<-ctx.Done()
		close(cancelled)
		return nil, ctx.Err()
	})
	conn, c := startServer(t, m, ServerOptions{})
	p := newPeer(t, conn, FramingNDJSON)
	p.send(`{"jsonrpc":"2.0","id":1,"method":"wait","params":{"sessionID":"s"}}`)
	p.send(`{"jsonrpc":"2.0","id":2,"method":"wait","params":{"sessionID":"s"}}`) // queued
	<-started
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	<-cancelled
	<-c.Done()
	eventually(t, "queues to drain", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.queues) == 0
	})
	if err := c.Notify(context.Background(), "x", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Notify after Close = %v, want ErrClosed", err)
	}
}

func TestConnIDs(t *testing.T) {
	m := echoMux()
	var last uint64
	for range 3 {
		_, c := startServer(t, m, ServerOptions{})
		if c.ID() <= last {
			t.Fatalf("ID %d after %d", c.ID(), last)
		}
		last = c.ID()
	}
	if _, c := startServer(t, NewMux(), ServerOptions{}); c.ID() != 1 {
		t.Errorf("a new Mux starts counting at %d", c.ID())
	}
}

func TestMethods(t *testing.T) {
	m := NewMux()
	for _, name := range []string{"session/get", "daemon/status", "session/abort"} {
		Handle(m, name, func(context.Context, *Conn, struct{}) (any, error) { return nil, nil })
	}
	HandleNotification(m, "client/ping", func(context.Context, *Conn, struct{}) {})
	if got, want := fmt.Sprint(m.Methods()), "[client/ping daemon/status session/abort session/get]"; got != want {
		t.Errorf("Methods() = %s, want %s", got, want)
	}
}

func TestRegisterPanics(t *testing.T) {
	fn := func(context.Context, *Conn, struct{}) (any, error) { return nil, nil }
	for _, name := range []string{"", "initialize", "shutdown", "exit", "$/cancelRequest", "dup"} {
		t.Run(name, func(t *testing.T) {
			m := NewMux()
			Handle(m, "dup", fn)
			defer func() {
				if recover() == nil {
					t.Errorf("registering %q did not panic", name)
				}
			}()
			Handle(m, name, fn)
		})
	}
}

func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		a, b := socketPair(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		c := Serve(ctx, b, testMux(nil, nil), ServerOptions{Logger: quietLogger()})
		cl := Dial(ctx, a, ClientOptions{Logger: quietLogger(), OnNotify: func(string, json.RawMessage) {}})
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Go(func() {
				for j := range 20 {
					p := getParams{SessionID: fmt.Sprintf("ses_%d", (i+j)%4)}
					if err := cl.Call(ctx, "session/get", p, nil); err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		if err := cl.Call(ctx, "stream", map[string]int{"N": 10}, nil); err != nil {
			t.Error(err)
		}
		cl.Close()
		<-c.Done()
		a.Close()
		b.Close()
	}()
	eventually(t, "goroutines to exit", func() bool { return runtime.NumGoroutine() <= before })
}

// TestAfterReply: a method's AfterReply runs once its reply is on the
// wire, so closing the connection there still delivers the answer; it
// does not run when the method fails.
func TestAfterReply(t *testing.T) {
	m := NewMux()
	ran := make(chan string, 2)
	Handle(m, "bye", func(context.Context, *Conn, struct{}) (string, error) {
		return "bye", nil
	}, AfterReply(func(c *Conn) {
		ran <- "bye"
		c.Close()
	}))
	Handle(m, "fail", func(context.Context, *Conn, struct{}) (any, error) {
		return nil, NewError(CodeInvalidParams, "no")
	}, AfterReply(func(*Conn) { ran <- "fail" }))
	conn, c := startServer(t, m, ServerOptions{})
	p := newPeer(t, conn, FramingNDJSON)
	if r := p.call(`{"jsonrpc":"2.0","id":1,"method":"fail"}`); r.Error == nil {
		t.Fatalf("fail answered %+v", r)
	}
	if r := p.call(`{"jsonrpc":"2.0","id":2,"method":"bye"}`); r.Error != nil || string(r.Result) != `"bye"` {
		t.Fatalf("bye answered %+v", r)
	}
	<-c.Done()
	close(ran)
	var got []string
	for s := range ran {
		got = append(got, s)
	}
	if len(got) != 1 || got[0] != "bye" {
		t.Errorf("AfterReply ran for %v, want [bye]", got)
	}
}
