package provider_test

import (
	"math"
	"testing"

	"github.com/sessiond/sessiond/session/provider"
)

func TestModelLookup(t *testing.T) {
	t.Parallel()
	table := provider.NewModelTable(provider.ModelInfo{ID: "my-model", ContextWindow: 9000, MaxOutput: 900})
	cases := []struct {
		id        string
		window    int64
		input     float64
		reasoning bool
		known     bool
	}{
		{"gpt-4o", 128_000, 2.5, false, true},
		{"gpt-4o-mini-2024-07-18", 128_000, 0.15, false, true}, // longest prefix, not gpt-4o
		{"claude-sonnet-4-5-20250929", 200_000, 3, true, true},
		{"claude-opus-4-1-20250805", 200_000, 15, true, true},
		{"openai/gpt-4.1", 1_047_576, 2, false, true}, // OpenRouter's vendor prefix
		{"o3", 200_000, 2, true, true},
		{"gpt-4", provider.DefaultContextWindow, 0, false, false}, // not gpt-4o: no "-" boundary
		{"llama3.2:3b", provider.DefaultContextWindow, 0, false, false},
		{"my-model", 9000, 0, false, true},
	}
	for _, c := range cases {
		m := table.Lookup(c.id)
		if m.ID != c.id || m.ContextWindow != c.window || m.Price.Input != c.input || m.Reasoning != c.reasoning || m.Known != c.known {
			t.Errorf("Lookup(%q) = %+v", c.id, m)
		}
	}
	if m := table.Lookup("unknown"); m.MaxOutput != provider.DefaultMaxOutput {
		t.Errorf("unknown model max output %d", m.MaxOutput)
	}
}

func TestCost(t *testing.T) {
	t.Parallel()
	m := provider.ModelInfo{Price: provider.Prices{Input: 3, Output: 15, CacheRead: 0.3, CacheWrite: 3.75}}
	u := provider.Usage{Input: 1_000_000, Output: 100_000, Reasoning: 100_000, CacheRead: 2_000_000, CacheWrite: 400_000}
	want := 3 + 0.2*15 + 2*0.3 + 0.4*3.75
	if got := provider.Cost(m, u); math.Abs(got-want) > 1e-9 {
		t.Fatalf("cost %v, want %v", got, want)
	}
	if got := provider.Cost(provider.NewModelTable().Lookup("llama3.2"), u); got != 0 {
		t.Fatalf("unknown model cost %v, want 0", got)
	}
	if tot := u.Add(u).Total(); tot != 2*u.Total() || u.Total() != 3_600_000 {
		t.Fatalf("totals %d %d", u.Total(), tot)
	}
}
