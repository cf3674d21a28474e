// Package builtin links the provider implementations into a Registry, so
// callers need not import each one.
package builtin

import (
	"github.com/sessiond/sessiond/session/provider"
	"github.com/sessiond/sessiond/session/provider/anthropic"
	"github.com/sessiond/sessiond/session/provider/openai"
)

// Factories are the built-in implementations by provider type.
func Factories() map[string]provider.Factory {
	return map[string]provider.Factory{
		provider.TypeOpenAI:    openai.Factory,
		provider.TypeAnthropic: anthropic.Factory,
	}
}

// NewRegistry is provider.NewRegistry with the built-in factories.
func NewRegistry(cfg *provider.Config, opts provider.RegistryOptions) *provider.Registry {
	if opts.Factories == nil {
		opts.Factories = Factories()
	}
	return provider.NewRegistry(cfg, opts)
}
