package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"runtime"
	"slices"
	"time"

	"github.com/sessiond/sessiond/rpc"
	"github.com/sessiond/sessiond/session"
	"github.com/sessiond/sessiond/session/provider"
	"github.com/sessiond/sessiond/session/tools"
	"github.com/sessiond/sessiond/store"
	"github.com/sessiond/sessiond/workspace"
	"github.com/sessiond/sessiond/workspace/snapshot"
)

// protocolVersion changes when a change to the protocol would break a
// client written against the previous one.
const protocolVersion = 1

func (d *Daemon) initialize(ctx context.Context, c *rpc.Conn, _ json.RawMessage) (any, error) {
	return map[string]any{
		"serverInfo":      map[string]any{"name": "sessiond", "version": d.cfg.Version},
		"protocolVersion": protocolVersion,
		"capabilities": map[string]any{
			"framing":       c.Framing().String(),
			"events":        true,
			"cancelRequest": true,
			"methods":       d.mux.Methods(),
		},
	}, nil
}

// handle registers a method whose params may carry a sessionID: after it
// succeeds, the connection watches that session.
func handle[P, R any](d *Daemon, m *rpc.Mux, method string, fn func(ctx context.Context, c *rpc.Conn, p P) (R, error), opts ...rpc.MethodOption) {
	rpc.Handle(m, method, func(ctx context.Context, c *rpc.Conn, p P) (R, error) {
		r, err := fn(ctx, c, p)
		if err != nil {
			var zero R
			return zero, toRPCError(err)
		}
		return r, nil
	}, opts...)
}

func (d *Daemon) touch(c *rpc.Conn, sessionID string) { d.hub.get(c).session(sessionID) }

type sessionIDParams struct {
	SessionID string `json:"sessionID"`
}

type okResult struct {
	OK bool `json:"ok"`
}

func (d *Daemon) routes() *rpc.Mux {
	m := rpc.NewMux()
	s := d.sessions

	// Workspaces.
	type dirParams struct {
		Directory string `json:"directory"`
	}
	handle(d, m, "workspace/open", func(ctx context.Context, c *rpc.Conn, p dirParams) (workspace.Project, error) {
		if p.Directory == "" {
			return workspace.Project{}, &session.ParamError{Field: "directory", Msg: "directory is required: the absolute path of the workspace"}
		}
		proj, dir, err := d.projects.Open(ctx, p.Directory)
		if err != nil {
			return proj, dirParamError(err)
		}
		d.hub.get(c).project(proj.ID)
		d.setLastDir(c, dir)
		d.watch(proj, dir)
		return proj, nil
	})
	handle(d, m, "workspace/list", func(ctx context.Context, c *rpc.Conn, _ struct{}) ([]workspace.Project, error) {
		ps, err := d.projects.List(ctx)
		if ps == nil {
			ps = []workspace.Project{}
		}
		return ps, err
	})
	type projectParams struct {
		ProjectID string `json:"projectID"`
	}
	handle(d, m, "workspace/close", func(ctx context.Context, c *rpc.Conn, p projectParams) (okResult, error) {
		if p.ProjectID == "" {
			return okResult{}, &session.ParamError{Field: "projectID", Msg: "projectID is required"}
		}
		if _, err := d.projects.Get(ctx, p.ProjectID); err != nil {
			return okResult{}, notFound("project", p.ProjectID, err)
		}
		d.hub.get(c).unproject(p.ProjectID)
		return okResult{OK: true}, nil
	})

	// Sessions.
	handle(d, m, "session/create", func(ctx context.Context, c *rpc.Conn, p session.CreateParams) (session.Session, error) {
		if p.Directory == "" && p.ParentID == "" {
			p.Directory = d.lastDir(c)
		}
		if p.Directory != "" {
			// Creating a session in a directory opens its workspace for
			// this connection, so it sees session.created for its own
			// session and the project's later changes.
			proj, _, err := d.projects.Open(ctx, p.Directory)
			if err != nil {
				return session.Session{}, dirParamError(err)
			}
			d.hub.get(c).project(proj.ID)
		}
		ses, err := s.Create(ctx, p)
		if err == nil {
			d.touch(c, ses.ID)
		}
		return ses, err
	})
	handle(d, m, "session/get", func(ctx context.Context, c *rpc.Conn, p sessionIDParams) (session.Session, error) {
		ses, err := s.Get(ctx, p.SessionID)
		if err == nil {
			d.touch(c, ses.ID)
		}
		return ses, err
	})
	handle(d, m, "session/update", func(ctx context.Context, c *rpc.Conn, p session.UpdateParams) (session.Session, error) {
		d.touch(c, p.SessionID)
		return s.Update(ctx, p)
	})
	handle(d, m, "session/delete", func(ctx context.Context, c *rpc.Conn, p sessionIDParams) (okResult, error) {
		if err := s.Delete(ctx, p.SessionID); err != nil {
			return okResult{}, err
		}
		return okResult{OK: true}, nil
	})
	handle(d, m, "session/list", func(ctx context.Context, c *rpc.Conn, p session.ListParams) (session.ListResult, error) {
		return s.List(ctx, p)
	})
	handle(d, m, "session/children", func(ctx context.Context, c *rpc.Conn, p sessionIDParams) ([]session.Session, error) {
		return s.Children(ctx, p.SessionID)
	})
	handle(d, m, "session/status", func(ctx context.Context, c *rpc.Conn, p sessionIDParams) (map[string]session.Status, error) {
		return s.Status(ctx, p.SessionID)
	}, rpc.Unordered())
	handle(d, m, "session/messages", func(ctx context.Context, c *rpc.Conn, p session.MessagesParams) ([]session.MessageWithParts, error) {
		d.touch(c, p.SessionID)
		return s.Messages(ctx, p)
	})
	handle(d, m, "session/message", func(ctx context.Context, c *rpc.Conn, p session.MessageParams) (session.MessageWithParts, error) {
		return s.Message(ctx, p)
	})
	for method, fn := range map[string]func(context.Context, string) (session.Session, error){
		"session/pause":  s.Pause,
		"session/resume": s.Resume,
		"session/stop":   s.Stop,
	} {
		handle(d, m, method, func(ctx context.Context, c *rpc.Conn, p sessionIDParams) (session.Session, error) {
			d.touch(c, p.SessionID)
			return fn(ctx, p.SessionID)
		})
	}

	// Turns that change files, and the time machine.
	handle(d, m, "session/shell", func(ctx context.Context, c *rpc.Conn, p session.ShellParams) (session.MessageWithParts, error) {
		d.touch(c, p.SessionID)
		return s.Shell(ctx, p)
	})
	handle(d, m, "session/upload", func(ctx context.Context, c *rpc.Conn, p session.UploadParams) (session.MessageWithParts, error) {
		d.touch(c, p.SessionID)
		return s.Upload(ctx, p)
	})
	// The agent.
	handle(d, m, "session/prompt", func(ctx context.Context, c *rpc.Conn, p session.PromptParams) (session.MessageWithParts, error) {
		d.touch(c, p.SessionID)
		p.Asker = connAsker{c}
		return s.Prompt(ctx, p)
	})
	handle(d, m, "session/promptAsync", func(ctx context.Context, c *rpc.Conn, p session.PromptParams) (session.PromptAsyncResult, error) {
		d.touch(c, p.SessionID)
		p.Asker = connAsker{c}
		return s.PromptAsync(ctx, p)
	})
	handle(d, m, "session/abort", func(ctx context.Context, c *rpc.Conn, p session.AbortParams) (session.AbortResult, error) {
		return s.Abort(ctx, p)
	}, rpc.Unordered()) // must not wait behind the turn it stops
	handle(d, m, "session/usage", func(ctx context.Context, c *rpc.Conn, p session.UsageParams) (session.UsageResult, error) {
		return s.Usage(ctx, p)
	}, rpc.Unordered())
	handle(d, m, "session/todo", func(ctx context.Context, c *rpc.Conn, p session.TodoParams) ([]tools.Todo, error) {
		return s.Todo(ctx, p)
	}, rpc.Unordered())
	handle(d, m, "session/output", func(ctx context.Context, c *rpc.Conn, p session.OutputParams) (session.OutputResult, error) {
		return s.Output(ctx, p)
	})
	handle(d, m, "session/diff", func(ctx context.Context, c *rpc.Conn, p session.DiffParams) ([]snapshot.FileDiff, error) {
		return s.Diff(ctx, p)
	})
	handle(d, m, "session/revert", func(ctx context.Context, c *rpc.Conn, p session.RevertParams) (session.Session, error) {
		d.touch(c, p.SessionID)
		return s.Revert(ctx, p)
	}, rpc.Unordered()) // answers Busy rather than waiting behind a turn
	handle(d, m, "session/unrevert", func(ctx context.Context, c *rpc.Conn, p session.UnrevertParams) (session.Session, error) {
		d.touch(c, p.SessionID)
		return s.Unrevert(ctx, p)
	}, rpc.Unordered())
	// A revert or unrevert parked because it could not finish.
	handle(d, m, "session/journal/retry", func(ctx context.Context, c *rpc.Conn, p session.JournalParams) (session.Session, error) {
		d.touch(c, p.SessionID)
		return s.RetryJournal(ctx, p)
	}, rpc.Unordered()) // answers Busy rather than waiting behind a turn
	handle(d, m, "session/journal/abandon", func(ctx context.Context, c *rpc.Conn, p session.JournalParams) (session.Session, error) {
		d.touch(c, p.SessionID)
		return s.AbandonJournal(ctx, p)
	}, rpc.Unordered())
	handle(d, m, "session/fork", func(ctx context.Context, c *rpc.Conn, p session.ForkParams) (session.Session, error) {
		ses, err := s.Fork(ctx, p)
		if err == nil {
			d.touch(c, ses.ID)
		}
		return ses, err
	})

	// The event log and state.
	handle(d, m, "session/appendEvent", func(ctx context.Context, c *rpc.Conn, p session.AppendEventParams) (session.Event, error) {
		d.touch(c, p.SessionID)
		return s.AppendEvent(ctx, p)
	})
	handle(d, m, "session/events", func(ctx context.Context, c *rpc.Conn, p session.EventsParams) ([]session.Event, error) {
		return s.Events(ctx, p)
	})
	handle(d, m, "session/state/get", func(ctx context.Context, c *rpc.Conn, p session.StateGetParams) (session.StateResult, error) {
		return s.StateGet(ctx, p)
	})
	handle(d, m, "session/state/update", func(ctx context.Context, c *rpc.Conn, p session.StateUpdateParams) (session.StateResult, error) {
		return s.StateUpdate(ctx, p)
	})

	// The change feed.
	type subscribeParams struct {
		ProjectID string `json:"projectID,omitempty"`
		SessionID string `json:"sessionID,omitempty"`
		All       bool   `json:"all,omitempty"`
	}
	handle(d, m, "events/subscribe", func(ctx context.Context, c *rpc.Conn, p subscribeParams) (okResult, error) {
		w := d.hub.get(c)
		switch {
		case p.All:
			w.everything()
		case p.ProjectID != "":
			if _, err := d.projects.Get(ctx, p.ProjectID); err != nil {
				return okResult{}, notFound("project", p.ProjectID, err)
			}
			w.project(p.ProjectID)
		case p.SessionID != "":
			if _, err := s.Get(ctx, p.SessionID); err != nil {
				return okResult{}, err
			}
			w.session(p.SessionID)
		default:
			return okResult{}, &session.ParamError{Field: "projectID", Msg: "events/subscribe needs one of projectID, sessionID or all: true"}
		}
		return okResult{OK: true}, nil
	}, rpc.Unordered())

	// The daemon itself.
	handle(d, m, "daemon/status", func(ctx context.Context, c *rpc.Conn, _ struct{}) (DaemonStatus, error) {
		return d.status(ctx)
	}, rpc.Unordered())
	handle(d, m, "daemon/gc", func(ctx context.Context, c *rpc.Conn, _ struct{}) (GCResult, error) {
		return d.collect(ctx)
	}, rpc.Unordered())
	if !slices.Contains(d.cfg.HideMethods, "daemon/shutdown") {
		handle(d, m, "daemon/shutdown", func(ctx context.Context, c *rpc.Conn, _ struct{}) (ShutdownResult, error) {
			return ShutdownResult{OK: true, PID: os.Getpid()}, nil
		}, rpc.Unordered(), rpc.AfterReply(func(*rpc.Conn) { d.requestStop() }))
	}
	d.contextRoutes(m)
	d.commandRoutes(m)
	return m
}

// DaemonStatus is the result of daemon/status.
type DaemonStatus struct {
	Version     string `json:"version"`
	PID         int    `json:"pid"`
	StartedAt   int64  `json:"startedAt"`
	UptimeMs    int64  `json:"uptimeMs"`
	DataDir     string `json:"dataDir"`
	Socket      string `json:"socket,omitempty"`
	Connections int    `json:"connections"`
	Projects    int    `json:"projects"`
	// Watched counts the checkouts whose files are watched now.
	Watched int `json:"watched"`
	// Degraded maps a watched checkout to why its watcher cannot see
	// every change, and how to fix it.
	Degraded  map[string]string `json:"degraded,omitempty"`
	Store     StoreSizes        `json:"store"`
	GoVersion string            `json:"goVersion"`
	// PendingJournals lists the reverts and unreverts parked because they
	// could not finish; each session refuses turns until it is retried or
	// abandoned.
	PendingJournals []session.PendingJournalInfo `json:"pendingJournals,omitempty"`
}

// StoreSizes are the store's bytes on disk, and what snapshots hold.
type StoreSizes struct {
	LSMBytes   int64 `json:"lsmBytes"`
	VLogBytes  int64 `json:"vlogBytes"`
	OtherBytes int64 `json:"otherBytes"`
	// Blobs and BlobBytes count the stored file contents (compressed);
	// Trees and TreeBytes the directory listings of snapshots.
	Blobs     int64 `json:"blobs"`
	BlobBytes int64 `json:"blobBytes"`
	Trees     int64 `json:"trees"`
	TreeBytes int64 `json:"treeBytes"`
	// BudgetBytes is the disk budget the daemon warns above.
	BudgetBytes int64 `json:"budgetBytes"`
}

func (d *Daemon) status(ctx context.Context) (DaemonStatus, error) {
	projects, err := d.projects.List(ctx)
	if err != nil {
		return DaemonStatus{}, err
	}
	disk, err := d.db.DiskUsage()
	if err != nil {
		return DaemonStatus{}, err
	}
	objs, err := d.engine.Usage(ctx)
	if err != nil {
		return DaemonStatus{}, err
	}
	parked, err := d.sessions.PendingJournals(ctx)
	if err != nil {
		return DaemonStatus{}, err
	}
	st := DaemonStatus{
		Version:     d.cfg.Version,
		PID:         os.Getpid(),
		StartedAt:   d.started.UnixMilli(),
		UptimeMs:    time.Since(d.started).Milliseconds(),
		DataDir:     d.cfg.DataDir,
		Connections: d.connections(),
		Projects:    len(projects),
		Watched:     d.trackers.Count(),
		Degraded:    d.trackers.Degraded(),
		Store: StoreSizes{
			LSMBytes: disk.LSM, VLogBytes: disk.ValueLog, OtherBytes: disk.Other,
			Blobs: objs.Blobs, BlobBytes: objs.BlobBytes, Trees: objs.Trees, TreeBytes: objs.TreeBytes,
			BudgetBytes: d.budget(),
		},
		GoVersion:       runtime.Version(),
		PendingJournals: parked,
	}
	if d.lock != nil && d.listenerSet() {
		st.Socket = d.cfg.Socket
	}
	return st, nil
}

func (d *Daemon) listenerSet() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.listener != nil
}

func dirParamError(err error) error {
	var de *workspace.DirError
	if errors.As(err, &de) {
		return &session.ParamError{Field: "directory", Err: err}
	}
	return err
}

func notFound(kind, id string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return &session.NotFoundError{Kind: kind, ID: id}
	}
	return err
}

// toRPCError maps the session layer's errors to protocol errors; anything
// else is passed on for rpc to report as an internal error.
func toRPCError(err error) error {
	var (
		re *rpc.Error
		nf *session.NotFoundError
		pe *session.ParamError
		ce *session.ClosedError
		cf *session.ConflictError
		up *session.UnsafePathError
		pj *session.PendingJournalError
		ab *session.AbortedError
		np *provider.NoProviderError
		pv *provider.ProviderError
	)
	switch {
	case errors.As(err, &re):
		return re
	case errors.As(err, &pe):
		return rpc.InvalidParams(pe.Field, "%s", pe.Error())
	case errors.As(err, &nf):
		return rpc.NewError(rpc.CodeNotFound, "%s", nf.Error()).With("id", nf.ID).With("resource", nf.Kind)
	case errors.As(err, &ce):
		return rpc.NewError(rpc.CodeClosed, "%s", ce.Error()).With("lifecycle", ce.Lifecycle)
	case errors.Is(err, session.ErrBusy):
		return rpc.NewError(rpc.CodeBusy, "%s: wait for it to finish (session/status shows it) and try again", err.Error())
	case errors.As(err, &cf):
		e := rpc.NewError(rpc.CodeConflict, "%s", cf.Error()).With("paths", cf.Paths)
		if len(cf.Unattributed) > 0 {
			e = e.With("unattributed", cf.Unattributed)
		}
		return e
	case errors.As(err, &up):
		paths := make([]string, len(up.Paths))
		for i, p := range up.Paths {
			paths[i] = p.Path
		}
		return rpc.NewError(rpc.CodeConflict, "%s", up.Error()).With("reason", "unsafePath").With("paths", paths).With("conflicts", up.Paths)
	case errors.As(err, &pj):
		return rpc.NewError(rpc.CodeConflict, "%s", pj.Error()).With("reason", "pendingJournal").
			With("sessionID", pj.SessionID).With("pendingJournal", pj.Journal)
	case errors.As(err, &ab):
		e := rpc.NewError(rpc.CodeAborted, "%s", ab.Error())
		if ab.MessageID != "" {
			e = e.With("messageID", ab.MessageID)
		}
		return e
	case errors.As(err, &np):
		e := rpc.NewError(rpc.CodeNoProvider, "%s", np.Error())
		if !np.Ref.IsZero() {
			e = e.With("model", np.Ref)
		}
		if len(np.Env) > 0 {
			e = e.With("env", np.Env)
		}
		return e
	case errors.As(err, &pv):
		return rpc.NewError(rpc.CodeProviderError, "%s", err.Error()).
			With("provider", pv.Provider).With("model", pv.Model).With("status", pv.Status).
			With("providerMessage", pv.Message).With("retryable", pv.Retryable).With("attempts", pv.Attempts)
	}
	return err
}

// connAsker asks a connection's client for permission to run a tool.
type connAsker struct{ c *rpc.Conn }

func (a connAsker) AskPermission(ctx context.Context, req session.PermissionRequest) (string, error) {
	var res session.PermissionResult
	if err := a.c.Call(ctx, "session/requestPermission", req, &res); err != nil {
		return "", err
	}
	return res.Outcome, nil
}

// watch starts watching the checkout of dir in the background: the first
// walk of a large tree takes a while, and opening a workspace should not.
func (d *Daemon) watch(proj workspace.Project, dir string) {
	root := proj.RootFor(dir)
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if _, err := d.trackers.Get(context.Background(), proj.ID, root); err != nil {
			d.log.Warn("cannot watch workspace; snapshots will scan it instead", "root", root, "err", err)
		}
	}()
}
