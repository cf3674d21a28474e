package store_test

import (
	"bytes"
	"context"
	"slices"
	"testing"

	"github.com/sessiond/sessiond/store"
)

// Free-form values chosen so that a naive layout ("prefix/value/") would
// let one be a prefix of another's keys.
var freeForm = []string{"a", "a/b", "ab", "a b", "a.b", "b", "", "é"}

// Scanning the prefix of one free-form value must only find its own keys.
func TestFreeFormComponentsNeverPrefixEachOther(t *testing.T) {
	t.Parallel()
	const sesA, sesB = "ses_01ARZ3NDEKTSV4RRFFQ69G5FAV", "ses_01ARZ3NDEKTSV4RRFFQ69G5FAW"
	type family struct {
		name   string
		key    func(owner, k string) []byte
		prefix func(owner string) []byte
		owners []string
		keys   []string
	}
	families := []family{
		{
			name:   "user state",
			key:    store.KeyUserState,
			prefix: store.PrefixUserState,
			owners: freeForm,
			keys:   freeForm[:len(freeForm)-2], // non-empty keys
		},
		{
			name:   "session state",
			key:    store.KeySessionState,
			prefix: store.PrefixSessionState,
			owners: []string{sesA, sesB},
			keys:   freeForm,
		},
		{
			name:   "app state",
			key:    func(_, k string) []byte { return store.KeyAppState(k) },
			prefix: func(string) []byte { return store.PrefixAppState() },
			owners: []string{"app"},
			keys:   freeForm,
		},
	}
	for _, f := range families {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			var all [][]byte
			owner := map[string]string{}
			name := map[string]string{}
			for _, o := range f.owners {
				for _, k := range f.keys {
					key := f.key(o, k)
					if _, dup := owner[string(key)]; dup {
						t.Fatalf("%s: key %q for (%q, %q) collides with (%q, %q)", f.name, key, o, k, owner[string(key)], name[string(key)])
					}
					owner[string(key)], name[string(key)] = o, k
					all = append(all, key)
					if !bytes.HasPrefix(key, f.prefix(o)) {
						t.Errorf("key %q of %q is not under its prefix %q", key, o, f.prefix(o))
					}
					if got := store.TrimNUL(key, f.prefix(o)); got != k {
						t.Errorf("TrimNUL(%q, %q) = %q, want %q", key, f.prefix(o), got, k)
					}
				}
			}
			for _, a := range all {
				for _, b := range all {
					if !bytes.Equal(a, b) && bytes.HasPrefix(b, a) {
						t.Errorf("key %q (%q,%q) is a prefix of key %q (%q,%q)",
							a, owner[string(a)], name[string(a)], b, owner[string(b)], name[string(b)])
					}
				}
				for _, o := range f.owners {
					if o != owner[string(a)] && bytes.HasPrefix(a, f.prefix(o)) {
						t.Errorf("key %q of owner %q is under the prefix of owner %q", a, owner[string(a)], o)
					}
				}
			}
		})
	}
	t.Run("project identities", func(t *testing.T) {
		t.Parallel()
		for _, a := range freeForm {
			for _, b := range freeForm {
				ka, kb := store.KeyProjectIdentity("path:/"+a), store.KeyProjectIdentity("path:/"+b)
				if a != b && bytes.HasPrefix(kb, ka) {
					t.Errorf("identity key %q is a prefix of %q", ka, kb)
				}
			}
		}
	})
}

// The same guarantee on disk: a prefix scan of user "a" finds neither "ab"'s
// nor "a/b"'s state.
func TestUserStateScanIsolatedOnDisk(t *testing.T) {
	t.Parallel()
	db := open(t, t.TempDir())
	defer closeDB(t, db)
	users := []string{"a", "a/b", "ab", "a\x01"}
	err := db.Update(context.Background(), func(txn *store.Txn) error {
		for _, u := range users {
			for _, k := range []string{"k", "k/x", "kk"} {
				if err := txn.SetRaw(store.KeyUserState(u, k), []byte(u+"="+k)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		var got []string
		err := db.View(context.Background(), func(txn *store.Txn) error {
			p := store.PrefixUserState(u)
			return txn.Scan(p, nil, false, false, func(k, v []byte) (bool, error) {
				name := store.TrimNUL(k, p)
				if string(v) != u+"="+name {
					t.Errorf("user %q: key %q holds %q", u, name, v)
				}
				got = append(got, name)
				return true, nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"k", "k/x", "kk"}; !slices.Equal(got, want) {
			t.Errorf("user %q state keys = %q, want %q", u, got, want)
		}
	}
}

func TestRecordPrefixesAreDisjoint(t *testing.T) {
	t.Parallel()
	const ses, msg, prt, prj = "ses_01ARZ3NDEKTSV4RRFFQ69G5FAV", "msg_01ARZ3NDEKTSV4RRFFQ69G5FAV", "prt_01ARZ3NDEKTSV4RRFFQ69G5FAV", "prj_01ARZ3NDEKTSV4RRFFQ69G5FAV"
	keys := map[string][]byte{
		"schema":        store.KeySchema(),
		"project":       store.KeyProject(prj),
		"identity":      store.KeyProjectIdentity("git:abc"),
		"session":       store.KeySession(ses),
		"by project":    store.KeySessionByProject(prj, ses),
		"by parent":     store.KeySessionByParent(ses, ses),
		"message":       store.KeyMessage(ses, msg),
		"part":          store.KeyPart(ses, msg, prt),
		"event":         store.KeyEvent(ses, "evt_01ARZ3NDEKTSV4RRFFQ69G5FAV"),
		"app state":     store.KeyAppState("k"),
		"user state":    store.KeyUserState("u", "k"),
		"session state": store.KeySessionState(ses, "k"),
		"purge":         store.KeyPurge(ses),
	}
	prefixes := map[string][]byte{
		"project":       store.PrefixProjects(),
		"session":       store.PrefixSessions(),
		"by project":    store.PrefixSessionsByProject(prj),
		"by parent":     store.PrefixSessionsByParent(ses),
		"message":       store.PrefixMessages(ses),
		"part":          store.PrefixSessionParts(ses),
		"event":         store.PrefixEvents(ses),
		"app state":     store.PrefixAppState(),
		"user state":    store.PrefixUserState("u"),
		"session state": store.PrefixSessionState(ses),
		"purge":         store.PrefixPurge(),
	}
	for pname, p := range prefixes {
		for kname, k := range keys {
			if under := bytes.HasPrefix(k, p); under != (pname == kname) {
				t.Errorf("%s key %q under %s prefix %q: %v", kname, k, pname, p, under)
			}
		}
	}
	if p := store.PrefixParts(ses, msg); !bytes.HasPrefix(keys["part"], p) {
		t.Errorf("part key %q not under its message's prefix %q", keys["part"], p)
	}
	// The parts of one message are not under another message's prefix.
	other := "msg_01ARZ3NDEKTSV4RRFFQ69G5FAW"
	if bytes.HasPrefix(keys["part"], store.PrefixParts(ses, other)) {
		t.Errorf("part key %q is under another message's prefix", keys["part"])
	}
}

func TestLastComponent(t *testing.T) {
	t.Parallel()
	const ses, prj = "ses_01ARZ3NDEKTSV4RRFFQ69G5FAV", "prj_01ARZ3NDEKTSV4RRFFQ69G5FAV"
	tests := []struct {
		key  []byte
		want string
	}{
		{store.KeySessionByProject(prj, ses), ses},
		{store.KeySessionByParent("ses_parent", ses), ses},
		{store.KeyPurge(ses), ses},
		{store.KeySession(ses), ses},
		{[]byte("noslash"), "noslash"},
		{[]byte("trailing/"), ""},
		{[]byte(""), ""},
	}
	for _, tt := range tests {
		if got := store.LastComponent(tt.key); got != tt.want {
			t.Errorf("LastComponent(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
}

func TestTrimNUL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		key, prefix []byte
		want        string
	}{
		{store.KeyAppState("theme"), store.PrefixAppState(), "theme"},
		{store.KeyAppState("a/b"), store.PrefixAppState(), "a/b"},
		{store.KeyUserState("u1", "lang"), store.PrefixUserState("u1"), "lang"},
		{store.KeySessionState("ses_x", "k:v"), store.PrefixSessionState("ses_x"), "k:v"},
		{[]byte("p/plain"), []byte("p/"), "plain"},
		{[]byte("p/"), []byte("p/"), ""},
	}
	for _, tt := range tests {
		if got := store.TrimNUL(tt.key, tt.prefix); got != tt.want {
			t.Errorf("TrimNUL(%q, %q) = %q, want %q", tt.key, tt.prefix, got, tt.want)
		}
	}
}
