package session

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/sessiond/sessiond/session/shellrun/writetrace"
	"github.com/sessiond/sessiond/workspace/snapshot"
)

// claims are the paths a turn can show it wrote: the paths the agent's
// write tools name, the paths a traced command's processes asked to
// modify. Only these enter the turn's snapshots, so a revert never takes
// back what a person (or another program) changed while the turn ran.
// When something ran whose writes could not be traced, the turn cannot
// tell its changes from anyone else's: unknown is set, and what changed
// is recorded as unattributed, which a revert touches only when forced.
type claims struct {
	paths   map[string]bool // workspace-relative, slash-separated
	trees   map[string]bool // these and everything below them (renames)
	unknown string          // why some writes could not be traced; "" when all could
}

// claim adds workspace-relative paths.
func (c *claims) claim(rels ...string) {
	if c.paths == nil {
		c.paths = map[string]bool{}
	}
	for _, r := range rels {
		if r != "" && r != "." {
			c.paths[r] = true
		}
	}
}

// untraced records that something wrote files no one can name.
func (c *claims) untraced(why string) {
	if c.unknown == "" {
		c.unknown = why
	}
}

// addTrace claims what a traced command wrote inside root; a command that
// could not be traced (no report, or tracing unavailable) makes the
// claims unknown.
func (c *claims) addTrace(root string, r *writetrace.Report) {
	if r == nil {
		c.untraced("the command's writes were not traced")
		return
	}
	if !r.Available {
		c.untraced("the command's writes could not be traced: " + r.Reason)
		return
	}
	dirs := map[string]string{} // a directory as named → resolved, for this trace
	for _, w := range r.Writes {
		for _, rel := range workspaceRels(root, w.Path, dirs) {
			c.claim(rel)
			if w.Tree {
				if c.trees == nil {
					c.trees = map[string]bool{}
				}
				c.trees[rel] = true
			}
		}
	}
}

// merge adds o's claims to c.
func (c *claims) merge(o *claims) {
	c.claim(o.list()...)
	for p := range o.trees {
		if c.trees == nil {
			c.trees = map[string]bool{}
		}
		c.trees[p] = true
	}
	if o.unknown != "" {
		c.untraced(o.unknown)
	}
}

// covers reports whether the turn claimed path p.
func (c *claims) covers(p string) bool {
	if c.paths[p] {
		return true
	}
	for d := p; len(c.trees) > 0; {
		i := strings.LastIndexByte(d, '/')
		if i < 0 {
			return false
		}
		if d = d[:i]; c.trees[d] {
			return true
		}
	}
	return false
}

// list returns the claimed paths, sorted; for a tool part's metadata.
func (c *claims) list() []string {
	out := make([]string, 0, len(c.paths))
	for p := range c.paths {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// workspaceRels maps an absolute path a process named to the paths it
// may have changed inside root: the path with its directories' links
// resolved (what a rename or unlink changes) and, when it is itself a
// link, the file it leads to (what a write through it changes). Parts
// that no longer exist (a directory removed later in the command) are
// kept as named. dirs caches resolved directories across calls: a command
// that writes thousands of files writes them into a few directories.
func workspaceRels(root, abs string, dirs map[string]string) []string {
	if !filepath.IsAbs(abs) {
		return nil
	}
	named, rest := filepath.Dir(abs), filepath.Base(abs)
	dir, ok := dirs[named]
	if !ok {
		dir = named
		for {
			if real, err := filepath.EvalSymlinks(dir); err == nil {
				dir = real
				break
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			rest = filepath.Join(filepath.Base(dir), rest)
			dir = parent
		}
		if rest == filepath.Base(abs) {
			dirs[named] = dir // resolved whole: safe to reuse
		}
	}
	var out []string
	add := func(p string) {
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return
		}
		out = append(out, filepath.ToSlash(rel))
	}
	path := filepath.Join(dir, rest)
	add(path)
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		if real, err := filepath.EvalSymlinks(path); err == nil {
			add(real)
		}
	}
	return out
}

// settle takes into the turn's snapshot what the turn claims among what
// changed since: it captures the checkout, overlays the claimed paths on
// the turn's snapshot so far, and returns the files that differ (for a
// patch part). Changes it cannot attribute, when the claims are unknown,
// are remembered as unattributed.
func (s *Service) settle(ctx context.Context, t *turn, c *claims) ([]string, error) {
	observed, err := t.tracker.Capture(ctx)
	if err != nil {
		return nil, err
	}
	s.inflight.add(observed)
	defer s.inflight.done(observed)
	changed, err := s.engine.Changed(ctx, t.snap, observed)
	if err != nil {
		return nil, fmt.Errorf("compare snapshots: %w", err)
	}
	var picks []string
	for _, p := range changed {
		switch {
		case c.covers(p):
			picks = append(picks, p)
		case c.unknown != "":
			if t.unattributed == nil {
				t.unattributed = map[string]bool{}
			}
			t.unattributed[p] = true
		}
	}
	if c.unknown != "" && t.untracedWhy == "" {
		t.untracedWhy = c.unknown
	}
	next, err := s.engine.Overlay(ctx, t.snap, observed, picks)
	if err != nil {
		return nil, err
	}
	if next == t.snap {
		return nil, nil
	}
	prev := t.snap
	t.hold(s, next)
	return s.changedFiles(ctx, prev, next)
}

// hold makes id the turn's snapshot, keeping it from the collector until
// the turn is recorded.
func (t *turn) hold(s *Service, id snapshot.ID) {
	s.inflight.add(id)
	t.held = append(t.held, id)
	t.snap = id
}

// lingering counts the traced commands that left processes running. Those
// processes stop at the tracer on every call that changes files, so they
// need the daemon: the daemon does not exit for idleness while any live.
type lingering struct {
	mu sync.Mutex
	n  int
}

// watch counts done until it is closed; nil is not counted.
func (l *lingering) watch(done <-chan struct{}) {
	if done == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	l.mu.Lock()
	l.n++
	l.mu.Unlock()
	go func() {
		<-done
		l.mu.Lock()
		l.n--
		l.mu.Unlock()
	}()
}

// Lingering says how many traced commands still have processes running.
func (s *Service) Lingering() int {
	s.lingering.mu.Lock()
	defer s.lingering.mu.Unlock()
	return s.lingering.n
}
