package session

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/store"
)

func TestCreateDefaults(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	before := time.Now().UnixMilli()
	s := f.create(CreateParams{})
	after := time.Now().UnixMilli()

	if !store.ValidID(store.KindSession, s.ID) {
		t.Errorf("ID %q is not a session ID", s.ID)
	}
	if !strings.HasPrefix(s.Title, "New session – ") || len(s.Title) <= len("New session – ") {
		t.Errorf("default title = %q, want \"New session – <time>\"", s.Title)
	}
	if s.Agent != "build" {
		t.Errorf("default agent = %q, want build", s.Agent)
	}
	if s.Lifecycle != LifecycleRunning {
		t.Errorf("lifecycle = %q, want %q", s.Lifecycle, LifecycleRunning)
	}
	if s.RootID != s.ID || s.ParentID != "" || s.Depth != 0 {
		t.Errorf("root/parent/depth = %q/%q/%d, want %q/\"\"/0", s.RootID, s.ParentID, s.Depth, s.ID)
	}
	if s.Directory != f.dir {
		t.Errorf("directory = %q, want %q", s.Directory, f.dir)
	}
	if !store.ValidID(store.KindProject, s.ProjectID) {
		t.Errorf("projectID %q is not a project ID", s.ProjectID)
	}
	if s.Time.Created < before || s.Time.Created > after || s.Time.Updated != s.Time.Created {
		t.Errorf("time = %+v, want created = updated in [%d, %d]", s.Time, before, after)
	}
	if s.Version < 1 || s.MessageCount != 0 {
		t.Errorf("version/messageCount = %d/%d, want ≥1/0", s.Version, s.MessageCount)
	}
	if got := f.get(s.ID); !jsonEqual(t, got, s) {
		t.Errorf("Get = %+v, want what Create returned %+v", got, s)
	}
	p, err := f.reg.Get(f.ctx, s.ProjectID)
	if err != nil || p.Root != f.dir {
		t.Errorf("project of the session = %+v, %v; want root %q", p, err, f.dir)
	}
	if got := types(f.pub.since(0), s.ID); len(got) != 1 || got[0] != "session.created" {
		t.Errorf("published %v, want [session.created]", got)
	}
}

func TestCreateKeepsGivenFields(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(f.dir, link); err != nil {
		t.Fatal(err)
	}
	in := CreateParams{
		Title:      "  Fix the parser  ",
		Directory:  link,
		Permission: json.RawMessage(`{"bash":"ask"}`),
		Agent:      "plan",
		Model:      &ModelRef{ProviderID: "openai", ModelID: "gpt-x"},
		UserID:     "alice",
		Metadata:   map[string]any{"ticket": "T-1"},
	}
	s := f.create(in)
	if s.Title != "Fix the parser" {
		t.Errorf("title = %q, want it trimmed", s.Title)
	}
	if s.Directory != f.dir {
		t.Errorf("directory = %q, want the canonical %q", s.Directory, f.dir)
	}
	if s.Agent != "plan" || s.UserID != "alice" || s.Model == nil || *s.Model != *in.Model {
		t.Errorf("agent/user/model = %q/%q/%v", s.Agent, s.UserID, s.Model)
	}
	if string(s.Permission) != `{"bash":"ask"}` || s.Metadata["ticket"] != "T-1" {
		t.Errorf("permission/metadata = %s/%v", s.Permission, s.Metadata)
	}
	if got := f.get(s.ID); !jsonEqual(t, got, s) {
		t.Errorf("Get = %+v, want %+v", got, s)
	}
}

func TestCreateRejectsBadParams(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	file := filepath.Join(f.dir, "file.txt")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	absentParent := f.db.NewID(store.KindSession)
	tests := []struct {
		name  string
		p     CreateParams
		field string
	}{
		{"no directory", CreateParams{}, "directory"},
		{"relative directory", CreateParams{Directory: "some/dir"}, "directory"},
		{"dot directory", CreateParams{Directory: "."}, "directory"},
		{"missing directory", CreateParams{Directory: filepath.Join(f.dir, "missing")}, "directory"},
		{"file as directory", CreateParams{Directory: file}, "directory"},
		{"model without modelID", CreateParams{Directory: f.dir, Model: &ModelRef{ProviderID: "openai"}}, "model"},
		{"model without providerID", CreateParams{Directory: f.dir, Model: &ModelRef{ModelID: "m"}}, "model"},
		{"missing parent", CreateParams{ParentID: absentParent}, "parentID"},
		{"missing parent with directory", CreateParams{Directory: f.dir, ParentID: absentParent}, "parentID"},
		{"NUL in userID", CreateParams{Directory: f.dir, UserID: "a\x00b"}, "userID"},
	}
	for _, tt := range tests {
		_, err := f.svc.Create(f.ctx, tt.p)
		if err == nil {
			t.Errorf("%s: Create succeeded", tt.name)
			continue
		}
		t.Run(tt.name, func(t *testing.T) { wantParamErr(t, err, tt.field) })
	}
	if got := f.keys(store.PrefixSessions()); len(got) != 0 {
		t.Errorf("rejected creates stored sessions: %q", got)
	}
	if got := types(f.pub.since(0), ""); len(got) != 0 {
		t.Errorf("rejected creates published %v", got)
	}
}

func TestCreateChild(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	sub := mkdirs(t, f.dir, "sub")
	root := f.create(CreateParams{UserID: "alice"})
	child := f.create(CreateParams{ParentID: root.ID})
	grand := f.create(CreateParams{ParentID: child.ID, Directory: sub})

	if child.ParentID != root.ID || child.RootID != root.ID || child.Depth != 1 {
		t.Errorf("child parent/root/depth = %q/%q/%d, want %q/%q/1", child.ParentID, child.RootID, child.Depth, root.ID, root.ID)
	}
	if child.Directory != root.Directory || child.ProjectID != root.ProjectID {
		t.Errorf("child directory/project = %q/%q, want the parent's %q/%q", child.Directory, child.ProjectID, root.Directory, root.ProjectID)
	}
	if !strings.HasPrefix(child.Title, "Child session – ") {
		t.Errorf("child default title = %q", child.Title)
	}
	if grand.ParentID != child.ID || grand.RootID != root.ID || grand.Depth != 2 {
		t.Errorf("grandchild parent/root/depth = %q/%q/%d, want %q/%q/2", grand.ParentID, grand.RootID, grand.Depth, child.ID, root.ID)
	}
	if grand.Directory != sub || grand.ProjectID != root.ProjectID {
		t.Errorf("grandchild directory/project = %q/%q, want %q/%q", grand.Directory, grand.ProjectID, sub, root.ProjectID)
	}
	kids, err := f.svc.Children(f.ctx, root.ID)
	if err != nil || len(kids) != 1 || kids[0].ID != child.ID {
		t.Errorf("Children(root) = %v, %v; want [%s]", ids(kids), err, child.ID)
	}
}

func TestCreateChildInAnotherProjectIsRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	other := newDir(t)
	parent := f.create(CreateParams{})
	_, err := f.svc.Create(f.ctx, CreateParams{ParentID: parent.ID, Directory: other})
	wantParamErr(t, err, "directory")
	kids, err := f.svc.Children(f.ctx, parent.ID)
	if err != nil || len(kids) != 0 {
		t.Errorf("Children after a refused child = %v, %v", ids(kids), err)
	}
	if n := len(f.keys(store.PrefixSessions())); n != 1 {
		t.Errorf("%d sessions stored, want 1", n)
	}
}

func TestGet(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	absent := f.db.NewID(store.KindSession)
	_, err := f.svc.Get(f.ctx, absent)
	wantNotFound(t, err, "session", absent)
	_, err = f.svc.Get(f.ctx, "garbage")
	wantNotFound(t, err, "session", "garbage")
	_, err = f.svc.Get(f.ctx, "")
	wantParamErr(t, err, "sessionID")
}

func ptr[T any](v T) *T { return &v }

func TestUpdate(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := f.create(CreateParams{Metadata: map[string]any{"keep": "k", "drop": "d", "change": 1.0}})
	mark := f.pub.len()

	steps := []struct {
		name  string
		p     UpdateParams
		check func(t *testing.T, s Session)
	}{
		{"title", UpdateParams{Title: ptr("  Renamed ")}, func(t *testing.T, s Session) {
			if s.Title != "Renamed" {
				t.Errorf("title = %q, want Renamed", s.Title)
			}
		}},
		{"agent", UpdateParams{Agent: ptr("plan")}, func(t *testing.T, s Session) {
			if s.Agent != "plan" || s.Title != "Renamed" {
				t.Errorf("agent/title = %q/%q, want plan/Renamed", s.Agent, s.Title)
			}
		}},
		{"model", UpdateParams{Model: &ModelRef{ProviderID: "anthropic", ModelID: "claude"}}, func(t *testing.T, s Session) {
			if s.Model == nil || s.Model.ProviderID != "anthropic" || s.Model.ModelID != "claude" || s.Agent != "plan" {
				t.Errorf("model/agent = %v/%q", s.Model, s.Agent)
			}
		}},
		{"metadata merge", UpdateParams{Metadata: map[string]any{"drop": nil, "change": 2.0, "new": "n"}}, func(t *testing.T, s Session) {
			want := map[string]any{"keep": "k", "change": 2.0, "new": "n"}
			if !jsonEqual(t, s.Metadata, want) {
				t.Errorf("metadata = %v, want %v", s.Metadata, want)
			}
		}},
	}
	prev := s
	for _, st := range steps {
		st.p.SessionID = s.ID
		got, err := f.svc.Update(f.ctx, st.p)
		if err != nil {
			t.Fatalf("%s: Update: %v", st.name, err)
		}
		t.Run(st.name, func(t *testing.T) {
			st.check(t, got)
			if got.Version != prev.Version+1 {
				t.Errorf("version = %d, want %d", got.Version, prev.Version+1)
			}
			if got.Time.Updated < prev.Time.Updated || got.Time.Created != s.Time.Created {
				t.Errorf("time = %+v after %+v", got.Time, prev.Time)
			}
			if stored := f.get(s.ID); !jsonEqual(t, stored, got) {
				t.Errorf("Get = %+v, want what Update returned %+v", stored, got)
			}
		})
		prev = got
	}
	if got, want := types(f.pub.since(mark), s.ID), len(steps); len(got) != want || got[0] != "session.updated" {
		t.Errorf("published %v, want %d session.updated", got, want)
	}

	// An update that changes nothing (no fields, or the values it already
	// has) writes nothing and announces nothing.
	mark = f.pub.len()
	for _, p := range []UpdateParams{{}, {Title: ptr("Renamed"), Agent: ptr("plan")}} {
		p.SessionID = s.ID
		got, err := f.svc.Update(f.ctx, p)
		if err != nil {
			t.Fatalf("no-op Update: %v", err)
		}
		if got.Version != prev.Version || got.Time.Updated != prev.Time.Updated {
			t.Errorf("no-op Update moved version %d → %d, updated %d → %d", prev.Version, got.Version, prev.Time.Updated, got.Time.Updated)
		}
	}
	if got := types(f.pub.since(mark), s.ID); len(got) != 0 {
		t.Errorf("no-op Updates published %v", got)
	}
}

func TestUpdateRejectsBadParams(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := f.create(CreateParams{Title: "orig"})
	tests := []struct {
		name  string
		p     UpdateParams
		field string
	}{
		{"empty title", UpdateParams{Title: ptr("")}, "title"},
		{"blank title", UpdateParams{Title: ptr(" \t ")}, "title"},
		{"empty agent", UpdateParams{Agent: ptr("")}, "agent"},
		{"half a model", UpdateParams{Model: &ModelRef{ProviderID: "p"}}, "model"},
	}
	for _, tt := range tests {
		tt.p.SessionID = s.ID
		_, err := f.svc.Update(f.ctx, tt.p)
		t.Run(tt.name, func(t *testing.T) { wantParamErr(t, err, tt.field) })
	}
	if got := f.get(s.ID); !jsonEqual(t, got, s) {
		t.Errorf("rejected updates changed the session: %+v, was %+v", got, s)
	}
	absent := f.db.NewID(store.KindSession)
	_, err := f.svc.Update(f.ctx, UpdateParams{SessionID: absent, Title: ptr("x")})
	wantNotFound(t, err, "session", absent)
}

func TestUpdateTimeNeverGoesBack(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := f.create(CreateParams{})
	// The wall clock steps back an hour (NTP, a VM resumed): the update
	// time must not.
	f.setClock(time.UnixMilli(s.Time.Updated).Add(-time.Hour))
	got, err := f.svc.Update(f.ctx, UpdateParams{SessionID: s.ID, Title: ptr("x")})
	if err != nil {
		t.Fatal(err)
	}
	if got.Time.Updated < s.Time.Updated {
		t.Errorf("Time.Updated went back from %d to %d", s.Time.Updated, got.Time.Updated)
	}
	// And moves forward with the clock.
	later := time.UnixMilli(s.Time.Updated).Add(time.Hour)
	f.setClock(later)
	got, err = f.svc.Update(f.ctx, UpdateParams{SessionID: s.ID, Title: ptr("y")})
	if err != nil {
		t.Fatal(err)
	}
	if got.Time.Updated != later.UnixMilli() {
		t.Errorf("Time.Updated = %d, want %d", got.Time.Updated, later.UnixMilli())
	}
}

func TestArchive(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := f.create(CreateParams{})
	at := time.UnixMilli(s.Time.Created).Add(time.Minute)
	f.setClock(at)

	a, err := f.svc.Update(f.ctx, UpdateParams{SessionID: s.ID, Archived: ptr(true)})
	if err != nil {
		t.Fatal(err)
	}
	if a.Lifecycle != LifecycleArchived || a.Time.Archived != at.UnixMilli() {
		t.Errorf("archived: lifecycle %q, time.archived %d; want %q, %d", a.Lifecycle, a.Time.Archived, LifecycleArchived, at.UnixMilli())
	}
	_, err = f.svc.AppendEvent(f.ctx, AppendEventParams{SessionID: s.ID, Event: textEvent("user", "hi")})
	wantClosed(t, err, s.ID, LifecycleArchived)
	if _, err := f.svc.Pause(f.ctx, s.ID); err == nil {
		t.Error("Pause of an archived session succeeded")
	}
	// Archiving again keeps the first archive time.
	f.setClock(at.Add(time.Minute))
	a2, err := f.svc.Update(f.ctx, UpdateParams{SessionID: s.ID, Archived: ptr(true)})
	if err != nil || a2.Time.Archived != a.Time.Archived {
		t.Errorf("second archive: time.archived %d, %v; want %d", a2.Time.Archived, err, a.Time.Archived)
	}

	u, err := f.svc.Update(f.ctx, UpdateParams{SessionID: s.ID, Archived: ptr(false)})
	if err != nil {
		t.Fatal(err)
	}
	if u.Lifecycle != LifecycleRunning || u.Time.Archived != 0 {
		t.Errorf("unarchived: lifecycle %q, time.archived %d; want running, 0", u.Lifecycle, u.Time.Archived)
	}
	f.appendEvent(s.ID, textEvent("user", "back"))
}

// Stop is for good (DESIGN §2: running ⇄ paused → stopped): archiving and
// unarchiving a stopped session must not bring it back to life.
func TestUnarchiveKeepsAStoppedSessionStopped(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := f.create(CreateParams{})
	if _, err := f.svc.Stop(f.ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Update(f.ctx, UpdateParams{SessionID: s.ID, Archived: ptr(true)}); err != nil {
		t.Fatal(err)
	}
	u, err := f.svc.Update(f.ctx, UpdateParams{SessionID: s.ID, Archived: ptr(false)})
	if err != nil {
		t.Fatal(err)
	}
	if u.Lifecycle != LifecycleStopped {
		t.Errorf("stopped → archived → unarchived gives lifecycle %q, want %q", u.Lifecycle, LifecycleStopped)
	}
	_, err = f.svc.AppendEvent(f.ctx, AppendEventParams{SessionID: s.ID, Event: textEvent("user", "hi")})
	wantClosed(t, err, s.ID, LifecycleStopped)
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := f.create(CreateParams{})
	type op struct {
		name string
		fn   func(id string) (Session, error)
	}
	pause := op{"Pause", func(id string) (Session, error) { return f.svc.Pause(f.ctx, id) }}
	resume := op{"Resume", func(id string) (Session, error) { return f.svc.Resume(f.ctx, id) }}
	stop := op{"Stop", func(id string) (Session, error) { return f.svc.Stop(f.ctx, id) }}
	steps := []struct {
		op     op
		want   string // lifecycle after, or "" for ClosedError
		closed string
		noop   bool
	}{
		{pause, LifecyclePaused, "", false},
		{pause, LifecyclePaused, "", true},
		{resume, LifecycleRunning, "", false},
		{resume, LifecycleRunning, "", true},
		{pause, LifecyclePaused, "", false},
		{stop, LifecycleStopped, "", false},
		{resume, "", LifecycleStopped, false},
		{pause, "", LifecycleStopped, false},
		{stop, LifecycleStopped, "", true},
	}
	version := s.Version
	for i, st := range steps {
		mark := f.pub.len()
		got, err := st.op.fn(s.ID)
		if st.want == "" {
			wantClosed(t, err, s.ID, st.closed)
			if v := f.get(s.ID); v.Lifecycle != st.closed || v.Version != version {
				t.Errorf("step %d %s: refused op changed the session to %q v%d", i, st.op.name, v.Lifecycle, v.Version)
			}
			continue
		}
		if err != nil {
			t.Fatalf("step %d %s: %v", i, st.op.name, err)
		}
		if got.Lifecycle != st.want || f.get(s.ID).Lifecycle != st.want {
			t.Errorf("step %d %s: lifecycle %q, want %q", i, st.op.name, got.Lifecycle, st.want)
		}
		ty := types(f.pub.since(mark), s.ID)
		if st.noop {
			// Asking for the state a session is already in changes nothing.
			if got.Version != version || len(ty) != 0 {
				t.Errorf("step %d %s: no-op moved version %d → %d and published %v", i, st.op.name, version, got.Version, ty)
			}
			continue
		}
		if got.Version <= version {
			t.Errorf("step %d %s: version %d did not grow from %d", i, st.op.name, got.Version, version)
		}
		version = got.Version
		if len(ty) != 1 || ty[0] != "session.updated" {
			t.Errorf("step %d %s: published %v", i, st.op.name, ty)
		}
	}
	_, err := f.svc.AppendEvent(f.ctx, AppendEventParams{SessionID: s.ID, Event: textEvent("user", "hi")})
	wantClosed(t, err, s.ID, LifecycleStopped)

	absent := f.db.NewID(store.KindSession)
	for _, o := range []op{pause, resume, stop} {
		_, err := o.fn(absent)
		wantNotFound(t, err, "session", absent)
	}
}

func TestPausedSessionStillRecordsEvents(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := f.create(CreateParams{})
	if _, err := f.svc.Pause(f.ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	f.appendEvent(s.ID, textEvent("user", "while paused"))
	if got := f.get(s.ID); got.MessageCount != 1 || got.Lifecycle != LifecyclePaused {
		t.Errorf("after append to a paused session: count %d, lifecycle %q", got.MessageCount, got.Lifecycle)
	}
}

func TestStatus(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := f.create(CreateParams{})
	f.appendEvent(s.ID, textEvent("user", "a"))
	f.appendEvent(s.ID, textEvent("bot", "b"))
	cur := f.get(s.ID)
	st, err := f.svc.Status(f.ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := st[s.ID]
	if !ok || got.State != "idle" || got.MessageCount != 2 || got.LastActive != cur.Time.Updated {
		t.Errorf("Status = %+v, want idle with 2 messages, lastActive %d", st, cur.Time.Updated)
	}
	absent := f.db.NewID(store.KindSession)
	_, err = f.svc.Status(f.ctx, absent)
	wantNotFound(t, err, "session", absent)
}
