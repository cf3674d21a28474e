package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/sessiond/sessiond/store"
)

func TestScanObjectSizes(t *testing.T) {
	t.Parallel()
	db := open(t, t.TempDir())
	defer closeDB(t, db)
	o := newObjects(t)
	small := []byte("hello, hello, hello, hello, hello, hello, hello, hello, hello, hello\n")
	big := randomBytes(t, 200<<10) // incompressible, in the value log
	var hs []store.Hash
	var th store.Hash
	err := db.Update(context.Background(), func(txn *store.Txn) error {
		for _, c := range [][]byte{small, big} {
			h, err := o.PutBlob(txn, c)
			if err != nil {
				return err
			}
			hs = append(hs, h)
		}
		var err error
		th, err = store.PutTree(txn, sampleTree())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	_, enc, _ := store.EncodeTree(sampleTree())
	got := map[store.Hash]int64{}
	kinds := map[store.Hash]store.ObjectKind{}
	err = db.View(context.Background(), func(txn *store.Txn) error {
		return store.ScanObjectSizes(txn, func(k store.ObjectKind, h store.Hash, size int64) (bool, error) {
			got[h], kinds[h] = size, k
			return true, nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || kinds[hs[0]] != store.ObjectBlob || kinds[hs[1]] != store.ObjectBlob || kinds[th] != store.ObjectTree {
		t.Fatalf("scan found %v", kinds)
	}
	if s := got[hs[0]]; s <= 1 || s >= int64(len(small)) {
		t.Fatalf("small blob: stored size %d, want compressed below %d", s, len(small))
	}
	// Values in the value log report an estimate from the pointer.
	if s := got[hs[1]]; s < int64(len(big)) || s > int64(len(big))+64 {
		t.Fatalf("big blob: stored size %d, want about %d", s, len(big)+1)
	}
	if got[th] != int64(len(enc)) {
		t.Fatalf("tree: size %d, want %d", got[th], len(enc))
	}

	// Stopping early.
	n := 0
	err = db.View(context.Background(), func(txn *store.Txn) error {
		return store.ScanObjectSizes(txn, func(store.ObjectKind, store.Hash, int64) (bool, error) {
			n++
			return false, nil
		})
	})
	if err != nil || n != 1 {
		t.Fatalf("stopped scan: %d calls, %v", n, err)
	}
	// An error from fn ends it.
	err = db.View(context.Background(), func(txn *store.Txn) error {
		return store.ScanObjectSizes(txn, func(store.ObjectKind, store.Hash, int64) (bool, error) {
			return true, fmt.Errorf("boom")
		})
	})
	if err == nil || err.Error() != "boom" {
		t.Fatalf("scan error: %v", err)
	}
}

func TestDiskUsage(t *testing.T) {
	t.Parallel()
	db := open(t, t.TempDir())
	defer closeDB(t, db)
	u0, err := db.DiskUsage()
	if err != nil {
		t.Fatal(err)
	}
	// Badger preallocates a 128 MiB value log and memtable files; only
	// what is written counts.
	if u0.Total() <= 0 || u0.Total() > 16<<20 {
		t.Fatalf("empty store uses %+v", u0)
	}
	if l, v := db.Size(); l != 0 || v != 0 {
		t.Logf("Size() = %d, %d (Badger metrics on?)", l, v)
	}
	b := db.NewBatch()
	for i := range 40 {
		if err := b.SetRaw(fmt.Appendf(nil, "big/%d", i), randomBytes(t, 256<<10)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	u1, err := db.DiskUsage()
	if err != nil {
		t.Fatal(err)
	}
	if u1.ValueLog < u0.ValueLog+10<<20 || u1.Total() > u0.Total()+20<<20 {
		t.Fatalf("after 10 MiB of large values: %+v (was %+v)", u1, u0)
	}

	mem, err := store.Open(context.Background(), store.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer closeDB(t, mem)
	if u, err := mem.DiskUsage(); err != nil || u.Total() != 0 {
		t.Fatalf("in-memory store: %+v, %v", u, err)
	}
}
