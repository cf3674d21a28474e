package provider

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Provider types: which wire format a provider speaks.
const (
	TypeOpenAI    = "openai"    // Chat Completions: OpenAI, Ollama, vLLM, llama.cpp, LM Studio, OpenRouter
	TypeAnthropic = "anthropic" // Messages
)

// Environment variables read by Load.
const (
	EnvModel            = "SESSIOND_MODEL"
	EnvOpenAIKey        = "OPENAI_API_KEY"
	EnvOpenAIBaseURL    = "OPENAI_BASE_URL"
	EnvAnthropicKey     = "ANTHROPIC_API_KEY"
	EnvAnthropicBaseURL = "ANTHROPIC_BASE_URL"
)

// Default endpoints and models of the implicit providers.
const (
	OpenAIBaseURL         = "https://api.openai.com/v1"
	AnthropicBaseURL      = "https://api.anthropic.com"
	DefaultOpenAIModel    = "gpt-4.1"
	DefaultAnthropicModel = "claude-sonnet-4-5"
)

// ProjectConfigPath is where a workspace keeps its config, relative to
// its root, slash-separated.
const ProjectConfigPath = ".sessiond/config.json"

// File is the shape of a config file (user or project):
//
//	{"model": "anthropic/claude-sonnet-4-5",
//	 "providers": {"ollama": {"type": "openai", "baseURL": "http://localhost:11434/v1",
//	                          "models": {"qwen3:8b": {"contextWindow": 40960, "reasoning": true}}}}}
type File struct {
	// Model is the default model, "provider/model".
	Model     string                    `json:"model,omitempty"`
	Providers map[string]ProviderConfig `json:"providers,omitempty"`
	// Shell adjusts what commands see (shellenv.go).
	Shell ShellConfig `json:"shell,omitzero"`
}

// ProviderConfig describes one provider. Every field is optional in a
// file; a project file overrides the user file field by field.
type ProviderConfig struct {
	// Type is TypeOpenAI or TypeAnthropic; empty means anthropic for the
	// provider named "anthropic" and openai for any other.
	Type    string `json:"type,omitempty"`
	BaseURL string `json:"baseURL,omitempty"`
	// APIKeyEnv names the environment variable holding the key; the
	// providers "openai" and "anthropic" default to OPENAI_API_KEY and
	// ANTHROPIC_API_KEY.
	APIKeyEnv string `json:"apiKeyEnv,omitempty"`
	// APIKey is the key itself; prefer APIKeyEnv.
	APIKey  string                 `json:"apiKey,omitempty"`
	Headers map[string]string      `json:"headers,omitempty"`
	Models  map[string]ModelConfig `json:"models,omitempty"`
}

// String, GoString and LogValue keep a literal key and the header values
// (which may carry tokens) out of logs and messages.
func (p ProviderConfig) String() string {
	return fmt.Sprintf("{Type:%s BaseURL:%s APIKeyEnv:%s APIKey:%s Headers:%d Models:%d}",
		p.Type, p.BaseURL, p.APIKeyEnv, redact(p.APIKey), len(p.Headers), len(p.Models))
}

// GoString is String, for %#v.
func (p ProviderConfig) GoString() string { return p.String() }

// LogValue is for log/slog.
func (p ProviderConfig) LogValue() slog.Value {
	return slog.GroupValue(slog.String("type", p.Type), slog.String("baseURL", p.BaseURL),
		slog.String("apiKeyEnv", p.APIKeyEnv), slog.Bool("apiKey", p.APIKey != ""))
}

// ModelConfig extends or corrects the model table; unset fields keep the
// table's value.
type ModelConfig struct {
	ContextWindow    *int64       `json:"contextWindow,omitempty"`
	MaxOutput        *int64       `json:"maxOutput,omitempty"`
	Price            *PriceConfig `json:"price,omitempty"`
	Reasoning        *bool        `json:"reasoning,omitempty"`
	AdaptiveThinking *bool        `json:"adaptiveThinking,omitempty"`
}

// PriceConfig is Prices with each field optional. Unset cache prices of
// a model the table does not know fall back to the input price.
type PriceConfig struct {
	Input      *float64 `json:"input,omitempty"`
	Output     *float64 `json:"output,omitempty"`
	CacheRead  *float64 `json:"cacheRead,omitempty"`
	CacheWrite *float64 `json:"cacheWrite,omitempty"`
}

// Config is the merged configuration of one workspace: project file over
// user file over environment.
type Config struct {
	// Model is the default model: the project's, else the user's, else
	// SESSIOND_MODEL.
	Model string
	// ModelSource says where Model came from (a path or "SESSIOND_MODEL").
	ModelSource string
	// Providers are the configured providers, implicit ones from the
	// environment included.
	Providers map[string]ProviderConfig
	// UserPath and ProjectPath are the files that were looked for (they
	// need not exist); messages name them.
	UserPath    string
	ProjectPath string

	getenv func(string) string
	// By provider ID: a project file set the base URL; the key came from
	// a project file (true) or from the user (false). See checkKeyTarget.
	projectBaseURL map[string]bool
	projectKey     map[string]bool

	// shell.env: the user's passthrough, both files' deny, and the
	// project's passthrough, which is not honoured (see CommandEnv).
	shellPassthrough   []string
	shellDeny          []string
	projectPassthrough []string
}

// LoadOptions says where to look for configuration.
type LoadOptions struct {
	// ProjectDir is the workspace root; "" skips the project file.
	ProjectDir string
	// UserConfigDir replaces os.UserConfigDir() ($XDG_CONFIG_HOME);
	// the user file is <dir>/sessiond/config.json.
	UserConfigDir string
	// Getenv replaces os.Getenv.
	Getenv func(string) string
}

// Load reads the environment, the user file and the project file, and
// merges them. Missing files are fine; a file that does not parse is an
// error naming it.
func Load(opts LoadOptions) (*Config, error) {
	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	c := &Config{
		Providers:      map[string]ProviderConfig{},
		getenv:         getenv,
		projectBaseURL: map[string]bool{},
		projectKey:     map[string]bool{},
	}

	// Environment: the lowest layer.
	if m := strings.TrimSpace(getenv(EnvModel)); m != "" {
		c.Model, c.ModelSource = m, EnvModel
	}
	if getenv(EnvOpenAIKey) != "" || getenv(EnvOpenAIBaseURL) != "" {
		c.Providers[TypeOpenAI] = ProviderConfig{Type: TypeOpenAI}
	}
	if getenv(EnvAnthropicKey) != "" || getenv(EnvAnthropicBaseURL) != "" {
		c.Providers[TypeAnthropic] = ProviderConfig{Type: TypeAnthropic}
	}

	dir := opts.UserConfigDir
	if dir == "" {
		d, err := os.UserConfigDir()
		if err == nil {
			dir = d
		}
	}
	if dir != "" {
		c.UserPath = filepath.Join(dir, "sessiond", "config.json")
		if err := c.mergeFile(c.UserPath, false); err != nil {
			return nil, err
		}
	}
	if opts.ProjectDir != "" {
		c.ProjectPath = filepath.Join(opts.ProjectDir, filepath.FromSlash(ProjectConfigPath))
		if err := c.mergeFile(c.ProjectPath, true); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (c *Config) mergeFile(path string, project bool) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read config %s: %w", path, err)
	}
	// Other parts of sessiond keep their own keys in the same file, so
	// only the keys read here are checked strictly.
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return fmt.Errorf("parse config %s: %w (fix the file or remove it)", path, err)
	}
	var f File
	// "shell" may gain keys read elsewhere: only its "env" is read here.
	var shell map[string]json.RawMessage
	if raw, ok := top["shell"]; ok {
		if err := json.Unmarshal(raw, &shell); err != nil {
			return fmt.Errorf("parse config %s: %q: %w (fix the file or remove it)", path, "shell", err)
		}
	}
	for key, dst := range map[string]any{"model": &f.Model, "providers": &f.Providers, "shell.env": &f.Shell.Env} {
		raw, ok := top[key]
		if key == "shell.env" {
			raw, ok = shell["env"]
		}
		if !ok {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(dst); err != nil {
			return fmt.Errorf("parse config %s: %q: %w (fix the file or remove it)", path, key, err)
		}
	}
	if err := checkEnvPatterns(path, "passthrough", f.Shell.Env.Passthrough); err != nil {
		return err
	}
	if err := checkEnvPatterns(path, "deny", f.Shell.Env.Deny); err != nil {
		return err
	}
	c.shellDeny = append(c.shellDeny, f.Shell.Env.Deny...)
	if project {
		c.projectPassthrough = append(c.projectPassthrough, f.Shell.Env.Passthrough...)
	} else {
		c.shellPassthrough = append(c.shellPassthrough, f.Shell.Env.Passthrough...)
	}
	if f.Model != "" {
		if _, err := ParseModelRef(f.Model); err != nil {
			return fmt.Errorf("config %s: %w", path, err)
		}
		c.Model, c.ModelSource = f.Model, path
	}
	for id, p := range f.Providers {
		if p.Type != "" && p.Type != TypeOpenAI && p.Type != TypeAnthropic {
			return fmt.Errorf("config %s: provider %q has type %q: use %q or %q", path, id, p.Type, TypeOpenAI, TypeAnthropic)
		}
		if project {
			c.projectBaseURL[id] = c.projectBaseURL[id] || p.BaseURL != ""
			if p.APIKey != "" {
				c.projectKey[id] = true
			} else if p.APIKeyEnv != "" {
				c.projectKey[id] = false
			}
		} else if p.APIKey != "" || p.APIKeyEnv != "" {
			c.projectKey[id] = false
		}
		c.Providers[id] = mergeProvider(c.Providers[id], p)
	}
	return nil
}

func mergeProvider(dst, src ProviderConfig) ProviderConfig {
	if src.Type != "" {
		dst.Type = src.Type
	}
	if src.BaseURL != "" {
		dst.BaseURL = src.BaseURL
	}
	if src.APIKeyEnv != "" {
		dst.APIKeyEnv, dst.APIKey = src.APIKeyEnv, ""
	}
	if src.APIKey != "" {
		dst.APIKey = src.APIKey
	}
	if len(src.Headers) > 0 {
		h := make(map[string]string, len(dst.Headers)+len(src.Headers))
		for k, v := range dst.Headers {
			h[k] = v
		}
		for k, v := range src.Headers {
			h[k] = v
		}
		dst.Headers = h
	}
	if len(src.Models) > 0 {
		m := make(map[string]ModelConfig, len(dst.Models)+len(src.Models))
		for k, v := range dst.Models {
			m[k] = v
		}
		for k, v := range src.Models {
			m[k] = mergeModel(m[k], v)
		}
		dst.Models = m
	}
	return dst
}

func mergeModel(dst, src ModelConfig) ModelConfig {
	if src.ContextWindow != nil {
		dst.ContextWindow = src.ContextWindow
	}
	if src.MaxOutput != nil {
		dst.MaxOutput = src.MaxOutput
	}
	if src.Reasoning != nil {
		dst.Reasoning = src.Reasoning
	}
	if src.AdaptiveThinking != nil {
		dst.AdaptiveThinking = src.AdaptiveThinking
	}
	if src.Price != nil {
		p := PriceConfig{}
		if dst.Price != nil {
			p = *dst.Price
		}
		if src.Price.Input != nil {
			p.Input = src.Price.Input
		}
		if src.Price.Output != nil {
			p.Output = src.Price.Output
		}
		if src.Price.CacheRead != nil {
			p.CacheRead = src.Price.CacheRead
		}
		if src.Price.CacheWrite != nil {
			p.CacheWrite = src.Price.CacheWrite
		}
		dst.Price = &p
	}
	return dst
}

// apply lays a model's config over what the table said.
func (mc ModelConfig) apply(m ModelInfo) ModelInfo {
	known := m.Known
	if mc.ContextWindow != nil {
		m.ContextWindow = *mc.ContextWindow
	}
	if mc.MaxOutput != nil {
		m.MaxOutput = *mc.MaxOutput
	}
	if mc.Reasoning != nil {
		m.Reasoning = *mc.Reasoning
	}
	if mc.AdaptiveThinking != nil {
		m.AdaptiveThinking = *mc.AdaptiveThinking
	}
	if p := mc.Price; p != nil {
		if p.Input != nil {
			m.Price.Input = *p.Input
		}
		if p.Output != nil {
			m.Price.Output = *p.Output
		}
		if p.CacheRead != nil {
			m.Price.CacheRead = *p.CacheRead
		} else if !known {
			m.Price.CacheRead = m.Price.Input
		}
		if p.CacheWrite != nil {
			m.Price.CacheWrite = *p.CacheWrite
		} else if !known {
			m.Price.CacheWrite = m.Price.Input
		}
	}
	m.Known = true
	return m
}

// ProviderIDs lists the configured providers, sorted.
func (c *Config) ProviderIDs() []string {
	ids := make([]string, 0, len(c.Providers))
	for id := range c.Providers {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

func (c *Config) env(key string) string {
	if c.getenv == nil {
		return os.Getenv(key)
	}
	return c.getenv(key)
}

// unset returns the keys that are empty in the environment, for
// NoProviderError.Env.
func (c *Config) unset(keys ...string) []string {
	var out []string
	for _, k := range keys {
		if k != "" && c.env(k) == "" {
			out = append(out, k)
		}
	}
	return out
}

// typeOf is a provider's wire format.
func typeOf(id string, p ProviderConfig) string {
	if p.Type != "" {
		return p.Type
	}
	if id == TypeAnthropic {
		return TypeAnthropic
	}
	return TypeOpenAI
}

// Settings is a provider's resolved configuration, what a Factory builds
// a Provider from. APIKey is a secret: never log it.
type Settings struct {
	ID      string
	Type    string
	BaseURL string
	APIKey  string
	Headers map[string]string
}

// String, GoString and LogValue keep the key out of logs and messages.
func (s Settings) String() string {
	return fmt.Sprintf("{ID:%s Type:%s BaseURL:%s APIKey:%s Headers:%d}", s.ID, s.Type, s.BaseURL, redact(s.APIKey), len(s.Headers))
}

// GoString is String, for %#v.
func (s Settings) GoString() string { return s.String() }

// LogValue is for log/slog.
func (s Settings) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", s.ID), slog.String("type", s.Type),
		slog.String("baseURL", s.BaseURL), slog.Bool("apiKey", s.APIKey != ""))
}

func redact(key string) string {
	if key == "" {
		return "none"
	}
	return "[redacted]"
}

// settings resolves provider id's endpoint and key, or says what to set.
func (c *Config) settings(id string, ref ModelRef) (Settings, error) {
	p, ok := c.Providers[id]
	if !ok {
		return Settings{}, &NoProviderError{Ref: ref, Msg: c.missingProvider(id), Env: c.providerEnv(id)}
	}
	s := Settings{ID: id, Type: typeOf(id, p), BaseURL: p.BaseURL, APIKey: p.APIKey, Headers: p.Headers}
	keyEnv := p.APIKeyEnv
	official := ""
	switch {
	case id == TypeOpenAI && s.Type == TypeOpenAI:
		if keyEnv == "" {
			keyEnv = EnvOpenAIKey
		}
		if s.BaseURL == "" {
			s.BaseURL = c.env(EnvOpenAIBaseURL)
		}
		official = OpenAIBaseURL
	case id == TypeAnthropic && s.Type == TypeAnthropic:
		if keyEnv == "" {
			keyEnv = EnvAnthropicKey
		}
		if s.BaseURL == "" {
			s.BaseURL = c.env(EnvAnthropicBaseURL)
		}
		official = AnthropicBaseURL
	}
	if s.APIKey == "" && keyEnv != "" {
		s.APIKey = c.env(keyEnv)
	}
	if s.BaseURL == "" {
		if official == "" {
			return Settings{}, &NoProviderError{Ref: ref, Msg: fmt.Sprintf(
				"provider %q has no baseURL: set \"baseURL\" for it under \"providers\" in %s", id, c.files())}
		}
		s.BaseURL = official
	}
	// The official endpoints need a key; a local server (Ollama, vLLM,
	// llama.cpp, LM Studio) at a custom URL usually does not.
	if s.APIKey == "" && (sameURL(s.BaseURL, OpenAIBaseURL) || sameURL(s.BaseURL, AnthropicBaseURL) || p.APIKeyEnv != "") {
		env := keyEnv
		if env == "" {
			env = "the variable named by \"apiKeyEnv\""
		}
		return Settings{}, &NoProviderError{Ref: ref, Env: c.unset(keyEnv), Msg: fmt.Sprintf(
			"provider %q has no API key: set %s, or \"apiKey\" for it under \"providers\" in %s", id, env, c.UserPath)}
	}
	if err := c.checkKeyTarget(id, s, ref); err != nil {
		return Settings{}, err
	}
	return s, nil
}

// checkKeyTarget refuses to send a key the user owns (environment, user
// file) to a base URL that a project file chose: a cloned repository must
// not be able to point ANTHROPIC_API_KEY at its own server.
func (c *Config) checkKeyTarget(id string, s Settings, ref ModelRef) error {
	if !c.projectBaseURL[id] || s.APIKey == "" || c.projectKey[id] {
		return nil
	}
	return &NoProviderError{Ref: ref, Msg: fmt.Sprintf(
		"provider %q: %s sets its baseURL to %s but its API key comes from your environment or user config; "+
			"sessiond will not send your key to a URL a project chose: move \"baseURL\" to %s, or remove it from the project file",
		id, c.ProjectPath, s.BaseURL, c.UserPath)}
}

func sameURL(a, b string) bool {
	return strings.TrimSuffix(a, "/") == strings.TrimSuffix(b, "/")
}

func (c *Config) files() string {
	if c.ProjectPath != "" {
		return c.UserPath + " or " + c.ProjectPath
	}
	return c.UserPath
}

func (c *Config) missingProvider(id string) string {
	switch id {
	case TypeOpenAI:
		return fmt.Sprintf("provider %q is not configured: set %s (or %s for a local OpenAI-compatible server such as Ollama), "+
			"or add %q under \"providers\" in %s", id, EnvOpenAIKey, EnvOpenAIBaseURL, id, c.files())
	case TypeAnthropic:
		return fmt.Sprintf("provider %q is not configured: set %s, or add %q under \"providers\" in %s",
			id, EnvAnthropicKey, id, c.files())
	}
	return fmt.Sprintf("provider %q is not configured: add it under \"providers\" in %s "+
		"(for example {\"providers\": {%q: {\"type\": \"openai\", \"baseURL\": \"http://localhost:11434/v1\"}}})",
		id, c.files(), id)
}

// providerEnv is what would configure provider id from the environment.
func (c *Config) providerEnv(id string) []string {
	switch id {
	case TypeOpenAI:
		return c.unset(EnvOpenAIKey, EnvOpenAIBaseURL)
	case TypeAnthropic:
		return c.unset(EnvAnthropicKey, EnvAnthropicBaseURL)
	}
	return nil
}

// noModelEnv is what would give noModel's case a model.
func (c *Config) noModelEnv() []string {
	if len(c.Providers) == 0 {
		return c.unset(EnvAnthropicKey, EnvOpenAIKey, EnvOpenAIBaseURL, EnvAnthropicBaseURL)
	}
	return c.unset(EnvModel)
}

// noModel explains how to pick a default model.
func (c *Config) noModel() string {
	if len(c.Providers) == 0 {
		return fmt.Sprintf("no model provider is configured: set %s or %s "+
			"(for a local OpenAI-compatible server such as Ollama set %s=http://localhost:11434/v1 and %s=openai/<model>), "+
			"or add a provider to %s", EnvAnthropicKey, EnvOpenAIKey, EnvOpenAIBaseURL, EnvModel, c.files())
	}
	return fmt.Sprintf("no model selected: set %s=provider/model (providers configured: %s), "+
		"or \"model\" in %s, or pass a model with the prompt", EnvModel, strings.Join(c.ProviderIDs(), ", "), c.files())
}

// defaultRef is the model to use when none is asked for.
func (c *Config) defaultRef() (ModelRef, error) {
	if c.Model != "" {
		ref, err := ParseModelRef(c.Model)
		if err != nil {
			return ModelRef{}, &NoProviderError{Msg: fmt.Sprintf("%s: %v", c.ModelSource, err)}
		}
		return ref, nil
	}
	// A key for an official endpoint: its flagship model. A provider that
	// is there but unusable explains itself better than "no model".
	var unusable error
	for _, d := range []struct{ id, base, model string }{
		{TypeAnthropic, AnthropicBaseURL, DefaultAnthropicModel},
		{TypeOpenAI, OpenAIBaseURL, DefaultOpenAIModel},
	} {
		p, ok := c.Providers[d.id]
		if !ok || typeOf(d.id, p) != d.id {
			continue
		}
		s, err := c.settings(d.id, ModelRef{})
		switch {
		case err != nil && unusable == nil:
			unusable = err
		case err == nil && sameURL(s.BaseURL, d.base):
			return ModelRef{ProviderID: d.id, ModelID: d.model}, nil
		}
	}
	if unusable != nil {
		return ModelRef{}, unusable
	}
	return ModelRef{}, &NoProviderError{Msg: c.noModel(), Env: c.noModelEnv()}
}
