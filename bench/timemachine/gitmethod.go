package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// gitRepo is the way other coding agents snapshot a workspace: a git
// directory of their own, outside the workspace, with the workspace as its
// work tree; a snapshot is `git add -A` then `git write-tree`, a revert is
// `git checkout <tree> -- <files>`.
type gitRepo struct {
	dir  string // the separate git dir
	root string // the work tree
	env  []string
}

// newGitRepo initializes an empty git dir for root. Git runs with its
// defaults: no system or global config (which could turn on fsmonitor, the
// untracked cache or feature.manyFiles), and the repository's own config
// says so explicitly. gc.auto=0 only keeps a background gc from moving
// objects while their bytes are counted; add and write-tree never start one.
func newGitRepo(dir, root string) (*gitRepo, error) {
	g := &gitRepo{dir: dir, root: root}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GIT_") {
			g.env = append(g.env, kv)
		}
	}
	g.env = append(g.env,
		"GIT_DIR="+dir,
		"GIT_WORK_TREE="+root,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"LC_ALL=C",
	)
	if _, err := g.run(nil, "init", "--quiet"); err != nil {
		return nil, err
	}
	for _, kv := range [][2]string{
		{"core.fsmonitor", "false"},
		{"core.untrackedCache", "false"},
		{"core.autocrlf", "false"},
		{"gc.auto", "0"},
	} {
		if _, err := g.run(nil, "config", kv[0], kv[1]); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// run runs git in the work tree and returns its standard output.
func (g *gitRepo) run(stdin []byte, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = g.root
	cmd.Env = g.env
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// snapshot stages the whole work tree and writes its tree: what an agent
// runs at each turn boundary.
func (g *gitRepo) snapshot() (string, error) {
	if _, err := g.run(nil, "add", "-A"); err != nil {
		return "", err
	}
	out, err := g.run(nil, "write-tree")
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(out), nil
}

// revert puts modified back to their content in tree and deletes the files
// and directories the turn created, which git checkout leaves alone.
func (g *gitRepo) revert(tree string, modified, created, createdDirs []string) error {
	if len(modified) > 0 {
		if _, err := g.run(nil, append([]string{"checkout", tree, "--"}, modified...)...); err != nil {
			return err
		}
	}
	for _, p := range created {
		if err := os.Remove(filepath.Join(g.root, p)); err != nil {
			return err
		}
	}
	dirs := slices.Clone(createdDirs)
	slices.SortFunc(dirs, func(a, b string) int { return len(b) - len(a) }) // deepest first
	for _, d := range dirs {
		if err := os.Remove(filepath.Join(g.root, d)); err != nil {
			return err
		}
	}
	return nil
}

// countIndexed returns the number of paths in git's index.
func (g *gitRepo) countIndexed() (int, error) {
	out, err := g.run(nil, "ls-files", "-z")
	if err != nil {
		return 0, err
	}
	return strings.Count(out, "\x00"), nil
}

// keep points refs at trees, so that git gc keeps them.
func (g *gitRepo) keep(prefix string, trees []string) error {
	var b strings.Builder
	for i, t := range trees {
		fmt.Fprintf(&b, "update refs/bench/%s%d %s\n", prefix, i, t)
	}
	_, err := g.run([]byte(b.String()), "update-ref", "--stdin")
	return err
}

// gc packs what the refs reach and drops the rest.
func (g *gitRepo) gc() error {
	_, err := g.run(nil, "gc", "--quiet", "--prune=now")
	return err
}

// newObjects lists the objects the refs named prefix* reach and the ref
// base does not, in rev-list's "hash path" lines.
func (g *gitRepo) newObjects(prefix, base string) (string, error) {
	return g.run(nil, "rev-list", "--objects", "--glob=refs/bench/"+prefix+"*", "--not", "--glob=refs/bench/"+base+"*")
}

// packNew packs the objects new since base into a pack of their own in
// dir, with the delta search git gc uses, and returns its size (pack and
// index): what an incremental repack of them keeps.
func (g *gitRepo) packNew(prefix, base, dir string) (int64, error) {
	list, err := g.newObjects(prefix, base)
	if err != nil {
		return 0, err
	}
	out, err := g.run([]byte(list), "pack-objects", "-q", filepath.Join(dir, "turns"))
	if err != nil {
		return 0, err
	}
	var n int64
	for _, ext := range []string{".pack", ".idx"} {
		fi, err := os.Stat(filepath.Join(dir, "turns-"+strings.TrimSpace(out)+ext))
		if err != nil {
			return 0, err
		}
		n += fi.Size()
	}
	return n, nil
}

// packedSize returns what the objects new since base take in the packs,
// after a git gc: their bytes in the pack (a delta's when deltified) and
// their index entries.
func (g *gitRepo) packedSize(prefix, base string) (int64, error) {
	list, err := g.newObjects(prefix, base)
	if err != nil {
		return 0, err
	}
	var ids strings.Builder
	for _, line := range strings.Split(strings.TrimSpace(list), "\n") {
		id, _, _ := strings.Cut(line, " ")
		ids.WriteString(id + "\n")
	}
	out, err := g.run([]byte(ids.String()), "cat-file", "--batch-check=%(objectsize:disk)")
	if err != nil {
		return 0, err
	}
	var n int64
	for _, f := range strings.Fields(out) {
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("git cat-file: unexpected %q", f)
		}
		n += v + 28 // an index v2 entry: name, CRC and offset
	}
	return n, nil
}

// looseObjects counts the loose object files.
func (g *gitRepo) looseObjects() (int, error) {
	n := 0
	des, err := os.ReadDir(filepath.Join(g.dir, "objects"))
	if err != nil {
		return 0, err
	}
	for _, de := range des {
		if len(de.Name()) != 2 || !de.IsDir() {
			continue
		}
		sub, err := os.ReadDir(filepath.Join(g.dir, "objects", de.Name()))
		if err != nil {
			return 0, err
		}
		n += len(sub)
	}
	return n, nil
}
