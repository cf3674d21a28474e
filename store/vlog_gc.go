package store

// Value-log garbage collection. Values over the value threshold (large
// blobs, tool outputs) live in the value log; deleting their keys frees
// nothing until Badger rewrites the log files that hold them, which it
// does one file per RunValueLogGC call, for files at least half garbage.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// vlogDiscardRatio: a value log file is rewritten when at least this
// share of it is garbage, the ratio Badger's documentation recommends.
const vlogDiscardRatio = 0.5

// maxVlogRewrites bounds one run, so a store being written as fast as it
// is collected cannot keep the loop going for ever.
const maxVlogRewrites = 1000

// RunValueLogGC rewrites value log files that are mostly garbage, one
// after another, until Badger finds none left, and returns how many it
// rewrote. An in-memory store, or a GC already running elsewhere, is not
// an error: it returns 0.
func (db *DB) RunValueLogGC() (int, error) { return db.runValueLogGC(context.Background()) }

func (db *DB) runValueLogGC(ctx context.Context) (int, error) {
	n := 0
	for n < maxVlogRewrites {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		err := db.bdb.RunValueLogGC(vlogDiscardRatio)
		switch {
		case err == nil:
			n++
		case errors.Is(err, badger.ErrNoRewrite),
			errors.Is(err, badger.ErrRejected),
			errors.Is(err, badger.ErrGCInMemoryMode):
			return n, nil
		default:
			return n, fmt.Errorf("value log GC after %d rewrites: %w", n, err)
		}
	}
	return n, nil
}

// StartValueLogGC runs RunValueLogGC every interval (10 minutes if not
// positive) in a goroutine until ctx ends or stop is called. stop waits for
// a run in progress to finish: call it before closing db. Errors go to
// logger (nil discards them) and do not end the loop.
func StartValueLogGC(ctx context.Context, db *DB, interval time.Duration, logger *slog.Logger) (stop func()) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if interval <= 0 {
		interval = 10 * time.Minute
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			start := time.Now()
			n, err := db.runValueLogGC(ctx)
			switch {
			case err != nil && ctx.Err() == nil:
				logger.Warn("store: value log GC failed", "rewrites", n, "err", err)
			case n > 0:
				logger.Info("store: value log GC", "rewrites", n, "took", time.Since(start))
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}
