// Package wire holds what the provider implementations share: assembling
// SDK stream events into provider events, and turning HTTP failures into
// *provider.ProviderError.
package wire

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"strings"

	"github.com/sessiond/sessiond/session/provider"
)

// Builder turns a provider's block-level stream into provider events
// with the ordering promised by provider.Event: a text or reasoning run is
// closed before another block starts, tool calls close in start order.
type Builder struct {
	queue []provider.Event

	text      strings.Builder
	textOpen  bool
	reason    strings.Builder
	reasonOn  bool
	signature string
	redacted  string

	calls []*call // open tool calls, in start order
}

type call struct {
	key  int
	id   string
	name string
	args strings.Builder
}

// Pop returns the next queued event.
func (b *Builder) Pop() (provider.Event, bool) {
	if len(b.queue) == 0 {
		return nil, false
	}
	ev := b.queue[0]
	b.queue[0] = nil
	b.queue = b.queue[1:]
	return ev, true
}

func (b *Builder) push(ev provider.Event) { b.queue = append(b.queue, ev) }

// Text adds answer text.
func (b *Builder) Text(s string) {
	if s == "" {
		return
	}
	b.EndReasoning()
	b.textOpen = true
	b.text.WriteString(s)
	b.push(provider.TextDelta{Text: s})
}

// EndText closes the open text run, if any.
func (b *Builder) EndText() {
	if !b.textOpen {
		return
	}
	b.push(provider.TextDone{Text: b.text.String()})
	b.text.Reset()
	b.textOpen = false
}

// Reasoning adds visible thinking.
func (b *Builder) Reasoning(s string) {
	if s == "" {
		return
	}
	b.EndText()
	b.reasonOn = true
	b.reason.WriteString(s)
	b.push(provider.ReasoningDelta{Text: s})
}

// Signature records the signature of the open thinking block.
func (b *Builder) Signature(sig string) {
	b.EndText()
	b.reasonOn = true
	b.signature += sig
}

// Redacted records a redacted thinking block, which has no text.
func (b *Builder) Redacted(data string) {
	b.EndText()
	b.EndReasoning()
	b.push(provider.ReasoningDone{Redacted: data})
}

// EndReasoning closes the open reasoning run, if any.
func (b *Builder) EndReasoning() {
	if !b.reasonOn {
		return
	}
	b.push(provider.ReasoningDone{Text: b.reason.String(), Signature: b.signature})
	b.reason.Reset()
	b.signature = ""
	b.reasonOn = false
}

// HasCall reports an open tool call under key.
func (b *Builder) HasCall(key int) bool { return b.find(key) != nil }

// CallID is the ID of the open tool call under key, "" if none.
func (b *Builder) CallID(key int) string {
	if c := b.find(key); c != nil {
		return c.id
	}
	return ""
}

func (b *Builder) find(key int) *call {
	for _, c := range b.calls {
		if c.key == key {
			return c
		}
	}
	return nil
}

// StartCall opens a tool call under key (OpenAI's index, Anthropic's
// block index). A missing ID gets a generated one, as some
// OpenAI-compatible servers send none.
func (b *Builder) StartCall(key int, id, name string) {
	b.EndText()
	b.EndReasoning()
	if id == "" {
		id = NewCallID()
	}
	b.calls = append(b.calls, &call{key: key, id: id, name: name})
	b.push(provider.ToolCallStart{ID: id, Name: name})
}

// CallArgs adds to the arguments of the call under key.
func (b *Builder) CallArgs(key int, s string) {
	c := b.find(key)
	if c == nil || s == "" {
		return
	}
	c.args.WriteString(s)
	b.push(provider.ToolCallDelta{ID: c.id, Delta: s})
}

// EndCall closes the call under key.
func (b *Builder) EndCall(key int) {
	for i, c := range b.calls {
		if c.key == key {
			b.calls = append(b.calls[:i], b.calls[i+1:]...)
			b.push(done(c))
			return
		}
	}
}

func done(c *call) provider.ToolCallDone {
	raw := strings.TrimSpace(c.args.String())
	d := provider.ToolCallDone{ID: c.id, Name: c.name, Input: json.RawMessage(raw)}
	switch {
	case raw == "":
		d.Input = json.RawMessage("{}")
	case !json.Valid([]byte(raw)):
		d.Input = json.RawMessage("{}")
		d.Malformed = raw
	}
	return d
}

// EndAll closes every open block.
func (b *Builder) EndAll() {
	b.EndText()
	b.EndReasoning()
	for _, c := range b.calls {
		b.push(done(c))
	}
	b.calls = nil
}

// Finish queues the closing Usage (if any) and Finish events.
func (b *Builder) Finish(u *provider.Usage, reason provider.FinishReason, raw string) {
	b.EndAll()
	if u != nil {
		b.push(*u)
	}
	b.push(provider.Finish{Reason: reason, Raw: raw})
}

// NewCallID makes a tool call ID for servers that send none.
func NewCallID() string {
	var buf [8]byte
	_, _ = rand.Read(buf[:])
	return "call_" + hex.EncodeToString(buf[:])
}
