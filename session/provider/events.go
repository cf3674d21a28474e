package provider

import "encoding/json"

// Event is one thing a Stream yields: TextDelta, TextDone, ReasoningDelta,
// ReasoningDone, ToolCallStart, ToolCallDelta, ToolCallDone, Usage or
// Finish.
//
// The order is what a turn loop needs to persist parts as they come: text
// and reasoning arrive as deltas closed by a Done event before any other
// block starts, so each run of deltas is one part; tool calls are Start,
// Deltas, Done by ID (OpenAI may interleave several); Usage, then Finish,
// come last, once.
type Event interface{ isEvent() }

// TextDelta is a piece of the answer's text.
type TextDelta struct{ Text string }

// TextDone closes a run of TextDeltas; Text is the whole run.
type TextDone struct{ Text string }

// ReasoningDelta is a piece of the model's visible thinking.
type ReasoningDelta struct{ Text string }

// ReasoningDone closes a run of reasoning. Signature and Redacted are what
// Anthropic needs replayed (see Reasoning); keep them with the part.
type ReasoningDone struct {
	Text      string
	Signature string
	Redacted  string
}

// ToolCallStart announces a tool call before its arguments stream.
type ToolCallStart struct {
	ID   string
	Name string
}

// ToolCallDelta is a piece of a tool call's JSON arguments.
type ToolCallDelta struct {
	ID    string
	Delta string
}

// ToolCallDone is a complete tool call.
type ToolCallDone struct {
	ID   string
	Name string
	// Input is the arguments, always valid JSON ("{}" when the model
	// sent none).
	Input json.RawMessage
	// Malformed holds the model's raw arguments when they were not valid
	// JSON (Input is then "{}"); the loop should answer the call with a
	// tool error rather than run it.
	Malformed string
}

// Usage counts a response's tokens. The fields do not overlap, so they
// add up to the total: Input excludes cached input, Output excludes
// reasoning.
type Usage struct {
	Input      int64 `json:"input"`
	Output     int64 `json:"output"`
	Reasoning  int64 `json:"reasoning"`
	CacheRead  int64 `json:"cacheRead"`
	CacheWrite int64 `json:"cacheWrite"`
}

// Total is every token the response counted.
func (u Usage) Total() int64 {
	return u.Input + u.Output + u.Reasoning + u.CacheRead + u.CacheWrite
}

// Add sums usage over the steps of a turn.
func (u Usage) Add(v Usage) Usage {
	return Usage{
		Input:      u.Input + v.Input,
		Output:     u.Output + v.Output,
		Reasoning:  u.Reasoning + v.Reasoning,
		CacheRead:  u.CacheRead + v.CacheRead,
		CacheWrite: u.CacheWrite + v.CacheWrite,
	}
}

// FinishReason says why the model stopped, in one vocabulary for every
// provider; it is what a message's finish field stores.
type FinishReason string

// Finish reasons.
const (
	FinishStop          FinishReason = "stop"
	FinishToolCalls     FinishReason = "tool_calls"
	FinishLength        FinishReason = "length"
	FinishContentFilter FinishReason = "content_filter"
	FinishOther         FinishReason = "other"
)

// Finish ends a response. Raw is the provider's own reason.
type Finish struct {
	Reason FinishReason
	Raw    string
}

func (TextDelta) isEvent()      {}
func (TextDone) isEvent()       {}
func (ReasoningDelta) isEvent() {}
func (ReasoningDone) isEvent()  {}
func (ToolCallStart) isEvent()  {}
func (ToolCallDelta) isEvent()  {}
func (ToolCallDone) isEvent()   {}
func (Usage) isEvent()          {}
func (Finish) isEvent()         {}
