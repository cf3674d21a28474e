package provider_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/session/provider"
	"github.com/sessiond/sessiond/session/provider/anthropic"
	"github.com/sessiond/sessiond/session/provider/openai"
	pt "github.com/sessiond/sessiond/session/provider/providertest"
)

// harness is one provider implementation and its fake server.
type harness struct {
	name    string
	start   func(testing.TB, ...pt.Response) *pt.Server
	factory provider.Factory
	model   string
}

var harnesses = []harness{
	{"openai", pt.NewOpenAI, openai.Factory, "gpt-4o"},
	{"anthropic", pt.NewAnthropic, anthropic.Factory, "claude-sonnet-4-5"},
}

// newProvider starts a fake server and a provider pointed at it, with a
// client of its own so the test can close its connections.
func (h harness) newProvider(t *testing.T, responses ...pt.Response) (provider.Provider, *pt.Server, *http.Client) {
	t.Helper()
	srv := h.start(t, responses...)
	client := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(client.CloseIdleConnections)
	p, err := h.factory(srv.Settings(), provider.FactoryOptions{HTTPClient: client})
	if err != nil {
		t.Fatal(err)
	}
	return p, srv, client
}

func (h harness) request() provider.Request {
	return provider.Request{
		Model:    provider.NewModelTable().Lookup(h.model),
		System:   "You are terse.",
		Messages: []provider.Message{{Role: provider.RoleUser, Content: []provider.Content{provider.Text{Text: "hi"}}}},
	}
}

// fastRetry retries at once, recording the waits it was asked for.
type fastRetry struct {
	mu       sync.Mutex
	delays   []time.Duration
	attempts []provider.RetryAttempt
}

func (f *fastRetry) policy() provider.RetryPolicy {
	return provider.RetryPolicy{
		MaxAttempts: 3,
		BaseDelay:   time.Millisecond,
		Sleep: func(ctx context.Context, d time.Duration) error {
			f.mu.Lock()
			f.delays = append(f.delays, d)
			f.mu.Unlock()
			return ctx.Err()
		},
	}
}

func (f *fastRetry) onRetry(a provider.RetryAttempt) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts = append(f.attempts, a)
}

// collect reads a stream to its end.
func collect(s provider.Stream) ([]provider.Event, error) {
	var evs []provider.Event
	for {
		ev, err := s.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			return evs, err
		}
		evs = append(evs, ev)
	}
}

func run(t *testing.T, h harness, f *fastRetry, responses ...pt.Response) ([]provider.Event, error, *pt.Server) {
	t.Helper()
	p, srv, _ := h.newProvider(t, responses...)
	s, err := provider.StreamWithRetry(context.Background(), p, h.request(), f.policy(), f.onRetry)
	if err != nil {
		return nil, err, srv
	}
	defer s.Close()
	evs, err := collect(s)
	return evs, err, srv
}

func ofType[T provider.Event](evs []provider.Event) []T {
	var out []T
	for _, ev := range evs {
		if v, ok := ev.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

func TestStreamText(t *testing.T) {
	t.Parallel()
	for _, h := range harnesses {
		t.Run(h.name, func(t *testing.T) {
			t.Parallel()
			evs, err, srv := run(t, h, &fastRetry{}, pt.Reply(pt.Text("Hel"), pt.Text("lo"), pt.Text(" there"), pt.Finish("stop")))
			if err != nil {
				t.Fatal(err)
			}
			want := []provider.Event{
				provider.TextDelta{Text: "Hel"}, provider.TextDelta{Text: "lo"}, provider.TextDelta{Text: " there"},
				provider.TextDone{Text: "Hello there"},
				provider.Usage{},
				provider.Finish{Reason: provider.FinishStop, Raw: map[string]string{"openai": "stop", "anthropic": "end_turn"}[h.name]},
			}
			if h.name == "openai" {
				// No usage chunk scripted: OpenAI reports none.
				want = append(want[:4], want[5])
			}
			if !reflect.DeepEqual(evs, want) {
				t.Fatalf("events:\n got %#v\nwant %#v", evs, want)
			}
			if n := len(srv.Requests()); n != 1 {
				t.Fatalf("%d requests, want 1", n)
			}
		})
	}
}

func TestStreamReasoning(t *testing.T) {
	t.Parallel()
	for _, h := range harnesses {
		t.Run(h.name, func(t *testing.T) {
			t.Parallel()
			evs, err, _ := run(t, h, &fastRetry{}, pt.Reply(
				pt.Reasoning("Let me "), pt.Reasoning("think."), pt.Text("42"), pt.Finish("stop")))
			if err != nil {
				t.Fatal(err)
			}
			sig := map[string]string{"openai": "", "anthropic": "sig-0"}[h.name]
			want := []provider.Event{
				provider.ReasoningDelta{Text: "Let me "}, provider.ReasoningDelta{Text: "think."},
				provider.ReasoningDone{Text: "Let me think.", Signature: sig},
				provider.TextDelta{Text: "42"}, provider.TextDone{Text: "42"},
			}
			if !reflect.DeepEqual(evs[:5], want) {
				t.Fatalf("events:\n got %#v\nwant %#v", evs[:5], want)
			}
		})
	}
}

func TestStreamToolCalls(t *testing.T) {
	t.Parallel()
	for _, h := range harnesses {
		t.Run(h.name, func(t *testing.T) {
			t.Parallel()
			evs, err, _ := run(t, h, &fastRetry{}, pt.Reply(
				pt.Text("Looking."),
				pt.Tool("call_1", "read", `{"pa`, `th": "a.go"`, `}`),
				pt.Tool("call_2", "grep", `{"pattern": `, `"func"}`),
				pt.Tool("call_3", "list"),
				pt.Tool("call_4", "edit", `{"path": `),
				pt.Finish("tool_calls")))
			if err != nil {
				t.Fatal(err)
			}
			// Each call: Start, then its Deltas, then Done, in that order.
			pos := map[string][]int{}
			for i, ev := range evs {
				switch ev := ev.(type) {
				case provider.ToolCallStart:
					pos[ev.ID] = append(pos[ev.ID], i)
				case provider.ToolCallDelta:
					pos[ev.ID] = append(pos[ev.ID], i)
				case provider.ToolCallDone:
					pos[ev.ID] = append(pos[ev.ID], i)
					if _, ok := evs[i-1].(provider.TextDelta); ok {
						t.Fatal("text still open when a tool call ended")
					}
				}
			}
			for id, p := range pos {
				if _, ok := evs[p[0]].(provider.ToolCallStart); !ok {
					t.Errorf("%s: first event is %T", id, evs[p[0]])
				}
				if _, ok := evs[p[len(p)-1]].(provider.ToolCallDone); !ok {
					t.Errorf("%s: last event is %T", id, evs[p[len(p)-1]])
				}
			}
			done := ofType[provider.ToolCallDone](evs)
			want := []provider.ToolCallDone{
				{ID: "call_1", Name: "read", Input: json.RawMessage(`{"path": "a.go"}`)},
				{ID: "call_2", Name: "grep", Input: json.RawMessage(`{"pattern": "func"}`)},
				{ID: "call_3", Name: "list", Input: json.RawMessage(`{}`)},
				{ID: "call_4", Name: "edit", Input: json.RawMessage(`{}`), Malformed: `{"path":`},
			}
			if !reflect.DeepEqual(done, want) {
				t.Fatalf("calls:\n got %+v\nwant %+v", done, want)
			}
			if td := ofType[provider.TextDone](evs); len(td) != 1 || td[0].Text != "Looking." {
				t.Fatalf("text: %+v", td)
			}
			fin := ofType[provider.Finish](evs)
			if len(fin) != 1 || fin[0].Reason != provider.FinishToolCalls || evs[len(evs)-1] != provider.Event(fin[0]) {
				t.Fatalf("finish: %+v (last event %T)", fin, evs[len(evs)-1])
			}
		})
	}
}

func TestStreamUsageAndCost(t *testing.T) {
	t.Parallel()
	for _, h := range harnesses {
		t.Run(h.name, func(t *testing.T) {
			t.Parallel()
			u := pt.Usage{Input: 1000, Output: 200, Reasoning: 50, CacheRead: 3000, CacheWrite: 400}
			evs, err, _ := run(t, h, &fastRetry{}, pt.Reply(pt.Text("ok"), pt.Finish("length"), pt.Tokens(u)))
			if err != nil {
				t.Fatal(err)
			}
			got := ofType[provider.Usage](evs)
			want := provider.Usage{Input: 1000, Output: 200, Reasoning: 50, CacheRead: 3000, CacheWrite: 400}
			if len(got) != 1 || got[0] != want {
				t.Fatalf("usage %+v, want %+v", got, want)
			}
			if _, ok := evs[len(evs)-2].(provider.Usage); !ok {
				t.Fatalf("usage is not just before finish: %#v", evs)
			}
			if fin := evs[len(evs)-1].(provider.Finish); fin.Reason != provider.FinishLength {
				t.Fatalf("finish %+v", fin)
			}
			m := h.request().Model
			p := m.Price
			cost := (1000*p.Input + 250*p.Output + 3000*p.CacheRead + 400*p.CacheWrite) / 1e6
			if c := provider.Cost(m, got[0]); c != cost || c == 0 {
				t.Fatalf("cost %v, want %v", c, cost)
			}
		})
	}
}

func TestStreamRetries429ThenSucceeds(t *testing.T) {
	t.Parallel()
	for _, h := range harnesses {
		t.Run(h.name, func(t *testing.T) {
			t.Parallel()
			f := &fastRetry{}
			evs, err, srv := run(t, h, f,
				pt.Fail(429, "Rate limit reached, slow down").WithRetryAfter("1"),
				pt.Fail(503, "upstream unavailable"),
				pt.Reply(pt.Text("done"), pt.Finish("stop")))
			if err != nil {
				t.Fatal(err)
			}
			if td := ofType[provider.TextDone](evs); len(td) != 1 || td[0].Text != "done" {
				t.Fatalf("events %#v", evs)
			}
			if n := len(srv.Requests()); n != 3 {
				t.Fatalf("%d requests, want 3", n)
			}
			if len(f.attempts) != 2 {
				t.Fatalf("onRetry called %d times, want 2", len(f.attempts))
			}
			a := f.attempts[0]
			if a.Attempt != 2 || a.Err.Status != 429 || a.Err.Message != "Rate limit reached, slow down" || a.Delay != time.Second {
				t.Fatalf("first retry %+v (err %+v)", a, a.Err)
			}
			if d := time.Until(a.Next); d < 0 || d > time.Second {
				t.Fatalf("next retry at %v from now", d)
			}
			if f.delays[0] != time.Second {
				t.Fatalf("waited %v, want the Retry-After of 1s", f.delays[0])
			}
			if b := f.attempts[1]; b.Attempt != 3 || b.Err.Status != 503 || b.Delay <= 0 || b.Delay > 2*time.Millisecond {
				t.Fatalf("second retry %+v (err %+v)", b, b.Err)
			}
		})
	}
}

// TestStreamRetryAfterRealClock checks that the real clock waits.
func TestStreamRetryAfterRealClock(t *testing.T) {
	t.Parallel()
	for _, h := range harnesses {
		t.Run(h.name, func(t *testing.T) {
			t.Parallel()
			p, _, _ := h.newProvider(t, pt.Fail(429, "wait").WithRetryAfter("1"), pt.Reply(pt.Text("x"), pt.Finish("stop")))
			start := time.Now()
			s, err := provider.StreamWithRetry(context.Background(), p, h.request(), provider.RetryPolicy{BaseDelay: time.Millisecond}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if _, err := collect(s); err != nil {
				t.Fatal(err)
			}
			if el := time.Since(start); el < 900*time.Millisecond {
				t.Fatalf("retried after %v, before the Retry-After of 1s", el)
			}
		})
	}
}

func TestStreamFailsAfterRetries(t *testing.T) {
	t.Parallel()
	for _, h := range harnesses {
		t.Run(h.name, func(t *testing.T) {
			t.Parallel()
			f := &fastRetry{}
			_, err, srv := run(t, h, f, pt.Fail(500, "boom 1"), pt.Fail(500, "boom 2"), pt.Fail(502, "bad gateway"), pt.Reply(pt.Text("never")))
			var perr *provider.ProviderError
			if !errors.As(err, &perr) {
				t.Fatalf("error %v (%T), want *ProviderError", err, err)
			}
			if perr.Status != 502 || perr.Message != "bad gateway" || perr.Attempts != 3 || !perr.Retryable || perr.Provider != h.name {
				t.Fatalf("error %+v", perr)
			}
			if n := len(srv.Requests()); n != 3 {
				t.Fatalf("%d requests, want 3", n)
			}
		})
	}
}

func TestStreamNotRetried(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		resp      []pt.Response
		status    int
		message   string
		retryable bool
	}{
		{"bad request", []pt.Response{pt.Fail(400, "messages: field required")}, 400, "messages: field required", false},
		{"auth", []pt.Response{pt.Fail(401, "invalid x-api-key")}, 401, "invalid x-api-key", false},
		{"500 mid-stream", []pt.Response{pt.Reply(pt.Text("partial "), pt.StreamError(500, "Internal server error"))}, 500, "Internal server error", true},
		{"overloaded mid-stream", []pt.Response{pt.Reply(pt.Text("partial "), pt.StreamError(529, "Overloaded"))}, -1, "Overloaded", true},
		{"malformed chunk", []pt.Response{pt.Reply(pt.Text("partial "), pt.Malformed(`{"choices": [`))}, 0, "malformed", false},
		{"malformed first chunk", []pt.Response{pt.Reply(pt.Malformed(`{not json`), pt.Text("x"), pt.Finish("stop"))}, 0, "malformed", false},
		{"connection cut", []pt.Response{pt.Reply(pt.Text("partial "), pt.Cut())}, 0, "connection failed", true},
		{"stream ends early", []pt.Response{pt.Reply(pt.Text("partial "))}, 0, "ended before the model finished", true},
	}
	for _, h := range harnesses {
		for _, c := range cases {
			t.Run(h.name+"/"+c.name, func(t *testing.T) {
				t.Parallel()
				f := &fastRetry{}
				resp := append(c.resp, pt.Reply(pt.Text("retried"), pt.Finish("stop")))
				evs, err, srv := run(t, h, f, resp...)
				var perr *provider.ProviderError
				if !errors.As(err, &perr) {
					t.Fatalf("error %v (%T), want *ProviderError; events %#v", err, err, evs)
				}
				if c.status >= 0 && perr.Status != c.status {
					t.Errorf("status %d, want %d", perr.Status, c.status)
				}
				if c.status < 0 && perr.Status < 500 {
					t.Errorf("status %d, want 5xx", perr.Status)
				}
				if !strings.Contains(perr.Message, c.message) || perr.Retryable != c.retryable {
					t.Errorf("error %+v, want message ~%q retryable %v", perr, c.message, c.retryable)
				}
				if n := len(srv.Requests()); n != 1 {
					t.Errorf("%d requests, want 1: no retry", n)
				}
				if len(f.attempts) != 0 {
					t.Errorf("onRetry called: %+v", f.attempts)
				}
				for _, ev := range evs {
					if td, ok := ev.(provider.TextDelta); ok && td.Text == "retried" {
						t.Error("the retry's output was streamed")
					}
				}
			})
		}
	}
}

// TestStreamRetriesBeforeOutput: a stream that breaks before its first
// event is retried, since nothing reached the caller.
func TestStreamRetriesBeforeOutput(t *testing.T) {
	t.Parallel()
	cases := map[string]pt.Response{
		"error event":    pt.Reply(pt.StreamError(529, "Overloaded")),
		"connection cut": pt.Reply(pt.Cut()),
		"empty stream":   pt.Reply(),
	}
	for _, h := range harnesses {
		for name, first := range cases {
			t.Run(h.name+"/"+name, func(t *testing.T) {
				t.Parallel()
				f := &fastRetry{}
				evs, err, srv := run(t, h, f, first, pt.Reply(pt.Text("second try"), pt.Finish("stop")))
				if err != nil {
					t.Fatal(err)
				}
				if td := ofType[provider.TextDone](evs); len(td) != 1 || td[0].Text != "second try" {
					t.Fatalf("events %#v", evs)
				}
				if len(srv.Requests()) != 2 || len(f.attempts) != 1 {
					t.Fatalf("%d requests, %d retries; want 2, 1", len(srv.Requests()), len(f.attempts))
				}
			})
		}
	}
}

// TestStreamConnectionRefused: a server that is not running (its port
// closed) fails at the first attempt, naming the URL it tried; waiting
// would not start it.
func TestStreamConnectionRefused(t *testing.T) {
	t.Parallel()
	for _, h := range harnesses {
		t.Run(h.name, func(t *testing.T) {
			t.Parallel()
			srv := h.start(t)
			settings := srv.Settings()
			srv.Close()
			p, err := h.factory(settings, provider.FactoryOptions{})
			if err != nil {
				t.Fatal(err)
			}
			f := &fastRetry{}
			_, err = provider.StreamWithRetry(context.Background(), p, h.request(), f.policy(), f.onRetry)
			var perr *provider.ProviderError
			if !errors.As(err, &perr) || perr.Status != 0 || perr.Retryable || perr.Attempts != 1 || len(f.attempts) != 0 {
				t.Fatalf("error %+v, %d retries; want one attempt, not retryable", err, len(f.attempts))
			}
			if !strings.Contains(err.Error(), "connection refused by "+settings.BaseURL) {
				t.Errorf("message %q does not name the URL under %s", err.Error(), settings.BaseURL)
			}
		})
	}
}

// TestStreamAbort: cancelling the context ends a slow stream at once and
// leaves no goroutine behind. Not parallel: it counts goroutines.
func TestStreamAbort(t *testing.T) {
	for _, h := range harnesses {
		t.Run(h.name, func(t *testing.T) {
			base := runtime.NumGoroutine()
			srv := h.start(t, pt.Reply(pt.Text("thinking slowly"), pt.Sleep(200*time.Millisecond), pt.Text("..."), pt.Hang()))
			client := &http.Client{Transport: &http.Transport{}}
			p, err := h.factory(srv.Settings(), provider.FactoryOptions{HTTPClient: client})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			s, err := provider.StreamWithRetry(ctx, p, h.request(), provider.RetryPolicy{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			var got []provider.Event
			for len(got) < 2 {
				ev, err := s.Recv()
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, ev)
			}
			time.AfterFunc(50*time.Millisecond, cancel)
			start := time.Now()
			_, err = s.Recv()
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Recv after cancel: %v, want context.Canceled", err)
			}
			if el := time.Since(start); el > 2*time.Second {
				t.Fatalf("abort took %v", el)
			}
			if _, err := s.Recv(); !errors.Is(err, context.Canceled) {
				t.Fatalf("second Recv: %v", err)
			}
			_ = s.Close()
			_ = s.Close()
			srv.Close()
			client.CloseIdleConnections()
			deadline := time.Now().Add(3 * time.Second)
			for runtime.NumGoroutine() > base && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if n := runtime.NumGoroutine(); n > base {
				buf := make([]byte, 1<<16)
				t.Fatalf("%d goroutines, %d before:\n%s", n, base, buf[:runtime.Stack(buf, true)])
			}
		})
	}
}

// TestStreamCloseEarly: a caller that stops reading closes the stream.
func TestStreamCloseEarly(t *testing.T) {
	t.Parallel()
	for _, h := range harnesses {
		t.Run(h.name, func(t *testing.T) {
			t.Parallel()
			p, _, _ := h.newProvider(t, pt.Reply(pt.Text("a"), pt.Hang()))
			s, err := p.Stream(context.Background(), h.request())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Recv(); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Recv(); err == nil {
				t.Fatal("Recv after Close returned no error")
			}
		})
	}
}
