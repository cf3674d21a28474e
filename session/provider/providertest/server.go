package providertest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/session/provider"
)

// APIKey is the key the servers' Settings carry.
const APIKey = "sk-providertest-key"

// Request is a request a server received.
type Request struct {
	Method string
	Path   string
	Header http.Header
	Body   []byte
	// JSON is Body decoded, nil if it was not JSON.
	JSON map[string]any
}

// Server is a fake provider. It is safe for concurrent use.
type Server struct {
	// URL is the base URL to configure: OpenAI's ends in /v1 (as
	// OPENAI_BASE_URL does), Anthropic's does not (as ANTHROPIC_BASE_URL).
	URL string

	typ   string
	path  string
	srv   *httptest.Server
	done  chan struct{}
	close sync.Once

	mu       sync.Mutex
	script   []Response
	requests []Request
}

// NewOpenAI starts a fake Chat Completions server that answers requests
// with responses in order. It closes when tb's test ends.
func NewOpenAI(tb testing.TB, responses ...Response) *Server {
	return start(tb, provider.TypeOpenAI, "/v1/chat/completions", "/v1", responses)
}

// NewAnthropic starts a fake Messages server that answers requests with
// responses in order. It closes when tb's test ends.
func NewAnthropic(tb testing.TB, responses ...Response) *Server {
	return start(tb, provider.TypeAnthropic, "/v1/messages", "", responses)
}

func start(tb testing.TB, typ, path, base string, responses []Response) *Server {
	tb.Helper()
	s := &Server{typ: typ, path: path, done: make(chan struct{}), script: responses}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL + base
	tb.Cleanup(s.Close)
	return s
}

// Close ends hanging streams and stops the server.
func (s *Server) Close() {
	s.close.Do(func() {
		close(s.done)
		s.srv.CloseClientConnections()
		s.srv.Close()
	})
}

// Enqueue adds responses to the script.
func (s *Server) Enqueue(responses ...Response) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script = append(s.script, responses...)
}

// Requests returns the requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Settings are provider settings pointing at the server, with APIKey.
func (s *Server) Settings() provider.Settings {
	return provider.Settings{ID: s.typ, Type: s.typ, BaseURL: s.URL, APIKey: APIKey}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rec := Request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body}
	_ = json.Unmarshal(body, &rec.JSON)

	s.mu.Lock()
	s.requests = append(s.requests, rec)
	var resp Response
	ok := len(s.script) > 0
	if ok {
		resp, s.script = s.script[0], s.script[1:]
	}
	s.mu.Unlock()

	switch {
	case r.Method != http.MethodPost || r.URL.Path != s.path:
		s.fail(w, Fail(http.StatusNotFound, fmt.Sprintf("providertest: no route for %s %s", r.Method, r.URL.Path)))
		return
	case !ok:
		s.fail(w, Fail(http.StatusInternalServerError, "providertest: no scripted response left"))
		return
	case resp.Status != 0 && resp.Status != http.StatusOK:
		s.fail(w, resp)
		return
	}
	model, _ := rec.JSON["model"].(string)
	e := &emitter{w: w, rc: http.NewResponseController(w), r: r, done: s.done}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	if s.typ == provider.TypeOpenAI {
		streamOpenAI(e, model, resp.Steps)
	} else {
		streamAnthropic(e, model, resp.Steps)
	}
}

// fail writes the provider's error body for a non-200 answer.
func (s *Server) fail(w http.ResponseWriter, resp Response) {
	var body any
	if s.typ == provider.TypeOpenAI {
		body = map[string]any{"error": map[string]any{
			"message": resp.Message, "type": openAIErrorType(resp.Status), "param": nil, "code": nil}}
	} else {
		body = map[string]any{"type": "error", "error": map[string]any{
			"type": anthropicErrorType(resp.Status), "message": resp.Message}}
		w.Header().Set("Request-Id", "req_providertest")
	}
	if resp.RetryAfter != "" {
		w.Header().Set("Retry-After", resp.RetryAfter)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(resp.Status)
	_ = json.NewEncoder(w).Encode(body)
}

func openAIErrorType(status int) string {
	switch {
	case status == http.StatusTooManyRequests:
		return "rate_limit_exceeded"
	case status == http.StatusUnauthorized:
		return "invalid_api_key"
	case status >= 500:
		return "server_error"
	}
	return "invalid_request_error"
}

func anthropicErrorType(status int) string {
	switch {
	case status == http.StatusTooManyRequests:
		return "rate_limit_error"
	case status == 529:
		return "overloaded_error"
	case status == http.StatusUnauthorized:
		return "authentication_error"
	case status == http.StatusNotFound:
		return "not_found_error"
	case status >= 500:
		return "api_error"
	}
	return "invalid_request_error"
}

// emitter writes SSE events and carries out the timing steps.
type emitter struct {
	w    http.ResponseWriter
	rc   *http.ResponseController
	r    *http.Request
	done chan struct{}
}

// event writes one SSE event; name "" writes a data-only event.
func (e *emitter) event(name string, data any) {
	var buf bytes.Buffer
	if name != "" {
		buf.WriteString("event: " + name + "\n")
	}
	switch d := data.(type) {
	case string:
		buf.WriteString("data: " + d + "\n\n")
	default:
		b, _ := json.Marshal(d)
		buf.WriteString("data: " + string(b) + "\n\n")
	}
	_, _ = e.w.Write(buf.Bytes())
	_ = e.rc.Flush()
}

// pause runs a timing step; false means the stream must end now.
func (e *emitter) pause(st Step) bool {
	switch st.kind {
	case stepSleep:
		t := time.NewTimer(st.delay)
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-e.r.Context().Done():
		case <-e.done:
		}
		return false
	case stepWait:
		select {
		case <-st.until:
			return true
		case <-e.r.Context().Done():
		case <-e.done:
		}
		return false
	case stepHang:
		select {
		case <-e.r.Context().Done():
		case <-e.done:
		}
		return false
	case stepCut:
		// Abort the handler: the server drops the connection without
		// the chunked stream's end, as a crashed upstream would.
		panic(http.ErrAbortHandler)
	}
	return true
}

func itoa(n int) string { return strconv.Itoa(n) }
