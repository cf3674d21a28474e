package session

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/store"
)

func TestStateScopes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a1 := f.create(CreateParams{UserID: "alice"})
	a2 := f.create(CreateParams{UserID: "alice"})
	b := f.create(CreateParams{UserID: "bob"})

	res := f.stateUpdate(a1.ID, map[string]any{
		"app:theme":    "dark",
		"user:lang":    "fr",
		"draft":        map[string]any{"n": 1.0},
		"session:mode": "fast",
		"temp:scratch": "turn only",
	})
	wantA1 := map[string]any{"app:theme": "dark", "user:lang": "fr", "draft": map[string]any{"n": 1.0}, "mode": "fast"}
	if got := decodeState(t, res); !jsonEqual(t, got, wantA1) {
		t.Errorf("StateUpdate returned %v, want %v", got, wantA1)
	}
	f.stateUpdate(b.ID, map[string]any{"user:lang": "de", "draft": "bob's"})

	full := []struct {
		name string
		id   string
		want map[string]any
	}{
		{"writer", a1.ID, wantA1},
		{"same user", a2.ID, map[string]any{"app:theme": "dark", "user:lang": "fr"}},
		{"other user", b.ID, map[string]any{"app:theme": "dark", "user:lang": "de", "draft": "bob's"}},
	}
	for _, tt := range full {
		if got := f.state(tt.id, ""); !jsonEqual(t, got, tt.want) {
			t.Errorf("%s: state = %v, want %v", tt.name, got, tt.want)
		}
	}

	byKey := []struct {
		name, id, key string
		want          map[string]any
	}{
		{"app key", b.ID, "app:theme", map[string]any{"app:theme": "dark"}},
		{"user key, same user", a2.ID, "user:lang", map[string]any{"user:lang": "fr"}},
		{"user key, other user", b.ID, "user:lang", map[string]any{"user:lang": "de"}},
		{"session key", a1.ID, "draft", map[string]any{"draft": map[string]any{"n": 1.0}}},
		{"session: prefix", a1.ID, "session:mode", map[string]any{"mode": "fast"}},
		{"session key of another session", a2.ID, "draft", map[string]any{}},
		{"temp key", a1.ID, "temp:scratch", map[string]any{}},
		{"absent key", a1.ID, "app:nothing", map[string]any{}},
	}
	for _, tt := range byKey {
		if got := f.state(tt.id, tt.key); !jsonEqual(t, got, tt.want) {
			t.Errorf("%s: StateGet(%q) = %v, want %v", tt.name, tt.key, got, tt.want)
		}
	}

	// null deletes, in every scope.
	res = f.stateUpdate(a2.ID, map[string]any{"app:theme": nil, "user:lang": nil, "absent": nil})
	if got, want := decodeState(t, res), map[string]any{}; !jsonEqual(t, got, want) {
		t.Errorf("after deletes a2 sees %v", got)
	}
	if got, want := f.state(a1.ID, ""), map[string]any{"draft": map[string]any{"n": 1.0}, "mode": "fast"}; !jsonEqual(t, got, want) {
		t.Errorf("after a2 deleted app:/user: keys a1 sees %v, want %v", got, want)
	}
	if got, want := f.state(b.ID, ""), map[string]any{"user:lang": "de", "draft": "bob's"}; !jsonEqual(t, got, want) {
		t.Errorf("bob's state after alice's deletes = %v, want %v", got, want)
	}
	f.stateUpdate(a1.ID, map[string]any{"session:draft": nil})
	if got, want := f.state(a1.ID, ""), map[string]any{"mode": "fast"}; !jsonEqual(t, got, want) {
		t.Errorf("after deleting session:draft = %v, want %v", got, want)
	}

	for _, k := range f.allKeys() {
		if strings.Contains(k, "scratch") {
			t.Errorf("temp: key stored as %q", k)
		}
	}
}

// User IDs that share a string prefix do not share state.
func TestUserStateIsolation(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	users := []string{"a", "a/b", "ab", "a:b"}
	sessions := map[string]Session{}
	for _, u := range users {
		sessions[u] = f.create(CreateParams{UserID: u})
		f.stateUpdate(sessions[u].ID, map[string]any{"user:name": u, "user:" + u: true})
	}
	for _, u := range users {
		want := map[string]any{"user:name": u, "user:" + u: true}
		if got := f.state(sessions[u].ID, ""); !jsonEqual(t, got, want) {
			t.Errorf("user %q sees %v, want %v", u, got, want)
		}
	}
}

func TestStateUpdateRejectsBadDeltas(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := f.create(CreateParams{UserID: "alice"})
	tests := []struct {
		name      string
		sessionID string
		delta     map[string]json.RawMessage
		field     string
	}{
		{"no delta", s.ID, nil, "delta"},
		{"unknown scope", s.ID, rawDelta(t, map[string]any{"app:ok": 1, "user:ok": 1, "ok": 1, "foo:x": 1}), "delta.foo:x"},
		{"empty name", s.ID, rawDelta(t, map[string]any{"ok": 1, "user:": 1}), "delta.user:"},
		{"NUL in key", s.ID, rawDelta(t, map[string]any{"ok": 1, "a\x00b": 1}), "delta.a\x00b"},
		{"no sessionID", "", rawDelta(t, map[string]any{"ok": 1}), "sessionID"},
	}
	for _, tt := range tests {
		_, err := f.svc.StateUpdate(f.ctx, StateUpdateParams{SessionID: tt.sessionID, Delta: tt.delta})
		t.Run(tt.name, func(t *testing.T) { wantParamErr(t, err, tt.field) })
	}
	for _, k := range f.allKeys() {
		for _, p := range []string{"sta/", "stu/", "sts/"} {
			if strings.HasPrefix(k, p) {
				t.Errorf("a rejected delta stored %q", k)
			}
		}
	}
	// An empty delta changes nothing and returns the state.
	f.stateUpdate(s.ID, map[string]any{"k": 1})
	if got := decodeState(t, mustStateUpdate(t, f, s.ID, map[string]json.RawMessage{})); !jsonEqual(t, got, map[string]any{"k": 1}) {
		t.Errorf("empty delta returned %v", got)
	}

	_, err := f.svc.StateGet(f.ctx, StateGetParams{SessionID: s.ID, Key: "foo:x"})
	wantParamErr(t, err, "key")
	absent := f.db.NewID(store.KindSession)
	_, err = f.svc.StateGet(f.ctx, StateGetParams{SessionID: absent})
	wantNotFound(t, err, "session", absent)
	_, err = f.svc.StateUpdate(f.ctx, StateUpdateParams{SessionID: absent, Delta: rawDelta(t, map[string]any{"app:x": 1})})
	wantNotFound(t, err, "session", absent)
	if got := f.keys(store.KeyAppState("x")); len(got) != 0 {
		t.Errorf("update of an absent session stored %q", got)
	}
}

func mustStateUpdate(t *testing.T, f *fixture, id string, delta map[string]json.RawMessage) StateResult {
	t.Helper()
	res, err := f.svc.StateUpdate(f.ctx, StateUpdateParams{SessionID: id, Delta: delta})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestStateOnlyTempDeltaStoresNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := f.create(CreateParams{})
	res := f.stateUpdate(s.ID, map[string]any{"temp:a": 1, "temp:b": 2})
	if len(res.State) != 0 {
		t.Errorf("a temp:-only delta returned state %v", decodeState(t, res))
	}
	for _, k := range f.allKeys() {
		for _, p := range []string{"sta/", "stu/", "sts/"} {
			if strings.HasPrefix(k, p) {
				t.Errorf("a temp:-only delta stored %q", k)
			}
		}
	}
}
