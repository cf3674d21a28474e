package wire

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sessiond/sessiond/session/provider"
)

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		h    http.Header
		want time.Duration
	}{
		{http.Header{}, 0},
		{http.Header{"Retry-After": {"1"}}, time.Second},
		{http.Header{"Retry-After": {"0.5"}}, 500 * time.Millisecond},
		{http.Header{"Retry-After": {"-3"}}, 0},
		{http.Header{"Retry-After": {"soon"}}, 0},
		{http.Header{"Retry-After": {now.Add(90 * time.Second).Format(http.TimeFormat)}}, 90 * time.Second},
		{http.Header{"Retry-After": {now.Add(-time.Minute).Format(http.TimeFormat)}}, 0},
		{http.Header{"Retry-After-Ms": {"250"}, "Retry-After": {"1"}}, 250 * time.Millisecond},
	}
	for _, c := range cases {
		if got := RetryAfter(c.h, now); got != c.want {
			t.Errorf("RetryAfter(%v) = %v, want %v", c.h, got, c.want)
		}
	}
}

func TestErrorText(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		`{"error":{"message":"Rate limit reached","type":"requests"}}`:                "Rate limit reached",
		`{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`: "Overloaded",
		`{"error":"model 'llama9' not found"}`:                                        "model 'llama9' not found",
		`{"message":"bad gateway"}`:                                                   "bad gateway",
		"  upstream connect error  \n":                                                "upstream connect error",
	}
	for in, want := range cases {
		if got := ErrorText([]byte(in)); got != want {
			t.Errorf("ErrorText(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestStreamError(t *testing.T) {
	t.Parallel()
	cases := []struct {
		data      string
		status    int
		retryable bool
	}{
		{`{"error":{"message":"x","type":"server_error","code":null}}`, 500, true},
		{`{"error":{"message":"x","type":"rate_limit_exceeded"}}`, 429, true},
		{`{"error":{"message":"x","code":502}}`, 502, true},
		{`{"error":{"message":"x","code":"400"}}`, 400, false},
		{`{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`, 529, true},
		{`{"type":"error","error":{"type":"invalid_request_error","message":"bad"}}`, 400, false},
		{`{"error":{"message":"mystery"}}`, 0, true},
	}
	for _, c := range cases {
		e := StreamError("p", "m", []byte(c.data))
		if e.Status != c.status || e.Retryable != c.retryable || e.Message == "" {
			t.Errorf("StreamError(%s) = %+v", c.data, e)
		}
	}
}

func TestBuilder(t *testing.T) {
	t.Parallel()
	var b Builder
	b.Reasoning("hm")
	b.Signature("s1")
	b.Text("a")
	b.Text("b")
	b.StartCall(0, "c1", "read")
	b.CallArgs(0, `{"x":`)
	b.StartCall(1, "c2", "bad")
	b.CallArgs(1, `{"y"`)
	b.CallArgs(0, `1}`)
	b.EndCall(0)
	b.Text("after")
	b.Finish(&provider.Usage{Input: 1}, provider.FinishToolCalls, "tool_calls")
	var got []provider.Event
	for {
		ev, ok := b.Pop()
		if !ok {
			break
		}
		got = append(got, ev)
	}
	want := []provider.Event{
		provider.ReasoningDelta{Text: "hm"},
		provider.ReasoningDone{Text: "hm", Signature: "s1"},
		provider.TextDelta{Text: "a"}, provider.TextDelta{Text: "b"}, provider.TextDone{Text: "ab"},
		provider.ToolCallStart{ID: "c1", Name: "read"}, provider.ToolCallDelta{ID: "c1", Delta: `{"x":`},
		provider.ToolCallStart{ID: "c2", Name: "bad"}, provider.ToolCallDelta{ID: "c2", Delta: `{"y"`},
		provider.ToolCallDelta{ID: "c1", Delta: `1}`},
		provider.ToolCallDone{ID: "c1", Name: "read", Input: json.RawMessage(`{"x":1}`)},
		provider.TextDelta{Text: "after"}, provider.TextDone{Text: "after"},
		provider.ToolCallDone{ID: "c2", Name: "bad", Input: json.RawMessage(`{}`), Malformed: `{"y"`},
		provider.Usage{Input: 1},
		provider.Finish{Reason: provider.FinishToolCalls, Raw: "tool_calls"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("events:\n got %#v\nwant %#v", got, want)
	}
}

func TestErrorClassification(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dial := func(errno syscall.Errno) error {
		return &url.Error{Op: "Post", URL: "http://127.0.0.1:1/v1/chat/completions",
			Err: &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", errno)}}
	}
	noHost := &url.Error{Op: "Post", URL: "http://nope.invalid", Err: &net.DNSError{Err: "no such host", Name: "nope.invalid", IsNotFound: true}}
	cases := []struct {
		name      string
		capture   *Capture
		err       error
		status    int
		retryable bool
		message   string
	}{
		{"429", &Capture{Status: 429, Header: http.Header{"Retry-After": {"2"}}, Body: []byte(`{"error":{"message":"slow"}}`)}, errors.New("sdk"), 429, true, "slow"},
		{"400", &Capture{Status: 400, Body: []byte(`plain text`)}, errors.New("sdk"), 400, false, "plain text"},
		{"refused", &Capture{}, dial(syscall.ECONNREFUSED), 0, false, "connection refused by http://127.0.0.1:1/v1/chat/completions"},
		{"reset", &Capture{}, dial(syscall.ECONNRESET), 0, true, "connection reset"},
		{"no such host", &Capture{}, noHost, 0, false, "check the provider's base URL"},
		{"syntax", &Capture{Status: 200}, &json.SyntaxError{}, 0, false, "malformed"},
	}
	for _, c := range cases {
		var perr *provider.ProviderError
		if err := Error(ctx, "p", "m", c.capture, c.err); !errors.As(err, &perr) ||
			perr.Status != c.status || perr.Retryable != c.retryable || !strings.Contains(perr.Message, c.message) {
			t.Errorf("%s: %+v", c.name, err)
		}
	}
	if perr := Error(ctx, "p", "m", &Capture{Status: 429, Header: http.Header{"Retry-After": {"2"}}}, errors.New("x")).(*provider.ProviderError); perr.RetryAfter != 2*time.Second {
		t.Errorf("retry after %v", perr.RetryAfter)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := Error(cancelled, "p", "m", &Capture{Status: 500}, errors.New("x")); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}
