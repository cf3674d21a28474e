package session

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/store"
	"github.com/sessiond/sessiond/workspace"
)

// recorder is a Publisher that keeps every change.
type recorder struct {
	mu      sync.Mutex
	changes []Change
}

func (r *recorder) Publish(c Change) {
	r.mu.Lock()
	r.changes = append(r.changes, c)
	r.mu.Unlock()
}

// since returns the changes published after the first n.
func (r *recorder) since(n int) []Change {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.changes[n:])
}

func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.changes)
}

// types lists the change types for sessionID ("" for all) among changes.
func types(changes []Change, sessionID string) []string {
	var out []string
	for _, c := range changes {
		if sessionID == "" || c.SessionID == sessionID {
			out = append(out, c.Type)
		}
	}
	return out
}

type fixture struct {
	t   *testing.T
	ctx context.Context
	db  *store.DB
	reg *workspace.Registry
	svc *Service
	pub *recorder
	// dir is a canonical, existing project directory.
	dir string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	pub := &recorder{}
	reg := workspace.NewRegistry(db, nil)
	return &fixture{
		t:   t,
		ctx: ctx,
		db:  db,
		reg: reg,
		svc: New(db, reg, pub, nil),
		pub: pub,
		dir: newDir(t),
	}
}

// newDir returns a new, canonical, empty directory outside any repository.
func newDir(t *testing.T) string {
	t.Helper()
	d, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func mkdirs(t *testing.T, parts ...string) string {
	t.Helper()
	d := filepath.Join(parts...)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// create makes a session in f.dir unless p names a directory or parent.
func (f *fixture) create(p CreateParams) Session {
	f.t.Helper()
	if p.Directory == "" && p.ParentID == "" {
		p.Directory = f.dir
	}
	s, err := f.svc.Create(f.ctx, p)
	if err != nil {
		f.t.Fatalf("Create(%+v): %v", p, err)
	}
	return s
}

func (f *fixture) get(id string) Session {
	f.t.Helper()
	s, err := f.svc.Get(f.ctx, id)
	if err != nil {
		f.t.Fatalf("Get(%s): %v", id, err)
	}
	return s
}

func (f *fixture) appendEvent(sessionID string, ev Event) Event {
	f.t.Helper()
	out, err := f.svc.AppendEvent(f.ctx, AppendEventParams{SessionID: sessionID, Event: ev})
	if err != nil {
		f.t.Fatalf("AppendEvent(%s, %+v): %v", sessionID, ev, err)
	}
	return out
}

func (f *fixture) stateUpdate(sessionID string, delta map[string]any) StateResult {
	f.t.Helper()
	res, err := f.svc.StateUpdate(f.ctx, StateUpdateParams{SessionID: sessionID, Delta: rawDelta(f.t, delta)})
	if err != nil {
		f.t.Fatalf("StateUpdate(%s, %v): %v", sessionID, delta, err)
	}
	return res
}

func (f *fixture) state(sessionID, key string) map[string]any {
	f.t.Helper()
	res, err := f.svc.StateGet(f.ctx, StateGetParams{SessionID: sessionID, Key: key})
	if err != nil {
		f.t.Fatalf("StateGet(%s, %q): %v", sessionID, key, err)
	}
	return decodeState(f.t, res)
}

// setClock makes the service see t as now.
func (f *fixture) setClock(t time.Time) { f.svc.now = func() time.Time { return t } }

// keys returns the keys under prefix.
func (f *fixture) keys(prefix []byte) []string {
	f.t.Helper()
	var out []string
	err := f.db.View(f.ctx, func(txn *store.Txn) error {
		return txn.Scan(prefix, nil, false, true, func(k, _ []byte) (bool, error) {
			out = append(out, string(k))
			return true, nil
		})
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return out
}

// allKeys returns every key but the schema key.
func (f *fixture) allKeys() []string {
	f.t.Helper()
	var out []string
	for _, k := range f.keys(nil) {
		if k != string(store.KeySchema()) {
			out = append(out, k)
		}
	}
	return out
}

func textEvent(author, text string) Event {
	return Event{Author: author, Content: []Part{{Type: PartText, Text: text}}}
}

func rawDelta(t *testing.T, m map[string]any) map[string]json.RawMessage {
	t.Helper()
	if m == nil {
		return nil
	}
	out := make(map[string]json.RawMessage, len(m))
	for k, v := range m {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		out[k] = b
	}
	return out
}

func decodeState(t *testing.T, res StateResult) map[string]any {
	t.Helper()
	out := map[string]any{}
	for k, v := range res.State {
		var x any
		if err := json.Unmarshal(v, &x); err != nil {
			t.Fatalf("state %q holds invalid JSON %q: %v", k, v, err)
		}
		out[k] = x
	}
	return out
}

func jsonEqual(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(ja) == string(jb)
}

func wantParamErr(t *testing.T, err error, field string) {
	t.Helper()
	var pe *ParamError
	if !errors.As(err, &pe) {
		t.Errorf("err = %v (%T), want *ParamError on %q", err, err, field)
		return
	}
	if pe.Field != field {
		t.Errorf("ParamError field = %q, want %q (%v)", pe.Field, field, err)
	}
	if strings.TrimSpace(pe.Error()) == "" {
		t.Errorf("ParamError on %q has an empty message", field)
	}
}

func wantNotFound(t *testing.T, err error, kind, id string) {
	t.Helper()
	var nf *NotFoundError
	if !errors.As(err, &nf) {
		t.Errorf("err = %v (%T), want *NotFoundError", err, err)
		return
	}
	if nf.Kind != kind || nf.ID != id {
		t.Errorf("NotFoundError = {%q %q}, want {%q %q}", nf.Kind, nf.ID, kind, id)
	}
}

func wantClosed(t *testing.T, err error, id, lifecycle string) {
	t.Helper()
	var ce *ClosedError
	if !errors.As(err, &ce) {
		t.Errorf("err = %v (%T), want *ClosedError", err, err)
		return
	}
	if ce.ID != id || ce.Lifecycle != lifecycle {
		t.Errorf("ClosedError = {%q %q}, want {%q %q}", ce.ID, ce.Lifecycle, id, lifecycle)
	}
}

func ids(ss []Session) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.ID
	}
	return out
}

func eventIDs(es []Event) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	return out
}

func messageIDs(ms []MessageWithParts) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Info.ID
	}
	return out
}

func reversed[S ~[]E, E any](s S) S {
	out := slices.Clone(s)
	slices.Reverse(out)
	return out
}
