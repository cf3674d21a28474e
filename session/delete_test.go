package session

import (
	"slices"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/store"
)

// populate gives a session two messages (one with two parts), an event
// without content, and session state.
func (f *fixture) populate(s Session) {
	f.t.Helper()
	f.appendEvent(s.ID, Event{Author: "user", Content: []Part{{Type: PartText, Text: "q"}, {Type: PartFile, Path: "a.go"}}})
	f.appendEvent(s.ID, textEvent("bot", "a"))
	f.appendEvent(s.ID, Event{Author: "bot", Actions: &EventActions{Escalate: true}})
	f.stateUpdate(s.ID, map[string]any{"mine": s.ID})
}

// sessionKeys lists every record keyed under a session ID.
func (f *fixture) sessionKeys(id string) []string {
	f.t.Helper()
	var out []string
	for _, k := range f.allKeys() {
		if strings.Contains(k, id) {
			out = append(out, k)
		}
	}
	return out
}

func TestDeleteTree(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	root := f.create(CreateParams{UserID: "alice"})
	a := f.create(CreateParams{ParentID: root.ID})
	b := f.create(CreateParams{ParentID: root.ID})
	a1 := f.create(CreateParams{ParentID: a.ID})
	sibling := f.create(CreateParams{UserID: "alice"})
	siblingChild := f.create(CreateParams{ParentID: sibling.ID})
	doomed := []Session{root, a, b, a1}
	for _, s := range append(slices.Clone(doomed), sibling, siblingChild) {
		f.populate(s)
	}
	f.stateUpdate(root.ID, map[string]any{"app:shared": 1, "user:pref": 2})
	siblingKeys := f.sessionKeys(sibling.ID)
	siblingChildKeys := f.sessionKeys(siblingChild.ID)
	siblingMsgs := f.messages(MessagesParams{SessionID: sibling.ID})
	mark := f.pub.len()

	if err := f.svc.Delete(f.ctx, root.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}

	for _, s := range doomed {
		_, err := f.svc.Get(f.ctx, s.ID)
		wantNotFound(t, err, "session", s.ID)
		if left := f.sessionKeys(s.ID); len(left) != 0 {
			t.Errorf("deleted session %s left records %q", s.ID, left)
		}
	}
	if left := f.keys(store.PrefixPurge()); len(left) != 0 {
		t.Errorf("purge markers left: %q", left)
	}
	// The sibling tree is untouched.
	if got := f.sessionKeys(sibling.ID); !slices.Equal(got, siblingKeys) {
		t.Errorf("sibling records changed:\n got %q\nwant %q", got, siblingKeys)
	}
	if got := f.sessionKeys(siblingChild.ID); !slices.Equal(got, siblingChildKeys) {
		t.Errorf("sibling's child records changed:\n got %q\nwant %q", got, siblingChildKeys)
	}
	if got := f.messages(MessagesParams{SessionID: sibling.ID}); !jsonEqual(t, got, siblingMsgs) {
		t.Errorf("sibling messages changed")
	}
	// app: and user: state outlive the session that wrote them.
	want := map[string]any{"app:shared": 1.0, "user:pref": 2.0, "mine": sibling.ID}
	if got := f.state(sibling.ID, ""); !jsonEqual(t, got, want) {
		t.Errorf("sibling state after delete = %v, want %v", got, want)
	}
	if got := ids(f.list(ListParams{}).Sessions); !slices.Equal(got, []string{siblingChild.ID, sibling.ID}) {
		t.Errorf("List after delete = %q, want the sibling tree", got)
	}

	changes := f.pub.since(mark)
	deleted := map[string]int{}
	for _, c := range changes {
		if c.Type != "session.deleted" {
			t.Errorf("Delete published %s", c.Type)
			continue
		}
		deleted[c.SessionID]++
		if c.ProjectID != root.ProjectID {
			t.Errorf("session.deleted for %s routed to project %q", c.SessionID, c.ProjectID)
		}
	}
	for _, s := range doomed {
		if deleted[s.ID] != 1 {
			t.Errorf("session.deleted published %d times for %s", deleted[s.ID], s.ID)
		}
	}
	if len(deleted) != len(doomed) {
		t.Errorf("session.deleted published for %d sessions, want %d", len(deleted), len(doomed))
	}
}

func TestDeleteChild(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	root := f.create(CreateParams{})
	a := f.create(CreateParams{ParentID: root.ID})
	b := f.create(CreateParams{ParentID: root.ID})
	a1 := f.create(CreateParams{ParentID: a.ID})
	f.populate(a)
	f.populate(root)
	rootMsgs := f.messages(MessagesParams{SessionID: root.ID})

	if err := f.svc.Delete(f.ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	kids, err := f.svc.Children(f.ctx, root.ID)
	if err != nil || !slices.Equal(ids(kids), []string{b.ID}) {
		t.Errorf("Children(root) after deleting a child = %q, %v; want [%s]", ids(kids), err, b.ID)
	}
	if got := ids(f.list(ListParams{ParentID: root.ID}).Sessions); !slices.Equal(got, []string{b.ID}) {
		t.Errorf("List(parentID) after deleting a child = %q", got)
	}
	if got := f.keys(store.PrefixSessionsByParent(root.ID)); len(got) != 1 {
		t.Errorf("parent's child index = %q, want one entry", got)
	}
	for _, id := range []string{a.ID, a1.ID} {
		_, err := f.svc.Get(f.ctx, id)
		wantNotFound(t, err, "session", id)
	}
	if got := f.get(root.ID); got.MessageCount != 2 {
		t.Errorf("root message count = %d after deleting a child", got.MessageCount)
	}
	if got := f.messages(MessagesParams{SessionID: root.ID}); !jsonEqual(t, got, rootMsgs) {
		t.Error("root messages changed by deleting a child")
	}
	// The parent can still have new children.
	f.create(CreateParams{ParentID: root.ID})
}

func TestDeleteNotFound(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := f.create(CreateParams{})
	absent := f.db.NewID(store.KindSession)
	wantNotFound(t, f.svc.Delete(f.ctx, absent), "session", absent)
	if err := f.svc.Delete(f.ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	wantNotFound(t, f.svc.Delete(f.ctx, s.ID), "session", s.ID)
	// Every operation on it now says not found.
	_, err := f.svc.AppendEvent(f.ctx, AppendEventParams{SessionID: s.ID, Event: textEvent("user", "x")})
	wantNotFound(t, err, "session", s.ID)
	_, err = f.svc.Update(f.ctx, UpdateParams{SessionID: s.ID, Title: ptr("x")})
	wantNotFound(t, err, "session", s.ID)
	_, err = f.svc.StateUpdate(f.ctx, StateUpdateParams{SessionID: s.ID, Delta: rawDelta(t, map[string]any{"k": 1})})
	wantNotFound(t, err, "session", s.ID)
	_, err = f.svc.Create(f.ctx, CreateParams{ParentID: s.ID})
	wantParamErr(t, err, "parentID")
	if left := f.sessionKeys(s.ID); len(left) != 0 {
		t.Errorf("records left after operations on a deleted session: %q", left)
	}
}

func TestResumePurges(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	live := f.create(CreateParams{UserID: "u"})
	f.populate(live)
	f.stateUpdate(live.ID, map[string]any{"app:a": 1, "user:b": 2})
	liveKeys := f.sessionKeys(live.ID)
	before := f.allKeys()

	// A daemon killed after Delete's transaction: the session record is
	// gone, its data and the marker are still there.
	ghosts := []string{f.db.NewID(store.KindSession), f.db.NewID(store.KindSession)}
	err := f.db.Update(f.ctx, func(txn *store.Txn) error {
		for _, id := range ghosts {
			msg, prt, evt := f.db.NewID(store.KindMessage), f.db.NewID(store.KindPart), f.db.NewID(store.KindEvent)
			for _, k := range [][]byte{
				store.KeyMessage(id, msg),
				store.KeyPart(id, msg, prt),
				store.KeyEvent(id, evt),
				store.KeySessionState(id, "k"),
				store.KeySessionState(id, "k2"),
				store.KeySessionByParent(id, f.db.NewID(store.KindSession)),
				store.KeyPurge(id),
			} {
				if err := txn.SetRaw(k, []byte(`{}`)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.svc.ResumePurges(f.ctx); err != nil {
		t.Fatalf("ResumePurges: %v", err)
	}
	for _, id := range ghosts {
		for _, p := range [][]byte{
			store.PrefixMessages(id), store.PrefixSessionParts(id), store.PrefixEvents(id),
			store.PrefixSessionState(id), store.PrefixSessionsByParent(id), store.KeyPurge(id),
		} {
			if left := f.keys(p); len(left) != 0 {
				t.Errorf("after ResumePurges %q still holds %q", p, left)
			}
		}
	}
	if got := f.allKeys(); !slices.Equal(got, before) {
		t.Errorf("ResumePurges touched other records:\n got %q\nwant %q", got, before)
	}
	if got := f.sessionKeys(live.ID); !slices.Equal(got, liveKeys) {
		t.Errorf("live session records changed")
	}
	// Nothing left to do: a second run is a no-op.
	if err := f.svc.ResumePurges(f.ctx); err != nil {
		t.Errorf("second ResumePurges: %v", err)
	}
}
