// Package anthropic is the provider for Anthropic's Messages API, on the
// official anthropic-sdk-go SDK.
package anthropic

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	sdk "github.com/anthropics/anthropic-sdk-go"
	"github.com/anthropics/anthropic-sdk-go/option"
	"github.com/anthropics/anthropic-sdk-go/packages/ssestream"

	"github.com/sessiond/sessiond/session/provider"
	"github.com/sessiond/sessiond/session/provider/internal/wire"
)

// Output defaults: the whole of a model's output allowance counts
// against output rate limits when a request starts, so ask for at most
// this much unless the caller says otherwise.
const defaultMaxTokens = 32_000

// budget is the thinking budget of an effort, for models that take a
// token budget; 0 for none.
func budget(e provider.Effort) int64 {
	switch e {
	case provider.EffortLow:
		return 4_096
	case provider.EffortMedium:
		return 16_384
	case provider.EffortHigh:
		return 32_768
	}
	return 0
}

// minBudget is the smallest thinking budget the API accepts.
const minBudget = 1_024

// Provider calls the Messages API.
type Provider struct {
	id  string
	svc sdk.MessageService
	log *slog.Logger
}

// Factory is the provider.Factory of TypeAnthropic.
func Factory(s provider.Settings, opts provider.FactoryOptions) (provider.Provider, error) {
	return New(s, opts)
}

// New returns a provider for s. The SDK's own retries are off (the retry
// loop in package provider owns backoff and reports attempts), and its
// environment and profile defaults are not read: credentials come only
// from s.
func New(s provider.Settings, opts provider.FactoryOptions) (*Provider, error) {
	p, err := provider.Prepare(s, opts, provider.AnthropicBaseURL, "https://api.anthropic.com")
	if err != nil {
		return nil, err
	}
	ro := []option.RequestOption{
		option.WithoutEnvironmentDefaults(),
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
	c := sdk.NewClient(ro...)
	return &Provider{id: s.ID, svc: c.Messages, log: p.Log}, nil
}

// ID is the provider's configured name.
func (p *Provider) ID() string { return p.id }

// Stream sends req as a streaming message.
func (p *Provider) Stream(ctx context.Context, req provider.Request) (provider.Stream, error) {
	params, err := buildParams(req)
	if err != nil {
		return nil, fmt.Errorf("%s: build request for %s: %w", p.id, req.Model.ID, err)
	}
	p.log.Debug("messages", "model", req.Model.ID, "messages", len(params.Messages), "tools", len(params.Tools))
	capture := &wire.Capture{}
	s := p.svc.NewStreaming(ctx, params, option.WithMiddleware(capture.Middleware))
	if err := s.Err(); err != nil {
		_ = s.Close()
		return nil, wire.Error(ctx, p.id, req.Model.ID, capture, err)
	}
	return &stream{ctx: ctx, id: p.id, model: req.Model.ID, sdk: s, capture: capture, kinds: map[int64]string{}}, nil
}

func buildParams(req provider.Request) (sdk.MessageNewParams, error) {
	maxTokens := req.MaxTokens
	if maxTokens <= 0 {
		maxTokens = req.Model.MaxOutput
		if maxTokens <= 0 {
			maxTokens = provider.DefaultMaxOutput
		}
		maxTokens = min(maxTokens, defaultMaxTokens)
	}
	params := sdk.MessageNewParams{Model: sdk.Model(req.Model.ID), MaxTokens: maxTokens}
	// Cache breakpoints on the stable prefix (tools, system) and the
	// conversation's end, so the next turn reads what this one wrote.
	if req.System != "" {
		params.System = []sdk.TextBlockParam{{Text: req.System, CacheControl: sdk.NewCacheControlEphemeralParam()}}
	}
	for _, t := range req.Tools {
		tp, err := tool(t)
		if err != nil {
			return params, err
		}
		params.Tools = append(params.Tools, sdk.ToolUnionParam{OfTool: &tp})
	}
	if n := len(params.Tools); n > 0 {
		params.Tools[n-1].OfTool.CacheControl = sdk.NewCacheControlEphemeralParam()
	}
	msgs, err := messages(req.Messages)
	if err != nil {
		return params, err
	}
	if n := len(msgs); n > 0 {
		blocks := msgs[n-1].Content
		if cc := blocks[len(blocks)-1].GetCacheControl(); cc != nil {
			*cc = sdk.NewCacheControlEphemeralParam()
		}
	}
	params.Messages = msgs
	if req.Effort != provider.EffortDefault && req.Model.Reasoning {
		if req.Model.AdaptiveThinking {
			params.Thinking = sdk.ThinkingConfigParamUnion{OfAdaptive: &sdk.ThinkingConfigAdaptiveParam{}}
			params.OutputConfig.Effort = sdk.OutputConfigEffort(req.Effort)
		} else if b := budget(req.Effort); b > 0 {
			// The budget must stay below max_tokens, room left for the answer.
			if b >= maxTokens {
				b = maxTokens / 2
			}
			if b >= minBudget {
				params.Thinking = sdk.ThinkingConfigParamOfEnabled(b)
			}
		}
	}
	return params, nil
}

// tool maps a tool definition; the schema's properties and required go
// to their fields, anything else ($defs, additionalProperties) rides along.
func tool(t provider.Tool) (sdk.ToolParam, error) {
	tp := sdk.ToolParam{Name: t.Name}
	if t.Description != "" {
		tp.Description = sdk.String(t.Description)
	}
	schema := map[string]any{}
	if len(t.Schema) > 0 {
		if err := json.Unmarshal(t.Schema, &schema); err != nil {
			return tp, fmt.Errorf("tool %s: schema is not a JSON object: %w", t.Name, err)
		}
	}
	if p, ok := schema["properties"]; ok {
		tp.InputSchema.Properties = p
	} else {
		tp.InputSchema.Properties = map[string]any{}
	}
	if r, ok := schema["required"].([]any); ok {
		for _, v := range r {
			if s, ok := v.(string); ok {
				tp.InputSchema.Required = append(tp.InputSchema.Required, s)
			}
		}
	}
	for k, v := range schema {
		switch k {
		case "type", "properties", "required":
		default:
			if tp.InputSchema.ExtraFields == nil {
				tp.InputSchema.ExtraFields = map[string]any{}
			}
			tp.InputSchema.ExtraFields[k] = v
		}
	}
	return tp, nil
}

// messages maps the conversation. Tool results go in user turns, before
// any other content there, and consecutive turns of one role are merged:
// the API wants user and assistant to alternate.
func messages(in []provider.Message) ([]sdk.MessageParam, error) {
	var out []sdk.MessageParam
	for i, m := range in {
		role := sdk.MessageParamRoleUser
		var blocks []sdk.ContentBlockParamUnion
		switch m.Role {
		case provider.RoleAssistant:
			role = sdk.MessageParamRoleAssistant
			for _, c := range m.Content {
				switch c := c.(type) {
				case provider.Reasoning:
					// Only signed thinking can go back; unsigned text came
					// from another provider and is dropped.
					switch {
					case c.Redacted != "":
						blocks = append(blocks, sdk.NewRedactedThinkingBlock(c.Redacted))
					case c.Signature != "":
						blocks = append(blocks, sdk.NewThinkingBlock(c.Signature, c.Text))
					}
				case provider.Text:
					if strings.TrimSpace(c.Text) != "" {
						blocks = append(blocks, sdk.NewTextBlock(c.Text))
					}
				case provider.ToolCall:
					input := c.Input
					if len(strings.TrimSpace(string(input))) == 0 {
						input = json.RawMessage("{}")
					}
					blocks = append(blocks, sdk.NewToolUseBlock(c.ID, input, c.Name))
				default:
					return nil, fmt.Errorf("message %d: assistant message cannot hold %T", i, c)
				}
			}
		case provider.RoleUser, provider.RoleTool:
			var results, rest []sdk.ContentBlockParamUnion
			for _, c := range m.Content {
				switch c := c.(type) {
				case provider.ToolResult:
					results = append(results, sdk.NewToolResultBlock(c.CallID, c.Output, c.IsError))
				case provider.Text:
					if strings.TrimSpace(c.Text) != "" {
						rest = append(rest, sdk.NewTextBlock(c.Text))
					}
				case provider.Image:
					if len(c.Data) > 0 {
						rest = append(rest, sdk.NewImageBlockBase64(c.Mime, base64.StdEncoding.EncodeToString(c.Data)))
					} else {
						rest = append(rest, sdk.NewImageBlock(sdk.URLImageSourceParam{URL: c.URL}))
					}
				default:
					return nil, fmt.Errorf("message %d: %s message cannot hold %T", i, m.Role, c)
				}
			}
			blocks = append(results, rest...)
		default:
			return nil, fmt.Errorf("message %d: unknown role %q", i, m.Role)
		}
		if len(blocks) == 0 {
			continue
		}
		if n := len(out); n > 0 && out[n-1].Role == role {
			prev := &out[n-1]
			if role == sdk.MessageParamRoleUser {
				// Keep tool results first in the merged turn.
				var res, rest []sdk.ContentBlockParamUnion
				for _, b := range append(prev.Content, blocks...) {
					if b.OfToolResult != nil {
						res = append(res, b)
					} else {
						rest = append(rest, b)
					}
				}
				prev.Content = append(res, rest...)
			} else {
				prev.Content = append(prev.Content, blocks...)
			}
			continue
		}
		out = append(out, sdk.MessageParam{Role: role, Content: blocks})
	}
	return out, nil
}

// stream adapts the SDK's event stream to provider events.
type stream struct {
	ctx     context.Context
	id      string
	model   string
	sdk     *ssestream.Stream[sdk.MessageStreamEventUnion]
	capture *wire.Capture

	b       wire.Builder
	kinds   map[int64]string // content block index → type
	usage   provider.Usage
	output  int64
	think   int64
	stop    string
	stopped bool
	err     error
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
		s.event(s.sdk.Current())
	}
}

func (s *stream) Close() error { return s.sdk.Close() }

func (s *stream) event(ev sdk.MessageStreamEventUnion) {
	switch ev.Type {
	case "message_start":
		u := ev.Message.Usage
		s.usage.Input = u.InputTokens
		s.usage.CacheRead = u.CacheReadInputTokens
		s.usage.CacheWrite = u.CacheCreationInputTokens
		s.output = u.OutputTokens
		s.think = u.OutputTokensDetails.ThinkingTokens
	case "content_block_start":
		cb := ev.ContentBlock
		s.kinds[ev.Index] = cb.Type
		switch cb.Type {
		case "text":
			s.b.Text(cb.Text)
		case "thinking":
			s.b.Reasoning(cb.Thinking)
			if cb.Signature != "" {
				s.b.Signature(cb.Signature)
			}
		case "redacted_thinking":
			s.b.Redacted(cb.Data)
		case "tool_use":
			s.b.StartCall(int(ev.Index), cb.ID, cb.Name)
		}
	case "content_block_delta":
		d := ev.Delta
		switch d.Type {
		case "text_delta":
			s.b.Text(d.Text)
		case "thinking_delta":
			s.b.Reasoning(d.Thinking)
		case "signature_delta":
			s.b.Signature(d.Signature)
		case "input_json_delta":
			s.b.CallArgs(int(ev.Index), d.PartialJSON)
		}
	case "content_block_stop":
		switch s.kinds[ev.Index] {
		case "text":
			s.b.EndText()
		case "thinking":
			s.b.EndReasoning()
		case "tool_use":
			s.b.EndCall(int(ev.Index))
		}
	case "message_delta":
		if ev.Delta.StopReason != "" {
			s.stop = string(ev.Delta.StopReason)
		}
		// message_delta usage is cumulative; input counts appear only
		// when the server revises them.
		u := ev.Usage
		if u.JSON.OutputTokens.Valid() {
			s.output = u.OutputTokens
		}
		if u.JSON.InputTokens.Valid() && u.InputTokens > 0 {
			s.usage.Input = u.InputTokens
		}
		if u.JSON.CacheReadInputTokens.Valid() && u.CacheReadInputTokens > 0 {
			s.usage.CacheRead = u.CacheReadInputTokens
		}
		if u.JSON.CacheCreationInputTokens.Valid() && u.CacheCreationInputTokens > 0 {
			s.usage.CacheWrite = u.CacheCreationInputTokens
		}
		if u.OutputTokensDetails.ThinkingTokens > 0 {
			s.think = u.OutputTokensDetails.ThinkingTokens
		}
	case "message_stop":
		s.stopped = true
	}
}

func (s *stream) end(err error) {
	if ctxErr := s.ctx.Err(); ctxErr != nil {
		s.err = ctxErr
		return
	}
	if err != nil {
		var apiErr *sdk.Error
		if errors.As(err, &apiErr) && apiErr.StatusCode < 400 {
			// An error event inside a 200 stream (overloaded_error, api_error).
			s.err = wire.StreamError(s.id, s.model, []byte(apiErr.RawJSON()))
			return
		}
		if msg, ok := strings.CutPrefix(err.Error(), "received error while streaming: "); ok {
			s.err = wire.StreamError(s.id, s.model, []byte(msg))
			return
		}
		s.err = wire.Error(s.ctx, s.id, s.model, s.capture, err)
		return
	}
	if !s.stopped {
		s.err = wire.Truncated(s.id, s.model)
		return
	}
	s.usage.Reasoning = min(s.think, s.output)
	s.usage.Output = s.output - s.usage.Reasoning
	u := s.usage
	s.b.Finish(&u, stopReason(s.stop), s.stop)
	s.err = io.EOF
}

func stopReason(r string) provider.FinishReason {
	switch sdk.StopReason(r) {
	case sdk.StopReasonEndTurn, sdk.StopReasonStopSequence:
		return provider.FinishStop
	case sdk.StopReasonToolUse:
		return provider.FinishToolCalls
	case sdk.StopReasonMaxTokens, sdk.StopReasonModelContextWindowExceeded:
		return provider.FinishLength
	case sdk.StopReasonRefusal:
		return provider.FinishContentFilter
	}
	return provider.FinishOther
}
