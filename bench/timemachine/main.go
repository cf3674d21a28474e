// Command timemachine benchmarks sessiond's workspace time machine
// (DESIGN §4: workspace/snapshot over the store) against the way other
// coding agents snapshot a workspace: a separate git dir whose work tree
// is the workspace, `git add -A` then `git write-tree` per snapshot, and
// `git checkout <tree> -- <files>` to revert. bench/timemachine.sh builds
// and runs it; it prints a Markdown table per tree to stdout and its
// progress to stderr.
//
// Both methods run on the same tree in the same run, one after the other,
// with the page cache warmed by one read of every file beforehand, so the
// ratios compare like with like. The trees are a generated workspace
// (100,000 files by default, -quick for 10,000) and a copy of
// $(go env GOROOT)/src. For each:
//
//   - first full index: Capture with no dirty list on an empty store, vs
//     add -A and write-tree in an empty git dir;
//   - capture after one file changed: one file rewritten, then Capture
//     with that path as the dirty list (what the daemon does with the
//     watcher's dirty set), vs add -A and write-tree; also Capture with a
//     full stat scan (no watcher), for information;
//   - revert of a turn that changed 10 files (7 edited, 3 created in a new
//     directory): Changed, Lookup and Apply back to the turn's before
//     snapshot, vs git checkout of the 7 files plus deleting the 3 new
//     files and their directory;
//   - store growth over 100 turns that each rewrite 10 files with a few
//     KiB: the data dir's size on disk, measured with Badger closed
//     (memtables flushed, value log truncated), vs the growth of the git
//     objects directory (loose, and after git gc for information).
//
// -cpuprofile writes one CPU profile of the whole run; the engine's timed
// sections carry pprof labels (tree, phase), so
// `go tool pprof -tagfocus phase=capture` shows one of them.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/sessiond/sessiond/workspace/snapshot"
)

// Targets from the issue.
const (
	targetCapture      = 5 * time.Millisecond
	targetCaptureRatio = 20.0
	targetRevert       = 20 * time.Millisecond
	targetStoreGrowth  = 1.5 // × the bytes the turns wrote
)

type options struct {
	files         int
	quick         bool
	trees         string
	goroot        string
	tmp           string
	captureRounds int
	gitRounds     int
	scanRounds    int
	revertRounds  int
	turns         int
	gc            string
	keep          bool
	cpuProfile    string
	commit        string
	seed          uint64
}

func main() {
	var o options
	flag.IntVar(&o.files, "files", 100_000, "files in the generated workspace")
	flag.BoolVar(&o.quick, "quick", false, "a fast check: 10,000 generated files (unless -files is given)")
	flag.StringVar(&o.trees, "trees", "generated,goroot", "trees to measure, comma-separated: generated, goroot")
	flag.StringVar(&o.goroot, "goroot", "", "GOROOT whose src is copied (default: `go env GOROOT`)")
	flag.StringVar(&o.tmp, "tmp", os.TempDir(), "directory for the trees, stores and git dirs (its filesystem matters)")
	flag.IntVar(&o.captureRounds, "capture-rounds", 20, "timed captures after one change (sessiond)")
	flag.IntVar(&o.gitRounds, "git-rounds", 5, "timed git snapshots after one change")
	flag.IntVar(&o.scanRounds, "scan-rounds", 5, "timed full-scan captures after one change (information)")
	flag.IntVar(&o.revertRounds, "revert-rounds", 7, "timed reverts of a 10-file turn, per method")
	flag.IntVar(&o.turns, "turns", 100, "turns of 10 changed files for the store growth")
	flag.StringVar(&o.gc, "gc", "pack", "how to report the turns' git objects packed, for information: pack (pack-objects of the new objects alone, as an incremental repack does; fast), full (git gc --prune=now of the whole repository, then their size in the pack; minutes on big trees) or off")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary trees, stores and git dirs")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file (engine sections labeled tree=, phase=)")
	flag.StringVar(&o.commit, "commit", "", "commit measured, for the header")
	flag.Uint64Var(&o.seed, "seed", 1, "seed of the generated tree and of the edits")
	flag.Parse()
	filesSet := false
	flag.Visit(func(f *flag.Flag) { filesSet = filesSet || f.Name == "files" })
	if o.quick && !filesSet {
		o.files = 10_000
	}
	switch {
	case flag.NArg() > 0:
		usage("unexpected arguments %q", flag.Args())
	case o.files < 1000:
		usage("-files must be at least 1000")
	case o.gc != "pack" && o.gc != "full" && o.gc != "off":
		usage("-gc must be pack, full or off")
	case o.captureRounds < 1 || o.gitRounds < 1 || o.scanRounds < 1 || o.revertRounds < 1 || o.turns < 1:
		usage("rounds and turns must be at least 1")
	}
	var kinds []string
	for _, t := range strings.Split(o.trees, ",") {
		switch t = strings.TrimSpace(t); t {
		case "generated", "goroot":
			kinds = append(kinds, t)
		case "":
		default:
			usage("unknown tree %q: want generated or goroot", t)
		}
	}
	if _, err := exec.LookPath("git"); err != nil {
		fatalf("git is not installed: the comparison needs it")
	}
	if slices.Contains(kinds, "goroot") && o.goroot == "" {
		out, err := exec.Command("go", "env", "GOROOT").Output()
		if err != nil {
			fatalf("go env GOROOT: %v (pass -goroot)", err)
		}
		o.goroot = strings.TrimSpace(string(out))
	}

	tmp, err := os.MkdirTemp(o.tmp, "sessiond-timemachine-")
	if err != nil {
		fatalf("%v", err)
	}
	tmp, err = filepath.EvalSymlinks(tmp)
	if err != nil {
		fatalf("%v", err)
	}
	cleanup := func() {
		if o.keep {
			progress("kept %s", tmp)
			return
		}
		if err := os.RemoveAll(tmp); err != nil {
			fmt.Fprintf(os.Stderr, "timemachine: clean up %s: %v\n", tmp, err)
		}
	}
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sigc
		fmt.Fprintf(os.Stderr, "timemachine: %v: cleaning up\n", s)
		pprof.StopCPUProfile()
		cleanup()
		os.Exit(130)
	}()

	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			fatalf("%v", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fatalf("%v", err)
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
			progress("CPU profile in %s: go tool pprof -tagfocus phase=capture %s", o.cpuProfile, o.cpuProfile)
		}()
	}

	header := machineHeader(o)
	fmt.Println(header)
	b := &bench{o: o, tmp: tmp, ctx: context.Background()}
	failed := false
	for _, k := range kinds {
		res, err := b.runTree(k)
		if err != nil {
			fmt.Fprintf(os.Stderr, "timemachine: %s: %v\n", k, err)
			failed = true
			break
		}
		fmt.Println()
		fmt.Print(res.table(o))
	}
	signal.Stop(sigc)
	cleanup()
	if failed {
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

func usage(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "timemachine: "+format+"\n", args...)
	fmt.Fprintln(os.Stderr, "usage: timemachine [-quick] [-files N] [-trees generated,goroot] [flags]; see bench/timemachine.sh and -h")
	os.Exit(2)
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "timemachine: "+format+"\n", args...)
	os.Exit(1)
}

var started = time.Now()

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "· [%5.1fs] %s\n", time.Since(started).Seconds(), fmt.Sprintf(format, args...))
}

type bench struct {
	o   options
	tmp string
	ctx context.Context
}

// result is what one tree measured.
type result struct {
	kind, title string
	ws          *workspace
	prepare     time.Duration
	total       time.Duration

	engFiles, engSkipped, gitFiles int

	firstEng, firstGit       time.Duration
	firstEngCPU, firstGitCPU time.Duration
	oneEng, oneGit, scanEng  []time.Duration
	turnEng, turnGit         []time.Duration
	revertEng, revertGit     []time.Duration
	written                  int64
	engGrowth, gitLooseGrow  diskUsage
	gitLooseObjects          int
	gitPacked                int64
	engBefore, gitBeforeSize diskUsage
}

// timed runs fn under pprof labels and returns how long it took.
func (b *bench) timed(tree, phase string, fn func() error) (time.Duration, error) {
	var d time.Duration
	var err error
	pprof.Do(b.ctx, pprof.Labels("tree", tree, "phase", phase), func(context.Context) {
		t0 := time.Now()
		err = fn()
		d = time.Since(t0)
	})
	return d, err
}

func (b *bench) runTree(kind string) (res *result, err error) {
	o := b.o
	base := filepath.Join(b.tmp, kind)
	root := filepath.Join(base, "workspace")
	dataDir := filepath.Join(base, "sessiond-data")
	gitDir := filepath.Join(base, "git")
	res = &result{kind: kind}
	t0 := time.Now()
	var ws *workspace
	switch kind {
	case "generated":
		res.title = fmt.Sprintf("Generated workspace, %s files", commas(int64(o.files)))
		progress("%s: writing %s files", kind, commas(int64(o.files)))
		ws, err = generateTree(root, o.files, o.seed)
	case "goroot":
		src := filepath.Join(o.goroot, "src")
		res.title = "Copy of " + src
		progress("%s: copying %s", kind, src)
		ws, err = copyTree(src, root)
	}
	if err != nil {
		return nil, err
	}
	defer func() {
		if !o.keep {
			if rerr := os.RemoveAll(base); rerr != nil && err == nil {
				err = rerr
			}
		}
	}()
	res.ws = ws
	res.prepare = time.Since(t0)
	progress("%s: %s files in %s directories, %s, ready in %s", kind, commas(int64(ws.nFiles)), commas(int64(ws.nDirs)), fmtBytes(ws.bytes), fmtDur(res.prepare))

	progress("%s: warming the page cache (one read of every file)", kind)
	if _, err := warm(root); err != nil {
		return nil, err
	}

	eng, err := openEngine(b.ctx, dataDir, root)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := eng.close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	git, err := newGitRepo(gitDir, root)
	if err != nil {
		return nil, err
	}
	h := fnv.New64a()
	h.Write([]byte(kind))
	r := rand.New(rand.NewPCG(o.seed, h.Sum64()))
	tStart := time.Now()

	// 1. First full index.
	progress("%s: first full index, sessiond", kind)
	runtime.GC()
	var snap snapshot.ID
	cpu0 := cpuTime(syscall.RUSAGE_SELF)
	res.firstEng, err = b.timed(kind, "first", func() (err error) {
		snap, err = eng.capture(nil)
		return err
	})
	res.firstEngCPU = cpuTime(syscall.RUSAGE_SELF) - cpu0
	if err != nil {
		return nil, err
	}
	progress("%s: first full index, git", kind)
	var tree string
	cpu0 = cpuTime(syscall.RUSAGE_CHILDREN)
	res.firstGit, err = b.timed(kind, "git", func() (err error) {
		tree, err = git.snapshot()
		return err
	})
	res.firstGitCPU = cpuTime(syscall.RUSAGE_CHILDREN) - cpu0
	if err != nil {
		return nil, err
	}
	if res.engFiles, res.engSkipped, err = eng.countFiles(snap); err != nil {
		return nil, err
	}
	if res.gitFiles, err = git.countIndexed(); err != nil {
		return nil, err
	}
	progress("%s: first index %s, %s CPU (sessiond, %s files) vs %s, %s CPU (git, %s files)", kind,
		fmtDur(res.firstEng), fmtDur(res.firstEngCPU), commas(int64(res.engFiles)),
		fmtDur(res.firstGit), fmtDur(res.firstGitCPU), commas(int64(res.gitFiles)))
	if res.engFiles+res.engSkipped != res.gitFiles {
		progress("%s: warning: sessiond captured %d files (%d skipped) and git %d: the ignore rules disagree", kind, res.engFiles, res.engSkipped, res.gitFiles)
	}

	// 2. Capture after one file changed.
	progress("%s: capture after one file changed, sessiond with the dirty path (%d rounds)", kind, o.captureRounds)
	runtime.GC()
	for i := range 1 + o.captureRounds {
		f := ws.pick(r, 1, 1, nil)[0]
		if err := editOne(root, f, r); err != nil {
			return nil, err
		}
		prev := snap
		d, err := b.timed(kind, "capture", func() (err error) {
			snap, err = eng.capture([]string{f})
			return err
		})
		if err != nil {
			return nil, err
		}
		if snap == prev {
			return nil, fmt.Errorf("capture after editing %s returned the previous snapshot", f)
		}
		if i > 0 { // the first round warms up
			res.oneEng = append(res.oneEng, d)
		}
	}
	progress("%s: capture after one file changed, git add -A + write-tree (%d rounds)", kind, o.gitRounds)
	if tree, err = git.snapshot(); err != nil { // catch up with sessiond's rounds
		return nil, err
	}
	var engStale []string // files changed since sessiond's last capture
	for range 1 + o.gitRounds {
		f := ws.pick(r, 1, 1, nil)[0]
		if err := editOne(root, f, r); err != nil {
			return nil, err
		}
		engStale = append(engStale, f)
		prev := tree
		d, err := b.timed(kind, "git", func() (err error) {
			tree, err = git.snapshot()
			return err
		})
		if err != nil {
			return nil, err
		}
		if tree == prev {
			return nil, fmt.Errorf("git snapshot after editing %s returned the previous tree", f)
		}
		res.oneGit = append(res.oneGit, d)
	}
	res.oneGit = res.oneGit[1:] // the first round warms up
	if snap, err = eng.capture(engStale); err != nil {
		return nil, err
	}
	progress("%s: capture after one file changed, sessiond with a full stat scan (%d rounds)", kind, o.scanRounds)
	for i := range 1 + o.scanRounds {
		f := ws.pick(r, 1, 1, nil)[0]
		if err := editOne(root, f, r); err != nil {
			return nil, err
		}
		prev := snap
		d, err := b.timed(kind, "scan", func() (err error) {
			snap, err = eng.capture(nil)
			return err
		})
		if err != nil {
			return nil, err
		}
		if snap == prev {
			return nil, fmt.Errorf("full-scan capture after editing %s returned the previous snapshot", f)
		}
		if i > 0 {
			res.scanEng = append(res.scanEng, d)
		}
	}
	if tree, err = git.snapshot(); err != nil {
		return nil, err
	}

	// 3. Revert of a turn that changed 10 files.
	progress("%s: revert of a turn that changed 10 files (%d rounds each)", kind, o.revertRounds)
	before, beforeTree := snap, tree
	for i := range o.revertRounds {
		tu, err := newTurn(root, ws, r, 7, 3, fmt.Sprintf("tm_new_%d", i))
		if err != nil {
			return nil, err
		}
		// sessiond: the turn, its after snapshot, the revert.
		if err := tu.apply(); err != nil {
			return nil, err
		}
		after, err := eng.capture(tu.dirty())
		if err != nil {
			return nil, err
		}
		if after == before {
			return nil, errors.New("the capture after a turn returned the before snapshot")
		}
		if _, err := git.snapshot(); err != nil { // the agent's after snapshot
			return nil, err
		}
		var rep snapshot.ApplyReport
		d, err := b.timed(kind, "revert", func() (err error) {
			rep, err = eng.revert(before, after)
			return err
		})
		if err != nil {
			return nil, err
		}
		if len(rep.Written) != len(tu.modified) || len(rep.Deleted) != len(tu.created)+1 || len(rep.Kept) > 0 {
			return nil, fmt.Errorf("sessiond's revert did %d writes, %d deletions, kept %v; want %d, %d, none", len(rep.Written), len(rep.Deleted), rep.Kept, len(tu.modified), len(tu.created)+1)
		}
		res.revertEng = append(res.revertEng, d)
		if err := tu.verifyReverted("sessiond"); err != nil {
			return nil, err
		}
		if id, err := eng.capture(tu.dirty()); err != nil || id != before {
			return nil, fmt.Errorf("after sessiond's revert, the workspace is not the before snapshot (%v)", err)
		}
		// git: the same turn, then its revert.
		if err := tu.apply(); err != nil {
			return nil, err
		}
		d, err = b.timed(kind, "git", func() error {
			return git.revert(beforeTree, tu.modified, tu.created, []string{tu.newDir})
		})
		if err != nil {
			return nil, err
		}
		res.revertGit = append(res.revertGit, d)
		if err := tu.verifyReverted("git"); err != nil {
			return nil, err
		}
		if id, err := eng.capture(tu.dirty()); err != nil || id != before {
			return nil, fmt.Errorf("after git's revert, sessiond does not find the before snapshot (%v)", err)
		}
		if t, err := git.snapshot(); err != nil || t != beforeTree {
			return nil, fmt.Errorf("after git's revert, git does not find the before tree (%v)", err)
		}
	}

	// 4. Store growth over turns of 10 changed files.
	progress("%s: %d turns of 10 changed files", kind, o.turns)
	if err := eng.close(); err != nil {
		return nil, err
	}
	if res.engBefore, err = dirUsage(dataDir); err != nil {
		return nil, err
	}
	if eng, err = openEngine(b.ctx, dataDir, root); err != nil {
		return nil, err
	}
	if err := git.keep("base", []string{beforeTree}); err != nil {
		return nil, err
	}
	objects := filepath.Join(gitDir, "objects")
	if res.gitBeforeSize, err = dirUsage(objects); err != nil {
		return nil, err
	}
	loose0, err := git.looseObjects()
	if err != nil {
		return nil, err
	}
	var trees []string
	for t := range o.turns {
		mod := ws.pick(r, 9, 3, nil)
		created := joinRel(dirOf(mod[0]), fmt.Sprintf("tm_turn_%03d.txt", t))
		var dirty []string
		for _, f := range append(mod, created) {
			content := appendText(nil, r, 2048+r.IntN(4097), f)
			if err := os.WriteFile(filepath.Join(root, f), content, 0o644); err != nil {
				return nil, err
			}
			res.written += int64(len(content))
			dirty = append(dirty, f)
		}
		prev := snap
		d, err := b.timed(kind, "turn", func() (err error) {
			snap, err = eng.capture(dirty)
			return err
		})
		if err != nil {
			return nil, err
		}
		if snap == prev {
			return nil, errors.New("a capture after a turn returned the previous snapshot")
		}
		res.turnEng = append(res.turnEng, d)
		d, err = b.timed(kind, "git", func() (err error) {
			tree, err = git.snapshot()
			return err
		})
		if err != nil {
			return nil, err
		}
		res.turnGit = append(res.turnGit, d)
		trees = append(trees, tree)
	}
	if err := eng.close(); err != nil {
		return nil, err
	}
	after, err := dirUsage(dataDir)
	if err != nil {
		return nil, err
	}
	res.engGrowth = after.sub(res.engBefore)
	gitAfter, err := dirUsage(objects)
	if err != nil {
		return nil, err
	}
	res.gitLooseGrow = gitAfter.sub(res.gitBeforeSize)
	loose1, err := git.looseObjects()
	if err != nil {
		return nil, err
	}
	res.gitLooseObjects = loose1 - loose0
	if err := git.keep("turn", trees); err != nil {
		return nil, err
	}
	switch o.gc {
	case "pack":
		progress("%s: packing the turns' git objects (information)", kind)
		if res.gitPacked, err = git.packNew("turn", "base", base); err != nil {
			return nil, err
		}
	case "full":
		progress("%s: git gc after the turns (information)", kind)
		if err := git.gc(); err != nil {
			return nil, err
		}
		if res.gitPacked, err = git.packedSize("turn", "base"); err != nil {
			return nil, err
		}
	}
	res.total = time.Since(tStart)
	progress("%s: done in %s", kind, fmtDur(res.total))
	return res, nil
}

// cpuTime returns the user and system time of this process (all its
// threads) or of its waited-for children.
func cpuTime(who int) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func dirOf(rel string) string {
	d := path.Dir(rel)
	if d == "." {
		return ""
	}
	return d
}

// editOne rewrites one file the way an editor saves a small edit: a line
// inserted in the middle, the rest as it was.
func editOne(root, rel string, r *rand.Rand) error {
	p := filepath.Join(root, rel)
	old, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	at := len(old) / 2
	if i := bytes.IndexByte(old[at:], '\n'); i >= 0 {
		at += i + 1
	} else {
		at = len(old)
	}
	line := appendText(nil, r, 40+r.IntN(40), "edit")
	content := slices.Concat(old[:at], line, old[at:])
	return os.WriteFile(p, content, 0o644)
}

// turn is one agent turn: some files rewritten, a few created in a new
// directory. Its contents are drawn once, so that both methods see the
// same turn.
type turn struct {
	root     string
	modified []string
	orig     map[string][]byte
	next     map[string][]byte
	newDir   string
	created  []string
}

func newTurn(root string, ws *workspace, r *rand.Rand, nMod, nNew int, dirName string) (*turn, error) {
	t := &turn{root: root, orig: make(map[string][]byte), next: make(map[string][]byte)}
	t.modified = ws.pick(r, nMod, 3, nil)
	for _, f := range t.modified {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			return nil, err
		}
		t.orig[f] = b
		t.next[f] = appendText(nil, r, 2048+r.IntN(4097), f)
	}
	t.newDir = joinRel(dirOf(t.modified[0]), dirName)
	for j := range nNew {
		f := joinRel(t.newDir, fmt.Sprintf("new_%d.go", j))
		t.created = append(t.created, f)
		t.next[f] = appendText(nil, r, 1024+r.IntN(4097), f)
	}
	return t, nil
}

func (t *turn) apply() error {
	if err := os.Mkdir(filepath.Join(t.root, t.newDir), 0o755); err != nil {
		return err
	}
	for _, f := range append(slices.Clone(t.modified), t.created...) {
		if err := os.WriteFile(filepath.Join(t.root, f), t.next[f], 0o644); err != nil {
			return err
		}
	}
	return nil
}

// dirty is what the watcher reports for the turn.
func (t *turn) dirty() []string { return append(slices.Clone(t.modified), t.newDir) }

func (t *turn) verifyReverted(who string) error {
	for _, f := range t.modified {
		b, err := os.ReadFile(filepath.Join(t.root, f))
		if err != nil {
			return fmt.Errorf("after %s's revert: %w", who, err)
		}
		if !bytes.Equal(b, t.orig[f]) {
			return fmt.Errorf("after %s's revert, %s does not hold its content from before the turn", who, f)
		}
	}
	if _, err := os.Lstat(filepath.Join(t.root, t.newDir)); !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("after %s's revert, the turn's new directory %s is still there (%v)", who, t.newDir, err)
	}
	return nil
}
