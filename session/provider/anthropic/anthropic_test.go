package anthropic_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"testing"

	"github.com/sessiond/sessiond/session/provider"
	"github.com/sessiond/sessiond/session/provider/anthropic"
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
			provider.Reasoning{Text: "I should read it.", Signature: "sig-a"},
			provider.Reasoning{Redacted: "opaque"},
			provider.Reasoning{Text: "unsigned, from another provider"},
			provider.Text{Text: "Reading."},
			provider.ToolCall{ID: "toolu_1", Name: "read", Input: json.RawMessage(`{"path":"a.go"}`)},
			provider.ToolCall{ID: "toolu_2", Name: "list"},
		}},
		{Role: provider.RoleTool, Content: []provider.Content{
			provider.ToolResult{CallID: "toolu_1", Name: "read", Output: "package a"},
		}},
		{Role: provider.RoleTool, Content: []provider.Content{
			provider.ToolResult{CallID: "toolu_2", Name: "list", Output: "no such dir", IsError: true},
		}},
		{Role: provider.RoleUser, Content: []provider.Content{provider.Text{Text: "Thanks."}}},
	}
}

var tools = []provider.Tool{
	{Name: "read", Description: "Read a file.", Schema: json.RawMessage(
		`{"type":"object","properties":{"path":{"type":"string"}},"required":["path"],"additionalProperties":false}`)},
	{Name: "list"},
}

// send streams req to a fresh fake server and returns the request it
// received.
func send(t *testing.T, settings func(provider.Settings) provider.Settings, req provider.Request) pt.Request {
	t.Helper()
	srv := pt.NewAnthropic(t, pt.Reply(pt.Text("ok"), pt.Finish("stop")))
	s := srv.Settings()
	if settings != nil {
		s = settings(s)
	}
	p, err := anthropic.New(s, provider.FactoryOptions{})
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
		Model:    provider.NewModelTable().Lookup("claude-sonnet-4-5-20250929"),
		System:   "You are terse.",
		Messages: conversation(),
		Tools:    tools,
	}
	got := send(t, func(s provider.Settings) provider.Settings {
		s.Headers = map[string]string{"anthropic-beta": "test-beta"}
		return s
	}, req)
	h := got.Header
	if got.Path != "/v1/messages" || h.Get("X-Api-Key") != pt.APIKey || h.Get("Anthropic-Version") == "" ||
		h.Get("Anthropic-Beta") != "test-beta" || h.Get("Authorization") != "" {
		t.Fatalf("path %s, headers %v", got.Path, h)
	}
	body := got.JSON
	if body["model"] != "claude-sonnet-4-5-20250929" || body["stream"] != true || body["max_tokens"] != 32000.0 {
		t.Fatalf("model %v stream %v max_tokens %v", body["model"], body["stream"], body["max_tokens"])
	}
	if _, ok := body["thinking"]; ok {
		t.Fatalf("thinking sent without an effort: %v", body["thinking"])
	}
	if s := asJSON(t, body["system"]); s != `[{"cache_control":{"type":"ephemeral"},"text":"You are terse.","type":"text"}]` {
		t.Fatalf("system %s", s)
	}
	want := `[` +
		`{"content":[{"text":"What is in a.go?","type":"text"},{"source":{"data":"iVBORw==","media_type":"image/png","type":"base64"},"type":"image"}],"role":"user"},` +
		`{"content":[{"signature":"sig-a","thinking":"I should read it.","type":"thinking"},{"data":"opaque","type":"redacted_thinking"},` +
		`{"text":"Reading.","type":"text"},` +
		`{"id":"toolu_1","input":{"path":"a.go"},"name":"read","type":"tool_use"},` +
		`{"id":"toolu_2","input":{},"name":"list","type":"tool_use"}],"role":"assistant"},` +
		`{"content":[{"content":[{"text":"package a","type":"text"}],"is_error":false,"tool_use_id":"toolu_1","type":"tool_result"},` +
		`{"content":[{"text":"no such dir","type":"text"}],"is_error":true,"tool_use_id":"toolu_2","type":"tool_result"},` +
		`{"cache_control":{"type":"ephemeral"},"text":"Thanks.","type":"text"}],"role":"user"}]`
	if m := asJSON(t, body["messages"]); m != want {
		t.Fatalf("messages:\n got %s\nwant %s", m, want)
	}
	wantTools := `[` +
		`{"description":"Read a file.","input_schema":{"additionalProperties":false,"properties":{"path":{"type":"string"}},"required":["path"],"type":"object"},"name":"read"},` +
		`{"cache_control":{"type":"ephemeral"},"input_schema":{"properties":{},"type":"object"},"name":"list"}]`
	if tl := asJSON(t, body["tools"]); tl != wantTools {
		t.Fatalf("tools:\n got %s\nwant %s", tl, wantTools)
	}
}

func TestReasoningEffort(t *testing.T) {
	t.Parallel()
	table := provider.NewModelTable()
	cases := []struct {
		name   string
		model  string
		effort provider.Effort
		max    int64
		want   map[string]any // nil values: must be absent
	}{
		{"low budget", "claude-sonnet-4-5", provider.EffortLow, 0, map[string]any{
			"thinking": map[string]any{"type": "enabled", "budget_tokens": 4096.0}, "max_tokens": 32000.0}},
		{"medium budget", "claude-haiku-4-5", provider.EffortMedium, 0, map[string]any{
			"thinking": map[string]any{"type": "enabled", "budget_tokens": 16384.0}}},
		{"high budget over max tokens", "claude-opus-4-1", provider.EffortHigh, 0, map[string]any{
			"thinking": map[string]any{"type": "enabled", "budget_tokens": 16000.0}, "max_tokens": 32000.0}},
		{"small max tokens", "claude-sonnet-4-5", provider.EffortHigh, 4000, map[string]any{
			"thinking": map[string]any{"type": "enabled", "budget_tokens": 2000.0}, "max_tokens": 4000.0}},
		{"too small to think", "claude-sonnet-4-5", provider.EffortLow, 1500, map[string]any{
			"thinking": nil, "max_tokens": 1500.0}},
		{"adaptive", "claude-opus-4-6", provider.EffortHigh, 0, map[string]any{
			"thinking": map[string]any{"type": "adaptive"}, "output_config": map[string]any{"effort": "high"}}},
		{"model cannot reason", "claude-3-5-haiku", provider.EffortHigh, 0, map[string]any{
			"thinking": nil, "max_tokens": 8192.0}},
		{"unknown model", "claude-next", provider.EffortHigh, 0, map[string]any{
			"thinking": nil, "max_tokens": float64(provider.DefaultMaxOutput)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got := send(t, nil, provider.Request{Model: table.Lookup(c.model), Effort: c.effort, MaxTokens: c.max,
				Messages: []provider.Message{{Role: provider.RoleUser, Content: []provider.Content{provider.Text{Text: "hi"}}}}})
			for k, v := range c.want {
				if gv, ok := got.JSON[k]; v == nil && ok || v != nil && !reflect.DeepEqual(gv, v) {
					t.Errorf("%s = %v (present %v), want %v", k, gv, ok, v)
				}
			}
		})
	}
}

// TestNoEnvironmentLeak: the SDK's environment and profile defaults are
// not read; credentials come only from the settings.
func TestNoEnvironmentLeak(t *testing.T) {
	t.Setenv("ANTHROPIC_API_KEY", "sk-ant-from-environment")
	t.Setenv("ANTHROPIC_AUTH_TOKEN", "token-from-environment")
	t.Setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:1")
	got := send(t, func(s provider.Settings) provider.Settings { s.APIKey = ""; return s }, provider.Request{
		Model:    provider.ModelInfo{ID: "claude-x", MaxOutput: 100},
		Messages: []provider.Message{{Role: provider.RoleUser, Content: []provider.Content{provider.Text{Text: "hi"}}}},
	})
	for _, h := range []string{"X-Api-Key", "Authorization"} {
		if v := got.Header.Get(h); v != "" {
			t.Errorf("%s: %q sent", h, v)
		}
	}
}

// TestThinkingBlocks: each thinking block closes with its signature, and a
// redacted block comes through as its data, ready to be replayed.
func TestThinkingBlocks(t *testing.T) {
	t.Parallel()
	srv := pt.NewAnthropic(t, pt.Reply(pt.Reasoning("a"), pt.Text("b"), pt.RedactedReasoning("opaque"), pt.Reasoning("c"), pt.Finish("stop")))
	p, err := anthropic.New(srv.Settings(), provider.FactoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := p.Stream(context.Background(), provider.Request{Model: provider.ModelInfo{ID: "m"}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var done []provider.ReasoningDone
	for {
		ev, err := st.Recv()
		if err != nil {
			break
		}
		if d, ok := ev.(provider.ReasoningDone); ok {
			done = append(done, d)
		}
	}
	want := []provider.ReasoningDone{{Text: "a", Signature: "sig-0"}, {Redacted: "opaque"}, {Text: "c", Signature: "sig-3"}}
	if !reflect.DeepEqual(done, want) {
		t.Fatalf("reasoning %+v, want %+v", done, want)
	}
}
