package store

import (
	"crypto/rand"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
)

// IDKind is the type prefix of an ID.
type IDKind string

// The kinds of IDs; DESIGN §2.
const (
	KindSession IDKind = "ses"
	KindMessage IDKind = "msg"
	KindPart    IDKind = "prt"
	KindProject IDKind = "prj"
	KindTask    IDKind = "tsk"
	KindEvent   IDKind = "evt"
)

// IDGen makes IDs whose body is a ULID: 48 bits of milliseconds then 80
// random bits, Crockford base32, so IDs sort by time as plain strings.
// Within one millisecond the random part increases monotonically, so IDs
// made by one daemon sort in the order they were made. We use oklog/ulid
// rather than our own encoding: it is small, well kept and does exactly this.
type IDGen struct {
	mu      sync.Mutex
	entropy io.Reader
	last    uint64 // ms of the last ID made
	now     func() time.Time
}

// NewIDGen returns a generator seeded from crypto/rand.
func NewIDGen() *IDGen { return NewIDGenWithClock(time.Now) }

// NewIDGenWithClock returns a generator that reads the time from now;
// tests use it to make IDs for chosen times.
func NewIDGenWithClock(now func() time.Time) *IDGen {
	return &IDGen{entropy: ulid.Monotonic(rand.Reader, 0), now: now}
}

// New returns kind + "_" + a ULID for now. The clock is read under the
// lock and never goes back, so concurrent callers still get IDs in the
// order they were made.
func (g *IDGen) New(kind IDKind) string {
	g.mu.Lock()
	ms := max(ulid.Timestamp(g.now()), g.last)
	g.last = ms
	id := ulid.MustNew(ms, g.entropy)
	g.mu.Unlock()
	return string(kind) + "_" + id.String()
}

// IDTime returns the creation time encoded in id, or false when id is not
// one of ours.
func IDTime(id string) (time.Time, bool) {
	if len(id) < 5 || id[3] != '_' {
		return time.Time{}, false
	}
	u, err := ulid.ParseStrict(id[4:])
	if err != nil {
		return time.Time{}, false
	}
	return ulid.Time(u.Time()), true
}

// ValidID reports whether id is a well-formed ID of kind.
func ValidID(kind IDKind, id string) bool {
	if len(id) != len(kind)+1+ulid.EncodedSize || id[:len(kind)] != string(kind) || id[len(kind)] != '_' {
		return false
	}
	body := id[len(kind)+1:]
	// ULID parsing accepts lowercase, but a lowercase ID would sort apart
	// from ours: only the canonical uppercase form is one of our IDs.
	if strings.ToUpper(body) != body {
		return false
	}
	_, err := ulid.ParseStrict(body)
	return err == nil
}
