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
	// SnapshotBytes is what the snapshot objects take in the store
	// (compressed) after the collection: what the budget is held to.
	SnapshotBytes int64 `json:"snapshotBytes"`
	// BudgetBytes is the budget; OverBudget says the snapshots still
	// exceed it after pruning.
	BudgetBytes int64 `json:"budgetBytes"`
	OverBudget  bool  `json:"overBudget"`
	// Pruned lists the archived sessions whose snapshots were given up to
	// get back under the budget.
	Pruned []string `json:"pruned,omitempty"`
}

// snapshotBytes is what the stored snapshot objects take.
func (d *Daemon) snapshotBytes(ctx context.Context) (int64, error) {
	u, err := d.engine.Usage(ctx)
	if err != nil {
		return 0, fmt.Errorf("measure snapshots: %w", err)
	}
	return u.BlobBytes + u.TreeBytes, nil
}

// prune gives up the snapshots of archived sessions, archived longest ago
// first, until the snapshots fit the budget (deleted sessions' snapshots
// went in the first collection). The budget is held to what the objects
// take, not to the files on disk: those shrink only later, as Badger
// compacts, and measuring them would prune again and again for space
// already freed.
func (d *Daemon) prune(ctx context.Context, res *GCResult) error {
	need := res.SnapshotBytes - res.BudgetBytes
	archived, err := d.sessions.ArchivedWithSnapshots(ctx)
	if err != nil {
		return err
	}
	var freed int64
	for _, ses := range archived {
		if freed >= need {
			break
		}
		if err := d.sessions.ReleaseSnapshots(ctx, ses.ID); err != nil {
			d.log.Warn("cannot release the snapshots of an archived session", "session", ses.ID, "err", err)
			continue
		}
		res.Pruned = append(res.Pruned, ses.ID)
		live, err := d.sessions.LiveSnapshots(ctx)
		if err != nil {
			return err
		}
		st, err := d.engine.Collect(ctx, live)
		if err != nil {
			return fmt.Errorf("collect snapshots: %w", err)
		}
		freed += st.FreedBytes
		res.Snapshots.FreedObjects += st.FreedObjects
		res.Snapshots.FreedBlobs += st.FreedBlobs
		res.Snapshots.FreedTrees += st.FreedTrees
		res.Snapshots.FreedBytes += st.FreedBytes
		if st.FreedBytes == 0 {
			// Its snapshots are shared with live sessions or still pinned:
			// releasing more of the same would free nothing either.
			break
		}
	}
	res.SnapshotBytes -= freed
	if freed < need {
		res.OverBudget = true
		d.log.Warn("the store is over its disk budget even without the snapshots of archived sessions; delete old sessions or raise --disk-budget",
			"bytes", res.SnapshotBytes, "budget", res.BudgetBytes)
	}
	if len(res.Pruned) > 0 {
		d.log.Info("gave up the snapshots of archived sessions to stay within the disk budget", "sessions", len(res.Pruned), "freedBytes", freed)
		n, err := d.db.RunValueLogGC()
		res.ValueLogRewrites += n
		if err != nil {
			return fmt.Errorf("value-log GC: %w", err)
		}
	}
	return nil
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
	if res.SnapshotBytes, err = d.snapshotBytes(ctx); err != nil {
		return res, err
	}
	if res.BudgetBytes > 0 && res.SnapshotBytes > res.BudgetBytes {
		if err := d.prune(ctx, &res); err != nil {
			return res, err
		}
	}
	if res.Store, err = d.db.DiskUsage(); err != nil {
		return res, fmt.Errorf("measure store: %w", err)
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
