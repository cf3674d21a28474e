package provider

import (
	"sort"
	"strings"
)

// Prices are US dollars per million tokens.
type Prices struct {
	Input      float64 `json:"input"`
	Output     float64 `json:"output"`
	CacheRead  float64 `json:"cacheRead"`
	CacheWrite float64 `json:"cacheWrite"`
}

// ModelInfo is what the runtime needs to know of a model: how much fits
// (compaction), what it costs (accounting) and whether it can reason.
type ModelInfo struct {
	ID            string `json:"id"`
	ContextWindow int64  `json:"contextWindow"`
	MaxOutput     int64  `json:"maxOutput"`
	Price         Prices `json:"price"`
	// Reasoning says the model takes a reasoning effort (OpenAI
	// reasoning_effort, Anthropic extended thinking).
	Reasoning bool `json:"reasoning"`
	// AdaptiveThinking says an Anthropic model wants thinking
	// {type: adaptive} with output_config.effort instead of a token budget.
	AdaptiveThinking bool `json:"adaptiveThinking,omitempty"`
	// Known is false when neither the built-in table nor the config knew
	// the model and the conservative defaults below apply.
	Known bool `json:"known"`
}

// Defaults for models nobody described: small enough that compaction
// starts early rather than the provider refusing an oversized context.
const (
	DefaultContextWindow = 32_768
	DefaultMaxOutput     = 8_192
)

// Cost prices usage in US dollars.
func Cost(m ModelInfo, u Usage) float64 {
	p := m.Price
	return (float64(u.Input)*p.Input +
		float64(u.Output+u.Reasoning)*p.Output +
		float64(u.CacheRead)*p.CacheRead +
		float64(u.CacheWrite)*p.CacheWrite) / 1e6
}

// builtinModels are common models as their makers list them. Config can
// override or add entries per provider (ProviderConfig.Models); a dated
// snapshot ("claude-sonnet-4-5-20250929") finds its family by prefix.
func builtinModels() []ModelInfo {
	return []ModelInfo{
		// OpenAI
		{ID: "gpt-4o", ContextWindow: 128_000, MaxOutput: 16_384, Price: Prices{Input: 2.5, Output: 10, CacheRead: 1.25}},
		{ID: "gpt-4o-mini", ContextWindow: 128_000, MaxOutput: 16_384, Price: Prices{Input: 0.15, Output: 0.6, CacheRead: 0.075}},
		{ID: "gpt-4.1", ContextWindow: 1_047_576, MaxOutput: 32_768, Price: Prices{Input: 2, Output: 8, CacheRead: 0.5}},
		{ID: "gpt-4.1-mini", ContextWindow: 1_047_576, MaxOutput: 32_768, Price: Prices{Input: 0.4, Output: 1.6, CacheRead: 0.1}},
		{ID: "gpt-4.1-nano", ContextWindow: 1_047_576, MaxOutput: 32_768, Price: Prices{Input: 0.1, Output: 0.4, CacheRead: 0.025}},
		{ID: "gpt-5", ContextWindow: 400_000, MaxOutput: 128_000, Price: Prices{Input: 1.25, Output: 10, CacheRead: 0.125}, Reasoning: true},
		{ID: "gpt-5-mini", ContextWindow: 400_000, MaxOutput: 128_000, Price: Prices{Input: 0.25, Output: 2, CacheRead: 0.025}, Reasoning: true},
		{ID: "gpt-5-nano", ContextWindow: 400_000, MaxOutput: 128_000, Price: Prices{Input: 0.05, Output: 0.4, CacheRead: 0.005}, Reasoning: true},
		{ID: "o3", ContextWindow: 200_000, MaxOutput: 100_000, Price: Prices{Input: 2, Output: 8, CacheRead: 0.5}, Reasoning: true},
		{ID: "o3-mini", ContextWindow: 200_000, MaxOutput: 100_000, Price: Prices{Input: 1.1, Output: 4.4, CacheRead: 0.55}, Reasoning: true},
		{ID: "o4-mini", ContextWindow: 200_000, MaxOutput: 100_000, Price: Prices{Input: 1.1, Output: 4.4, CacheRead: 0.275}, Reasoning: true},
		// Anthropic
		{ID: "claude-opus-4-6", ContextWindow: 200_000, MaxOutput: 128_000, Price: Prices{Input: 5, Output: 25, CacheRead: 0.5, CacheWrite: 6.25}, Reasoning: true, AdaptiveThinking: true},
		{ID: "claude-opus-4-5", ContextWindow: 200_000, MaxOutput: 64_000, Price: Prices{Input: 5, Output: 25, CacheRead: 0.5, CacheWrite: 6.25}, Reasoning: true},
		{ID: "claude-opus-4-1", ContextWindow: 200_000, MaxOutput: 32_000, Price: Prices{Input: 15, Output: 75, CacheRead: 1.5, CacheWrite: 18.75}, Reasoning: true},
		{ID: "claude-opus-4", ContextWindow: 200_000, MaxOutput: 32_000, Price: Prices{Input: 15, Output: 75, CacheRead: 1.5, CacheWrite: 18.75}, Reasoning: true},
		{ID: "claude-sonnet-4-5", ContextWindow: 200_000, MaxOutput: 64_000, Price: Prices{Input: 3, Output: 15, CacheRead: 0.3, CacheWrite: 3.75}, Reasoning: true},
		{ID: "claude-sonnet-4", ContextWindow: 200_000, MaxOutput: 64_000, Price: Prices{Input: 3, Output: 15, CacheRead: 0.3, CacheWrite: 3.75}, Reasoning: true},
		{ID: "claude-3-7-sonnet", ContextWindow: 200_000, MaxOutput: 64_000, Price: Prices{Input: 3, Output: 15, CacheRead: 0.3, CacheWrite: 3.75}, Reasoning: true},
		{ID: "claude-haiku-4-5", ContextWindow: 200_000, MaxOutput: 64_000, Price: Prices{Input: 1, Output: 5, CacheRead: 0.1, CacheWrite: 1.25}, Reasoning: true},
		{ID: "claude-3-5-haiku", ContextWindow: 200_000, MaxOutput: 8_192, Price: Prices{Input: 0.8, Output: 4, CacheRead: 0.08, CacheWrite: 1}},
	}
}

// ModelTable looks models up. It is immutable once built, so one table
// can serve every session.
type ModelTable struct {
	byID map[string]ModelInfo
	ids  []string // longest first, for prefix matches
}

// NewModelTable returns the built-in table with extra entries added or
// replacing built-in ones.
func NewModelTable(extra ...ModelInfo) *ModelTable {
	t := &ModelTable{byID: make(map[string]ModelInfo, len(extra)+32)}
	for _, list := range [][]ModelInfo{builtinModels(), extra} {
		for _, m := range list {
			m.Known = true
			t.byID[m.ID] = m
		}
	}
	for id := range t.byID {
		t.ids = append(t.ids, id)
	}
	sort.Slice(t.ids, func(i, j int) bool {
		if len(t.ids[i]) != len(t.ids[j]) {
			return len(t.ids[i]) > len(t.ids[j])
		}
		return t.ids[i] < t.ids[j]
	})
	return t
}

// Lookup finds a model by exact ID, then without a vendor prefix
// ("openai/gpt-4o" on OpenRouter), then by the longest known ID it
// extends with "-" or "@" (dated snapshots). Unknown models get the
// conservative defaults with Known false.
func (t *ModelTable) Lookup(id string) ModelInfo {
	if m, ok := t.match(id); ok {
		m.ID = id
		return m
	}
	if i := strings.LastIndexByte(id, '/'); i >= 0 {
		if m, ok := t.match(id[i+1:]); ok {
			m.ID = id
			return m
		}
	}
	return ModelInfo{ID: id, ContextWindow: DefaultContextWindow, MaxOutput: DefaultMaxOutput}
}

func (t *ModelTable) match(id string) (ModelInfo, bool) {
	if m, ok := t.byID[id]; ok {
		return m, true
	}
	for _, k := range t.ids {
		if len(id) > len(k) && strings.HasPrefix(id, k) && (id[len(k)] == '-' || id[len(k)] == '@') {
			return t.byID[k], true
		}
	}
	return ModelInfo{}, false
}
