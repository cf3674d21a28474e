package workspace

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sessiond/sessiond/store"
)

// touchInterval bounds how often an Open that changes nothing rewrites the
// project just to move Time.Updated: List orders by it, but a write per
// call would be waste.
const touchInterval = time.Minute

// fallbackTTL is how long a repository identified by its path (no commits
// yet, git missing or too slow) stays cached before git is asked again, so
// that its first commit is noticed without a git run per Open.
const fallbackTTL = time.Minute

// Registry maps directories to projects and keeps them in the store.
// It is safe for concurrent use.
type Registry struct {
	db  *store.DB
	log *slog.Logger
	now func() time.Time // tests replace it

	mu    sync.Mutex
	cache map[string]cacheEntry // canonical dir → project, to spare a git run per Open
}

type cacheEntry struct {
	id string
	// top is the git top-level found when the entry was made ("" outside
	// any repository); a different one now means .git appeared or vanished.
	top string
	// expires is zero for entries that stay valid while top does.
	expires time.Time
}

// resolution is what a directory is, before the store is consulted.
type resolution struct {
	dir      string // the canonical directory opened
	root     string // its git top-level, or dir outside any repository
	vcs      string
	identity string // "git:<root commit>" or "path:<dir>"
	fallback bool   // a git repository identified by path
}

// NewRegistry returns a Registry over db. A nil logger discards logs.
func NewRegistry(db *store.DB, logger *slog.Logger) *Registry {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Registry{db: db, log: logger, now: time.Now, cache: make(map[string]cacheEntry)}
}

// Open maps dir to its project, creating and storing it on first use, and
// returns it with the canonical form of dir. It is idempotent. A dir that is
// not an existing absolute directory gives a *DirError.
func (r *Registry) Open(ctx context.Context, dir string) (Project, string, error) {
	canon, err := canonicalDir(dir)
	if err != nil {
		return Project{}, "", err
	}
	top := findGitTop(canon)
	if id, ok := r.cached(canon, top); ok {
		p, err := r.touch(ctx, id)
		if err == nil {
			return p, canon, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return Project{}, "", fmt.Errorf("open workspace %s: %w", canon, err)
		}
		r.forget(canon) // the record is gone: resolve afresh
	}
	res, err := r.resolve(ctx, canon, top)
	if err != nil {
		return Project{}, "", err
	}
	p, err := r.save(ctx, res)
	if err != nil {
		return Project{}, "", fmt.Errorf("open workspace %s: store project: %w", canon, err)
	}
	r.remember(canon, top, p.ID, res.fallback)
	return p, canon, nil
}

// Lookup finds the project dir belongs to without creating one, so that
// reads (listing the sessions of a directory) never register a project.
// The error wraps store.ErrNotFound when dir belongs to no known project.
func (r *Registry) Lookup(ctx context.Context, dir string) (Project, string, error) {
	canon, err := canonicalDir(dir)
	if err != nil {
		return Project{}, "", err
	}
	top := findGitTop(canon)
	if id, ok := r.cached(canon, top); ok {
		if p, err := r.Get(ctx, id); err == nil {
			return p, canon, nil
		}
	}
	res, err := r.resolve(ctx, canon, top)
	if err != nil {
		return Project{}, "", err
	}
	var (
		p     Project
		found bool
	)
	err = r.db.View(ctx, func(txn *store.Txn) error {
		var err error
		if p, found, err = lookup(txn, res.identity); err != nil || found {
			return err
		}
		if strings.HasPrefix(res.identity, "git:") {
			// Stored under its path before its root commit was known.
			if p, found, err = lookup(txn, pathIdentity(res.root)); err != nil || found {
				return err
			}
		}
		if res.vcs == VCSNone {
			p, found, err = lookupEnclosing(txn, res.dir)
		}
		return err
	})
	if err != nil {
		return Project{}, "", fmt.Errorf("look up workspace %s: %w", canon, err)
	}
	if !found {
		return Project{}, canon, fmt.Errorf("no project for %s: %w", canon, store.ErrNotFound)
	}
	return p, canon, nil
}

// Get returns the project with id; the error wraps store.ErrNotFound when
// there is none.
func (r *Registry) Get(ctx context.Context, id string) (Project, error) {
	if !store.ValidID(store.KindProject, id) {
		return Project{}, fmt.Errorf("project %q: %w", id, store.ErrNotFound)
	}
	var p Project
	err := r.db.View(ctx, func(txn *store.Txn) error { return txn.Get(store.KeyProject(id), &p) })
	if errors.Is(err, store.ErrNotFound) {
		return Project{}, fmt.Errorf("project %q: %w", id, err)
	}
	if err != nil {
		return Project{}, fmt.Errorf("read project %s: %w", id, err)
	}
	return p, nil
}

// List returns every project, most recently updated first.
func (r *Registry) List(ctx context.Context) ([]Project, error) {
	var ps []Project
	err := r.db.View(ctx, func(txn *store.Txn) error {
		return txn.Scan(store.PrefixProjects(), nil, false, false, func(key, value []byte) (bool, error) {
			var p Project
			if err := json.Unmarshal(value, &p); err != nil {
				return false, fmt.Errorf("decode project record %q: %w", key, err)
			}
			ps = append(ps, p)
			return true, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list projects: %w", err)
	}
	slices.SortFunc(ps, func(a, b Project) int {
		// IDs sort by creation: the newer of two equally fresh projects first.
		return cmp.Or(cmp.Compare(b.Time.Updated, a.Time.Updated), strings.Compare(b.ID, a.ID))
	})
	return ps, nil
}

// resolve finds what dir is: inside a git repository (identified by its
// root commit when git can tell it) or not.
func (r *Registry) resolve(ctx context.Context, dir, top string) (resolution, error) {
	if top == "" {
		return resolution{dir: dir, root: dir, vcs: VCSNone, identity: pathIdentity(dir)}, nil
	}
	root, err := rootCommit(ctx, top)
	if err == nil {
		return resolution{dir: dir, root: top, vcs: VCSGit, identity: "git:" + root}, nil
	}
	if ctx.Err() != nil {
		// The caller gave up, so git was cut short: storing a path
		// identity for the repository now would be wrong.
		return resolution{}, fmt.Errorf("open workspace %s: %w", dir, ctx.Err())
	}
	level := slog.LevelDebug // no commits yet: expected, and healed at the first commit
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, context.DeadlineExceeded) {
		level = slog.LevelWarn
	}
	r.log.Log(ctx, level, "workspace: no root commit, identifying the repository by its path", "top", top, "err", err)
	return resolution{dir: dir, root: top, vcs: VCSGit, identity: pathIdentity(top), fallback: true}, nil
}

// save finds or creates the project of res in one transaction, so that
// concurrent Opens of a new directory end with one project: the loser's
// transaction conflicts on the identity key, is retried and finds it.
func (r *Registry) save(ctx context.Context, res resolution) (Project, error) {
	var (
		p                       Project
		created, adopted, added bool
	)
	err := r.db.Update(ctx, func(txn *store.Txn) error {
		created, adopted, added = false, false, false
		changed := false
		var found bool
		var err error
		if p, found, err = lookup(txn, res.identity); err != nil {
			return err
		}
		switch {
		case found:
		case strings.HasPrefix(res.identity, "git:"):
			// A repository first seen with no commits (or while git
			// failed), or a plain directory that became a repository,
			// was stored under its path: it is the same project now
			// that its root commit is known, so move it to that identity.
			pathID := pathIdentity(res.root)
			if p, found, err = lookup(txn, pathID); err != nil {
				return err
			}
			if found {
				if err := txn.Delete(store.KeyProjectIdentity(pathID)); err != nil {
					return fmt.Errorf("delete project identity %q: %w", pathID, err)
				}
				if err := txn.SetRaw(store.KeyProjectIdentity(res.identity), []byte(p.ID)); err != nil {
					return fmt.Errorf("write project identity %q: %w", res.identity, err)
				}
				adopted, changed = true, true
			}
		case res.vcs == VCSNone:
			if p, found, err = lookupEnclosing(txn, res.dir); err != nil {
				return err
			}
		}
		now := r.now().UnixMilli()
		if !found {
			p = Project{
				ID:   r.db.NewID(store.KindProject),
				Root: res.root,
				VCS:  res.vcs,
				Name: filepath.Base(res.root),
				Time: ProjectTime{Created: now, Updated: now},
			}
			if err := txn.SetRaw(store.KeyProjectIdentity(res.identity), []byte(p.ID)); err != nil {
				return fmt.Errorf("write project identity %q: %w", res.identity, err)
			}
			created, changed = true, true
		}
		if p.Root == res.root && p.VCS != res.vcs {
			// .git appeared in, or vanished from, the root itself.
			p.VCS, changed = res.vcs, true
		}
		if strings.HasPrefix(res.identity, "git:") && res.root != p.Root && !slices.Contains(p.Worktrees, res.root) {
			p.Worktrees = append(p.Worktrees, res.root)
			added, changed = true, true
		}
		if !changed && now-p.Time.Updated < touchInterval.Milliseconds() {
			return nil
		}
		p.Time.Updated = now
		if err := txn.Set(store.KeyProject(p.ID), p); err != nil {
			return fmt.Errorf("write project %s: %w", p.ID, err)
		}
		return nil
	})
	if err != nil {
		return Project{}, err
	}
	switch {
	case created:
		r.log.InfoContext(ctx, "workspace: project created", "project", p.ID, "root", p.Root, "vcs", p.VCS, "identity", res.identity)
	case adopted:
		r.log.InfoContext(ctx, "workspace: project identified by its root commit", "project", p.ID, "identity", res.identity)
	}
	if added {
		r.log.InfoContext(ctx, "workspace: worktree added to project", "project", p.ID, "worktree", res.root)
	}
	return p, nil
}

// touch returns the project with id, moving Time.Updated when it is older
// than touchInterval.
func (r *Registry) touch(ctx context.Context, id string) (Project, error) {
	var p Project
	err := r.db.Update(ctx, func(txn *store.Txn) error {
		if err := txn.Get(store.KeyProject(id), &p); err != nil {
			return err
		}
		now := r.now().UnixMilli()
		if now-p.Time.Updated < touchInterval.Milliseconds() {
			return nil
		}
		p.Time.Updated = now
		return txn.Set(store.KeyProject(id), p)
	})
	return p, err
}

// lookup returns the project stored under identity. An identity whose
// record is gone counts as absent, so the caller writes it afresh.
func lookup(txn *store.Txn, identity string) (Project, bool, error) {
	id, err := txn.GetRaw(store.KeyProjectIdentity(identity))
	if errors.Is(err, store.ErrNotFound) {
		return Project{}, false, nil
	}
	if err != nil {
		return Project{}, false, fmt.Errorf("read project identity %q: %w", identity, err)
	}
	var p Project
	err = txn.Get(store.KeyProject(string(id)), &p)
	if errors.Is(err, store.ErrNotFound) {
		return Project{}, false, nil
	}
	if err != nil {
		return Project{}, false, fmt.Errorf("read project %s: %w", id, err)
	}
	return p, true, nil
}

// lookupEnclosing returns the non-git project whose root is the nearest
// proper ancestor of dir: sessions in a subdirectory of a project belong to
// it. Probing each ancestor's identity key costs one read per path
// component, however many projects there are.
func lookupEnclosing(txn *store.Txn, dir string) (Project, bool, error) {
	for d := dir; ; {
		parent := filepath.Dir(d)
		if parent == d {
			return Project{}, false, nil
		}
		d = parent
		p, found, err := lookup(txn, pathIdentity(d))
		if err != nil {
			return Project{}, false, err
		}
		// A git project stored by path whose .git has since vanished
		// does not claim directories beneath it.
		if found && p.VCS == VCSNone {
			return p, true, nil
		}
	}
}

func pathIdentity(dir string) string { return "path:" + dir }

func (r *Registry) cached(dir, top string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.cache[dir]
	if !ok {
		return "", false
	}
	if e.top != top || (!e.expires.IsZero() && r.now().After(e.expires)) {
		delete(r.cache, dir)
		return "", false
	}
	return e.id, true
}

func (r *Registry) remember(dir, top, id string, fallback bool) {
	e := cacheEntry{id: id, top: top}
	if fallback {
		e.expires = r.now().Add(fallbackTTL)
	}
	r.mu.Lock()
	r.cache[dir] = e
	r.mu.Unlock()
}

func (r *Registry) forget(dir string) {
	r.mu.Lock()
	delete(r.cache, dir)
	r.mu.Unlock()
}
