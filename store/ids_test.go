package store_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/store"
)

var allKinds = []store.IDKind{
	store.KindSession, store.KindMessage, store.KindPart,
	store.KindProject, store.KindTask, store.KindEvent,
}

// ulidLen is the length of a ULID in Crockford base32.
const ulidLen = 26

func TestNewIDShape(t *testing.T) {
	t.Parallel()
	db := open(t, t.TempDir())
	defer closeDB(t, db)
	for _, kind := range allKinds {
		id := db.NewID(kind)
		if !strings.HasPrefix(id, string(kind)+"_") {
			t.Errorf("NewID(%s) = %q: missing prefix %q", kind, id, string(kind)+"_")
		}
		if len(id) != len(kind)+1+ulidLen {
			t.Errorf("NewID(%s) = %q: length %d, want %d", kind, id, len(id), len(kind)+1+ulidLen)
		}
		if !store.ValidID(kind, id) {
			t.Errorf("ValidID(%s, %q) = false for a fresh ID", kind, id)
		}
		for _, other := range allKinds {
			if other != kind && store.ValidID(other, id) {
				t.Errorf("ValidID(%s, %q) = true for an ID of kind %s", other, id, kind)
			}
		}
	}
}

// disorder describes the first duplicate or out-of-order ID, or is "".
func disorder(ids []string) string {
	seen := make(map[string]bool, len(ids))
	for i, id := range ids {
		if seen[id] {
			return fmt.Sprintf("duplicate ID %q at %d", id, i)
		}
		seen[id] = true
		if i > 0 && ids[i-1] >= id {
			return fmt.Sprintf("IDs out of order at %d: %q then %q", i, ids[i-1], id)
		}
	}
	return ""
}

func TestIDsSortInCreationOrder(t *testing.T) {
	t.Parallel()
	const n = 10000
	t.Run("same millisecond", func(t *testing.T) {
		t.Parallel()
		now := time.Now()
		g := store.NewIDGenWithClock(func() time.Time { return now })
		ids := make([]string, n)
		for i := range ids {
			ids[i] = g.New(store.KindMessage)
		}
		if d := disorder(ids); d != "" {
			t.Error(d)
		}
	})
	t.Run("as fast as possible", func(t *testing.T) {
		t.Parallel()
		db := open(t, t.TempDir())
		defer closeDB(t, db)
		ids := make([]string, n)
		for i := range ids {
			ids[i] = db.NewID(store.KindPart)
		}
		if d := disorder(ids); d != "" {
			t.Error(d)
		}
	})
	t.Run("later milliseconds sort after earlier ones", func(t *testing.T) {
		t.Parallel()
		base := time.UnixMilli(1_700_000_000_000)
		var at time.Time
		g := store.NewIDGenWithClock(func() time.Time { return at })
		var ids []string
		for ms := range 100 {
			at = base.Add(time.Duration(ms) * time.Millisecond)
			for range 10 {
				ids = append(ids, g.New(store.KindSession))
			}
		}
		if d := disorder(ids); d != "" {
			t.Error(d)
		}
	})
}

// The daemon makes IDs from many goroutines at once (one per connection,
// turns, watchers). Each caller's own IDs must still come out in the order
// it made them: a message's parts are ordered by their IDs.
func TestIDsSortPerGoroutineUnderConcurrency(t *testing.T) {
	t.Parallel()
	db := open(t, t.TempDir())
	defer closeDB(t, db)
	// Long enough to cross a few hundred millisecond boundaries, which is
	// where IDs made concurrently can be misordered.
	const goroutines = 8
	deadline := time.Now().Add(300 * time.Millisecond)
	var (
		mu       sync.Mutex
		all      []string
		problems []string
		wg       sync.WaitGroup
	)
	for range goroutines {
		wg.Go(func() {
			var mine []string
			for time.Now().Before(deadline) {
				for range 100 {
					mine = append(mine, db.NewID(store.KindPart))
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if d := disorder(mine); d != "" {
				problems = append(problems, d)
			}
			all = append(all, mine...)
		})
	}
	wg.Wait()
	for _, p := range problems {
		t.Errorf("one goroutine's IDs: %s", p)
	}
	n := len(all)
	slices.Sort(all)
	if len(slices.Compact(all)) != n {
		t.Errorf("concurrent NewID produced duplicates")
	}
}

func TestIDTimeRoundTrip(t *testing.T) {
	t.Parallel()
	times := []time.Time{
		time.UnixMilli(0),
		time.UnixMilli(1),
		time.Date(2024, 2, 29, 23, 59, 59, 999_999_999, time.UTC),
		time.Now(),
		time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC),
	}
	for _, kind := range allKinds {
		for _, tm := range times {
			id := store.NewIDGenWithClock(func() time.Time { return tm }).New(kind)
			got, ok := store.IDTime(id)
			want := tm.Truncate(time.Millisecond)
			if !ok || !got.Equal(want) {
				t.Errorf("IDTime(New(%s, %v)) = %v, %v; want %v", kind, tm, got, ok, want)
			}
		}
	}
}

func TestIDTimeAndValidIDRejectGarbage(t *testing.T) {
	t.Parallel()
	good := store.NewIDGen().New(store.KindSession)
	body := good[4:]
	bad := []struct {
		name string
		id   string
	}{
		{"empty", ""},
		{"prefix only", "ses_"},
		{"no underscore", "ses" + body},
		{"dash instead of underscore", "ses-" + body},
		{"body too short", good[:len(good)-1]},
		{"body too long", good + "0"},
		{"invalid base32 letter U", "ses_" + body[:10] + "UUUUUUUUUUUUUUUU"},
		{"punctuation", "ses_" + body[:25] + "!"},
		{"timestamp overflow", "ses_8" + body[1:]},
		{"just text", "hello world"},
	}
	for _, tt := range bad {
		if store.ValidID(store.KindSession, tt.id) {
			t.Errorf("ValidID(ses, %s %q) = true", tt.name, tt.id)
		}
		if _, ok := store.IDTime(tt.id); ok {
			t.Errorf("IDTime(%s %q) ok", tt.name, tt.id)
		}
	}
	wrongKind := []struct {
		kind store.IDKind
		id   string
	}{
		{store.KindMessage, good},
		{store.KindSession, "msg_" + body},
		{store.KindSession, "sess_" + body},
		{store.KindSession, "SES_" + body},
	}
	for _, tt := range wrongKind {
		if store.ValidID(tt.kind, tt.id) {
			t.Errorf("ValidID(%s, %q) = true", tt.kind, tt.id)
		}
	}
	if !store.ValidID(store.KindSession, good) {
		t.Errorf("ValidID(ses, %q) = false", good)
	}
}

// A clock that steps back (NTP, a VM resumed) must not make a later ID
// sort before an earlier one.
func TestIDsNeverGoBackWithTheClock(t *testing.T) {
	t.Parallel()
	at := time.UnixMilli(1_700_000_000_500)
	g := store.NewIDGenWithClock(func() time.Time { return at })
	first := g.New(store.KindEvent)
	at = at.Add(-time.Second)
	second := g.New(store.KindEvent)
	if second <= first {
		t.Fatalf("ID after the clock stepped back sorts first: %s <= %s", second, first)
	}
}

func TestValidIDRejectsLowercase(t *testing.T) {
	t.Parallel()
	id := store.NewIDGen().New(store.KindSession)
	if !store.ValidID(store.KindSession, id) {
		t.Fatalf("ValidID(%q) = false", id)
	}
	if low := "ses_" + strings.ToLower(id[4:]); store.ValidID(store.KindSession, low) {
		t.Fatalf("ValidID(%q) = true; a lowercase ID would sort apart from ours", low)
	}
}
