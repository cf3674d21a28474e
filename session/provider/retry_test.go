package provider_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/sessiond/sessiond/session/provider"
)

// fakeProvider answers Stream calls from a list: an error, or a stream of
// events ending in an error (io.EOF for a clean end).
type fakeProvider struct {
	answers []answer
	calls   int
}

type answer struct {
	err    error
	events []provider.Event
	end    error
}

func (f *fakeProvider) ID() string { return "fake" }

func (f *fakeProvider) Stream(ctx context.Context, req provider.Request) (provider.Stream, error) {
	a := f.answers[min(f.calls, len(f.answers)-1)]
	f.calls++
	if a.err != nil {
		return nil, a.err
	}
	return &fakeStream{events: a.events, end: a.end}, nil
}

type fakeStream struct {
	events []provider.Event
	end    error
	closed bool
}

func (s *fakeStream) Recv() (provider.Event, error) {
	if len(s.events) == 0 {
		return nil, s.end
	}
	ev := s.events[0]
	s.events = s.events[1:]
	return ev, nil
}

func (s *fakeStream) Close() error { s.closed = true; return nil }

func status(code int, retryAfter time.Duration) *provider.ProviderError {
	return &provider.ProviderError{Provider: "fake", Status: code, Message: http.StatusText(code),
		Retryable: provider.RetryableStatus(code), RetryAfter: retryAfter}
}

var ok = answer{events: []provider.Event{provider.TextDelta{Text: "ok"}, provider.Finish{Reason: provider.FinishStop}}, end: io.EOF}

func TestRetryPolicy(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := []struct {
		name      string
		answers   []answer
		policy    provider.RetryPolicy
		calls     int
		delays    []time.Duration
		wantErr   int // status of the final ProviderError; 0: success
		connectEr bool
	}{
		{"success at once", []answer{ok}, provider.RetryPolicy{}, 1, nil, 0, false},
		{"backoff doubles to the cap", []answer{
			{err: status(500, 0)}, {err: status(502, 0)}, {err: status(503, 0)}, {err: status(529, 0)}, ok},
			provider.RetryPolicy{BaseDelay: 10 * time.Millisecond, MaxDelay: 40 * time.Millisecond},
			5, []time.Duration{7500 * time.Microsecond, 15 * time.Millisecond, 30 * time.Millisecond, 30 * time.Millisecond}, 0, false},
		{"Retry-After wins over backoff", []answer{{err: status(429, 3*time.Second)}, ok},
			provider.RetryPolicy{}, 2, []time.Duration{3 * time.Second}, 0, false},
		{"gives up after max attempts", []answer{{err: status(500, 0)}},
			provider.RetryPolicy{MaxAttempts: 3, BaseDelay: time.Millisecond}, 3,
			[]time.Duration{750 * time.Microsecond, 1500 * time.Microsecond}, 500, true},
		{"client errors are final", []answer{{err: status(400, 0)}, ok}, provider.RetryPolicy{}, 1, nil, 400, true},
		{"Retry-After too long", []answer{{err: status(429, time.Hour)}, ok}, provider.RetryPolicy{}, 1, nil, 429, true},
		{"break before output is retried", []answer{{end: status(529, 0)}, ok},
			provider.RetryPolicy{BaseDelay: time.Millisecond}, 2, []time.Duration{750 * time.Microsecond}, 0, false},
		{"break after output is not", []answer{
			{events: []provider.Event{provider.TextDelta{Text: "par"}}, end: status(500, 0)}, ok},
			provider.RetryPolicy{BaseDelay: time.Millisecond}, 1, nil, 500, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var delays []time.Duration
			var reported []provider.RetryAttempt
			pol := c.policy
			pol.Now = func() time.Time { return now }
			pol.Jitter = func() float64 { return 0.5 }
			pol.Sleep = func(ctx context.Context, d time.Duration) error { delays = append(delays, d); return nil }
			fp := &fakeProvider{answers: c.answers}
			s, err := provider.StreamWithRetry(context.Background(), fp, provider.Request{}, pol,
				func(a provider.RetryAttempt) { reported = append(reported, a) })
			if err == nil {
				_, err = collect(s)
			}
			if c.connectEr && s != nil {
				t.Errorf("stream returned along with an error")
			}
			if fp.calls != c.calls {
				t.Errorf("%d calls, want %d", fp.calls, c.calls)
			}
			if !reflect.DeepEqual(delays, c.delays) {
				t.Errorf("delays %v, want %v", delays, c.delays)
			}
			if len(reported) != len(c.delays) {
				t.Fatalf("%d retries reported, want %d", len(reported), len(c.delays))
			}
			for i, a := range reported {
				if a.Attempt != i+2 || a.Delay != c.delays[i] || !a.Next.Equal(now.Add(c.delays[i])) || a.Err == nil {
					t.Errorf("retry %d reported as %+v", i, a)
				}
			}
			if c.wantErr == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var perr *provider.ProviderError
			if !errors.As(err, &perr) || perr.Status != c.wantErr || perr.Attempts != c.calls {
				t.Fatalf("error %v, want status %d after %d attempts", err, c.wantErr, c.calls)
			}
		})
	}
}

func TestRetryCancelledWhileWaiting(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	fp := &fakeProvider{answers: []answer{{err: status(429, 0)}, ok}}
	pol := provider.RetryPolicy{BaseDelay: time.Hour, MaxDelay: time.Hour}
	time.AfterFunc(20*time.Millisecond, cancel)
	start := time.Now()
	_, err := provider.StreamWithRetry(ctx, fp, provider.Request{}, pol, nil)
	if !errors.Is(err, context.Canceled) || time.Since(start) > 2*time.Second || fp.calls != 1 {
		t.Fatalf("error %v after %v, %d calls", err, time.Since(start), fp.calls)
	}
}

func TestRetryPlainErrorsAreFinal(t *testing.T) {
	t.Parallel()
	bad := errors.New("build request: tool schema is not JSON")
	fp := &fakeProvider{answers: []answer{{err: bad}, ok}}
	_, err := provider.StreamWithRetry(context.Background(), fp, provider.Request{}, provider.RetryPolicy{}, nil)
	if !errors.Is(err, bad) || fp.calls != 1 {
		t.Fatalf("error %v, %d calls", err, fp.calls)
	}
}

func TestProviderErrorMessage(t *testing.T) {
	t.Parallel()
	cases := map[string]*provider.ProviderError{
		"anthropic/claude-x: 429 Too Many Requests: slow down (gave up after 5 attempts)": {
			Provider: "anthropic", Model: "claude-x", Status: 429, Message: "slow down", Attempts: 5},
		"openai/gpt-4o: 401 Unauthorized: Incorrect API key provided (check the provider's API key)": {
			Provider: "openai", Model: "gpt-4o", Status: 401, Message: "Incorrect API key provided"},
		"ollama/llama: connection failed: dial tcp: refused": {
			Provider: "ollama", Model: "llama", Message: "connection failed: dial tcp: refused"},
		"anthropic: status 529: Overloaded": {Provider: "anthropic", Status: 529, Message: "Overloaded"},
	}
	for want, e := range cases {
		if got := e.Error(); got != want {
			t.Errorf("got  %q\nwant %q", got, want)
		}
	}
}
