package session

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/sessiond/sessiond/session/shellrun"
	"github.com/sessiond/sessiond/store"
)

// ShellParams are the params of session/shell.
type ShellParams struct {
	SessionID string `json:"sessionID"`
	Command   string `json:"command"`
	// TimeoutMs bounds the command; 0 means 2 minutes.
	TimeoutMs int64 `json:"timeoutMs,omitempty"`
}

// MaxShellTimeout is the longest timeout session/shell accepts.
const MaxShellTimeout = 24 * time.Hour

// Shell runs a command with the user's shell in the session's directory,
// as a recorded turn: a user message with a tool part holding the command,
// its combined output (cut inline, kept whole in the store), exit code and
// duration, and the files captured before and after.
func (s *Service) Shell(ctx context.Context, p ShellParams) (MessageWithParts, error) {
	if strings.TrimSpace(p.Command) == "" {
		return MessageWithParts{}, paramErr("command", "command is required: a shell command line")
	}
	if p.TimeoutMs < 0 || time.Duration(p.TimeoutMs)*time.Millisecond > MaxShellTimeout {
		return MessageWithParts{}, paramErr("timeoutMs", "timeoutMs must be between 0 (the default, 2 minutes) and %d", MaxShellTimeout.Milliseconds())
	}
	t, err := s.beginTurn(ctx, p.SessionID)
	if err != nil {
		return MessageWithParts{}, err
	}
	now := s.nowMs()
	input, _ := json.Marshal(map[string]string{"command": p.Command})
	m := MessageWithParts{Info: Message{
		ID: s.db.NewID(store.KindMessage), SessionID: t.ses.ID, Role: RoleUser,
		Agent: t.ses.Agent, Time: MessageTime{Created: now},
	}}
	part := Part{
		ID: s.db.NewID(store.KindPart), SessionID: t.ses.ID, MessageID: m.Info.ID,
		Type: PartTool, Tool: "shell", CallID: "shell",
		State: &ToolState{Status: "running", Input: input, Title: p.Command, Time: &PartTime{Start: now}},
	}
	m.Parts = []Part{part}
	if err := s.recordStart(ctx, t, &m); err != nil {
		s.inflight.done(t.before)
		t.release()
		return MessageWithParts{}, err
	}
	env := s.commandEnv(ctx, t.ses)
	// session/abort stops the command as it stops a prompt's turn.
	runCtx, cancel := context.WithCancelCause(ctx)
	s.shells.set(t.ses.ID, m.Info.ID, cancel)
	res, runErr := shellrun.Run(runCtx, shellrun.Options{
		Dir: t.ses.Directory, Command: p.Command, Env: env,
		Timeout:     time.Duration(p.TimeoutMs) * time.Millisecond,
		TraceWrites: s.noWriteTrace == "",
	})
	s.shells.clear(t.ses.ID)
	aborted := errors.Is(context.Cause(runCtx), errAbortRequested)
	cancel(nil)
	end := s.nowMs()
	// The running part was published, and a client's event may still be
	// on its way out: update a copy, never what the event holds.
	st := new(ToolState)
	*st = *m.Parts[0].State
	st.Time = &PartTime{Start: m.Parts[0].State.Time.Start, End: end}
	m.Parts[0].State = st
	st.Output = res.Output
	meta := map[string]any{
		"exitCode":   res.ExitCode,
		"durationMs": res.Duration.Milliseconds(),
		"bytes":      res.Bytes,
	}
	switch {
	case runErr != nil && aborted:
		st.Status, st.Error = "error", "aborted by session/abort before the command started"
		meta["aborted"] = true
	case runErr != nil:
		st.Status, st.Error = "error", runErr.Error()
	case res.TimedOut:
		st.Status, st.Error = "error", fmt.Sprintf("timed out after %s; the command and its children were killed", res.Duration.Round(time.Millisecond))
		meta["timedOut"] = true
	case res.Aborted:
		st.Status, st.Error = "error", "aborted"
		if aborted {
			st.Error = "aborted by session/abort; the command and its children were killed"
		}
		meta["aborted"] = true
	case res.ExitCode != 0:
		st.Status, st.Error = "error", fmt.Sprintf("exit status %d", res.ExitCode)
	default:
		st.Status = "completed"
	}
	if res.Signal != "" {
		meta["signal"] = res.Signal
	}
	if res.Truncated {
		meta["truncated"] = true
		meta["fullOutput"] = "session/output"
	}
	m.Parts[0].Metadata = meta
	m.Info.Time.Completed = end
	if res.Truncated && len(res.Full) > 0 {
		err := s.db.Update(context.WithoutCancel(ctx), func(txn *store.Txn) error {
			return txn.SetRaw(store.KeyOutput(t.ses.ID, part.ID), res.Full)
		})
		if err != nil {
			s.log.Warn("cannot keep the whole shell output", "session", t.ses.ID, "err", err)
		}
	}
	s.lingering.watch(res.Lingering)
	var c claims
	if s.noWriteTrace != "" {
		c.untraced(s.noWriteTrace)
	} else {
		c.addTrace(t.tracker.Root(), res.Writes)
	}
	if err := s.endTurn(ctx, t, &m, &c); err != nil {
		return MessageWithParts{}, err
	}
	return m, nil
}

// OutputParams are the params of session/output.
type OutputParams struct {
	SessionID string `json:"sessionID"`
	PartID    string `json:"partID"`
}

// OutputResult carries a part's whole output.
type OutputResult struct {
	Output string `json:"output"`
}

// Output returns the whole output of a part whose inline output was cut.
func (s *Service) Output(ctx context.Context, p OutputParams) (OutputResult, error) {
	if p.PartID == "" {
		return OutputResult{}, paramErr("partID", "partID is required")
	}
	if _, err := s.Get(ctx, p.SessionID); err != nil {
		return OutputResult{}, err
	}
	var out []byte
	err := s.db.View(ctx, func(txn *store.Txn) error {
		var err error
		out, err = txn.GetRaw(store.KeyOutput(p.SessionID, p.PartID))
		if errors.Is(err, store.ErrNotFound) {
			return &NotFoundError{Kind: "output", ID: p.PartID}
		}
		return err
	})
	return OutputResult{Output: string(out)}, err
}

// UploadParams are the params of session/upload.
type UploadParams struct {
	SessionID string `json:"sessionID"`
	// Path is relative to the session's directory, or absolute inside its
	// workspace.
	Path string `json:"path"`
	// Content is the file's bytes, base64-encoded.
	Content string `json:"content"`
}

// Upload writes a file into the workspace as a recorded, revertible turn.
// Paths that leave the workspace (.., absolute elsewhere, through a
// symlink) or resolve into .git (as given or through a link) are refused
// and nothing is written.
func (s *Service) Upload(ctx context.Context, p UploadParams) (MessageWithParts, error) {
	data, err := base64.StdEncoding.DecodeString(p.Content)
	if err != nil {
		return MessageWithParts{}, &ParamError{Field: "content", Msg: "content must be base64 (standard encoding)", Err: err}
	}
	if p.Path == "" {
		return MessageWithParts{}, paramErr("path", "path is required")
	}
	if s.engine != nil && int64(len(data)) > s.engine.MaxFileSize() {
		// Snapshots skip it, so the upload could not be reverted.
		return MessageWithParts{}, paramErr("content", "the file is %d bytes, over the %d-byte snapshot size cap, so the upload could not be reverted; upload a smaller file or restart the daemon with a larger serve --max-file-size", len(data), s.engine.MaxFileSize())
	}
	ses, err := s.Get(ctx, p.SessionID)
	if err != nil {
		return MessageWithParts{}, err
	}
	proj, err := s.projects.Get(ctx, ses.ProjectID)
	if err != nil {
		return MessageWithParts{}, err
	}
	root := proj.RootFor(ses.Directory)
	// Resolve the path fully (links included) before the turn starts:
	// starting it has effects (a reverted session's hidden messages move
	// to a fork).
	rel, err := checkWritePath(root, ses.Directory, "path", p.Path)
	if err != nil {
		return MessageWithParts{}, err
	}
	t, err := s.beginTurn(ctx, p.SessionID)
	if err != nil {
		return MessageWithParts{}, err
	}
	now := s.nowMs()
	m := MessageWithParts{Info: Message{
		ID: s.db.NewID(store.KindMessage), SessionID: t.ses.ID, Role: RoleUser,
		Agent: t.ses.Agent, Time: MessageTime{Created: now},
	}}
	m.Parts = []Part{{
		ID: s.db.NewID(store.KindPart), SessionID: t.ses.ID, MessageID: m.Info.ID,
		Type: PartFile, Path: rel, Filename: path.Base(rel),
		Mime: mimeOf(rel), Metadata: map[string]any{"bytes": len(data)},
	}}
	if err := writeInRoot(root, rel, data); err != nil {
		s.inflight.done(t.before) // no turn is recorded: the collector may free its snapshot
		t.release()
		return MessageWithParts{}, pathParamErr("path", "write", p.Path, err)
	}
	m.Info.Time.Completed = s.nowMs()
	var c claims
	c.claim(rel)
	if err := s.endTurn(ctx, t, &m, &c); err != nil {
		return MessageWithParts{}, err
	}
	return m, nil
}

func mimeOf(p string) string {
	if t := mime.TypeByExtension(path.Ext(p)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// runningShells lets session/abort stop a session's running shell turn.
type runningShells struct {
	mu sync.Mutex
	m  map[string]runningShell
}

type runningShell struct {
	messageID string
	cancel    context.CancelCauseFunc
}

func (r *runningShells) set(sessionID, messageID string, cancel context.CancelCauseFunc) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[string]runningShell{}
	}
	r.m[sessionID] = runningShell{messageID: messageID, cancel: cancel}
}

func (r *runningShells) clear(sessionID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.m, sessionID)
}

// abort cancels the session's running shell command, if any, and returns
// its message ID.
func (r *runningShells) abort(sessionID string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	sh, ok := r.m[sessionID]
	if ok {
		sh.cancel(errAbortRequested)
	}
	return sh.messageID, ok
}
