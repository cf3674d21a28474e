// Package openai is the provider for OpenAI's Chat Completions API and
// every server that speaks it (Ollama, vLLM, llama.cpp, LM Studio,
// OpenRouter), on the official openai-go SDK.
package openai

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	oai "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/packages/ssestream"
	"github.com/openai/openai-go/v3/shared"

	"github.com/sessiond/sessiond/session/provider"
	"github.com/sessiond/sessiond/session/provider/internal/wire"
)

// Provider calls a Chat Completions endpoint.
type Provider struct {
	id       string
	official bool // api.openai.com: max_completion_tokens instead of max_tokens
	svc      oai.ChatCompletionService
	log      *slog.Logger
}

// Factory is the provider.Factory of TypeOpenAI.
func Factory(s provider.Settings, opts provider.FactoryOptions) (provider.Provider, error) {
	return New(s, opts)
}

// New returns a provider for s. The SDK's own retries are off (the
// retry loop in package provider owns backoff and reports attempts), and
// its environment defaults are not read: a key for api.openai.com must
// never reach another server.
func New(s provider.Settings, opts provider.FactoryOptions) (*Provider, error) {
	p, err := provider.Prepare(s, opts, provider.OpenAIBaseURL, "http://localhost:11434/v1")
	if err != nil {
		return nil, err
	}
	ro := []option.RequestOption{
		option.WithBaseURL(p.Base),
		option.WithHTTPClient(p.Client),
		option.WithMaxRetries(0),
	}
	if s.APIKey != "" {
		ro = append(ro, option.WithAPIKey(s.APIKey))
	}
	for k, v := range s.Headers {
		ro = append(ro, option.WithHeader(k, v))
	}
	return &Provider{
		id:       s.ID,
		official: p.URL.Host == "api.openai.com",
		svc:      oai.NewChatCompletionService(ro...),
		log:      p.Log,
	}, nil
}

// ID is the provider's configured name.
func (p *Provider) ID() string { return p.id }

// Stream sends req as a streaming chat completion.
func (p *Provider) Stream(ctx context.Context, req provider.Request) (provider.Stream, error) {
	params, err := p.params(req)
	if err != nil {
		return nil, fmt.Errorf("%s: build request for %s: %w", p.id, req.Model.ID, err)
	}
	p.log.Debug("chat completion", "model", req.Model.ID, "messages", len(params.Messages), "tools", len(params.Tools))
	capture := &wire.Capture{}
	s := p.svc.NewStreaming(ctx, params, option.WithMiddleware(capture.Middleware))
	if err := s.Err(); err != nil {
		_ = s.Close()
		return nil, wire.Error(ctx, p.id, req.Model.ID, capture, err)
	}
	return &stream{ctx: ctx, id: p.id, model: req.Model.ID, sdk: s, capture: capture}, nil
}

func (p *Provider) params(req provider.Request) (oai.ChatCompletionNewParams, error) {
	params := oai.ChatCompletionNewParams{
		Model:         shared.ChatModel(req.Model.ID),
		StreamOptions: oai.ChatCompletionStreamOptionsParam{IncludeUsage: oai.Bool(true)},
	}
	if req.System != "" {
		params.Messages = append(params.Messages, oai.SystemMessage(req.System))
	}
	for i, m := range req.Messages {
		msgs, err := messages(m)
		if err != nil {
			return params, fmt.Errorf("message %d: %w", i, err)
		}
		params.Messages = append(params.Messages, msgs...)
	}
	for _, t := range req.Tools {
		schema := map[string]any{"type": "object", "properties": map[string]any{}}
		if len(t.Schema) > 0 {
			schema = nil
			if err := json.Unmarshal(t.Schema, &schema); err != nil {
				return params, fmt.Errorf("tool %s: schema is not a JSON object: %w", t.Name, err)
			}
		}
		def := shared.FunctionDefinitionParam{Name: t.Name, Parameters: shared.FunctionParameters(schema)}
		if t.Description != "" {
			def.Description = oai.String(t.Description)
		}
		params.Tools = append(params.Tools, oai.ChatCompletionFunctionTool(def))
	}
	if req.MaxTokens > 0 {
		// OpenAI's reasoning models refuse max_tokens; many compatible
		// servers know only max_tokens.
		if p.official {
			params.MaxCompletionTokens = oai.Int(req.MaxTokens)
		} else {
			params.MaxTokens = oai.Int(req.MaxTokens)
		}
	}
	if req.Effort != provider.EffortDefault && req.Model.Reasoning {
		params.ReasoningEffort = shared.ReasoningEffort(req.Effort)
	}
	return params, nil
}

// messages maps one message; tool results become "tool" messages, which
// must follow the assistant message that made the calls.
func messages(m provider.Message) ([]oai.ChatCompletionMessageParamUnion, error) {
	var out []oai.ChatCompletionMessageParamUnion
	switch m.Role {
	case provider.RoleAssistant:
		var text strings.Builder
		var calls []oai.ChatCompletionMessageToolCallUnionParam
		for _, c := range m.Content {
			switch c := c.(type) {
			case provider.Text:
				text.WriteString(c.Text)
			case provider.ToolCall:
				args := string(c.Input)
				if strings.TrimSpace(args) == "" {
					args = "{}"
				}
				calls = append(calls, oai.ChatCompletionMessageToolCallUnionParam{
					OfFunction: &oai.ChatCompletionMessageFunctionToolCallParam{
						ID:       c.ID,
						Function: oai.ChatCompletionMessageFunctionToolCallFunctionParam{Name: c.Name, Arguments: args},
					},
				})
			case provider.Reasoning:
				// Chat Completions takes no reasoning back.
			default:
				return nil, fmt.Errorf("assistant message cannot hold %T", c)
			}
		}
		if text.Len() == 0 && len(calls) == 0 {
			return nil, nil
		}
		var a oai.ChatCompletionAssistantMessageParam
		if text.Len() > 0 {
			a.Content.OfString = oai.String(text.String())
		}
		a.ToolCalls = calls
		return append(out, oai.ChatCompletionMessageParamUnion{OfAssistant: &a}), nil
	case provider.RoleUser, provider.RoleTool:
		var parts []oai.ChatCompletionContentPartUnionParam
		var texts []string
		images := false
		for _, c := range m.Content {
			switch c := c.(type) {
			case provider.ToolResult:
				out = append(out, oai.ToolMessage(c.Output, c.CallID))
			case provider.Text:
				texts = append(texts, c.Text)
				parts = append(parts, oai.TextContentPart(c.Text))
			case provider.Image:
				images = true
				u := c.URL
				if len(c.Data) > 0 {
					u = "data:" + c.Mime + ";base64," + base64.StdEncoding.EncodeToString(c.Data)
				}
				parts = append(parts, oai.ImageContentPart(oai.ChatCompletionContentPartImageImageURLParam{URL: u}))
			default:
				return nil, fmt.Errorf("%s message cannot hold %T", m.Role, c)
			}
		}
		switch {
		case images:
			out = append(out, oai.UserMessage(parts))
		case len(texts) > 0:
			// A plain string: older compatible servers take no parts.
			out = append(out, oai.UserMessage(strings.Join(texts, "\n\n")))
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown role %q", m.Role)
}

// stream adapts the SDK's chunk stream to provider events.
type stream struct {
	ctx     context.Context
	id      string
	model   string
	sdk     *ssestream.Stream[oai.ChatCompletionChunk]
	capture *wire.Capture

	b      wire.Builder
	finish string
	usage  *provider.Usage
	err    error
}

func (s *stream) Recv() (provider.Event, error) {
	for {
		if ev, ok := s.b.Pop(); ok {
			return ev, nil
		}
		if s.err != nil {
			return nil, s.err
		}
		if !s.sdk.Next() {
			s.end(s.sdk.Err())
			continue
		}
		s.chunk(s.sdk.Current())
	}
}

func (s *stream) Close() error { return s.sdk.Close() }

func (s *stream) chunk(ch oai.ChatCompletionChunk) {
	if ch.JSON.Usage.Valid() {
		u := usage(ch.Usage)
		s.usage = &u
	}
	for _, c := range ch.Choices {
		if c.Index != 0 {
			continue
		}
		d := c.Delta
		s.b.Reasoning(reasoning(d))
		s.b.Text(d.Content)
		s.b.Text(d.Refusal)
		for _, tc := range d.ToolCalls {
			key := int(tc.Index)
			if tc.ID != "" && s.b.HasCall(key) && s.b.CallID(key) != tc.ID {
				// Some servers number every call 0: a new ID is a new call.
				s.b.EndCall(key)
			}
			if !s.b.HasCall(key) {
				s.b.StartCall(key, tc.ID, tc.Function.Name)
			}
			s.b.CallArgs(key, tc.Function.Arguments)
		}
		if c.FinishReason != "" {
			s.finish = c.FinishReason
		}
	}
}

// reasoning is the thinking text compatible servers add to a delta:
// reasoning_content (DeepSeek, vLLM, llama.cpp) or reasoning (Ollama,
// OpenRouter).
func reasoning(d oai.ChatCompletionChunkChoiceDelta) string {
	for _, k := range []string{"reasoning_content", "reasoning"} {
		f, ok := d.JSON.ExtraFields[k]
		if !ok {
			continue
		}
		var s string
		if json.Unmarshal([]byte(f.Raw()), &s) == nil && s != "" {
			return s
		}
	}
	return ""
}

func usage(u oai.CompletionUsage) provider.Usage {
	cached := u.PromptTokensDetails.CachedTokens
	written := u.PromptTokensDetails.CacheWriteTokens
	reasoning := u.CompletionTokensDetails.ReasoningTokens
	return provider.Usage{
		Input:      max(u.PromptTokens-cached-written, 0),
		CacheRead:  cached,
		CacheWrite: written,
		Output:     max(u.CompletionTokens-reasoning, 0),
		Reasoning:  reasoning,
	}
}

func (s *stream) end(err error) {
	if ctxErr := s.ctx.Err(); ctxErr != nil {
		s.err = ctxErr
		return
	}
	if err != nil {
		var se *ssestream.StreamError
		if errors.As(err, &se) {
			s.err = wire.StreamError(s.id, s.model, se.Event.Data)
		} else {
			s.err = wire.Error(s.ctx, s.id, s.model, s.capture, err)
		}
		return
	}
	if s.finish == "" {
		s.err = wire.Truncated(s.id, s.model)
		return
	}
	s.b.Finish(s.usage, finishReason(s.finish), s.finish)
	s.err = io.EOF
}

func finishReason(r string) provider.FinishReason {
	switch r {
	case "stop":
		return provider.FinishStop
	case "tool_calls", "function_call":
		return provider.FinishToolCalls
	case "length":
		return provider.FinishLength
	case "content_filter":
		return provider.FinishContentFilter
	}
	return provider.FinishOther
}
