package session

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/sessiond/sessiond/store"
	"github.com/sessiond/sessiond/workspace"
	"github.com/sessiond/sessiond/workspace/snapshot"
)

// Option configures a Service.
type Option func(*Service)

// WithTimeMachine gives the service snapshots: every turn is captured
// before and after, and sessions can be diffed, reverted and unreverted.
func WithTimeMachine(engine *snapshot.Engine, trackers *workspace.Trackers) Option {
	return func(s *Service) { s.engine, s.trackers = engine, trackers }
}

// WithoutWriteTracing runs shell turns and the bash tool without
// tracing their writes, for programs that do not work under the tracer;
// why is what their records say. Their changes are then unattributed: a
// revert writes them only when forced.
func WithoutWriteTracing(why string) Option {
	return func(s *Service) { s.noWriteTrace = why }
}

// WithCrashPoint makes the service kill its own process at a named point,
// so tests can check what a restarted daemon recovers. Only tests set it.
func WithCrashPoint(name string, crash func()) Option {
	return func(s *Service) { s.crashPoint, s.crash = name, crash }
}

// The crash points tests may ask for.
const (
	// CrashRevertMidApply dies after a revert's journal is written and
	// half of its file changes are applied.
	CrashRevertMidApply = "revert-mid-apply"
)

func (s *Service) crashAt(point string) {
	if s.crashPoint == point && s.crash != nil {
		s.log.Warn("crashing on purpose at a test crash point", "point", point)
		s.crash()
	}
}

// turnLocks serialises the turns of each session: a turn, a revert and an
// unrevert of one session never overlap. A turn waits its turn; a revert
// finds the session busy and says so.
type turnLocks struct {
	mu sync.Mutex
	m  map[string]*turnLock
	// held counts the locks taken; idle is signalled when it drops to 0,
	// so Close can let cut turns record what they did before the store
	// closes.
	held int
	idle *sync.Cond
}

type turnLock struct {
	sem  chan struct{}
	refs int
}

func (l *turnLocks) get(id string) *turnLock {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[string]*turnLock{}
	}
	t := l.m[id]
	if t == nil {
		t = &turnLock{sem: make(chan struct{}, 1)}
		l.m[id] = t
	}
	t.refs++
	return t
}

func (l *turnLocks) put(id string, t *turnLock) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t.refs--; t.refs == 0 {
		delete(l.m, id)
	}
}

// taken counts a lock taken and returns its release.
func (l *turnLocks) taken(id string, t *turnLock) func() {
	l.mu.Lock()
	l.held++
	l.mu.Unlock()
	return func() {
		<-t.sem
		l.put(id, t)
		l.mu.Lock()
		if l.held--; l.held == 0 && l.idle != nil {
			l.idle.Broadcast()
		}
		l.mu.Unlock()
	}
}

// wait returns once no turn holds its lock.
func (l *turnLocks) wait() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.idle == nil {
		l.idle = sync.NewCond(&l.mu)
	}
	for l.held > 0 {
		l.idle.Wait()
	}
}

// acquire waits for the session's turn; release must be called.
func (l *turnLocks) acquire(ctx context.Context, id string) (release func(), err error) {
	t := l.get(id)
	select {
	case t.sem <- struct{}{}:
		return l.taken(id, t), nil
	case <-ctx.Done():
		l.put(id, t)
		return nil, ctx.Err()
	}
}

// try takes the session's turn only if it is free.
func (l *turnLocks) try(id string) (release func(), ok bool) {
	t := l.get(id)
	select {
	case t.sem <- struct{}{}:
		return l.taken(id, t), true
	default:
		l.put(id, t)
		return nil, false
	}
}

// running lists the sessions whose turn is running.
func (l *turnLocks) running() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for id, t := range l.m {
		if len(t.sem) > 0 {
			out = append(out, id)
		}
	}
	return out
}

// busy reports whether a turn of the session is running.
func (l *turnLocks) busy(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.m[id]
	return t != nil && len(t.sem) > 0
}

// tracker returns the tracker of the checkout a session works in.
func (s *Service) tracker(ctx context.Context, ses *Session) (*workspace.Tracker, error) {
	if s.engine == nil {
		return nil, ErrNoTimeMachine
	}
	proj, err := s.projects.Get(ctx, ses.ProjectID)
	if err != nil {
		return nil, fmt.Errorf("project of session %s: %w", ses.ID, err)
	}
	return s.trackers.Get(ctx, proj.ID, proj.RootFor(ses.Directory))
}

// turn is a user turn in progress: the session is held, and the files
// were captured before anything ran.
type turn struct {
	ses     Session
	tracker *workspace.Tracker
	before  snapshot.ID
	release func()
	// snap is the files as the turn's own writes left them: before, with
	// each settled claim overlaid. held are the snapshots it made, kept
	// from the collector until the turn is recorded.
	snap snapshot.ID
	held []snapshot.ID
	// unattributed are paths that changed while something untraced ran;
	// untracedWhy says what could not be traced.
	unattributed map[string]bool
	untracedWhy  string
}

// beginTurn waits for the session's turn, checks it is live, moves the
// messages a revert hid into a fork (a new turn makes them unreachable
// otherwise, and nothing is ever deleted by a revert), and captures the
// files as they are before the turn.
func (s *Service) beginTurn(ctx context.Context, sessionID string) (*turn, error) {
	if sessionID == "" {
		return nil, paramErr("sessionID", "sessionID is required")
	}
	if s.engine == nil {
		return nil, ErrNoTimeMachine
	}
	if _, err := s.Get(ctx, sessionID); err != nil {
		return nil, err
	}
	release, err := s.turns.acquire(ctx, sessionID)
	if err != nil {
		return nil, err
	}
	t, err := s.startTurn(ctx, sessionID)
	if err != nil {
		release()
		return nil, err
	}
	t.release = release
	return t, nil
}

func (s *Service) startTurn(ctx context.Context, sessionID string) (*turn, error) {
	ses, err := s.Get(ctx, sessionID)
	if err != nil {
		return nil, err
	}
	switch ses.Lifecycle {
	case LifecycleStopped, LifecycleArchived:
		return nil, &ClosedError{ID: ses.ID, Lifecycle: ses.Lifecycle}
	}
	if err := parkedErr(ses); err != nil {
		return nil, err
	}
	if ses.Revert != nil {
		if ses, err = s.moveRevertedToFork(ctx, ses); err != nil {
			return nil, err
		}
	}
	tr, err := s.tracker(ctx, &ses)
	if err != nil {
		return nil, err
	}
	before, err := tr.Capture(ctx)
	if err != nil {
		return nil, err
	}
	s.inflight.add(before)
	return &turn{ses: ses, tracker: tr, before: before, snap: before}, nil
}

// inflightSnapshots are snapshots captured for work in progress (a
// turn's "before", a revert's current state) and not yet recorded on any
// message or session: the collector must keep them.
type inflightSnapshots struct {
	mu sync.Mutex
	m  map[snapshot.ID]int
}

func (f *inflightSnapshots) add(id snapshot.ID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = map[snapshot.ID]int{}
	}
	f.m[id]++
}

func (f *inflightSnapshots) done(id snapshot.ID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m[id]--; f.m[id] <= 0 {
		delete(f.m, id)
	}
}

func (f *inflightSnapshots) list() []snapshot.ID {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]snapshot.ID, 0, len(f.m))
	for id := range f.m {
		out = append(out, id)
	}
	return out
}

// recordStart stores the turn's message as it starts, so clients see it
// while the turn runs, with the turn's before snapshot and a turn marker:
// a daemon killed before the turn ends finishes its record at start
// (ResumeTurns).
func (s *Service) recordStart(ctx context.Context, t *turn, m *MessageWithParts) error {
	m.Info.Snapshot = &SnapshotPair{Before: t.before.String()}
	err := s.db.Update(ctx, func(txn *store.Txn) error {
		if err := txn.Set(store.KeyMessage(m.Info.SessionID, m.Info.ID), &m.Info); err != nil {
			return err
		}
		if err := txn.Set(store.KeyTurn(m.Info.SessionID), turnMarker{MessageID: m.Info.ID}); err != nil {
			return err
		}
		for i := range m.Parts {
			if err := txn.Set(store.KeyPart(m.Info.SessionID, m.Info.ID, m.Parts[i].ID), &m.Parts[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record turn: %w", err)
	}
	s.publishMessage(ctx, m)
	return nil
}

func (s *Service) publishMessage(ctx context.Context, m *MessageWithParts) {
	ses, err := s.Get(ctx, m.Info.SessionID)
	if err != nil {
		return
	}
	s.publish(ses.ProjectID, ses.ID, "message.updated", map[string]any{"info": m.Info})
	for _, p := range m.Parts {
		s.publish(ses.ProjectID, ses.ID, "part.updated", map[string]any{"part": p})
	}
}

// endTurn records the turn's snapshot pair on the message (before, and
// after: what the turn's settled claims left), adds a patch part listing
// the files the turn changed, remembers what the session left at each
// changed path (the reference a later revert checks for outside edits),
// and stores the message, its parts and the session's new summary in one
// transaction. It releases the turn. c, when not nil, are the turn's
// claims not settled yet (a shell command's trace, an upload's path);
// the agent loop settles each step's as it goes and passes nil.
func (s *Service) endTurn(ctx context.Context, t *turn, m *MessageWithParts, c *claims) error {
	defer t.release()
	defer s.inflight.done(t.before)
	defer func() {
		for _, id := range t.held {
			s.inflight.done(id)
		}
	}()
	// The turn's own work is done; a client giving up now must not leave
	// it half recorded.
	ctx = context.WithoutCancel(ctx)
	if c != nil {
		if _, err := s.settle(ctx, t, c); err != nil {
			return fmt.Errorf("record the turn's files: %w", err)
		}
	}
	after := t.snap
	m.Info.Snapshot = &SnapshotPair{Before: t.before.String(), After: after.String()}
	if len(t.unattributed) > 0 {
		m.Info.Snapshot.Unattributed = sortedKeys(t.unattributed)
		m.Info.Snapshot.UnattributedReason = t.untracedWhy
	}
	changed, err := s.engine.Changed(ctx, t.before, after)
	if err != nil {
		return fmt.Errorf("compare snapshots: %w", err)
	}
	afters, err := s.engine.LookupAll(ctx, after, changed)
	if err != nil {
		return fmt.Errorf("read snapshot: %w", err)
	}
	befores, err := s.engine.LookupAll(ctx, t.before, changed)
	if err != nil {
		return fmt.Errorf("read snapshot: %w", err)
	}
	left := make(map[string]snapshot.Entry, len(changed))
	var files []string
	for i, p := range changed {
		e, b := afters[i], befores[i]
		left[p] = e
		if e.Kind != store.EntryDir && b.Kind != store.EntryDir || e.Kind != b.Kind && e.Exists() && b.Exists() {
			files = append(files, p) // a file, or a path that changed kind; not a directory alone
		}
	}
	if len(files) > 0 {
		m.Parts = append(m.Parts, Part{
			ID: s.db.NewID(store.KindPart), SessionID: m.Info.SessionID, MessageID: m.Info.ID,
			Type: PartPatch, Files: files, Snapshot: after.String(),
		})
	}
	if m.Info.Time.Completed == 0 {
		m.Info.Time.Completed = s.nowMs()
	}
	summary, err := s.changeSummary(ctx, t.ses.ID, m)
	if err != nil {
		s.log.Warn("cannot summarise the session's changes", "session", t.ses.ID, "err", err)
	}
	if err := s.putExpected(t.ses.ID, left); err != nil {
		return fmt.Errorf("record turn: %w", err)
	}
	var ses Session
	err = s.db.Update(ctx, func(txn *store.Txn) error {
		ses = Session{}
		if err := getSession(txn, t.ses.ID, &ses); err != nil {
			return err
		}
		if err := txn.Set(store.KeyMessage(ses.ID, m.Info.ID), &m.Info); err != nil {
			return err
		}
		for i := range m.Parts {
			if err := txn.Set(store.KeyPart(ses.ID, m.Info.ID, m.Parts[i].ID), &m.Parts[i]); err != nil {
				return err
			}
		}
		if err := txn.Delete(store.KeyTurn(ses.ID)); err != nil {
			return err
		}
		ses.MessageCount++
		if summary != nil {
			ses.Summary = summary
		}
		ses.Version++
		ses.Time.Updated = max(s.nowMs(), ses.Time.Updated)
		return txn.Set(store.KeySession(ses.ID), &ses)
	})
	if err != nil {
		return fmt.Errorf("record turn: %w", err)
	}
	s.publishMessage(ctx, m)
	s.publish(ses.ProjectID, ses.ID, "session.updated", map[string]any{"info": ses})
	return nil
}

// changeSummary counts what the session changed, with the turn m (not yet
// stored) included.
func (s *Service) changeSummary(ctx context.Context, sessionID string, m *MessageWithParts) (*ChangeSummary, error) {
	turns, err := s.turnMessages(ctx, sessionID, true)
	if err != nil {
		return nil, err
	}
	return s.summarize(ctx, append(turns, m.Info))
}

// turnMessages returns the session's messages that recorded snapshots,
// oldest first; with visibleOnly, those a revert hid are left out.
func (s *Service) turnMessages(ctx context.Context, sessionID string, visibleOnly bool) ([]Message, error) {
	var ses Session
	var out []Message
	err := s.db.View(ctx, func(txn *store.Txn) error {
		if err := getSession(txn, sessionID, &ses); err != nil {
			return err
		}
		return txn.Scan(store.PrefixMessages(sessionID), nil, false, false, func(_, val []byte) (bool, error) {
			var m Message
			if err := json.Unmarshal(val, &m); err != nil {
				return false, fmt.Errorf("decode message: %w", err)
			}
			if visibleOnly && ses.Revert != nil && m.ID >= ses.Revert.MessageID {
				return false, nil
			}
			if m.Snapshot != nil && m.Snapshot.Before != "" && m.Snapshot.After != "" {
				out = append(out, m)
			}
			return true, nil
		})
	})
	return out, err
}

// snapPair parses a message's snapshot pair.
func snapPair(m Message) (before, after snapshot.ID, err error) {
	if before, err = store.ParseHash(m.Snapshot.Before); err != nil {
		return before, after, fmt.Errorf("message %s: bad snapshot: %w", m.ID, err)
	}
	if after, err = store.ParseHash(m.Snapshot.After); err != nil {
		return before, after, fmt.Errorf("message %s: bad snapshot: %w", m.ID, err)
	}
	return before, after, nil
}
