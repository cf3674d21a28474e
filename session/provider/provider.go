// Package provider is the model-provider layer of the agent runtime
// (DESIGN §6): one interface over the official OpenAI and Anthropic SDKs,
// the model table (context window, prices, reasoning support), the
// configuration that picks a provider and model, and the retry loop that
// turns 429 and 5xx answers into status retry.
//
// It knows nothing of sessions or the store, so the turn loop, tests and
// tools can use it alone. Implementations live in the sub-packages openai
// and anthropic; builtin wires them into a Registry.
package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// Provider streams a model's answer to one request. Implementations are
// safe for concurrent use; each Stream call is one HTTP request.
type Provider interface {
	// ID is the provider's configured name ("openai", "anthropic",
	// "ollama", ...), the providerID of a ModelRef.
	ID() string
	// Stream sends req and returns the answer as it arrives. An error
	// from Stream itself means no output was produced: a *ProviderError
	// for an HTTP or connection failure, ctx.Err() when ctx ended, or a
	// plain error for a request that cannot be built (a tool schema that
	// is not JSON). Cancelling ctx ends the HTTP stream promptly; that is
	// how a turn is aborted.
	Stream(ctx context.Context, req Request) (Stream, error)
}

// Stream yields a response's events in order. It is not safe for
// concurrent use: one goroutine reads it until Recv returns an error and
// then closes it; another goroutine aborts it by cancelling the context
// given to Provider.Stream, not by calling Close.
type Stream interface {
	// Recv returns the next event. After the Finish event it returns
	// io.EOF; any other error is terminal and is a *ProviderError, or
	// ctx.Err() when the request's context ended.
	Recv() (Event, error)
	// Close ends the HTTP stream early. It is safe to call more than once
	// and after Recv returned an error.
	Close() error
}

// Request is one call to a model.
type Request struct {
	// Model is the model to call; ID is required, the rest (from the
	// model table, see Registry.Resolve) decides max tokens and whether
	// Effort can be sent.
	Model ModelInfo
	// System is the system prompt.
	System string
	// Messages is the conversation so far, oldest first.
	Messages []Message
	// Tools the model may call.
	Tools []Tool
	// MaxTokens caps the output; 0 picks a default from the model table.
	MaxTokens int64
	// Effort asks a reasoning model to think more or less. It is ignored
	// for models the table says cannot reason.
	Effort Effort
}

// Role says who wrote a Message.
type Role string

// Roles of a Message. Tool results travel in RoleTool messages; each
// implementation maps them to its wire format (OpenAI "tool" messages,
// Anthropic tool_result blocks in a user turn).
const (
	RoleUser      Role = "user"
	RoleAssistant Role = "assistant"
	RoleTool      Role = "tool"
)

// Message is one turn of the conversation.
type Message struct {
	Role    Role
	Content []Content
}

// Content is one piece of a Message: Text, Image, Reasoning, ToolCall or
// ToolResult.
type Content interface{ isContent() }

// Text is plain text, from the user or the model.
type Text struct{ Text string }

// Image is an image the user attached: inline bytes or a URL.
type Image struct {
	Mime string // image/png, image/jpeg, image/gif, image/webp
	Data []byte // the image, or nil when URL is set
	URL  string
}

// Reasoning is a model's earlier thinking. Anthropic needs signed thinking
// blocks sent back while a tool loop runs, so Signature and Redacted must be
// replayed exactly; pass them only to the provider that produced them.
// OpenAI-compatible servers get no reasoning back.
type Reasoning struct {
	Text      string
	Signature string
	Redacted  string // opaque data of a redacted thinking block
}

// ToolCall is a tool call the model made.
type ToolCall struct {
	ID    string
	Name  string
	Input json.RawMessage // a JSON object; nil means {}
}

// ToolResult answers a ToolCall.
type ToolResult struct {
	CallID  string
	Name    string
	Output  string
	IsError bool
}

func (Text) isContent()       {}
func (Image) isContent()      {}
func (Reasoning) isContent()  {}
func (ToolCall) isContent()   {}
func (ToolResult) isContent() {}

// Tool is a tool the model may call.
type Tool struct {
	Name        string
	Description string
	// Schema is the JSON Schema of the input, an object schema. Nil
	// means no parameters.
	Schema json.RawMessage
}

// Effort is how hard a reasoning model should think: a message's variant.
type Effort string

// Efforts. EffortDefault leaves the choice to the provider.
const (
	EffortDefault Effort = ""
	EffortLow     Effort = "low"
	EffortMedium  Effort = "medium"
	EffortHigh    Effort = "high"
)

// ParseEffort checks a variant from a request, so a bad one is refused
// before a turn starts.
func ParseEffort(s string) (Effort, error) {
	switch e := Effort(strings.ToLower(strings.TrimSpace(s))); e {
	case EffortDefault, EffortLow, EffortMedium, EffortHigh:
		return e, nil
	}
	return "", fmt.Errorf("unknown reasoning effort %q: use low, medium or high", s)
}

// ModelRef picks a model of a provider. It has the wire shape of
// session.ModelRef.
type ModelRef struct {
	ProviderID string `json:"providerID"`
	ModelID    string `json:"modelID"`
}

// IsZero reports an empty ref, which asks for the default model.
func (r ModelRef) IsZero() bool { return r.ProviderID == "" && r.ModelID == "" }

func (r ModelRef) String() string { return r.ProviderID + "/" + r.ModelID }

// ParseModelRef parses "provider/model". The model part may itself hold
// slashes (OpenRouter's "openrouter/anthropic/claude-sonnet-4.5").
func ParseModelRef(s string) (ModelRef, error) {
	p, m, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok || p == "" || m == "" {
		return ModelRef{}, fmt.Errorf("model %q is not of the form provider/model (for example anthropic/claude-sonnet-4-5)", s)
	}
	return ModelRef{ProviderID: p, ModelID: m}, nil
}
