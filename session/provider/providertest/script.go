// Package providertest runs fake model servers that speak the providers'
// real wire formats: OpenAI's /v1/chat/completions SSE chunks and
// Anthropic's /v1/messages stream events. A script of responses, written
// once in a provider-neutral form, drives either server; the servers
// record what they were sent so tests can check the requests.
//
// It is for tests of this module: the provider packages' own, and
// end-to-end tests of the daemon pointed at a fake server by base URL.
package providertest

import "time"

// Response is the server's answer to one request.
type Response struct {
	// Status 0 or 200 streams Steps; anything else answers with the
	// provider's JSON error body carrying Message, and no stream.
	Status  int
	Message string
	// RetryAfter is sent as the Retry-After header when set.
	RetryAfter string
	Steps      []Step
}

// Reply is a 200 stream of steps.
func Reply(steps ...Step) Response { return Response{Steps: steps} }

// Fail is an error answer before any stream.
func Fail(status int, message string) Response {
	return Response{Status: status, Message: message}
}

// WithRetryAfter adds a Retry-After header (seconds or an HTTP date).
func (r Response) WithRetryAfter(v string) Response {
	r.RetryAfter = v
	return r
}

type stepKind int

const (
	stepText stepKind = iota
	stepReasoning
	stepRedacted
	stepTool
	stepUsage
	stepFinish
	stepError
	stepMalformed
	stepSleep
	stepHang
	stepCut
	stepWait
)

// Step is one thing a streamed response does.
type Step struct {
	kind    stepKind
	text    string
	id      string
	name    string
	args    []string
	usage   Usage
	status  int
	delay   time.Duration
	message string
	until   <-chan struct{}
}

// Usage is what a Tokens step reports, in the provider-neutral split of
// provider.Usage: the servers add the parts up the way their APIs do.
type Usage struct {
	Input, Output, Reasoning, CacheRead, CacheWrite int64
}

// Text streams answer text; consecutive Text steps are one block.
func Text(s string) Step { return Step{kind: stepText, text: s} }

// Reasoning streams thinking (OpenAI-compatible reasoning_content,
// Anthropic thinking block with a signature).
func Reasoning(s string) Step { return Step{kind: stepReasoning, text: s} }

// RedactedReasoning streams an Anthropic redacted_thinking block with
// opaque data; OpenAI-compatible servers have none and skip it.
func RedactedReasoning(data string) Step { return Step{kind: stepRedacted, text: data} }

// Tool streams one tool call whose JSON arguments arrive in the given
// pieces.
func Tool(id, name string, args ...string) Step {
	return Step{kind: stepTool, id: id, name: name, args: args}
}

// Tokens reports usage (OpenAI: the usage chunk; Anthropic: message_start
// and message_delta usage).
func Tokens(u Usage) Step { return Step{kind: stepUsage, usage: u} }

// Finish ends the response with a reason in the provider-neutral
// vocabulary: stop, tool_calls, length. Each server maps it to its own.
func Finish(reason string) Step { return Step{kind: stepFinish, text: reason} }

// StreamError sends an error event inside the stream and ends it; status
// picks the error type (429 rate limit, 529 overloaded, 5xx server error).
func StreamError(status int, message string) Step {
	return Step{kind: stepError, status: status, message: message}
}

// Malformed sends a data line that is not valid JSON.
func Malformed(raw string) Step { return Step{kind: stepMalformed, text: raw} }

// Sleep pauses the stream: a slow model.
func Sleep(d time.Duration) Step { return Step{kind: stepSleep, delay: d} }

// Hang stops sending until the client goes away or the server closes.
func Hang() Step { return Step{kind: stepHang} }

// Wait pauses the stream until ch is closed: the test does something
// while the model is answering, and then lets it go on.
func Wait(ch <-chan struct{}) Step { return Step{kind: stepWait, until: ch} }

// Cut drops the connection mid-stream, without ending the response.
func Cut() Step { return Step{kind: stepCut} }
