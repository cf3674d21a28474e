package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/sessiond/sessiond/store"
	"github.com/sessiond/sessiond/workspace/snapshot"
)

// gcInterval is how often a serving daemon collects unreferenced snapshot
// objects and compacts its value log.
const gcInterval = 30 * time.Minute

// GCResult is the result of daemon/gc.
type GCResult struct {
	Snapshots snapshot.GCStats `json:"snapshots"`
	// ValueLogRewrites counts the value-log files Badger rewrote to give
	// back the space of deleted values.
	ValueLogRewrites int `json:"valueLogRewrites"`
	// Store is the store's size on disk after the collection.
	Store store.DiskUsage `json:"store"`
	// BudgetBytes is the disk budget; OverBudget says the store exceeds it.
	BudgetBytes int64 `json:"budgetBytes"`
	OverBudget  bool  `json:"overBudget"`
}

// collect frees the snapshot objects no session refers to any more (those
// of deleted sessions, of reverted-away turns moved nowhere, of captures
// nobody recorded), then lets Badger give the space back.
func (d *Daemon) collect(ctx context.Context) (GCResult, error) {
	live, err := d.sessions.LiveSnapshots(ctx)
	if err != nil {
		return GCResult{}, err
	}
	stats, err := d.engine.Collect(ctx, live)
	if err != nil {
		return GCResult{}, fmt.Errorf("collect snapshots: %w", err)
	}
	res := GCResult{Snapshots: stats, BudgetBytes: d.budget()}
	if res.ValueLogRewrites, err = d.db.RunValueLogGC(); err != nil {
		return res, fmt.Errorf("value-log GC: %w", err)
	}
	if res.Store, err = d.db.DiskUsage(); err != nil {
		return res, fmt.Errorf("measure store: %w", err)
	}
	if res.BudgetBytes > 0 && res.Store.Total() > res.BudgetBytes {
		res.OverBudget = true
		d.log.Warn("the store is over its disk budget; delete or archive old sessions, or raise --disk-budget",
			"bytes", res.Store.Total(), "budget", res.BudgetBytes)
	}
	d.log.Info("gc done", "freedObjects", stats.FreedObjects, "freedBytes", stats.FreedBytes,
		"vlogRewrites", res.ValueLogRewrites, "storeBytes", res.Store.Total(), "took", stats.Duration)
	return res, nil
}

func (d *Daemon) budget() int64 {
	if d.cfg.DiskBudget != 0 {
		return d.cfg.DiskBudget
	}
	return snapshot.DefaultDiskBudget
}

// collectPeriodically runs collect on a timer until ctx ends.
func (d *Daemon) collectPeriodically(ctx context.Context) {
	t := time.NewTicker(gcInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := d.collect(ctx); err != nil && ctx.Err() == nil {
				d.log.Warn("periodic gc failed", "err", err)
			}
		}
	}
}
