package openai_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"testing"

	"github.com/sessiond/sessiond/session/provider"
	"github.com/sessiond/sessiond/session/provider/openai"
	pt "github.com/sessiond/sessiond/session/provider/providertest"
)

// conversation has every kind of content: a finished tool loop and a
// follow-up.
func conversation() []provider.Message {
	return []provider.Message{
		{Role: provider.RoleUser, Content: []provider.Content{
			provider.Text{Text: "What is in a.go?"},
			provider.Image{Mime: "image/png", Data: []byte{0x89, 'P', 'N', 'G'}},
		}},
		{Role: provider.RoleAssistant, Content: []provider.Content{
			provider.Reasoning{Text: "I should read it.", Signature: "sig"},
			provider.Text{Text: "Reading."},
			provider.ToolCall{ID: "call_1", Name: "read", Input: json.RawMessage(`{"path":"a.go"}`)},
			provider.ToolCall{ID: "call_2", Name: "list"},
		}},
		{Role: provider.RoleTool, Content: []provider.Content{
			provider.ToolResult{CallID: "call_1", Name: "read", Output: "package a"},
			provider.ToolResult{CallID: "call_2", Name: "list", Output: "no such dir", IsError: true},
		}},
		{Role: provider.RoleUser, Content: []provider.Content{provider.Text{Text: "Thanks."}}},
	}
}

var tools = []provider.Tool{
	{Name: "read", Description: "Read a file.", Schema: json.RawMessage(
		`{"type":"object","properties":{"path":{"type":"string"}},"required":["path"],"additionalProperties":false}`)},
	{Name: "list"},
}

// send streams req to a fresh fake server and returns the request body
// it received.
func send(t *testing.T, s func(provider.Settings) provider.Settings, req provider.Request) pt.Request {
	t.Helper()
	srv := pt.NewOpenAI(t, pt.Reply(pt.Text("ok"), pt.Finish("stop")))
	settings := srv.Settings()
	if s != nil {
		settings = s(settings)
	}
	p, err := openai.New(settings, provider.FactoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := p.Stream(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for {
		if _, err := st.Recv(); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			break
		}
	}
	reqs := srv.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	return reqs[0]
}

func asJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRequestTranslation(t *testing.T) {
	t.Parallel()
	req := provider.Request{
		Model:    provider.ModelInfo{ID: "gpt-4o"},
		System:   "You are terse.",
		Messages: conversation(),
		Tools:    tools,
	}
	got := send(t, func(s provider.Settings) provider.Settings {
		s.Headers = map[string]string{"HTTP-Referer": "https://sessiond.test"}
		return s
	}, req)
	if got.Path != "/v1/chat/completions" || got.Header.Get("Authorization") != "Bearer "+pt.APIKey {
		t.Fatalf("path %s, auth %q", got.Path, got.Header.Get("Authorization"))
	}
	if got.Header.Get("HTTP-Referer") != "https://sessiond.test" {
		t.Fatalf("configured header not sent: %v", got.Header)
	}
	body := got.JSON
	if body["model"] != "gpt-4o" || body["stream"] != true {
		t.Fatalf("model %v stream %v", body["model"], body["stream"])
	}
	if so := asJSON(t, body["stream_options"]); so != `{"include_usage":true}` {
		t.Fatalf("stream_options %s", so)
	}
	want := `[` +
		`{"content":"You are terse.","role":"system"},` +
		`{"content":[{"text":"What is in a.go?","type":"text"},{"image_url":{"url":"data:image/png;base64,iVBORw=="},"type":"image_url"}],"role":"user"},` +
		`{"content":"Reading.","role":"assistant","tool_calls":[` +
		`{"function":{"arguments":"{\"path\":\"a.go\"}","name":"read"},"id":"call_1","type":"function"},` +
		`{"function":{"arguments":"{}","name":"list"},"id":"call_2","type":"function"}]},` +
		`{"content":"package a","role":"tool","tool_call_id":"call_1"},` +
		`{"content":"no such dir","role":"tool","tool_call_id":"call_2"},` +
		`{"content":"Thanks.","role":"user"}]`
	if m := asJSON(t, body["messages"]); m != want {
		t.Fatalf("messages:\n got %s\nwant %s", m, want)
	}
	wantTools := `[` +
		`{"function":{"description":"Read a file.","name":"read","parameters":{"additionalProperties":false,"properties":{"path":{"type":"string"}},"required":["path"],"type":"object"}},"type":"function"},` +
		`{"function":{"name":"list","parameters":{"properties":{},"type":"object"}},"type":"function"}]`
	if tl := asJSON(t, body["tools"]); tl != wantTools {
		t.Fatalf("tools:\n got %s\nwant %s", tl, wantTools)
	}
	for _, k := range []string{"reasoning_effort", "max_tokens", "max_completion_tokens"} {
		if _, ok := body[k]; ok {
			t.Errorf("%s sent: %v", k, body[k])
		}
	}
}

func TestReasoningEffortAndMaxTokens(t *testing.T) {
	t.Parallel()
	table := provider.NewModelTable()
	cases := []struct {
		name   string
		model  string
		effort provider.Effort
		max    int64
		want   map[string]any // nil values: must be absent
	}{
		{"reasoning model", "o4-mini", provider.EffortHigh, 0,
			map[string]any{"reasoning_effort": "high", "max_tokens": nil}},
		{"low effort", "gpt-5-mini", provider.EffortLow, 0,
			map[string]any{"reasoning_effort": "low"}},
		{"no effort asked", "o3", provider.EffortDefault, 0,
			map[string]any{"reasoning_effort": nil}},
		{"model cannot reason", "gpt-4o", provider.EffortHigh, 0,
			map[string]any{"reasoning_effort": nil}},
		{"unknown model", "llama3.2", provider.EffortMedium, 0,
			map[string]any{"reasoning_effort": nil}},
		{"compatible server max_tokens", "llama3.2", "", 1000,
			map[string]any{"max_tokens": 1000.0, "max_completion_tokens": nil}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			req := provider.Request{Model: table.Lookup(c.model), Effort: c.effort, MaxTokens: c.max,
				Messages: []provider.Message{{Role: provider.RoleUser, Content: []provider.Content{provider.Text{Text: "hi"}}}}}
			got := send(t, nil, req)
			for k, v := range c.want {
				if gv, ok := got.JSON[k]; v == nil && ok || v != nil && !reflect.DeepEqual(gv, v) {
					t.Errorf("%s = %v (present %v), want %v", k, gv, ok, v)
				}
			}
		})
	}
}

// TestOfficialHost: for api.openai.com the cap goes in
// max_completion_tokens (reasoning models refuse max_tokens). A transport
// that sends every request to the fake server lets the provider believe
// it talks to OpenAI.
func TestOfficialHost(t *testing.T) {
	t.Parallel()
	srv := pt.NewOpenAI(t, pt.Reply(pt.Text("ok"), pt.Finish("stop")))
	client := &http.Client{Transport: redirect{to: srv.URL}}
	p, err := openai.New(provider.Settings{ID: "openai", BaseURL: provider.OpenAIBaseURL, APIKey: "k"},
		provider.FactoryOptions{HTTPClient: client})
	if err != nil {
		t.Fatal(err)
	}
	req := provider.Request{Model: provider.NewModelTable().Lookup("o3"), Effort: provider.EffortMedium, MaxTokens: 2000,
		Messages: []provider.Message{{Role: provider.RoleUser, Content: []provider.Content{provider.Text{Text: "hi"}}}}}
	st, err := p.Stream(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	body := srv.Requests()[0].JSON
	if body["max_completion_tokens"] != 2000.0 || body["max_tokens"] != nil || body["reasoning_effort"] != "medium" {
		t.Fatalf("body %v", body)
	}
}

// redirect sends every request to another base URL.
type redirect struct{ to string }

func (r redirect) RoundTrip(req *http.Request) (*http.Response, error) {
	u := *req.URL
	target, _ := http.NewRequest(req.Method, r.to, nil)
	u.Scheme, u.Host = target.URL.Scheme, target.URL.Host
	out := req.Clone(req.Context())
	out.URL = &u
	out.Host = ""
	return http.DefaultTransport.RoundTrip(out)
}

// TestNoEnvironmentLeak: the SDK's environment defaults are not read, so
// a key meant for api.openai.com never reaches a configured server.
func TestNoEnvironmentLeak(t *testing.T) {
	t.Setenv("OPENAI_API_KEY", "sk-from-environment")
	t.Setenv("OPENAI_BASE_URL", "http://127.0.0.1:1/v1")
	t.Setenv("OPENAI_ORG_ID", "org-env")
	got := send(t, func(s provider.Settings) provider.Settings { s.APIKey = ""; return s }, provider.Request{
		Model:    provider.ModelInfo{ID: "llama3.2"},
		Messages: []provider.Message{{Role: provider.RoleUser, Content: []provider.Content{provider.Text{Text: "hi"}}}},
	})
	for _, h := range []string{"Authorization", "OpenAI-Organization"} {
		if v := got.Header.Get(h); v != "" {
			t.Errorf("%s: %q sent", h, v)
		}
	}
}

// TestToolCallsWithoutIDs: some compatible servers send no call IDs, or
// number every call 0; each call still gets its own ID.
func TestToolCallsWithoutIDs(t *testing.T) {
	t.Parallel()
	srv := pt.NewOpenAI(t, pt.Reply(
		pt.Tool("", "read", `{"path":"a"}`),
		pt.Tool("", "read", `{"path":"b"}`),
		pt.Finish("tool_calls")))
	p, err := openai.New(srv.Settings(), provider.FactoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := p.Stream(context.Background(), provider.Request{Model: provider.ModelInfo{ID: "m"}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var done []provider.ToolCallDone
	for {
		ev, err := st.Recv()
		if err != nil {
			break
		}
		if d, ok := ev.(provider.ToolCallDone); ok {
			done = append(done, d)
		}
	}
	if len(done) != 2 || done[0].ID == "" || done[0].ID == done[1].ID ||
		string(done[0].Input) != `{"path":"a"}` || string(done[1].Input) != `{"path":"b"}` {
		t.Fatalf("calls %+v", done)
	}
}

func TestBadRequest(t *testing.T) {
	t.Parallel()
	p, err := openai.New(provider.Settings{ID: "x", BaseURL: "http://127.0.0.1:1/v1"}, provider.FactoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Stream(context.Background(), provider.Request{Model: provider.ModelInfo{ID: "m"},
		Tools: []provider.Tool{{Name: "t", Schema: json.RawMessage(`[1]`)}}})
	var perr *provider.ProviderError
	if err == nil || errors.As(err, &perr) {
		t.Fatalf("error %v, want a plain request error", err)
	}
	if _, err := openai.New(provider.Settings{BaseURL: "localhost:11434"}, provider.FactoryOptions{}); err == nil {
		t.Fatal("relative base URL accepted")
	}
}
