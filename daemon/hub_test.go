package daemon

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiond/sessiond/session"
)

// stuckConn is a client that takes its first event and then stops reading.
type stuckConn struct {
	first    chan struct{} // closed when the first Notify arrives
	once     sync.Once
	release  chan struct{}
	closed   atomic.Bool
	received atomic.Int64
}

func newStuckConn() *stuckConn {
	return &stuckConn{first: make(chan struct{}), release: make(chan struct{})}
}

func (c *stuckConn) Notify(ctx context.Context, _ string, _ any) error {
	c.received.Add(1)
	c.once.Do(func() { close(c.first) })
	<-c.release
	return nil
}

func (c *stuckConn) Close() error { c.closed.Store(true); return nil }

// A client that stops reading is disconnected once what it owes passes
// either bound, so it cannot keep every later event alive; a single event
// is delivered whatever its size.
func TestHubBoundsWhatASlowClientOwes(t *testing.T) {
	tests := []struct {
		name      string
		maxEvents int
		maxBytes  int
		events    int // published while the client is stuck
		size      int // bytes of text in each
		closed    bool
	}{
		{"under both bounds", 100, 64 << 10, 20, 1 << 10, false},
		{"too many bytes", 100, 16 << 10, 20, 1 << 10, true},
		{"too many events", 10, 64 << 20, 20, 10, true},
		{"one event over the byte bound", 100, 1 << 10, 1, 4 << 10, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHub(slog.New(slog.DiscardHandler))
			h.maxEvents, h.maxBytes = tt.maxEvents, tt.maxBytes
			conn := newStuckConn()
			h.add(conn).everything()
			defer h.remove(conn)
			publish := func(n int) {
				h.Publish(session.Change{Type: "session.updated", Properties: map[string]any{"text": strings.Repeat("x", n)}})
			}
			publish(1)
			select {
			case <-conn.first:
			case <-time.After(10 * time.Second):
				t.Fatal("the first event was never sent")
			}
			for range tt.events {
				publish(tt.size)
			}
			if got := conn.closed.Load(); got != tt.closed {
				t.Errorf("client disconnected = %v, want %v", got, tt.closed)
			}
			if got := h.published.Load(); got != uint64(tt.events+1) {
				t.Errorf("published = %d, want %d", got, tt.events+1)
			}
			close(conn.release)
		})
	}
}
