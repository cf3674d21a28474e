package session

import (
	"errors"
	"fmt"
	"strings"
)

// NotFoundError reports an absent record. The daemon answers it with the
// NotFound error code.
type NotFoundError struct {
	Kind string // "session", "message", ...
	ID   string
}

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("%s %q not found", e.Kind, e.ID)
}

// ParamError reports a bad request parameter. Field is its JSON path, as
// in "event.author".
type ParamError struct {
	Field string
	Msg   string
	Err   error
}

func (e *ParamError) Error() string {
	if e.Err != nil && e.Msg == "" {
		return e.Err.Error()
	}
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *ParamError) Unwrap() error { return e.Err }

func paramErr(field, format string, args ...any) error {
	return &ParamError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// ClosedError reports an operation that needs a live session on one that is
// stopped or archived.
type ClosedError struct {
	ID        string
	Lifecycle string
}

func (e *ClosedError) Error() string {
	hint := "create a new session or fork this one"
	if e.Lifecycle == LifecycleArchived {
		hint = "unarchive it with session/update {archived: false}"
	}
	return fmt.Sprintf("session %s is %s: %s", e.ID, e.Lifecycle, hint)
}

// ErrBusy reports an operation that needs an idle session while it runs
// a turn.
var ErrBusy = errors.New("session is running a turn")

// ConflictError reports files changed outside the session since it last
// wrote them: a revert or unrevert would overwrite that work.
type ConflictError struct {
	Op    string // "revert" or "unrevert"
	Paths []string
	// Unattributed are those of Paths that changed while a turn ran
	// but that sessiond cannot tell the turn wrote (its writes could not
	// be traced): the turn's or someone else's, no one knows.
	Unattributed []string
}

func (e *ConflictError) Error() string {
	if len(e.Unattributed) == len(e.Paths) {
		return fmt.Sprintf("%s would write %d file(s) that changed while a turn ran, but sessiond could not trace whether the turn or someone else changed them: %s; check them, and pass force: true to %s them too",
			e.Op, len(e.Paths), strings.Join(e.Paths, ", "), e.Op)
	}
	msg := fmt.Sprintf("%s would overwrite changes made outside the session to %d file(s): %s; pass force: true to overwrite them",
		e.Op, len(e.Paths), strings.Join(e.Paths, ", "))
	if len(e.Unattributed) > 0 {
		msg += fmt.Sprintf(" (of these, %s changed during a turn whose writes could not be traced)", strings.Join(e.Unattributed, ", "))
	}
	return msg
}

// ErrNoTimeMachine reports a file operation on a Service built without
// snapshots (only in tests of other parts of the package).
var ErrNoTimeMachine = errors.New("snapshots are not enabled in this service")
