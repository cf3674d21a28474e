package main

import (
	"slices"
	"testing"

	"github.com/sessiond/sessiond/rpc"
)

// TestNoProviderEnv: the variables a NoProvider error says would fix it,
// from data.env, or from the message of a daemon too old to send it.
func TestNoProviderEnv(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  *rpc.Error
		want []string
	}{
		{"data.env", rpc.NewError(rpc.CodeNoProvider, "no model provider is configured: set ANTHROPIC_API_KEY or OPENAI_API_KEY").
			With("env", []any{"OPENAI_API_KEY", "OPENAI_BASE_URL"}), []string{"OPENAI_API_KEY", "OPENAI_BASE_URL"}},
		{"data.env empty: nothing", rpc.NewError(rpc.CodeNoProvider, "set OPENAI_API_KEY").With("env", []any{}), nil},
		{"older daemon: the keys it names", rpc.NewError(rpc.CodeNoProvider,
			"no model provider is configured: set ANTHROPIC_API_KEY or OPENAI_API_KEY (for a local OpenAI-compatible server such as Ollama set OPENAI_BASE_URL=http://localhost:11434/v1 and SESSIOND_MODEL=openai/<model>)"),
			[]string{"ANTHROPIC_API_KEY", "OPENAI_API_KEY", "OPENAI_BASE_URL"}},
		{"older daemon: a variable of the config", rpc.NewError(rpc.CodeNoProvider,
			`provider "openrouter" has no API key: set OPENROUTER_API_KEY, or "apiKey" for it under "providers" in /home/me/.config/sessiond/config.json`),
			[]string{"OPENROUTER_API_KEY"}},
		{"older daemon: no variable", rpc.NewError(rpc.CodeNoProvider, `provider "ollama" is not configured: add it under "providers"`), nil},
	} {
		if got := noProviderEnv(tt.err); !slices.Equal(got, tt.want) {
			t.Errorf("%s: noProviderEnv = %q, want %q", tt.name, got, tt.want)
		}
	}
}
