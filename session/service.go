// Package session keeps sessions, their messages and parts, their event log
// and scoped state, in the store. It knows nothing of the wire: the daemon
// decodes requests into the params types here, and maps the errors here
// (NotFoundError, ParamError, ClosedError, ErrBusy) to protocol codes.
package session

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"time"

	"github.com/sessiond/sessiond/store"
	"github.com/sessiond/sessiond/workspace"
	"github.com/sessiond/sessiond/workspace/snapshot"
)

// Change is one entry of the change feed (DESIGN §2, session/event). The
// daemon routes it to the connections that watch ProjectID or SessionID.
type Change struct {
	Type       string `json:"type"`
	Properties any    `json:"properties"`
	ProjectID  string `json:"-"`
	SessionID  string `json:"-"`
}

// Publisher receives changes after they are committed.
type Publisher interface {
	Publish(Change)
}

// Service is the session store's API. It is safe for concurrent use.
type Service struct {
	db       *store.DB
	projects *workspace.Registry
	pub      Publisher
	log      *slog.Logger
	now      func() time.Time

	// The time machine; nil in tests that need no files.
	engine   *snapshot.Engine
	trackers *workspace.Trackers
	objects  *store.Objects
	turns    turnLocks
	inflight inflightSnapshots
	shells   runningShells

	// The agent runtime: prompt queues and running turns (prompt.go).
	agent agentState

	crashPoint string
	crash      func()
	// noWriteTrace, when set, says why commands run untraced.
	noWriteTrace string
	// lingering counts traced commands whose background processes live.
	lingering lingering
}

// New returns a Service over db. pub may be nil.
func New(db *store.DB, projects *workspace.Registry, pub Publisher, logger *slog.Logger, opts ...Option) *Service {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{db: db, projects: projects, pub: pub, log: logger, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	return s
}

func (s *Service) publish(projectID, sessionID, typ string, props any) {
	if s.pub != nil {
		s.pub.Publish(Change{Type: typ, Properties: props, ProjectID: projectID, SessionID: sessionID})
	}
}

func (s *Service) nowMs() int64 { return s.now().UnixMilli() }

// CreateParams are the params of session/create.
type CreateParams struct {
	Title      string          `json:"title,omitempty"`
	Directory  string          `json:"directory,omitempty"`
	ParentID   string          `json:"parentID,omitempty"`
	Permission json.RawMessage `json:"permission,omitempty"`
	Agent      string          `json:"agent,omitempty"`
	Model      *ModelRef       `json:"model,omitempty"`
	UserID     string          `json:"userID,omitempty"`
	Metadata   map[string]any  `json:"metadata,omitempty"`
}

// Create makes a new session. A child inherits its parent's project and,
// unless given, its directory.
func (s *Service) Create(ctx context.Context, p CreateParams) (Session, error) {
	if err := checkText("userID", p.UserID); err != nil {
		return Session{}, err
	}
	if p.Model != nil && (p.Model.ProviderID == "" || p.Model.ModelID == "") {
		return Session{}, paramErr("model", "model needs both providerID and modelID")
	}
	if _, err := parsePermission(p.Permission); err != nil {
		return Session{}, paramErr("permission", "%v", err)
	}
	var parent *Session
	if p.ParentID != "" {
		ps, err := s.Get(ctx, p.ParentID)
		if err != nil {
			var nf *NotFoundError
			if errors.As(err, &nf) {
				return Session{}, &ParamError{Field: "parentID", Msg: "parent session not found", Err: err}
			}
			return Session{}, err
		}
		parent = &ps
		if p.Directory == "" {
			p.Directory = ps.Directory
		}
	}
	if p.Directory == "" {
		return Session{}, paramErr("directory", "directory is required: pass the workspace directory (absolute path) or call workspace/open first")
	}
	proj, dir, err := s.projects.Open(ctx, p.Directory)
	if err != nil {
		return Session{}, dirError(err)
	}
	if parent != nil && parent.ProjectID != proj.ID {
		return Session{}, paramErr("directory", "directory %s is not in the parent session's project (%s)", dir, parent.Directory)
	}
	now := s.now()
	ses := Session{
		ID:         s.db.NewID(store.KindSession),
		ProjectID:  proj.ID,
		Directory:  dir,
		Title:      strings.TrimSpace(p.Title),
		UserID:     p.UserID,
		Agent:      p.Agent,
		Model:      p.Model,
		Permission: p.Permission,
		Lifecycle:  LifecycleRunning,
		Metadata:   p.Metadata,
		Time:       SessionTime{Created: now.UnixMilli(), Updated: now.UnixMilli()},
		Version:    1,
	}
	ses.RootID = ses.ID
	if parent != nil {
		ses.ParentID, ses.RootID, ses.Depth = parent.ID, parent.RootID, parent.Depth+1
	}
	if ses.Title == "" {
		ses.Title = defaultTitle(parent != nil, now)
	}
	if ses.Agent == "" {
		ses.Agent = "build"
	}
	err = s.db.Update(ctx, func(txn *store.Txn) error {
		if parent != nil {
			// The parent may have been deleted since we read it. Writing
			// its record back makes this transaction and a concurrent
			// Delete of the parent conflict, so one of them retries and
			// sees the other: no child outlives its parent.
			raw, err := txn.GetRaw(store.KeySession(parent.ID))
			if errors.Is(err, store.ErrNotFound) {
				return &ParamError{Field: "parentID", Msg: "parent session not found", Err: &NotFoundError{Kind: "session", ID: parent.ID}}
			}
			if err != nil {
				return err
			}
			if err := txn.SetRaw(store.KeySession(parent.ID), raw); err != nil {
				return err
			}
			if err := txn.SetRaw(store.KeySessionByParent(parent.ID, ses.ID), nil); err != nil {
				return err
			}
		}
		if err := txn.Set(store.KeySession(ses.ID), &ses); err != nil {
			return err
		}
		return txn.SetRaw(store.KeySessionByProject(ses.ProjectID, ses.ID), nil)
	})
	if err != nil {
		return Session{}, fmt.Errorf("create session: %w", err)
	}
	s.publish(ses.ProjectID, ses.ID, "session.created", map[string]any{"info": ses})
	return ses, nil
}

func defaultTitle(child bool, t time.Time) string {
	kind := "New session"
	if child {
		kind = "Child session"
	}
	return kind + " – " + t.Local().Format("2006-01-02 15:04:05")
}

// dirError turns a workspace directory error into a ParamError on
// "directory", leaving other errors alone.
func dirError(err error) error {
	var de *workspace.DirError
	if errors.As(err, &de) {
		return &ParamError{Field: "directory", Err: err}
	}
	return err
}

// Get returns a session.
func (s *Service) Get(ctx context.Context, id string) (Session, error) {
	if id == "" {
		return Session{}, paramErr("sessionID", "sessionID is required")
	}
	var ses Session
	err := s.db.View(ctx, func(txn *store.Txn) error { return getSession(txn, id, &ses) })
	return ses, err
}

func getSession(txn *store.Txn, id string, ses *Session) error {
	err := txn.Get(store.KeySession(id), ses)
	if errors.Is(err, store.ErrNotFound) {
		return &NotFoundError{Kind: "session", ID: id}
	}
	if err != nil {
		return fmt.Errorf("read session %s: %w", id, err)
	}
	return nil
}

// UpdateParams are the params of session/update. Absent fields stay as
// they are.
type UpdateParams struct {
	SessionID string         `json:"sessionID"`
	Title     *string        `json:"title,omitempty"`
	Agent     *string        `json:"agent,omitempty"`
	Model     *ModelRef      `json:"model,omitempty"`
	Metadata  map[string]any `json:"metadata,omitempty"`
	Archived  *bool          `json:"archived,omitempty"`
}

// Update changes a session's title, agent, model, metadata or archived
// flag. Metadata keys are merged; a null value removes a key.
func (s *Service) Update(ctx context.Context, p UpdateParams) (Session, error) {
	if p.Title != nil && strings.TrimSpace(*p.Title) == "" {
		return Session{}, paramErr("title", "title cannot be empty")
	}
	if p.Agent != nil && *p.Agent == "" {
		return Session{}, paramErr("agent", "agent cannot be empty")
	}
	if p.Model != nil && (p.Model.ProviderID == "" || p.Model.ModelID == "") {
		return Session{}, paramErr("model", "model needs both providerID and modelID")
	}
	return s.mutate(ctx, p.SessionID, func(ses *Session) error {
		if p.Title != nil {
			ses.Title = strings.TrimSpace(*p.Title)
		}
		if p.Agent != nil {
			ses.Agent = *p.Agent
		}
		if p.Model != nil {
			ses.Model = p.Model
		}
		for k, v := range p.Metadata {
			if ses.Metadata == nil {
				ses.Metadata = map[string]any{}
			}
			if v == nil {
				delete(ses.Metadata, k)
			} else {
				ses.Metadata[k] = v
			}
		}
		if p.Archived != nil {
			switch {
			case *p.Archived && ses.Lifecycle != LifecycleArchived:
				ses.ArchivedFrom = ses.Lifecycle
				ses.Lifecycle, ses.Time.Archived = LifecycleArchived, s.nowMs()
			case !*p.Archived && ses.Lifecycle == LifecycleArchived:
				// Unarchiving gives back what archiving took: a stopped
				// session stays stopped.
				ses.Lifecycle = cmp.Or(ses.ArchivedFrom, LifecycleRunning)
				ses.ArchivedFrom, ses.Time.Archived = "", 0
			}
		}
		return nil
	})
}

// mutate applies fn to the stored session in one transaction and, if fn
// changed it, bumps its version and update time and publishes
// session.updated. A call that changes nothing writes nothing.
func (s *Service) mutate(ctx context.Context, id string, fn func(*Session) error) (Session, error) {
	if id == "" {
		return Session{}, paramErr("sessionID", "sessionID is required")
	}
	var (
		ses     Session
		changed bool
	)
	err := s.db.Update(ctx, func(txn *store.Txn) error {
		ses = Session{}
		if err := getSession(txn, id, &ses); err != nil {
			return err
		}
		before, _ := json.Marshal(&ses)
		if err := fn(&ses); err != nil {
			return err
		}
		if after, _ := json.Marshal(&ses); bytes.Equal(before, after) {
			changed = false
			return nil // nothing to record or announce
		}
		changed = true
		ses.Version++
		ses.Time.Updated = max(s.nowMs(), ses.Time.Updated)
		return txn.Set(store.KeySession(id), &ses)
	})
	if err != nil {
		return Session{}, err
	}
	if changed {
		s.publish(ses.ProjectID, ses.ID, "session.updated", map[string]any{"info": ses})
	}
	return ses, nil
}

// Pause moves a running session to paused.
func (s *Service) Pause(ctx context.Context, id string) (Session, error) {
	return s.setLifecycle(ctx, id, LifecyclePaused)
}

// Resume moves a paused session back to running.
func (s *Service) Resume(ctx context.Context, id string) (Session, error) {
	return s.setLifecycle(ctx, id, LifecycleRunning)
}

// Stop ends a session for good: it keeps its history but takes no more
// turns.
func (s *Service) Stop(ctx context.Context, id string) (Session, error) {
	return s.setLifecycle(ctx, id, LifecycleStopped)
}

func (s *Service) setLifecycle(ctx context.Context, id, to string) (Session, error) {
	return s.mutate(ctx, id, func(ses *Session) error {
		switch ses.Lifecycle {
		case LifecycleStopped, LifecycleArchived:
			if ses.Lifecycle == to {
				return nil
			}
			return &ClosedError{ID: ses.ID, Lifecycle: ses.Lifecycle}
		}
		ses.Lifecycle = to
		return nil
	})
}

// ListParams are the params of session/list.
type ListParams struct {
	Directory string `json:"directory,omitempty"`
	// Project widens Directory to the whole project that holds it: every
	// clone, worktree and subdirectory, as `sessiond ls` lists them.
	Project   bool   `json:"project,omitempty"`
	ProjectID string `json:"projectID,omitempty"`
	ParentID  string `json:"parentID,omitempty"`
	RootsOnly bool   `json:"rootsOnly,omitempty"`
	UserID    string `json:"userID,omitempty"`
	// Archived lists only archived sessions; without it they are hidden.
	Archived bool `json:"archived,omitempty"`
	// Search keeps sessions whose title contains it, ignoring case.
	Search string `json:"search,omitempty"`
	Limit  int    `json:"limit,omitempty"`
	// Cursor is the nextCursor of the previous page.
	Cursor string `json:"cursor,omitempty"`
}

// ListResult is a page of sessions, newest first.
type ListResult struct {
	Sessions   []Session `json:"sessions"`
	NextCursor string    `json:"nextCursor,omitempty"`
}

// Default and largest page sizes of session/list.
const (
	DefaultListLimit = 50
	MaxListLimit     = 1000
)

// List returns sessions newest first (by creation). The cursor is the last
// session ID of the previous page; since IDs sort by creation time, new
// sessions only ever appear before the first page and never shift later
// pages, so paging stays correct while sessions are being created.
func (s *Service) List(ctx context.Context, p ListParams) (ListResult, error) {
	limit := p.Limit
	switch {
	case limit < 0 || limit > MaxListLimit:
		return ListResult{}, paramErr("limit", "limit must be between 1 and %d", MaxListLimit)
	case limit == 0:
		limit = DefaultListLimit
	}
	if p.Cursor != "" && !store.ValidID(store.KindSession, p.Cursor) {
		return ListResult{}, paramErr("cursor", "cursor %q is not a nextCursor from session/list", p.Cursor)
	}
	if p.Project && p.Directory == "" {
		return ListResult{}, paramErr("project", "project: true lists the project that holds a directory: pass directory too")
	}
	var dir string
	if p.Directory != "" {
		proj, canon, err := s.projects.Lookup(ctx, p.Directory)
		if errors.Is(err, store.ErrNotFound) {
			return ListResult{Sessions: []Session{}}, nil // a directory no session was ever made in
		}
		if err != nil {
			return ListResult{}, dirError(err)
		}
		if p.ProjectID != "" && p.ProjectID != proj.ID {
			return ListResult{Sessions: []Session{}}, nil
		}
		p.ProjectID, dir = proj.ID, canon
		if p.Project {
			dir = "" // the whole project, not only what lies below directory
		}
	}
	var prefix []byte
	switch {
	case p.ParentID != "":
		prefix = store.PrefixSessionsByParent(p.ParentID)
	case p.ProjectID != "":
		prefix = store.PrefixSessionsByProject(p.ProjectID)
	default:
		prefix = store.PrefixSessions()
	}
	var start []byte
	if p.Cursor != "" {
		// Reverse seek lands on the last key <= start; the cursor itself
		// was on the previous page, so step just below it.
		start = append(append([]byte{}, prefix...), p.Cursor...)
		start[len(start)-1]--
		start = append(start, 0xff)
	}
	search := strings.ToLower(p.Search)
	res := ListResult{Sessions: []Session{}}
	err := s.db.View(ctx, func(txn *store.Txn) error {
		return txn.Scan(prefix, start, true, true, func(key, _ []byte) (bool, error) {
			id := store.LastComponent(key)
			if p.Cursor != "" && id >= p.Cursor {
				return true, nil
			}
			var ses Session
			if err := getSession(txn, id, &ses); err != nil {
				var nf *NotFoundError
				if errors.As(err, &nf) {
					return true, nil // index entry of a session being deleted
				}
				return false, err
			}
			if !keep(&ses, p, dir, search) {
				return true, nil
			}
			if len(res.Sessions) == limit {
				res.NextCursor = res.Sessions[limit-1].ID
				return false, nil
			}
			res.Sessions = append(res.Sessions, ses)
			return true, nil
		})
	})
	if err != nil {
		return ListResult{}, fmt.Errorf("list sessions: %w", err)
	}
	return res, nil
}

func keep(ses *Session, p ListParams, dir, search string) bool {
	switch {
	case p.ProjectID != "" && ses.ProjectID != p.ProjectID,
		p.ParentID != "" && ses.ParentID != p.ParentID,
		p.RootsOnly && ses.ParentID != "",
		p.UserID != "" && ses.UserID != p.UserID,
		p.Archived != (ses.Lifecycle == LifecycleArchived),
		dir != "" && !workspace.Contains(dir, ses.Directory),
		search != "" && !strings.Contains(strings.ToLower(ses.Title), search):
		return false
	}
	return true
}

// Children returns the direct children of a session, oldest first.
func (s *Service) Children(ctx context.Context, id string) ([]Session, error) {
	if _, err := s.Get(ctx, id); err != nil {
		return nil, err
	}
	out := []Session{}
	err := s.db.View(ctx, func(txn *store.Txn) error {
		return txn.Scan(store.PrefixSessionsByParent(id), nil, false, true, func(key, _ []byte) (bool, error) {
			var ses Session
			if err := getSession(txn, store.LastComponent(key), &ses); err == nil {
				out = append(out, ses)
			}
			return true, nil
		})
	})
	return out, err
}

// Status reports the run state of one session, or of every session that is
// not idle when id is empty: busy while a turn (a shell command, an
// upload) runs.
func (s *Service) Status(ctx context.Context, id string) (map[string]Status, error) {
	out := map[string]Status{}
	if id == "" {
		for _, sid := range append(s.turns.running(), s.agentSessions()...) {
			if st, err := s.Status(ctx, sid); err == nil {
				maps.Copy(out, st)
			}
		}
		return out, nil
	}
	ses, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	state := "idle"
	if s.turns.busy(id) {
		state = "busy"
	}
	st := Status{State: state, MessageCount: ses.MessageCount, LastActive: ses.Time.Updated}
	s.agentStatus(id, &st)
	out[id] = st
	return out, nil
}

func checkText(field, v string) error {
	if strings.IndexByte(v, 0) >= 0 {
		return paramErr(field, "%s must not contain NUL characters", field)
	}
	return nil
}
