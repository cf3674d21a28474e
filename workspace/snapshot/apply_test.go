package snapshot

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/sessiond/sessiond/store"
)

// revertList is what the session layer builds for a revert from the
// current snapshot cur back to before: every changed path, with its entry
// in before as the target.
func (v *env) revertList(before, cur ID) []Change {
	v.t.Helper()
	var out []Change
	for _, p := range v.changed(before, cur) {
		out = append(out, Change{Path: p, Target: v.lookup(before, p)})
	}
	return out
}

func (v *env) apply(changes []Change) ApplyReport {
	v.t.Helper()
	r, err := v.e.Apply(context.Background(), v.root, changes)
	if err != nil {
		v.t.Fatalf("Apply: %v", err)
	}
	return r
}

// mtimes records the mtime of every regular file and symlink under root,
// outside the data dir.
func (v *env) mtimes() map[string]time.Time {
	v.t.Helper()
	out := map[string]time.Time{}
	err := filepath.Walk(v.root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if p == v.dataDir {
			return filepath.SkipDir
		}
		if !fi.IsDir() {
			rel, _ := filepath.Rel(v.root, p)
			out[filepath.ToSlash(rel)] = fi.ModTime()
		}
		return nil
	})
	if err != nil {
		v.t.Fatal(err)
	}
	return out
}

// beforeAndAfter builds a workspace, snapshots it, makes a turn's worth of
// changes of every kind, and snapshots again.
func beforeAndAfter(t *testing.T, v *env, outside string) (before, after ID) {
	t.Helper()
	write(t, v.root, "keep.txt", "not in the change set\n", 0o644)
	write(t, v.root, "keepdir/k.txt", "also kept\n", 0o644)
	write(t, v.root, "edit.go", "package main\n\nfunc main() {}\n", 0o644)
	write(t, v.root, "script.sh", "#!/bin/sh\necho 1\n", 0o755)
	write(t, v.root, "private", "secret\n", 0o600)
	write(t, v.root, "deleted/by/turn.txt", "deleted by the turn\n", 0o644)
	write(t, v.root, "becomes-dir", "a file at first\n", 0o644)
	mkdir(t, v.root, "becomes-file")
	write(t, v.root, "becomes-file/inner.txt", "inner\n", 0o644)
	symlink(t, v.root, "link", "keep.txt")
	symlink(t, v.root, "link-out", filepath.Join(outside, "target"))
	mkdir(t, v.root, "lib")
	write(t, v.root, "lib/x.txt", "lib\n", 0o644)
	old := time.Now().Add(-24 * time.Hour).Truncate(time.Second)
	for _, p := range []string{"keep.txt", "keepdir/k.txt"} {
		if err := os.Chtimes(filepath.Join(v.root, p), old, old); err != nil {
			t.Fatal(err)
		}
	}
	before = v.capture(nil, ignoreNames{"node_modules"})

	// The turn.
	write(t, v.root, "edit.go", "package main\n\nfunc main() { println(1) }\n", 0o644)
	if err := os.Chmod(filepath.Join(v.root, "script.sh"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(v.root, "private"), 0o644); err != nil {
		t.Fatal(err)
	}
	remove(t, v.root, "deleted")
	write(t, v.root, "created/deep/new.txt", "created by the turn\n", 0o644)
	write(t, v.root, "created/other.txt", "created too\n", 0o755)
	write(t, v.root, "withdeps/package.json", "{}\n", 0o644)
	write(t, v.root, "withdeps/node_modules/dep/index.js", "ignored, not ours to delete\n", 0o644)
	remove(t, v.root, "becomes-dir")
	write(t, v.root, "becomes-dir/child.txt", "child\n", 0o644)
	remove(t, v.root, "becomes-file")
	write(t, v.root, "becomes-file", "now a file\n", 0o644)
	remove(t, v.root, "link")
	symlink(t, v.root, "link", "edit.go")
	remove(t, v.root, "link-out")
	write(t, v.root, "link-out", "a file where the link was\n", 0o644)
	symlink(t, v.root, "new-link", "../outside")
	remove(t, v.root, "lib")
	symlink(t, v.root, "lib", "keepdir")
	after = v.capture(nil, ignoreNames{"node_modules"})
	return before, after
}

func TestApplyRevertsATurn(t *testing.T) {
	t.Parallel()
	v := newEnv(t, Options{})
	outside := t.TempDir()
	write(t, outside, "target", "outside, never written\n", 0o644)
	before, after := beforeAndAfter(t, v, outside)
	list := v.revertList(before, after)
	kept := v.mtimes()

	report := v.apply(list)

	// The workspace is the snapshot again, but for the directory kept
	// for its ignored files, now empty as far as snapshots go.
	if diff := v.changed(before, v.capture(nil, ignoreNames{"node_modules"})); !slices.Equal(diff, []string{"withdeps"}) {
		t.Fatalf("after the revert the workspace differs from the snapshot in %v, want only [withdeps]", diff)
	}
	// Exact bytes, modes and links.
	if got := readDisk(t, v.root, "edit.go"); got != "package main\n\nfunc main() {}\n" {
		t.Errorf("edit.go = %q", got)
	}
	for p, mode := range map[string]os.FileMode{"script.sh": 0o755, "private": 0o600, "keep.txt": 0o644} {
		fi, err := os.Lstat(filepath.Join(v.root, p))
		if err != nil || fi.Mode() != mode {
			t.Errorf("%s: mode %v, %v; want %v", p, fi.Mode(), err, mode)
		}
	}
	for p, target := range map[string]string{"link": "keep.txt", "link-out": filepath.Join(outside, "target")} {
		if got, err := os.Readlink(filepath.Join(v.root, p)); err != nil || got != target {
			t.Errorf("%s -> %q, %v; want -> %q", p, got, err, target)
		}
	}
	if fi, err := os.Lstat(filepath.Join(v.root, "lib")); err != nil || !fi.IsDir() {
		t.Errorf("lib is not a directory again: %v %v", fi, err)
	}
	if got := readDisk(t, outside, "target"); got != "outside, never written\n" {
		t.Errorf("the file outside the workspace was written through the link: %q", got)
	}
	// Created files deleted, directories they created removed, except one
	// that still holds ignored files.
	for _, p := range []string{"created", "new-link", "becomes-dir/child.txt", "withdeps/package.json"} {
		if _, err := os.Lstat(filepath.Join(v.root, p)); !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			t.Errorf("%s still exists: %v", p, err)
		}
	}
	if !slices.Equal(report.Kept, []string{"withdeps"}) {
		t.Errorf("Kept = %v, want [withdeps]", report.Kept)
	}
	if got := readDisk(t, v.root, "withdeps/node_modules/dep/index.js"); got != "ignored, not ours to delete\n" {
		t.Errorf("ignored file = %q", got)
	}
	// Files outside the change set: same bytes, same mtimes.
	now := v.mtimes()
	for _, p := range []string{"keep.txt", "keepdir/k.txt"} {
		if !now[p].Equal(kept[p]) {
			t.Errorf("%s: mtime %v → %v", p, kept[p], now[p])
		}
	}
	if got := readDisk(t, v.root, "keep.txt"); got != "not in the change set\n" {
		t.Errorf("keep.txt = %q", got)
	}
	if len(report.Written) == 0 || len(report.Deleted) == 0 {
		t.Errorf("report = %+v", report)
	}

	// Idempotent: running it again does nothing and touches nothing.
	mt := v.mtimes()
	again := v.apply(list)
	if len(again.Written) != 0 || len(again.Deleted) != 0 {
		t.Errorf("second run did %+v", again)
	}
	if !mapsEqual(mt, v.mtimes()) {
		t.Error("second run changed mtimes")
	}
	if diff := v.changed(before, v.capture(nil, ignoreNames{"node_modules"})); !slices.Equal(diff, []string{"withdeps"}) {
		t.Errorf("after the second run the workspace differs in %v", diff)
	}

	// Unrevert: apply the other direction.
	v.apply(v.revertList(after, before))
	if got := v.capture(nil, ignoreNames{"node_modules"}); got != after {
		diff, _ := v.e.Changed(context.Background(), after, got)
		t.Errorf("after unrevert: differs from the turn's result in %v", diff)
	}
}

func mapsEqual(a, b map[string]time.Time) bool {
	if len(a) != len(b) {
		return false
	}
	for k, x := range a {
		if y, ok := b[k]; !ok || !x.Equal(y) {
			return false
		}
	}
	return true
}

// A daemon that dies halfway through an apply re-runs the whole list from
// its journal; whatever part was done, the result is the same.
func TestApplyFinishesAHalfAppliedList(t *testing.T) {
	t.Parallel()
	v := newEnv(t, Options{})
	outside := t.TempDir()
	write(t, outside, "target", "outside\n", 0o644)
	before, after := beforeAndAfter(t, v, outside)
	// No ignored files here: the revert then gives the snapshot exactly.
	remove(t, v.root, "withdeps/node_modules")
	list := v.revertList(before, after)
	steps := order(list)
	for k := 1; k < len(steps); k++ {
		// Back to the turn's result, then the first k steps of the revert.
		v.apply(v.revertList(after, before))
		if got := v.capture(nil, nil); got != after {
			t.Fatalf("k=%d: could not reset to the turn's result", k)
		}
		if _, err := v.e.Apply(context.Background(), v.root, steps[:k]); err != nil {
			t.Fatalf("k=%d: partial apply: %v", k, err)
		}
		// Plus a leftover temporary file, as a crash mid-write leaves.
		write(t, v.root, tempName("edit.go"), "half", 0o600)
		v.apply(list)
		if got := v.capture(nil, nil); got != before {
			t.Fatalf("k=%d: finished apply differs from the target in %v", k, v.changed(before, got))
		}
		if _, err := os.Lstat(filepath.Join(v.root, tempName("edit.go"))); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("k=%d: the leftover temporary file is still there", k)
		}
	}
}

func TestApplyRefusesEscapingPaths(t *testing.T) {
	t.Parallel()
	v := newEnv(t, Options{})
	outside := t.TempDir()
	write(t, outside, "victim", "must survive\n", 0o644)
	symlink(t, v.root, "out", outside)
	write(t, v.root, "file", "a file\n", 0o644)
	write(t, v.root, "ok.txt", "original\n", 0o644)
	snap := v.capture(nil, nil)
	content := v.lookup(snap, "file") // any stored content will do
	mkdir(t, v.dataDir, "")

	cases := []struct {
		name string
		path string
		kind store.EntryKind
	}{
		{"dot dot", "../escape", store.EntryFile},
		{"dot dot inside", "a/../../escape", store.EntryFile},
		{"absolute", filepath.Join(outside, "victim"), store.EntryFile},
		{"empty", "", store.EntryFile},
		{"dot", ".", store.EntryNone},
		{"unclean", "a//b", store.EntryFile},
		{"through a symlinked dir", "out/victim", store.EntryFile},
		{"delete through a symlinked dir", "out/victim", store.EntryNone},
		{"below a file", "file/x", store.EntryFile},
		{"in .git", ".git/hooks/pre-commit", store.EntryFile},
		{"in the data dir", ".sessiond-data/MANIFEST", store.EntryNone},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			target := Entry{}
			if c.kind == store.EntryFile {
				target = content
			}
			// A valid change listed first must not be applied either.
			list := []Change{
				{Path: "ok.txt", Target: content},
				{Path: c.path, Target: target},
			}
			_, err := v.e.Apply(context.Background(), v.root, list)
			var pe *PathError
			if !errors.As(err, &pe) || !errors.Is(err, ErrEscape) {
				t.Fatalf("Apply(%q) = %v, want a *PathError", c.path, err)
			}
			if got := readDisk(t, v.root, "ok.txt"); got != "original\n" {
				t.Errorf("ok.txt was written before the refusal: %q", got)
			}
			if got := readDisk(t, outside, "victim"); got != "must survive\n" {
				t.Errorf("victim = %q", got)
			}
		})
	}

	// A link to outside is replaced by a file, never written through.
	v.apply([]Change{{Path: "out", Target: content}})
	if fi, err := os.Lstat(filepath.Join(v.root, "out")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("out is not a regular file now: %v, %v", fi, err)
	}
	if got := readDisk(t, outside, "victim"); got != "must survive\n" {
		t.Errorf("victim = %q", got)
	}
}

func TestApplyRefusesBadLists(t *testing.T) {
	t.Parallel()
	v := newEnv(t, Options{})
	write(t, v.root, "a", "a\n", 0o644)
	snap := v.capture(nil, nil)
	file := v.lookup(snap, "a")
	missing := Entry{Kind: store.EntryFile, Mode: 0o644, Hash: store.BlobHash([]byte("never stored"))}
	cases := map[string][]Change{
		"parent made a file":  {{Path: "d", Target: file}, {Path: "d/x", Target: file}},
		"parent removed":      {{Path: "d"}, {Path: "d/x", Target: file}},
		"listed twice":        {{Path: "x", Target: file}, {Path: "x"}},
		"content not stored":  {{Path: "x", Target: missing}},
		"file without a hash": {{Path: "x", Target: Entry{Kind: store.EntryFile}}},
		"bad mode":            {{Path: "x", Target: Entry{Kind: store.EntryFile, Mode: os.ModeSetuid | 0o755, Hash: file.Hash}}},
		"bad kind":            {{Path: "x", Target: Entry{Kind: 42}}},
	}
	for name, list := range cases {
		if _, err := v.e.Apply(context.Background(), v.root, list); err == nil {
			t.Errorf("%s: Apply accepted %+v", name, list)
		}
	}
	if _, err := os.Lstat(filepath.Join(v.root, "x")); !errors.Is(err, os.ErrNotExist) {
		t.Error("a refused list wrote x")
	}
	// Skipped targets are never touched.
	write(t, v.root, "huge", "whatever is there now\n", 0o644)
	v.apply([]Change{{Path: "huge", Target: Entry{Kind: store.EntrySkipped, Size: 1 << 40}}})
	if got := readDisk(t, v.root, "huge"); got != "whatever is there now\n" {
		t.Errorf("a skipped target was written: %q", got)
	}
}

// guardedList is revertList with each change's Before taken from cur, as
// the session layer journals it.
func (v *env) guardedList(before, cur ID) []Change {
	v.t.Helper()
	out := v.revertList(before, cur)
	for i := range out {
		b := v.lookup(cur, out[i].Path)
		out[i].Before = &b
	}
	return out
}

func issuePaths(is []PathIssue) []string {
	var out []string
	for _, i := range is {
		out = append(out, i.Path)
	}
	slices.Sort(out)
	return out
}

func TestApplyGuardedLeavesWhatOthersChanged(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// edit changes the workspace after the list was planned (nil:
		// nothing) and returns the paths that must be left.
		edit func(t *testing.T, root string) []string
	}{
		{"nothing changed", func(*testing.T, string) []string { return nil }},
		{"a file edited", func(t *testing.T, root string) []string {
			write(t, root, "a.txt", "edited by a person\n", 0o644)
			return []string{"a.txt"}
		}},
		{"a file's mode changed", func(t *testing.T, root string) []string {
			if err := os.Chmod(filepath.Join(root, "a.txt"), 0o600); err != nil {
				t.Fatal(err)
			}
			return []string{"a.txt"}
		}},
		{"a file to delete edited", func(t *testing.T, root string) []string {
			write(t, root, "new.txt", "the person kept working on it\n", 0o644)
			return []string{"new.txt"}
		}},
		{"a file to restore recreated", func(t *testing.T, root string) []string {
			write(t, root, "gone.txt", "a person's new file\n", 0o644)
			return []string{"gone.txt"}
		}},
		{"a directory to restore made a file", func(t *testing.T, root string) []string {
			write(t, root, "d", "a file where the directory was\n", 0o644)
			return []string{"d", "d/x.txt"}
		}},
		{"already done by hand", func(t *testing.T, root string) []string {
			write(t, root, "a.txt", "a before\n", 0o644)
			return nil
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			v := newEnv(t, Options{})
			write(t, v.root, "a.txt", "a before\n", 0o644)
			write(t, v.root, "gone.txt", "deleted by the turn\n", 0o644)
			write(t, v.root, "d/x.txt", "in a directory the turn removed\n", 0o644)
			before := v.capture(nil, nil)
			write(t, v.root, "a.txt", "a after\n", 0o644)
			write(t, v.root, "new.txt", "made by the turn\n", 0o644)
			remove(t, v.root, "gone.txt")
			remove(t, v.root, "d")
			cur := v.capture(nil, nil)
			list := v.guardedList(before, cur)

			left := c.edit(t, v.root)
			kept := map[string]string{}
			for _, p := range left {
				if fi, err := os.Lstat(filepath.Join(v.root, p)); err == nil && fi.Mode().IsRegular() {
					kept[p] = readDisk(t, v.root, p)
				}
			}
			r, err := v.e.ApplyGuarded(context.Background(), v.root, list)
			if err != nil {
				t.Fatalf("ApplyGuarded: %v", err)
			}
			if got := issuePaths(r.Conflicts); !slices.Equal(got, left) {
				t.Fatalf("conflicts %v, want %v", r.Conflicts, left)
			}
			for p, content := range kept {
				if got := readDisk(t, v.root, p); got != content {
					t.Errorf("%s was overwritten: %q, want %q", p, got, content)
				}
			}
			for _, ch := range list {
				if slices.Contains(left, ch.Path) {
					continue
				}
				if got, want := v.onDisk(ch.Path), ch.Target; !sameEntry(got, want) {
					t.Errorf("%s is %+v, want %+v", ch.Path, got, want)
				}
			}
			// A second run finds the same conflicts and changes nothing else.
			r2, err := v.e.ApplyGuarded(context.Background(), v.root, list)
			if err != nil || !slices.Equal(issuePaths(r2.Conflicts), left) || len(r2.Written)+len(r2.Deleted) != 0 {
				t.Errorf("second run: %+v, %v", r2, err)
			}
		})
	}
}

func (v *env) onDisk(p string) Entry {
	v.t.Helper()
	es, err := v.e.OnDisk(context.Background(), v.root, []string{p})
	if err != nil {
		v.t.Fatalf("OnDisk(%s): %v", p, err)
	}
	return es[0]
}

func TestApplyGuardedWithoutBeforeLeavesUndone(t *testing.T) {
	t.Parallel()
	v := newEnv(t, Options{})
	write(t, v.root, "done.txt", "d before\n", 0o644)
	write(t, v.root, "todo.txt", "t before\n", 0o644)
	before := v.capture(nil, nil)
	write(t, v.root, "todo.txt", "t after\n", 0o644)
	// A journal of an older version: no Before, one path done already.
	list := []Change{
		{Path: "done.txt", Target: v.lookup(before, "done.txt")},
		{Path: "todo.txt", Target: v.lookup(before, "todo.txt")},
	}
	r, err := v.e.ApplyGuarded(context.Background(), v.root, list)
	if err != nil {
		t.Fatal(err)
	}
	if got := issuePaths(r.Conflicts); !slices.Equal(got, []string{"todo.txt"}) {
		t.Errorf("conflicts %v, want todo.txt", r.Conflicts)
	}
	if got := readDisk(t, v.root, "todo.txt"); got != "t after\n" {
		t.Errorf("todo.txt = %q: a path with no recorded before was overwritten", got)
	}
}

func TestCheckApplyListsUnsafePaths(t *testing.T) {
	t.Parallel()
	v := newEnv(t, Options{})
	outside := t.TempDir()
	write(t, outside, "victim", "must survive\n", 0o644)
	write(t, v.root, "ok.txt", "original\n", 0o644)
	write(t, v.root, "file", "a file\n", 0o644)
	write(t, v.root, "full/kept.log", "not in the list\n", 0o644)
	symlink(t, v.root, "out", outside)
	snap := v.capture(nil, nil)
	content := v.lookup(snap, "ok.txt")
	list := []Change{
		{Path: "ok.txt", Target: content},
		{Path: "out/victim", Target: content},
		{Path: "out/gone", Target: Entry{}},
		{Path: "file/x", Target: content},
		{Path: "full", Target: content},
		{Path: ".git/config", Target: content},
	}
	issues, err := v.e.CheckApply(context.Background(), v.root, list)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{".git/config", "file/x", "full", "out/gone", "out/victim"}
	if got := issuePaths(issues); !slices.Equal(got, want) {
		t.Fatalf("CheckApply = %v, want %v", issues, want)
	}
	for _, is := range issues {
		if is.Reason == "" {
			t.Errorf("%s has no reason", is.Path)
		}
	}
	// Apply refuses the same list whole, with every path in the error.
	_, err = v.e.Apply(context.Background(), v.root, list)
	var ue *UnsafeError
	if !errors.As(err, &ue) || len(ue.Issues) != len(want) || !errors.Is(err, ErrEscape) {
		t.Fatalf("Apply = %v, want an *UnsafeError with %d paths", err, len(want))
	}
	if got := readDisk(t, v.root, "ok.txt"); got != "original\n" {
		t.Errorf("ok.txt was written: %q", got)
	}
	// A directory the list empties can be replaced.
	issues, err = v.e.CheckApply(context.Background(), v.root, []Change{{Path: "full", Target: content}, {Path: "full/kept.log"}})
	if err != nil || len(issues) != 0 {
		t.Errorf("CheckApply of a directory the list empties = %v, %v", issues, err)
	}
}
