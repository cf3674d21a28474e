package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type getParams struct {
	SessionID string `json:"sessionID"`
}

func (p getParams) Validate() error {
	if p.SessionID == "" {
		return InvalidParams("sessionID", "sessionID is required; pass the id of a session from session/list")
	}
	return nil
}

type session struct {
	ID    string `json:"id"`
	Title string `json:"title"`
}

// testMux serves a small slice of the real protocol for client tests.
func testMux(started chan<- struct{}, sawCancel chan<- struct{}) *Mux {
	m := echoMux()
	Handle(m, "session/get", func(_ context.Context, _ *Conn, p getParams) (session, error) {
		if p.SessionID == "ses_missing" {
			return session{}, NewError(CodeNotFound, "session %q not found", p.SessionID).With("sessionID", p.SessionID)
		}
		return session{ID: p.SessionID, Title: "hello"}, nil
	})
	Handle(m, "slow", func(ctx context.Context, _ *Conn, _ struct{}) (any, error) {
		started <- struct{}{}
		<-ctx.Done()
		sawCancel <- struct{}{}
		return nil, ctx.Err()
	})
	Handle(m, "ask", func(ctx context.Context, c *Conn, p json.RawMessage) (json.RawMessage, error) {
		var out json.RawMessage
		if err := c.Call(ctx, "session/requestPermission", p, &out); err != nil {
			return nil, err
		}
		return out, nil
	})
	Handle(m, "stream", func(ctx context.Context, c *Conn, p struct{ N int }) (int, error) {
		for i := range p.N {
			if err := c.Notify(ctx, "session/event", map[string]int{"seq": i}); err != nil {
				return 0, err
			}
		}
		return p.N, nil
	})
	return m
}

// pair connects a Client to a served Conn over a socketpair.
func pair(t testing.TB, mux *Mux, copts ClientOptions) (*Client, *Conn) {
	t.Helper()
	a, b := socketPair(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	c := Serve(ctx, b, mux, ServerOptions{Logger: quietLogger()})
	if copts.Logger == nil {
		copts.Logger = quietLogger()
	}
	cl := Dial(ctx, a, copts)
	t.Cleanup(func() { cl.Close() })
	return cl, c
}

func TestClientCall(t *testing.T) {
	for _, framing := range []Framing{FramingAuto, FramingNDJSON, FramingLSP} {
		t.Run(framing.String(), func(t *testing.T) {
			cl, conn := pair(t, testMux(nil, nil), ClientOptions{Framing: framing})
			ctx := context.Background()
			var s session
			if err := cl.Call(ctx, "session/get", getParams{SessionID: "ses_1"}, &s); err != nil {
				t.Fatalf("Call: %v", err)
			}
			if s != (session{ID: "ses_1", Title: "hello"}) {
				t.Errorf("got %+v", s)
			}
			if err := cl.Call(ctx, "echo", nil, nil); err != nil {
				t.Fatalf("Call without params and result: %v", err)
			}
			want := framing
			if want == FramingAuto {
				want = FramingNDJSON
			}
			if conn.Framing() != want {
				t.Errorf("server detected %v, want %v", conn.Framing(), want)
			}
		})
	}
}

func TestClientErrors(t *testing.T) {
	cl, _ := pair(t, testMux(nil, nil), ClientOptions{})
	tests := []struct {
		name   string
		method string
		params any
		code   int64
		kind   string
		data   map[string]any
	}{
		{"not found", "session/get", getParams{SessionID: "ses_missing"}, CodeNotFound, KindNotFound, map[string]any{"sessionID": "ses_missing"}},
		{"validate", "session/get", getParams{}, CodeInvalidParams, KindInvalidParams, map[string]any{"field": "sessionID"}},
		{"wrong type", "session/get", map[string]any{"sessionID": 5}, CodeInvalidParams, KindInvalidParams, map[string]any{"field": "sessionID"}},
		{"unknown method", "session/nope", nil, CodeMethodNotFound, KindMethodNotFound, map[string]any{"method": "session/nope"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := cl.Call(context.Background(), tt.method, tt.params, nil)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Call = %T %v, want *rpc.Error", err, err)
			}
			if e.Code != tt.code || e.Kind() != tt.kind || e.Data["kind"] != tt.kind {
				t.Errorf("got code %d kind %q data %v, want %d %q", e.Code, e.Kind(), e.Data, tt.code, tt.kind)
			}
			for k, v := range tt.data {
				if e.Data[k] != v {
					t.Errorf("data[%q] = %v, want %v", k, e.Data[k], v)
				}
			}
			if e.Error() == "" || e.Error() != e.Message {
				t.Errorf("Error() = %q", e.Error())
			}
		})
	}
}

func TestClientCancel(t *testing.T) {
	started, sawCancel := make(chan struct{}, 1), make(chan struct{}, 1)
	cl, _ := pair(t, testMux(started, sawCancel), ClientOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- cl.Call(ctx, "slow", nil, nil) }()
	<-started
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Call = %v, want context.Canceled", err)
	}
	select {
	case <-sawCancel: // $/cancelRequest reached the handler
	case <-time.After(5 * time.Second):
		t.Fatal("server handler was not cancelled")
	}
	if err := cl.Call(context.Background(), "echo", nil, nil); err != nil {
		t.Fatalf("Call after cancel: %v", err)
	}
	// An already cancelled context sends nothing.
	if err := cl.Call(ctx, "echo", nil, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Call with cancelled ctx = %v", err)
	}
}

func TestServerCallsClient(t *testing.T) {
	tests := []struct {
		name   string
		onCall func(context.Context, string, json.RawMessage) (any, error)
		result string
		code   int64
	}{
		{"answer", func(_ context.Context, method string, p json.RawMessage) (any, error) {
			if method != "session/requestPermission" {
				return nil, NewError(CodeMethodNotFound, "no %s", method)
			}
			var in struct{ Tool string }
			if err := json.Unmarshal(p, &in); err != nil {
				return nil, err
			}
			return map[string]string{"outcome": "allow_once", "tool": in.Tool}, nil
		}, `{"outcome":"allow_once","tool":"bash"}`, 0},
		{"error answer", func(context.Context, string, json.RawMessage) (any, error) {
			return nil, NewError(CodeUnauthorized, "not allowed")
		}, "", CodeUnauthorized},
		{"panicking client", func(context.Context, string, json.RawMessage) (any, error) {
			panic("client bug")
		}, "", CodeInternalError},
		{"no OnCall", nil, "", CodeMethodNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl, _ := pair(t, testMux(nil, nil), ClientOptions{OnCall: tt.onCall})
			var out json.RawMessage
			err := cl.Call(context.Background(), "ask", map[string]string{"tool": "bash"}, &out)
			if tt.code == 0 {
				if err != nil || string(out) != tt.result {
					t.Fatalf("ask = %s, %v; want %s", out, err, tt.result)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || e.Code != tt.code {
				t.Fatalf("ask = %v, want code %d", err, tt.code)
			}
		})
	}
}

func TestServerCallCancelled(t *testing.T) {
	// The daemon gives up on a permission prompt; the client's OnCall sees
	// its context cancelled via $/cancelRequest.
	clientCancelled := make(chan struct{})
	asked := make(chan struct{})
	m := NewMux()
	Handle(m, "ask", func(ctx context.Context, c *Conn, _ struct{}) (any, error) {
		ctx, cancel := context.WithCancel(ctx)
		go func() { <-asked; cancel() }()
		err := c.Call(ctx, "session/requestPermission", nil, nil)
		return nil, err
	})
	cl, _ := pair(t, m, ClientOptions{OnCall: func(ctx context.Context, _ string, _ json.RawMessage) (any, error) {
		close(asked)
		<-ctx.Done()
		close(clientCancelled)
		return nil, ctx.Err()
	}})
	err := cl.Call(context.Background(), "ask", nil, nil)
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeRequestCancelled {
		t.Fatalf("ask = %v, want RequestCancelled", err)
	}
	select {
	case <-clientCancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("OnCall context was not cancelled")
	}
}

func TestClientNotifications(t *testing.T) {
	const n = 500
	var (
		mu   sync.Mutex
		seqs []int
	)
	cl, _ := pair(t, testMux(nil, nil), ClientOptions{OnNotify: func(method string, params json.RawMessage) {
		var p struct{ Seq int }
		if method != "session/event" || json.Unmarshal(params, &p) != nil {
			t.Errorf("notification %s %s", method, params)
		}
		mu.Lock()
		seqs = append(seqs, p.Seq)
		mu.Unlock()
	}})
	var got int
	if err := cl.Call(context.Background(), "stream", map[string]int{"N": n}, &got); err != nil || got != n {
		t.Fatalf("stream = %d, %v", got, err)
	}
	eventually(t, "all notifications", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seqs) == n
	})
	for i, s := range seqs {
		if s != i {
			t.Fatalf("notification %d has seq %d; order not kept", i, s)
		}
	}
}

func TestClientNotify(t *testing.T) {
	got := make(chan string, 1)
	m := NewMux()
	HandleNotification(m, "client/hello", func(_ context.Context, _ *Conn, p struct{ Name string }) { got <- p.Name })
	cl, _ := pair(t, m, ClientOptions{})
	if err := cl.Notify(context.Background(), "client/hello", map[string]string{"name": "cli"}); err != nil {
		t.Fatal(err)
	}
	select {
	case name := <-got:
		if name != "cli" {
			t.Errorf("got %q", name)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("notification not handled")
	}
}

func TestClientClosed(t *testing.T) {
	cl, conn := pair(t, testMux(nil, nil), ClientOptions{})
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-cl.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("client did not notice the server closing")
	}
	if err := cl.Call(context.Background(), "echo", nil, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Call on closed connection = %v, want ErrClosed", err)
	}
	if err := cl.Notify(context.Background(), "echo", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Notify on closed connection = %v, want ErrClosed", err)
	}
	if err := cl.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
}

func TestConcurrentClients(t *testing.T) {
	const clients, requests = 50, 200
	m := testMux(nil, nil)
	var wg sync.WaitGroup
	var failures atomic.Int32
	for i := range clients {
		cl, _ := pair(t, m, ClientOptions{})
		for w := range 4 { // several goroutines share each connection
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range requests / 4 {
					id := fmt.Sprintf("ses_%d_%d", i, j%3)
					var s session
					if err := cl.Call(context.Background(), "session/get", getParams{SessionID: id}, &s); err != nil || s.ID != id {
						failures.Add(1)
						t.Errorf("client %d worker %d: %+v %v", i, w, s, err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	if f := failures.Load(); f > 0 {
		t.Fatalf("%d failures", f)
	}
}
