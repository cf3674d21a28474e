package providertest

import (
	"net/http"
	"time"
)

// streamOpenAI renders steps as chat.completion.chunk events, the way
// OpenAI streams them: a role chunk first, tool calls by index with the
// id and name in their first chunk, finish_reason in its own chunk, the
// usage chunk (empty choices) last, then [DONE].
func streamOpenAI(e *emitter, model string, steps []Step) {
	created := time.Now().Unix()
	chunk := func(choices []any, usage any) map[string]any {
		c := map[string]any{
			"id": "chatcmpl-providertest", "object": "chat.completion.chunk",
			"created": created, "model": model, "system_fingerprint": "fp_test",
			"choices": choices,
		}
		if usage != nil {
			c["usage"] = usage
		} else {
			c["usage"] = nil
		}
		return c
	}
	delta := func(d map[string]any, finish any) map[string]any {
		return chunk([]any{map[string]any{"index": 0, "delta": d, "logprobs": nil, "finish_reason": finish}}, nil)
	}
	e.event("", delta(map[string]any{"role": "assistant", "content": ""}, nil))
	calls := 0
	for _, st := range steps {
		switch st.kind {
		case stepText:
			e.event("", delta(map[string]any{"content": st.text}, nil))
		case stepReasoning:
			e.event("", delta(map[string]any{"reasoning_content": st.text}, nil))
		case stepRedacted:
		case stepTool:
			idx := calls
			calls++
			e.event("", delta(map[string]any{"tool_calls": []any{map[string]any{
				"index": idx, "id": st.id, "type": "function",
				"function": map[string]any{"name": st.name, "arguments": ""},
			}}}, nil))
			for _, a := range st.args {
				e.event("", delta(map[string]any{"tool_calls": []any{map[string]any{
					"index": idx, "function": map[string]any{"arguments": a},
				}}}, nil))
			}
		case stepFinish:
			e.event("", delta(map[string]any{}, st.text))
		case stepUsage:
			u := st.usage
			prompt := u.Input + u.CacheRead + u.CacheWrite
			completion := u.Output + u.Reasoning
			details := map[string]any{"cached_tokens": u.CacheRead, "audio_tokens": 0}
			if u.CacheWrite > 0 {
				details["cache_write_tokens"] = u.CacheWrite
			}
			e.event("", chunk([]any{}, map[string]any{
				"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
				"prompt_tokens_details":     details,
				"completion_tokens_details": map[string]any{"reasoning_tokens": u.Reasoning, "audio_tokens": 0},
			}))
		case stepError:
			typ := "server_error"
			if st.status == http.StatusTooManyRequests {
				typ = "rate_limit_exceeded"
			}
			e.event("", map[string]any{"error": map[string]any{
				"message": st.message, "type": typ, "param": nil, "code": nil}})
			return
		case stepMalformed:
			e.event("", st.text)
		default:
			if !e.pause(st) {
				return
			}
		}
	}
	e.event("", "[DONE]")
}

// streamAnthropic renders steps as Messages stream events: message_start
// (with the input usage), a content block per run of text, per thinking
// run (closed by its signature) and per tool call (input_json_delta
// pieces), then message_delta with the stop reason and output usage, and
// message_stop.
func streamAnthropic(e *emitter, model string, steps []Step) {
	var usage Usage
	for _, st := range steps {
		if st.kind == stepUsage {
			usage = st.usage
		}
	}
	e.event("message_start", map[string]any{"type": "message_start", "message": map[string]any{
		"id": "msg_providertest", "type": "message", "role": "assistant", "model": model,
		"content": []any{}, "stop_reason": nil, "stop_sequence": nil,
		"usage": map[string]any{
			"input_tokens": usage.Input, "cache_creation_input_tokens": usage.CacheWrite,
			"cache_read_input_tokens": usage.CacheRead, "output_tokens": 1,
		},
	}})
	e.event("ping", map[string]any{"type": "ping"})

	index := -1
	open := stepKind(-1)
	closeBlock := func() {
		if open < 0 {
			return
		}
		if open == stepReasoning {
			e.event("content_block_delta", map[string]any{"type": "content_block_delta", "index": index,
				"delta": map[string]any{"type": "signature_delta", "signature": "sig-" + itoa(index)}})
		}
		e.event("content_block_stop", map[string]any{"type": "content_block_stop", "index": index})
		open = -1
	}
	startBlock := func(kind stepKind, block map[string]any) {
		closeBlock()
		index++
		open = kind
		e.event("content_block_start", map[string]any{"type": "content_block_start", "index": index, "content_block": block})
	}
	for _, st := range steps {
		switch st.kind {
		case stepText:
			if open != stepText {
				startBlock(stepText, map[string]any{"type": "text", "text": ""})
			}
			e.event("content_block_delta", map[string]any{"type": "content_block_delta", "index": index,
				"delta": map[string]any{"type": "text_delta", "text": st.text}})
		case stepReasoning:
			if open != stepReasoning {
				startBlock(stepReasoning, map[string]any{"type": "thinking", "thinking": "", "signature": ""})
			}
			e.event("content_block_delta", map[string]any{"type": "content_block_delta", "index": index,
				"delta": map[string]any{"type": "thinking_delta", "thinking": st.text}})
		case stepRedacted:
			startBlock(stepRedacted, map[string]any{"type": "redacted_thinking", "data": st.text})
			closeBlock()
		case stepTool:
			startBlock(stepTool, map[string]any{"type": "tool_use", "id": st.id, "name": st.name, "input": map[string]any{}})
			for _, a := range st.args {
				e.event("content_block_delta", map[string]any{"type": "content_block_delta", "index": index,
					"delta": map[string]any{"type": "input_json_delta", "partial_json": a}})
			}
			closeBlock()
		case stepUsage:
			// Reported in message_start and message_delta.
		case stepFinish:
			closeBlock()
			u := map[string]any{"output_tokens": usage.Output + usage.Reasoning}
			if usage.Reasoning > 0 {
				u["output_tokens_details"] = map[string]any{"thinking_tokens": usage.Reasoning}
			}
			e.event("message_delta", map[string]any{"type": "message_delta",
				"delta": map[string]any{"stop_reason": anthropicStop(st.text), "stop_sequence": nil}, "usage": u})
			e.event("message_stop", map[string]any{"type": "message_stop"})
		case stepError:
			e.event("error", map[string]any{"type": "error", "error": map[string]any{
				"type": anthropicErrorType(st.status), "message": st.message}})
			return
		case stepMalformed:
			e.event("content_block_delta", st.text)
		default:
			if !e.pause(st) {
				return
			}
		}
	}
}

func anthropicStop(reason string) string {
	switch reason {
	case "stop":
		return "end_turn"
	case "tool_calls":
		return "tool_use"
	case "length":
		return "max_tokens"
	}
	return reason
}
