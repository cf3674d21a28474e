package snapshot

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/store"
)

func TestChangedAndDiff(t *testing.T) {
	t.Parallel()
	v := newEnv(t, Options{MaxFileSize: 4 << 10})
	write(t, v.root, "keep.txt", "unchanged\n", 0o644)
	write(t, v.root, "edit.txt", "one\ntwo\nthree\nfour\nfive\nsix\nseven\n", 0o644)
	write(t, v.root, "gone.txt", "bye\nbye\n", 0o644)
	write(t, v.root, "image.png", "\x89PNG\r\n\x1a\n\x00\x00\x00", 0o644)
	write(t, v.root, "latin1.txt", "caf\xe9\n", 0o644)
	write(t, v.root, "tool", "#!/bin/sh\n", 0o644)
	write(t, v.root, "big.log", strings.Repeat("x", 5<<10), 0o644)
	write(t, v.root, "olddir/a.txt", "a\n", 0o644)
	write(t, v.root, "same/deep/file.txt", "same\n", 0o644)
	symlink(t, v.root, "link", "keep.txt")
	a := v.capture(nil, nil)

	write(t, v.root, "edit.txt", "one\ntwo\nTHREE\nfour\nfive\nsix\nseven\neight\n", 0o644)
	remove(t, v.root, "gone.txt")
	write(t, v.root, "image.png", "\x89PNG\r\n\x1a\n\x00\x00\x01", 0o644)
	write(t, v.root, "latin1.txt", "caf\xe9s\n", 0o644)
	if err := os.Chmod(filepath.Join(v.root, "tool"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, v.root, "big.log", strings.Repeat("y", 6<<10), 0o644)
	remove(t, v.root, "olddir")
	write(t, v.root, "newdir/sub/n.txt", "n1\nn2\n", 0o644)
	remove(t, v.root, "link")
	symlink(t, v.root, "link", "edit.txt")
	b := v.capture(nil, nil)

	wantChanged := []string{"big.log", "edit.txt", "gone.txt", "image.png", "latin1.txt", "link",
		"newdir", "newdir/sub", "newdir/sub/n.txt", "olddir", "olddir/a.txt", "tool"}
	if got := v.changed(a, b); !slices.Equal(got, wantChanged) {
		t.Errorf("Changed(a, b) =\n%v\nwant\n%v", got, wantChanged)
	}
	if got := v.changed(b, a); !slices.Equal(got, wantChanged) {
		t.Errorf("Changed(b, a) = %v, want the same paths", got)
	}
	if got := v.changed(a, a); len(got) != 0 {
		t.Errorf("Changed(a, a) = %v", got)
	}

	diffs, err := v.e.Diff(context.Background(), a, b, true)
	if err != nil {
		t.Fatal(err)
	}
	byPath := map[string]FileDiff{}
	var order []string
	for _, d := range diffs {
		byPath[d.Path] = d
		order = append(order, d.Path)
	}
	wantOrder := []string{"big.log", "edit.txt", "gone.txt", "image.png", "latin1.txt", "link", "newdir/sub/n.txt", "olddir/a.txt", "tool"}
	if !slices.Equal(order, wantOrder) {
		t.Errorf("Diff paths = %v, want %v (no directories)", order, wantOrder)
	}
	h := func(s string) store.Hash { return store.BlobHash([]byte(s)) }
	cases := []struct {
		path                 string
		status               string
		additions, deletions int
		binary, skipped      bool
		before, after        store.Hash
	}{
		{"edit.txt", StatusModified, 2, 1, false, false, h("one\ntwo\nthree\nfour\nfive\nsix\nseven\n"), h("one\ntwo\nTHREE\nfour\nfive\nsix\nseven\neight\n")},
		{"gone.txt", StatusDeleted, 0, 2, false, false, h("bye\nbye\n"), store.Hash{}},
		{"newdir/sub/n.txt", StatusAdded, 2, 0, false, false, store.Hash{}, h("n1\nn2\n")},
		{"olddir/a.txt", StatusDeleted, 0, 1, false, false, h("a\n"), store.Hash{}},
		{"image.png", StatusModified, 0, 0, true, false, h("\x89PNG\r\n\x1a\n\x00\x00\x00"), h("\x89PNG\r\n\x1a\n\x00\x00\x01")},
		{"latin1.txt", StatusModified, 0, 0, true, false, h("caf\xe9\n"), h("caf\xe9s\n")},
		{"big.log", StatusModified, 0, 0, true, true, store.Hash{}, store.Hash{}},
		{"tool", StatusModified, 0, 0, false, false, h("#!/bin/sh\n"), h("#!/bin/sh\n")},
		{"link", StatusModified, 1, 1, false, false, h("keep.txt"), h("edit.txt")},
	}
	for _, c := range cases {
		d, ok := byPath[c.path]
		if !ok {
			t.Errorf("%s: not in the diff", c.path)
			continue
		}
		if d.Status != c.status || d.Additions != c.additions || d.Deletions != c.deletions ||
			d.Binary != c.binary || d.Skipped != c.skipped || d.Before != c.before || d.After != c.after {
			t.Errorf("%s = %+v\nwant status %s +%d -%d binary %v skipped %v before %s after %s",
				c.path, d, c.status, c.additions, c.deletions, c.binary, c.skipped, c.before, c.after)
		}
		if c.binary && d.Patch != "" {
			t.Errorf("%s: binary file has a patch", c.path)
		}
	}
	wantPatch := `--- a/edit.txt
+++ b/edit.txt
@@ -1,7 +1,8 @@
 one
 two
-three
+THREE
 four
 five
 six
 seven
+eight
`
	if got := byPath["edit.txt"].Patch; got != wantPatch {
		t.Errorf("patch of edit.txt =\n%s\nwant\n%s", got, wantPatch)
	}
	if got, want := byPath["newdir/sub/n.txt"].Patch, "--- /dev/null\n+++ b/newdir/sub/n.txt\n@@ -0,0 +1,2 @@\n+n1\n+n2\n"; got != want {
		t.Errorf("patch of an added file =\n%q\nwant\n%q", got, want)
	}
	if got, want := byPath["gone.txt"].Patch, "--- a/gone.txt\n+++ /dev/null\n@@ -1,2 +0,0 @@\n-bye\n-bye\n"; got != want {
		t.Errorf("patch of a deleted file =\n%q\nwant\n%q", got, want)
	}

	// Without patches: the same counts, no patch text.
	plain, err := v.e.Diff(context.Background(), a, b, false)
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range plain {
		withPatch := diffs[i]
		withPatch.Patch = ""
		if d != withPatch {
			t.Errorf("%s without patch = %+v, want %+v", d.Path, d, withPatch)
		}
	}
}

func TestSnapshotsOfUnknownIDs(t *testing.T) {
	t.Parallel()
	v := newEnv(t, Options{})
	write(t, v.root, "a", "a", 0o644)
	snap := v.capture(nil, nil)
	missing := store.BlobHash([]byte("no such snapshot"))
	ctx := context.Background()
	if _, err := v.e.Changed(ctx, snap, missing); err == nil {
		t.Error("Changed with an unknown snapshot succeeded")
	}
	if _, err := v.e.Diff(ctx, missing, snap, false); err == nil {
		t.Error("Diff with an unknown snapshot succeeded")
	}
	if _, err := v.e.Lookup(ctx, missing, "a"); err == nil {
		t.Error("Lookup in an unknown snapshot succeeded")
	}
	for _, p := range []string{"../a", "/a", "a/../a", "a//b", "./a"} {
		if _, err := v.e.Lookup(ctx, snap, p); err == nil {
			t.Errorf("Lookup(%q) accepted", p)
		}
	}
	// Below a file: absent, not an error.
	if ent := v.lookup(snap, "a/b"); ent.Exists() {
		t.Errorf("a/b = %+v", ent)
	}
}
