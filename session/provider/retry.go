package provider

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"time"
)

// RetryPolicy says how often and how long to retry a provider call that
// failed before it produced any output. The zero value is usable.
type RetryPolicy struct {
	// MaxAttempts is the number of calls, the first included; 0 means 5.
	MaxAttempts int
	// BaseDelay is the first backoff; it doubles per attempt. 0 means 2 s.
	BaseDelay time.Duration
	// MaxDelay caps the backoff; 0 means 30 s.
	MaxDelay time.Duration
	// MaxRetryAfter is the longest Retry-After honoured; a provider that
	// asks for more fails at once rather than holding the turn. 0 means
	// 5 minutes.
	MaxRetryAfter time.Duration
	// Sleep waits d or until ctx ends; nil uses a timer. Tests inject it.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now is the clock for RetryAttempt.Next; nil means time.Now.
	Now func() time.Time
	// Jitter returns a number in [0, 1) that spreads the backoff; nil
	// uses math/rand/v2.
	Jitter func() float64
	// Logger gets a line per retry; nil discards.
	Logger *slog.Logger
}

// RetryAttempt is reported before each retry, so the session can show
// status retry with the attempt and when it happens.
type RetryAttempt struct {
	Attempt int       // the attempt about to be made: 2, 3, ...
	Next    time.Time // when it will be made
	Delay   time.Duration
	Err     *ProviderError // why the previous attempt failed
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 5
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = 2 * time.Second
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = 30 * time.Second
	}
	if p.MaxRetryAfter <= 0 {
		p.MaxRetryAfter = 5 * time.Minute
	}
	if p.Sleep == nil {
		p.Sleep = sleepCtx
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	if p.Jitter == nil {
		p.Jitter = rand.Float64
	}
	if p.Logger == nil {
		p.Logger = slog.New(slog.DiscardHandler)
	}
	return p
}

// backoff is the wait before attempt n+1 after attempt n failed: the
// provider's Retry-After if it gave one, else exponential backoff with
// jitter in [d/2, d).
func (p RetryPolicy) backoff(n int, perr *ProviderError) time.Duration {
	if perr.RetryAfter > 0 {
		return perr.RetryAfter
	}
	d := p.BaseDelay
	for i := 1; i < n && d < p.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, p.MaxDelay)
	return d/2 + time.Duration(p.Jitter()*float64(d/2))
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// StreamWithRetry calls p.Stream and retries failures that happen before
// any event was returned and that the provider classed as retryable: 429,
// 5xx, connections reset or cut short and streams that break before their
// first event (a refused connection is final: see wire.Error). onRetry (may be nil) hears of each
// retry before its wait. Once an event was returned, a failure is returned
// as is: the caller has already shown and stored the output.
//
// The final error is the last *ProviderError with Attempts set, or
// ctx.Err() when ctx ended.
func StreamWithRetry(ctx context.Context, p Provider, req Request, policy RetryPolicy, onRetry func(RetryAttempt)) (Stream, error) {
	r := &retryStream{ctx: ctx, p: p, req: req, policy: policy.withDefaults(), onRetry: onRetry}
	if err := r.connect(nil); err != nil {
		return nil, err
	}
	return r, nil
}

type retryStream struct {
	ctx     context.Context
	p       Provider
	req     Request
	policy  RetryPolicy
	onRetry func(RetryAttempt)

	cur      Stream
	attempts int
	started  bool // an event went to the caller: no more retries
	err      error
}

// connect opens a stream, retrying while allowed. prev is the failure
// that prompted it, nil for the first call.
func (r *retryStream) connect(prev error) error {
	for {
		if prev != nil {
			if err := r.wait(prev); err != nil {
				return err
			}
		}
		r.attempts++
		s, err := r.p.Stream(r.ctx, r.req)
		if err == nil {
			r.cur = s
			return nil
		}
		prev = err
	}
}

// wait decides whether err may be retried and sleeps until then. It
// returns the error to give up with, or nil to go on.
func (r *retryStream) wait(err error) error {
	if ctxErr := r.ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	var perr *ProviderError
	if !errors.As(err, &perr) {
		return err
	}
	perr.Attempts = r.attempts
	if !perr.Retryable || r.attempts >= r.policy.MaxAttempts || perr.RetryAfter > r.policy.MaxRetryAfter {
		return perr
	}
	d := r.policy.backoff(r.attempts, perr)
	at := RetryAttempt{Attempt: r.attempts + 1, Next: r.policy.Now().Add(d), Delay: d, Err: perr}
	r.policy.Logger.Info("provider call failed, retrying",
		"provider", perr.Provider, "model", perr.Model, "status", perr.Status,
		"attempt", at.Attempt, "delay", d, "error", perr.Message)
	if r.onRetry != nil {
		r.onRetry(at)
	}
	if serr := r.policy.Sleep(r.ctx, d); serr != nil {
		if ctxErr := r.ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		return serr
	}
	return nil
}

func (r *retryStream) Recv() (Event, error) {
	for {
		if r.err != nil {
			return nil, r.err
		}
		ev, err := r.cur.Recv()
		if err == nil {
			r.started = true
			return ev, nil
		}
		var perr *ProviderError
		if r.started || !errors.As(err, &perr) {
			if errors.As(err, &perr) {
				perr.Attempts = r.attempts
			}
			r.err = err
			return nil, err
		}
		_ = r.cur.Close()
		if cerr := r.connect(err); cerr != nil {
			r.err = cerr
			return nil, cerr
		}
	}
}

func (r *retryStream) Close() error {
	if r.cur == nil {
		return nil
	}
	return r.cur.Close()
}
