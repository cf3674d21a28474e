package provider

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
)

// Factory builds a Provider of one type from its resolved settings.
type Factory func(s Settings, opts FactoryOptions) (Provider, error)

// FactoryOptions are what every provider shares.
type FactoryOptions struct {
	// HTTPClient carries the requests; nil means a default client.
	HTTPClient *http.Client
	Logger     *slog.Logger
}

// RegistryOptions configure a Registry.
type RegistryOptions struct {
	// Factories by provider type (TypeOpenAI, TypeAnthropic). The builtin
	// package fills them with the real implementations.
	Factories map[string]Factory
	// Models is the model table; nil means NewModelTable().
	Models     *ModelTable
	HTTPClient *http.Client
	Logger     *slog.Logger
}

// Registry turns a ModelRef into a ready Provider and the model's info.
// It holds no connections of its own: building a Provider is cheap, so a
// Registry may be made per turn from freshly loaded config.
type Registry struct {
	cfg  *Config
	opts RegistryOptions
}

// NewRegistry returns a Registry over cfg.
func NewRegistry(cfg *Config, opts RegistryOptions) *Registry {
	if opts.Models == nil {
		opts.Models = NewModelTable()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Registry{cfg: cfg, opts: opts}
}

// Config is the configuration the Registry resolves against.
func (r *Registry) Config() *Config { return r.cfg }

// Resolved is a provider ready to call and the model to call it with.
type Resolved struct {
	Ref      ModelRef
	Provider Provider
	Model    ModelInfo
}

// Resolve picks the provider and model for ref; a zero ref means the
// configured default (project file, user file, SESSIOND_MODEL, then the
// flagship model of the only official provider with a key). When nothing
// fits it returns a *NoProviderError saying what to set.
func (r *Registry) Resolve(ref ModelRef) (Resolved, error) {
	if ref.IsZero() {
		def, err := r.cfg.defaultRef()
		if err != nil {
			return Resolved{}, err
		}
		ref = def
	} else if ref.ProviderID == "" || ref.ModelID == "" {
		return Resolved{}, &NoProviderError{Ref: ref, Msg: fmt.Sprintf(
			"model %q needs both providerID and modelID (for example anthropic/claude-sonnet-4-5)", ref.String())}
	}
	s, err := r.cfg.settings(ref.ProviderID, ref)
	if err != nil {
		return Resolved{}, err
	}
	f := r.opts.Factories[s.Type]
	if f == nil {
		return Resolved{}, fmt.Errorf("provider %q: no implementation of type %q is linked in (use the builtin package)", s.ID, s.Type)
	}
	p, err := f(s, FactoryOptions{HTTPClient: r.opts.HTTPClient, Logger: r.opts.Logger})
	if err != nil {
		return Resolved{}, &NoProviderError{Ref: ref, Msg: fmt.Sprintf(
			"provider %q: %v: fix it under \"providers\" in %s", s.ID, err, r.cfg.files())}
	}
	return Resolved{Ref: ref, Provider: p, Model: r.ModelInfo(ref)}, nil
}

// ModelInfo is what the table and config say of a model, for context
// budgets and costs without building a provider.
func (r *Registry) ModelInfo(ref ModelRef) ModelInfo {
	m := r.opts.Models.Lookup(ref.ModelID)
	if mc, ok := r.cfg.Providers[ref.ProviderID].Models[ref.ModelID]; ok {
		m = mc.apply(m)
	}
	return m
}

// Prepared is what every implementation needs from Settings and
// FactoryOptions before it builds its SDK client.
type Prepared struct {
	// Base is the settings' base URL, or the provider's default; URL is
	// it parsed.
	Base   string
	URL    *url.URL
	Client *http.Client
	// Log is tagged with the provider's ID.
	Log *slog.Logger
}

// Prepare checks s's base URL (def when unset; example shows a good one
// in the error) and fills in the default client and logger, so that each
// implementation validates its settings the same way.
func Prepare(s Settings, opts FactoryOptions, def, example string) (Prepared, error) {
	base := s.BaseURL
	if base == "" {
		base = def
	}
	u, err := url.Parse(base)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return Prepared{}, fmt.Errorf("base URL %q is not an absolute URL (for example %s)", base, example)
	}
	p := Prepared{Base: base, URL: u, Client: opts.HTTPClient, Log: opts.Logger}
	if p.Client == nil {
		p.Client = &http.Client{}
	}
	if p.Log == nil {
		p.Log = slog.New(slog.DiscardHandler)
	}
	p.Log = p.Log.With("provider", s.ID)
	return p, nil
}
