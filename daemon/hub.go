package daemon

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/sessiond/sessiond/session"
)

// notifier is the side of a connection the hub needs.
type notifier interface {
	Notify(ctx context.Context, method string, params any) error
	Close() error
}

// maxPendingEvents and maxPendingBytes bound what one slow client may owe
// us: events are shared between connections, but a client that stops
// reading would keep every event since then alive. A client that falls
// this far behind is disconnected rather than allowed to grow the daemon
// without bound; it reconnects and re-reads.
const (
	maxPendingEvents = 100_000
	maxPendingBytes  = 256 << 20
)

// hub fans the change feed out to connections. A connection receives the
// changes of the projects it opened, of the sessions it touched, and
// whatever events/subscribe widened it to. Each connection has its own
// queue and sender, so one slow editor never stalls a session operation
// or the other editors.
type hub struct {
	log       *slog.Logger
	maxEvents int           // maxPendingEvents; tests lower the bounds
	maxBytes  int           // maxPendingBytes
	published atomic.Uint64 // changes published, for the daemon's activity
	mu        sync.Mutex
	watch     map[notifier]*watcher
}

type watcher struct {
	conn notifier
	log  *slog.Logger
	hub  *hub

	mu       sync.Mutex
	projects map[string]bool
	sessions map[string]bool
	all      bool
	queue    []session.Change
	queued   int // bytes of the encoded events in queue
	wake     chan struct{}
	done     chan struct{}
}

func newHub(logger *slog.Logger) *hub {
	return &hub{log: logger, maxEvents: maxPendingEvents, maxBytes: maxPendingBytes, watch: map[notifier]*watcher{}}
}

// add starts delivering to conn; remove stops.
func (h *hub) add(conn notifier) *watcher {
	w := &watcher{
		conn: conn, log: h.log, hub: h,
		projects: map[string]bool{}, sessions: map[string]bool{},
		wake: make(chan struct{}, 1), done: make(chan struct{}),
	}
	h.mu.Lock()
	h.watch[conn] = w
	h.mu.Unlock()
	go w.send()
	return w
}

func (h *hub) remove(conn notifier) {
	h.mu.Lock()
	w := h.watch[conn]
	delete(h.watch, conn)
	h.mu.Unlock()
	if w != nil {
		close(w.done)
	}
}

func (h *hub) get(conn notifier) *watcher {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.watch[conn]
}

// Publish implements session.Publisher. The change is encoded here, once
// for every connection and before Publish returns, so the caller may go
// on changing what it published (a part that keeps streaming) without a
// sender seeing it half changed.
func (h *hub) Publish(c session.Change) {
	raw, err := json.Marshal(eventNotification{Type: c.Type, Properties: c.Properties})
	if err != nil {
		h.log.Error("cannot encode a change; dropping it", "type", c.Type, "err", err)
		return
	}
	c.Properties = json.RawMessage(raw) // the whole session/event params
	h.published.Add(1)
	h.mu.Lock()
	ws := make([]*watcher, 0, len(h.watch))
	for _, w := range h.watch {
		ws = append(ws, w)
	}
	h.mu.Unlock()
	for _, w := range ws {
		w.offer(c)
	}
}

// Watch scopes.
func (w *watcher) project(id string) {
	if w == nil || id == "" {
		return
	}
	w.mu.Lock()
	w.projects[id] = true
	w.mu.Unlock()
}

func (w *watcher) unproject(id string) {
	if w == nil {
		return
	}
	w.mu.Lock()
	delete(w.projects, id)
	w.mu.Unlock()
}

func (w *watcher) session(id string) {
	if w == nil || id == "" {
		return
	}
	w.mu.Lock()
	w.sessions[id] = true
	w.mu.Unlock()
}

func (w *watcher) everything() {
	if w == nil {
		return
	}
	w.mu.Lock()
	w.all = true
	w.mu.Unlock()
}

func (w *watcher) offer(c session.Change) {
	w.mu.Lock()
	want := w.all || w.projects[c.ProjectID] || w.sessions[c.SessionID]
	if want && c.Type == "session.created" && c.SessionID != "" {
		// A session created in a watched project is one the client sees.
		w.sessions[c.SessionID] = true
	}
	if !want {
		w.mu.Unlock()
		return
	}
	if c.Type == "session.deleted" {
		delete(w.sessions, c.SessionID) // nothing more will come of it
	}
	raw, _ := c.Properties.(json.RawMessage) // Publish encoded it
	size := len(raw)
	// One event however large is always taken: the bound is on a backlog.
	if len(w.queue) >= w.hub.maxEvents || (len(w.queue) > 0 && w.queued+size > w.hub.maxBytes) {
		pending, bytes := len(w.queue), w.queued
		w.mu.Unlock()
		w.log.Warn("client fell too far behind the change feed; disconnecting it",
			"pendingEvents", pending, "pendingBytes", bytes)
		w.conn.Close()
		return
	}
	w.queue = append(w.queue, c)
	w.queued += size
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

type eventNotification struct {
	Type       string `json:"type"`
	Properties any    `json:"properties"`
}

func (w *watcher) send() {
	var batch []session.Change
	for {
		select {
		case <-w.done:
			return
		case <-w.wake:
		}
		w.mu.Lock()
		batch, w.queue = w.queue, batch[:0]
		w.queued = 0
		w.mu.Unlock()
		for _, c := range batch {
			err := w.conn.Notify(context.Background(), "session/event", c.Properties)
			if err != nil {
				return // the connection is gone; remove() follows
			}
		}
		clear(batch)
		if cap(batch) > 1024 {
			batch = nil // a burst's backlog: let its array go too
		}
	}
}
