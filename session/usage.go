package session

import (
	"context"

	"github.com/sessiond/sessiond/session/provider"
)

// UsageParams are the params of session/usage.
type UsageParams struct {
	SessionID string `json:"sessionID"`
}

// UsageResult is what a session's turns spent: tokens by kind, cost in US
// dollars, and the same by model ("provider/model").
type UsageResult struct {
	TotalTokens int64                 `json:"totalTokens"`
	Input       int64                 `json:"input"`
	Output      int64                 `json:"output"`
	Reasoning   int64                 `json:"reasoning"`
	CacheRead   int64                 `json:"cacheRead"`
	CacheWrite  int64                 `json:"cacheWrite"`
	TotalCost   float64               `json:"totalCost"`
	ByModel     map[string]ModelUsage `json:"byModel"`
}

// ModelUsage is what one model spent in a session.
type ModelUsage struct {
	TotalTokens int64   `json:"totalTokens"`
	Input       int64   `json:"input"`
	Output      int64   `json:"output"`
	Reasoning   int64   `json:"reasoning"`
	CacheRead   int64   `json:"cacheRead"`
	CacheWrite  int64   `json:"cacheWrite"`
	Cost        float64 `json:"cost"`
}

// Usage reports what a session's agent turns spent. Every model call is
// counted, aborted turns' included; messages a revert moved into a fork
// stay counted here, where they were spent.
func (s *Service) Usage(ctx context.Context, p UsageParams) (UsageResult, error) {
	ses, err := s.Get(ctx, p.SessionID)
	if err != nil {
		return UsageResult{}, err
	}
	u := ses.Usage
	out := UsageResult{
		TotalTokens: u.Input + u.Output + u.Reasoning + u.CacheRead + u.CacheWrite,
		Input:       u.Input, Output: u.Output, Reasoning: u.Reasoning,
		CacheRead: u.CacheRead, CacheWrite: u.CacheWrite, TotalCost: u.Cost,
		ByModel: map[string]ModelUsage{},
	}
	for model, m := range ses.UsageByModel {
		out.ByModel[model] = ModelUsage{
			TotalTokens: m.Input + m.Output + m.Reasoning + m.CacheRead + m.CacheWrite,
			Input:       m.Input, Output: m.Output, Reasoning: m.Reasoning,
			CacheRead: m.CacheRead, CacheWrite: m.CacheWrite, Cost: m.Cost,
		}
	}
	return out, nil
}

// addUsage adds one model call's tokens and cost to a session's totals.
func addUsage(ses *Session, model string, u provider.Usage, cost float64) {
	add := func(t *Usage) {
		t.Input += u.Input
		t.Output += u.Output
		t.Reasoning += u.Reasoning
		t.CacheRead += u.CacheRead
		t.CacheWrite += u.CacheWrite
		t.Cost += cost
	}
	add(&ses.Usage)
	if ses.UsageByModel == nil {
		ses.UsageByModel = map[string]Usage{}
	}
	m := ses.UsageByModel[model]
	add(&m)
	ses.UsageByModel[model] = m
}
