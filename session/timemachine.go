package session

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/sessiond/sessiond/store"
	"github.com/sessiond/sessiond/workspace/snapshot"
)

// DiffParams are the params of session/diff.
type DiffParams struct {
	SessionID string `json:"sessionID"`
	// MessageID limits the diff to one turn; without it, the whole session.
	MessageID string `json:"messageID,omitempty"`
	// Patch adds a unified diff to each text file.
	Patch bool `json:"patch,omitempty"`
}

// Diff returns what a session changed in its workspace: the files its own
// turns changed, from before its first turn that touched each to after its
// last visible turn; or what one turn changed.
func (s *Service) Diff(ctx context.Context, p DiffParams) ([]snapshot.FileDiff, error) {
	if s.engine == nil {
		return nil, ErrNoTimeMachine
	}
	if _, err := s.Get(ctx, p.SessionID); err != nil {
		return nil, err
	}
	if p.MessageID != "" {
		m, err := s.Message(ctx, MessageParams{SessionID: p.SessionID, MessageID: p.MessageID})
		if err != nil {
			return nil, err
		}
		if m.Info.Snapshot == nil || m.Info.Snapshot.Before == "" || m.Info.Snapshot.After == "" {
			return []snapshot.FileDiff{}, nil // a message that ran nothing changed nothing
		}
		return s.diffTurns(ctx, []Message{m.Info}, p.Patch)
	}
	turns, err := s.turnMessages(ctx, p.SessionID, true)
	if err != nil {
		return nil, err
	}
	return s.diffTurns(ctx, turns, p.Patch)
}

// diffTurns diffs the first turn's before against the last turn's after,
// keeping only the paths the turns themselves changed: edits made between
// turns, by a person or another session, are not this session's.
func (s *Service) diffTurns(ctx context.Context, turns []Message, patch bool) ([]snapshot.FileDiff, error) {
	out := []snapshot.FileDiff{}
	if len(turns) == 0 {
		return out, nil
	}
	// Each path is diffed from before the first turn that changed it to
	// after the last one that did, so an edit made to it before the
	// session first touched it, or after it last did, is not counted.
	type span struct{ from, to snapshot.ID }
	spans := map[string]span{}
	for _, t := range turns {
		before, after, err := snapPair(t)
		if err != nil {
			return nil, err
		}
		changed, err := s.engine.Changed(ctx, before, after)
		if err != nil {
			return nil, err
		}
		for _, p := range changed {
			sp, seen := spans[p]
			if !seen {
				sp.from = before
			}
			sp.to = after
			spans[p] = sp
		}
	}
	byPair := map[span]map[string]bool{}
	for p, sp := range spans {
		if byPair[sp] == nil {
			byPair[sp] = map[string]bool{}
		}
		byPair[sp][p] = true
	}
	for sp, paths := range byPair {
		diffs, err := s.engine.Diff(ctx, sp.from, sp.to, patch)
		if err != nil {
			return nil, fmt.Errorf("diff snapshots: %w", err)
		}
		for _, d := range diffs {
			if paths[d.Path] {
				out = append(out, d)
			}
		}
	}
	slices.SortFunc(out, func(a, b snapshot.FileDiff) int { return strings.Compare(a.Path, b.Path) })
	return out, nil
}

// RevertParams are the params of session/revert.
type RevertParams struct {
	SessionID string `json:"sessionID"`
	MessageID string `json:"messageID"`
	PartID    string `json:"partID,omitempty"`
	// Force overwrites files changed outside the session.
	Force bool `json:"force,omitempty"`
}

// UnrevertParams are the params of session/unrevert.
type UnrevertParams struct {
	SessionID string `json:"sessionID"`
	Force     bool   `json:"force,omitempty"`
}

// PathConflict is a path a revert or unrevert did not write, and why.
type PathConflict struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// RevertConflicts are the paths the session's last revert or unrevert
// left as they were because someone changed them after it was planned (a
// person editing while a killed daemon was down, or while it wrote). The
// session keeps them until its next revert or unrevert.
type RevertConflicts struct {
	Op    string         `json:"op"` // "revert" or "unrevert"
	Time  int64          `json:"time"`
	Paths []PathConflict `json:"paths"`
}

// PendingJournal is a revert or unrevert parked on its session because it
// could not finish: some files may be written, others not.
type PendingJournal struct {
	Op string `json:"op"`
	// Files counts the paths it writes.
	Files int    `json:"files"`
	Error string `json:"error"`
	// Since is when it was first parked (epoch ms).
	Since int64 `json:"since"`
}

// UnsafePathError refuses a revert or unrevert before it writes anything:
// some path it would write cannot be written safely (force does not
// change that).
type UnsafePathError struct {
	Op    string
	Paths []PathConflict
}

func (e *UnsafePathError) Error() string {
	is := make([]snapshot.PathIssue, len(e.Paths))
	for i, p := range e.Paths {
		is[i] = snapshot.PathIssue{Path: p.Path, Reason: p.Reason}
	}
	return fmt.Sprintf("%s refused, nothing was written: %s", e.Op, snapshot.GroupIssues(is))
}

// PendingJournalError refuses work on a session whose revert or unrevert
// is parked, and says how to end it.
type PendingJournalError struct {
	SessionID string
	Journal   PendingJournal
}

func (e *PendingJournalError) Error() string {
	return fmt.Sprintf("session %s has an unfinished %s (%d file(s)) that could not complete: %s. "+
		"Fix that, then finish it with session/journal/retry (`sessiond journal retry %s`), "+
		"or give it up with session/journal/abandon (`sessiond journal abandon %s`), which leaves the files as they are now",
		e.SessionID, e.Journal.Op, e.Journal.Files, e.Journal.Error, e.SessionID, e.SessionID)
}

// journal is a revert or unrevert on its way to the files. It is stored
// before the first file is written and removed with the last record
// update, so a daemon killed in between finishes it at its next start.
// Each change records what the path held when the journal was planned
// (Before) as well as its target, so finishing it later writes only the
// paths nobody else has changed since. Journals of older versions lack
// Before: finishing one leaves every path not yet as wanted.
type journal struct {
	Op        string                    `json:"op"` // "revert" or "unrevert"
	SessionID string                    `json:"sessionID"`
	Root      string                    `json:"root"`
	Changes   []snapshot.Change         `json:"changes"`
	Revert    *RevertState              `json:"revert,omitempty"` // the session's revert state once done
	Expected  map[string]snapshot.Entry `json:"expected"`
}

// Revert puts the files the session changed at or after a message back as
// they were before it (DESIGN §4), hides the messages from there on, and
// keeps what it overwrote for session/unrevert.
func (s *Service) Revert(ctx context.Context, p RevertParams) (Session, error) {
	if p.MessageID == "" {
		return Session{}, paramErr("messageID", "messageID is required: the message to revert to (it and everything after it are undone)")
	}
	release, ses, err := s.holdIdle(ctx, p.SessionID)
	if err != nil {
		return Session{}, err
	}
	defer release()

	all, err := s.turnMessages(ctx, ses.ID, false)
	if err != nil {
		return Session{}, err
	}
	target, err := s.Message(ctx, MessageParams{SessionID: ses.ID, MessageID: p.MessageID})
	if err != nil {
		return Session{}, err
	}
	var to snapshot.ID // the files as they were before the message
	found := false
	if target.Info.Snapshot != nil && target.Info.Snapshot.Before != "" {
		if to, err = store.ParseHash(target.Info.Snapshot.Before); err != nil {
			return Session{}, err
		}
		found = true
	}
	if p.PartID != "" {
		i := slices.IndexFunc(target.Parts, func(pt Part) bool { return pt.ID == p.PartID })
		if i < 0 {
			return Session{}, &NotFoundError{Kind: "part", ID: p.PartID}
		}
		if snap := target.Parts[i].Snapshot; target.Parts[i].Type == PartStepStart && snap != "" {
			if to, err = store.ParseHash(snap); err != nil {
				return Session{}, err
			}
			found = true
		}
	}
	var undone []Message // the turns at or after the message
	for _, m := range all {
		if m.ID >= p.MessageID {
			undone = append(undone, m)
		}
	}
	if !found && len(undone) > 0 {
		// A message that ran nothing itself (an event, a note): the files
		// as they were before the first turn after it.
		to, _, err = snapPair(undone[0])
		if err != nil {
			return Session{}, err
		}
		found = true
	}
	paths := map[string]bool{}
	unowned := map[string]bool{} // changed while an untraced turn ran
	for _, m := range undone {
		for _, p := range m.Snapshot.Unattributed {
			paths[p], unowned[p] = true, true
		}
		before, after, err := snapPair(m)
		if err != nil {
			return Session{}, err
		}
		changed, err := s.engine.Changed(ctx, before, after)
		if err != nil {
			return Session{}, err
		}
		for _, path := range changed {
			paths[path] = true
		}
	}
	if ses.Revert != nil {
		for _, path := range ses.Revert.Files {
			paths[path] = true
		}
	}
	tr, err := s.tracker(ctx, &ses)
	if err != nil {
		return Session{}, err
	}
	current, err := tr.Capture(ctx)
	if err != nil {
		return Session{}, err
	}
	s.inflight.add(current)
	defer s.inflight.done(current)
	state := &RevertState{MessageID: p.MessageID, PartID: p.PartID, Snapshot: current.String()}
	if ses.Revert != nil {
		// Reverting further stacks on the files as they were before the
		// first revert: unrevert brings those back.
		state.Snapshot = ses.Revert.Snapshot
	}
	if !found {
		to = current // nothing to undo: keep as is
	}
	j, err := s.plan(ctx, &ses, "revert", tr.Root(), current, sortedKeys(paths), unowned, p.Force, to)
	if err != nil {
		return Session{}, err
	}
	state.Files = sortedKeys(paths)
	j.Revert = state
	return s.runJournal(ctx, j)
}

// Unrevert puts back the files a revert overwrote and shows the hidden
// messages again.
func (s *Service) Unrevert(ctx context.Context, p UnrevertParams) (Session, error) {
	release, ses, err := s.holdIdle(ctx, p.SessionID)
	if err != nil {
		return Session{}, err
	}
	defer release()
	if ses.Revert == nil {
		return Session{}, paramErr("sessionID", "session %s is not reverted: there is nothing to unrevert", ses.ID)
	}
	back, err := store.ParseHash(ses.Revert.Snapshot)
	if err != nil {
		return Session{}, fmt.Errorf("session %s: bad revert snapshot: %w", ses.ID, err)
	}
	tr, err := s.tracker(ctx, &ses)
	if err != nil {
		return Session{}, err
	}
	current, err := tr.Capture(ctx)
	if err != nil {
		return Session{}, err
	}
	j, err := s.plan(ctx, &ses, "unrevert", tr.Root(), current, ses.Revert.Files, nil, p.Force, back)
	if err != nil {
		return Session{}, err
	}
	return s.runJournal(ctx, j)
}

// holdIdle takes the session's turn, or answers Busy when a turn runs.
func (s *Service) holdIdle(ctx context.Context, id string) (func(), Session, error) {
	if id == "" {
		return nil, Session{}, paramErr("sessionID", "sessionID is required")
	}
	if s.engine == nil {
		return nil, Session{}, ErrNoTimeMachine
	}
	ses, err := s.Get(ctx, id)
	if err != nil {
		return nil, Session{}, err
	}
	release, ok := s.turns.try(id)
	if !ok {
		return nil, Session{}, ErrBusy
	}
	if ses, err = s.Get(ctx, id); err != nil {
		release()
		return nil, Session{}, err
	}
	if err := parkedErr(ses); err != nil {
		release()
		return nil, Session{}, err
	}
	return release, ses, nil
}

// plan works out the file changes that make each path what it is in the
// target snapshot, and refuses (unless force) when a path's current
// content is not what the session last left there: someone else changed
// it since. The paths in unowned changed while a turn ran that could not be
// traced: they are not known to be the session's, so writing them is a
// conflict too.
func (s *Service) plan(ctx context.Context, ses *Session, op, root string, current snapshot.ID, paths []string, unowned map[string]bool, force bool, target snapshot.ID) (*journal, error) {
	expected := map[string]snapshot.Entry{}
	err := s.db.View(ctx, func(txn *store.Txn) error {
		prefix := store.PrefixExpected(ses.ID)
		return txn.Scan(prefix, nil, false, false, func(key, val []byte) (bool, error) {
			var e snapshot.Entry
			if err := json.Unmarshal(val, &e); err != nil {
				return false, fmt.Errorf("decode expected entry: %w", err)
			}
			expected[store.TrimNUL(key, prefix)] = e
			return true, nil
		})
	})
	if err != nil {
		return nil, err
	}
	j := &journal{Op: op, SessionID: ses.ID, Root: root, Expected: map[string]snapshot.Entry{}}
	curs, err := s.engine.LookupAll(ctx, current, paths)
	if err != nil {
		return nil, err
	}
	wants, err := s.engine.LookupAll(ctx, target, paths)
	if err != nil {
		return nil, err
	}
	var conflicts, unattributed []string
	for i, path := range paths {
		cur, want := curs[i], wants[i]
		if cur.Kind == store.EntrySkipped || want.Kind == store.EntrySkipped {
			continue // too large to keep: never touched
		}
		if exp, ok := expected[path]; ok && !sameEntry(cur, exp) {
			conflicts = append(conflicts, path)
		} else if unowned[path] && !sameEntry(cur, want) {
			conflicts = append(conflicts, path)
			unattributed = append(unattributed, path)
		}
		j.Expected[path] = want
		if !sameEntry(cur, want) {
			j.Changes = append(j.Changes, snapshot.Change{Path: path, Before: &cur, Target: want})
		}
	}
	// A path that cannot be written safely is refused even with force,
	// before the journal exists: force overrides someone's edit, never
	// the workspace's boundaries.
	issues, err := s.engine.CheckApply(ctx, root, j.Changes)
	if err != nil {
		return nil, fmt.Errorf("%s: check the files to write: %w", op, err)
	}
	if len(issues) > 0 {
		e := &UnsafePathError{Op: op}
		unsafe := map[string]bool{}
		for _, is := range issues {
			e.Paths = append(e.Paths, PathConflict{Path: is.Path, Reason: is.Reason})
			unsafe[is.Path] = true
		}
		for _, p := range conflicts {
			if !force && !unsafe[p] {
				e.Paths = append(e.Paths, PathConflict{Path: p, Reason: "it was changed outside the session since the session last wrote it; pass force: true to overwrite it"})
			}
		}
		slices.SortFunc(e.Paths, func(a, b PathConflict) int { return strings.Compare(a.Path, b.Path) })
		return nil, e
	}
	if len(conflicts) > 0 && !force {
		return nil, &ConflictError{Op: op, Paths: conflicts, Unattributed: unattributed}
	}
	return j, nil
}

// sameEntry compares what two entries hold; directories match on kind
// alone (their content is their files, each checked on its own).
func sameEntry(a, b snapshot.Entry) bool {
	if a.Kind != b.Kind {
		return false
	}
	if a.Kind == store.EntryDir || a.Kind == store.EntryNone {
		return true
	}
	return a.Hash == b.Hash && a.Mode.Perm() == b.Mode.Perm()
}

// runJournal stores the journal, applies it to the files, and finishes it.
// A journal that cannot finish is parked on its session (see park); one
// refused before anything was written is dropped again.
func (s *Service) runJournal(ctx context.Context, j *journal) (Session, error) {
	ctx = context.WithoutCancel(ctx) // once begun, a revert is finished
	err := s.db.Update(ctx, func(txn *store.Txn) error { return txn.Set(store.KeyJournal(j.SessionID), j) })
	if err != nil {
		return Session{}, fmt.Errorf("write %s journal: %w", j.Op, err)
	}
	if s.crashPoint == CrashRevertMidApply && j.Op == "revert" && len(j.Changes) > 1 {
		if _, err := s.engine.ApplyGuarded(ctx, j.Root, j.Changes[:len(j.Changes)/2]); err == nil {
			s.crashAt(CrashRevertMidApply)
		}
	}
	ses, err := s.finishJournal(ctx, j)
	if err == nil {
		return ses, nil
	}
	var nf *NotFoundError
	if errors.As(err, &nf) {
		return Session{}, err
	}
	var unsafe *snapshot.UnsafeError
	if errors.As(err, &unsafe) {
		// A path became unsafe between planning and writing. The apply
		// refused before its first write, so nothing was written: the
		// journal goes, and the answer is the same as the plan's.
		if derr := s.db.Update(ctx, func(txn *store.Txn) error { return txn.Delete(store.KeyJournal(j.SessionID)) }); derr != nil {
			return Session{}, s.park(ctx, j, err)
		}
		e := &UnsafePathError{Op: j.Op}
		for _, pe := range unsafe.Issues {
			e.Paths = append(e.Paths, PathConflict{Path: pe.Path, Reason: pe.Reason})
		}
		return Session{}, e
	}
	return Session{}, s.park(ctx, j, err)
}

// finishJournal applies a journal's changes (again, after a crash: a path
// already as wanted is skipped), leaving every path someone else changed
// since the journal was planned, and records the outcome: the revert
// state, and the paths left alone, on the session. The journal of a
// session deleted meanwhile is dropped without touching any file.
func (s *Service) finishJournal(ctx context.Context, j *journal) (Session, error) {
	if _, err := s.Get(ctx, j.SessionID); err != nil {
		var nf *NotFoundError
		if errors.As(err, &nf) {
			if derr := s.db.Update(ctx, func(txn *store.Txn) error { return txn.Delete(store.KeyJournal(j.SessionID)) }); derr != nil {
				return Session{}, fmt.Errorf("drop the %s journal of deleted session %s: %w", j.Op, j.SessionID, derr)
			}
		}
		return Session{}, err
	}
	var left []PathConflict
	if len(j.Changes) > 0 {
		rep, err := s.engine.ApplyGuarded(ctx, j.Root, j.Changes)
		if err != nil {
			return Session{}, fmt.Errorf("write files: %w", err)
		}
		for _, c := range rep.Conflicts {
			left = append(left, PathConflict{Path: c.Path, Reason: c.Reason})
		}
	}
	// Written again when a journal is finished twice: harmless. A path
	// left alone gets the target too: whatever it holds now is not what
	// the session left there, so a later revert or unrevert asks first.
	if err := s.putExpected(j.SessionID, j.Expected); err != nil {
		return Session{}, fmt.Errorf("finish %s: %w", j.Op, err)
	}
	summary, err := s.summaryUnder(ctx, j.SessionID, j.Revert)
	if err != nil {
		s.log.Warn("cannot summarise the session's changes", "session", j.SessionID, "err", err)
	}
	var rc *RevertConflicts
	if len(left) > 0 {
		rc = &RevertConflicts{Op: j.Op, Time: s.nowMs(), Paths: left}
		s.log.Warn("a "+j.Op+" left files someone changed after it was planned", "session", j.SessionID, "files", len(left))
	}
	var ses Session
	err = s.db.Update(ctx, func(txn *store.Txn) error {
		ses = Session{}
		if err := getSession(txn, j.SessionID, &ses); err != nil {
			var nf *NotFoundError
			if errors.As(err, &nf) {
				return txn.Delete(store.KeyJournal(j.SessionID)) // deleted meanwhile
			}
			return err
		}
		ses.Revert = j.Revert
		ses.RevertConflicts = rc
		ses.PendingJournal = nil
		if summary != nil {
			ses.Summary = summary
		}
		ses.Version++
		ses.Time.Updated = max(s.nowMs(), ses.Time.Updated)
		if err := txn.Set(store.KeySession(ses.ID), &ses); err != nil {
			return err
		}
		return txn.Delete(store.KeyJournal(j.SessionID))
	})
	if err != nil {
		return Session{}, fmt.Errorf("finish %s: %w", j.Op, err)
	}
	if ses.ID == "" {
		return Session{}, &NotFoundError{Kind: "session", ID: j.SessionID}
	}
	event := "session.reverted"
	if j.Op == "unrevert" {
		event = "session.unreverted"
	}
	props := map[string]any{"sessionID": ses.ID, "revert": ses.Revert}
	if rc != nil {
		props["conflicts"] = rc.Paths
	}
	s.publish(ses.ProjectID, ses.ID, event, props)
	s.publish(ses.ProjectID, ses.ID, "session.updated", map[string]any{"info": ses})
	return ses, nil
}

// park records on the session that its journal could not finish, so the
// daemon goes on serving everything else: session/get shows it, the
// session refuses what would build on half-written files, and
// RetryJournal or AbandonJournal ends it. It returns the error to answer.
func (s *Service) park(ctx context.Context, j *journal, cause error) error {
	pj := PendingJournal{Op: j.Op, Files: len(j.Changes), Error: cause.Error(), Since: s.nowMs()}
	var ses Session
	err := s.db.Update(ctx, func(txn *store.Txn) error {
		ses = Session{}
		if err := getSession(txn, j.SessionID, &ses); err != nil {
			return err
		}
		if ses.PendingJournal != nil {
			pj.Since = ses.PendingJournal.Since // parked since the first failure
		}
		ses.PendingJournal = &pj
		ses.Version++
		ses.Time.Updated = max(s.nowMs(), ses.Time.Updated)
		return txn.Set(store.KeySession(ses.ID), &ses)
	})
	if err != nil {
		return fmt.Errorf("%s of session %s could not finish (%w), and recording that failed too: %w", j.Op, j.SessionID, cause, err)
	}
	s.publish(ses.ProjectID, ses.ID, "session.updated", map[string]any{"info": ses})
	return &PendingJournalError{SessionID: ses.ID, Journal: pj}
}

// parkedErr refuses work on a session whose journal is parked: a turn or
// a revert would build on half-written files.
func parkedErr(ses Session) error {
	if ses.PendingJournal == nil {
		return nil
	}
	return &PendingJournalError{SessionID: ses.ID, Journal: *ses.PendingJournal}
}

// summaryUnder counts what the session's visible turns changed once its
// revert state is rv (nil: not reverted).
func (s *Service) summaryUnder(ctx context.Context, id string, rv *RevertState) (*ChangeSummary, error) {
	all, err := s.turnMessages(ctx, id, false)
	if err != nil {
		return nil, err
	}
	var turns []Message
	for _, m := range all {
		if rv == nil || m.ID < rv.MessageID {
			turns = append(turns, m)
		}
	}
	return s.summarize(ctx, turns)
}

// summarize counts the changes of turns.
func (s *Service) summarize(ctx context.Context, turns []Message) (*ChangeSummary, error) {
	diffs, err := s.diffTurns(ctx, turns, false)
	if err != nil {
		return nil, err
	}
	sum := &ChangeSummary{Files: len(diffs)}
	for _, d := range diffs {
		sum.Additions += d.Additions
		sum.Deletions += d.Deletions
	}
	return sum, nil
}

// ResumeJournals finishes the reverts and unreverts a killed daemon left
// halfway. The daemon runs it before it serves anything. A journal that
// cannot finish (a path became unsafe, a full disk, a damaged record) is
// parked on its session and logged; it never stops the daemon. Only a
// store that cannot be read is an error.
func (s *Service) ResumeJournals(ctx context.Context) error {
	if s.engine == nil {
		return nil
	}
	type pending struct {
		id  string
		raw []byte
	}
	var ps []pending
	err := s.db.View(ctx, func(txn *store.Txn) error {
		return txn.Scan(store.PrefixJournals(), nil, false, false, func(key, val []byte) (bool, error) {
			ps = append(ps, pending{store.LastComponent(key), slices.Clone(val)})
			return true, nil
		})
	})
	if err != nil {
		return fmt.Errorf("find pending journals: %w", err)
	}
	for _, p := range ps {
		var j journal
		if err := json.Unmarshal(p.raw, &j); err != nil || j.SessionID != p.id {
			if err == nil {
				err = fmt.Errorf("it names session %q", j.SessionID)
			}
			j = journal{Op: "revert or unrevert", SessionID: p.id}
			s.parkAtStart(ctx, &j, fmt.Errorf("the journal record is damaged (%w); abandon it", err))
			continue
		}
		s.log.Info("finishing an interrupted "+j.Op, "session", j.SessionID, "files", len(j.Changes))
		if _, err := s.finishJournal(ctx, &j); err != nil {
			var nf *NotFoundError
			if errors.As(err, &nf) {
				s.log.Warn("dropped the journal of a deleted session; no file was touched", "session", j.SessionID, "op", j.Op)
				continue
			}
			s.parkAtStart(ctx, &j, err)
		}
	}
	return nil
}

func (s *Service) parkAtStart(ctx context.Context, j *journal, cause error) {
	var pe *PendingJournalError
	var nf *NotFoundError
	switch err := s.park(ctx, j, cause); {
	case errors.As(err, &nf):
		// Nobody could retry or abandon it: its session is gone.
		if err := s.db.Update(ctx, func(txn *store.Txn) error { return txn.Delete(store.KeyJournal(j.SessionID)) }); err != nil {
			s.log.Error("cannot drop the journal of a deleted session", "session", j.SessionID, "err", err)
		}
		s.log.Warn("dropped the journal of a deleted session", "session", j.SessionID, "err", cause)
		return
	case !errors.As(err, &pe):
		s.log.Error("an interrupted "+j.Op+" could not finish nor be parked; it is retried at the next start", "session", j.SessionID, "err", err)
		return
	}
	s.log.Warn("an interrupted "+j.Op+" could not finish; it is parked on its session, and everything else is served. "+
		"Fix the cause, then run `sessiond journal retry "+j.SessionID+"`, or `sessiond journal abandon "+j.SessionID+"`",
		"session", j.SessionID, "err", cause)
}

// JournalParams are the params of session/journal/retry and
// session/journal/abandon.
type JournalParams struct {
	SessionID string `json:"sessionID"`
}

// RetryJournal tries again to finish a session's parked revert or
// unrevert, with the same rule as at start-up: paths changed since it was
// planned are left and reported. When it fails again it stays parked and
// the error says why.
func (s *Service) RetryJournal(ctx context.Context, p JournalParams) (Session, error) {
	release, ses, raw, err := s.holdJournal(ctx, p.SessionID, "retry")
	if err != nil {
		return Session{}, err
	}
	defer release()
	ctx = context.WithoutCancel(ctx) // once begun, it is finished
	var j journal
	if err := json.Unmarshal(raw, &j); err != nil {
		return Session{}, s.park(ctx, &journal{Op: "revert or unrevert", SessionID: ses.ID}, fmt.Errorf("the journal record is damaged (%w); abandon it", err))
	}
	out, err := s.finishJournal(ctx, &j)
	if err != nil {
		var nf *NotFoundError
		if errors.As(err, &nf) {
			return Session{}, err
		}
		return Session{}, s.park(ctx, &j, err)
	}
	return out, nil
}

// AbandonJournal gives up a session's parked revert or unrevert: the
// journal is deleted and the files stay as they are. The session stays
// as it was before that revert or unrevert, except that the paths the
// journal did write now count as the session's own, so a later revert
// does not take them for someone else's edits.
func (s *Service) AbandonJournal(ctx context.Context, p JournalParams) (Session, error) {
	release, ses, raw, err := s.holdJournal(ctx, p.SessionID, "abandon")
	if err != nil {
		return Session{}, err
	}
	defer release()
	ctx = context.WithoutCancel(ctx)
	var j journal
	if json.Unmarshal(raw, &j) == nil && len(j.Changes) > 0 {
		paths := make([]string, len(j.Changes))
		for i, c := range j.Changes {
			paths[i] = c.Path
		}
		if now, err := s.engine.OnDisk(ctx, j.Root, paths); err != nil {
			s.log.Warn("cannot tell which files the abandoned journal wrote", "session", ses.ID, "err", err)
		} else {
			done := map[string]snapshot.Entry{}
			for i, c := range j.Changes {
				if sameEntry(now[i], c.Target) {
					done[c.Path] = c.Target
				}
			}
			if err := s.putExpected(ses.ID, done); err != nil {
				return Session{}, fmt.Errorf("abandon %s: %w", j.Op, err)
			}
		}
	}
	err = s.db.Update(ctx, func(txn *store.Txn) error {
		ses = Session{}
		if err := getSession(txn, p.SessionID, &ses); err != nil {
			return err
		}
		ses.PendingJournal = nil
		ses.Version++
		ses.Time.Updated = max(s.nowMs(), ses.Time.Updated)
		if err := txn.Set(store.KeySession(ses.ID), &ses); err != nil {
			return err
		}
		return txn.Delete(store.KeyJournal(ses.ID))
	})
	if err != nil {
		return Session{}, fmt.Errorf("abandon the journal of %s: %w", p.SessionID, err)
	}
	s.log.Info("abandoned an unfinished "+cmp.Or(j.Op, "revert or unrevert")+"; the files stay as they are", "session", ses.ID)
	s.publish(ses.ProjectID, ses.ID, "session.updated", map[string]any{"info": ses})
	return ses, nil
}

// holdJournal takes the session's turn (Busy while a turn, a revert or an
// unrevert runs) and reads its journal.
func (s *Service) holdJournal(ctx context.Context, id, verb string) (func(), Session, []byte, error) {
	if id == "" {
		return nil, Session{}, nil, paramErr("sessionID", "sessionID is required")
	}
	if s.engine == nil {
		return nil, Session{}, nil, ErrNoTimeMachine
	}
	if _, err := s.Get(ctx, id); err != nil {
		return nil, Session{}, nil, err
	}
	release, ok := s.turns.try(id)
	if !ok {
		return nil, Session{}, nil, ErrBusy
	}
	var ses Session
	var raw []byte
	err := s.db.View(ctx, func(txn *store.Txn) error {
		if err := getSession(txn, id, &ses); err != nil {
			return err
		}
		var err error
		raw, err = txn.GetRaw(store.KeyJournal(id))
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		err = paramErr("sessionID", "session %s has no unfinished revert or unrevert: there is nothing to %s", id, verb)
	}
	if err != nil {
		release()
		return nil, Session{}, nil, err
	}
	return release, ses, raw, nil
}

// PendingJournalInfo is a parked journal as daemon/status lists it.
type PendingJournalInfo struct {
	SessionID string `json:"sessionID"`
	Title     string `json:"title"`
	Directory string `json:"directory"`
	PendingJournal
}

// PendingJournals lists the parked journals, for daemon/status and
// `sessiond doctor`.
func (s *Service) PendingJournals(ctx context.Context) ([]PendingJournalInfo, error) {
	var out []PendingJournalInfo
	err := s.db.View(ctx, func(txn *store.Txn) error {
		var ids []string
		err := txn.Scan(store.PrefixJournals(), nil, false, true, func(key, _ []byte) (bool, error) {
			ids = append(ids, store.LastComponent(key))
			return true, nil
		})
		if err != nil {
			return err
		}
		for _, id := range ids {
			var ses Session
			if err := getSession(txn, id, &ses); err != nil {
				var nf *NotFoundError
				if errors.As(err, &nf) {
					continue // deleted: dropped at the next start
				}
				return err
			}
			if ses.PendingJournal != nil { // not a revert running right now
				out = append(out, PendingJournalInfo{SessionID: ses.ID, Title: ses.Title, Directory: ses.Directory, PendingJournal: *ses.PendingJournal})
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list parked journals: %w", err)
	}
	return out, nil
}

// ForkParams are the params of session/fork.
type ForkParams struct {
	SessionID string `json:"sessionID"`
	// MessageID: copy the messages before it; without it, every visible
	// message.
	MessageID string `json:"messageID,omitempty"`
}

// Fork copies a session's messages before a message into a new session.
// It touches no file.
func (s *Service) Fork(ctx context.Context, p ForkParams) (Session, error) {
	src, err := s.Get(ctx, p.SessionID)
	if err != nil {
		return Session{}, err
	}
	if p.MessageID != "" {
		if _, err := s.Message(ctx, MessageParams{SessionID: src.ID, MessageID: p.MessageID}); err != nil {
			return Session{}, err
		}
	}
	upTo := p.MessageID
	if upTo == "" && src.Revert != nil {
		upTo = src.Revert.MessageID // what the session shows
	}
	fork := s.newFork(src, " (fork)", ForkRef{SessionID: src.ID, MessageID: p.MessageID})
	if err := s.copyExpected(ctx, src.ID, fork.ID); err != nil {
		return Session{}, fmt.Errorf("fork session %s: %w", src.ID, err)
	}
	err = s.db.Update(ctx, func(txn *store.Txn) error {
		n, _, err := s.copyMessages(txn, src.ID, fork.ID, func(id string) bool { return upTo == "" || id < upTo })
		if err != nil {
			return err
		}
		fork.MessageCount = n
		return putNewSession(txn, &fork)
	})
	if err != nil {
		return Session{}, fmt.Errorf("fork session %s: %w", src.ID, err)
	}
	s.publish(fork.ProjectID, fork.ID, "session.created", map[string]any{"info": fork})
	return fork, nil
}

func (s *Service) newFork(src Session, suffix string, from ForkRef) Session {
	now := s.nowMs()
	f := Session{
		ID: s.db.NewID(store.KindSession), ProjectID: src.ProjectID, Directory: src.Directory,
		ForkedFrom: &from, Title: src.Title + suffix, UserID: src.UserID, Agent: src.Agent,
		Model: src.Model, Permission: src.Permission, Lifecycle: LifecycleRunning,
		Metadata: src.Metadata, Time: SessionTime{Created: now, Updated: now}, Version: 1,
	}
	f.RootID = f.ID
	return f
}

func putNewSession(txn *store.Txn, ses *Session) error {
	if err := txn.Set(store.KeySession(ses.ID), ses); err != nil {
		return err
	}
	return txn.SetRaw(store.KeySessionByProject(ses.ProjectID, ses.ID), nil)
}

// copyMessages copies the messages of from whose ID keep accepts, with
// their parts, into session to, under new IDs made in the same order. It
// returns how many it copied and the new ID of each old one.
func (s *Service) copyMessages(txn *store.Txn, from, to string, keep func(string) bool) (int, map[string]string, error) {
	ids := map[string]string{}
	var msgs []Message
	err := txn.Scan(store.PrefixMessages(from), nil, false, false, func(_, val []byte) (bool, error) {
		var m Message
		if err := json.Unmarshal(val, &m); err != nil {
			return false, err
		}
		if keep(m.ID) {
			msgs = append(msgs, m)
		}
		return true, nil
	})
	if err != nil {
		return 0, nil, err
	}
	for _, m := range msgs {
		parts, err := readParts(txn, from, m.ID)
		if err != nil {
			return 0, nil, err
		}
		old := m.ID
		m.ID, m.SessionID = s.db.NewID(store.KindMessage), to
		ids[old] = m.ID
		if m.ParentID != "" {
			m.ParentID = ids[m.ParentID]
		}
		if err := txn.Set(store.KeyMessage(to, m.ID), &m); err != nil {
			return 0, nil, err
		}
		for _, pt := range parts {
			pt.ID, pt.SessionID, pt.MessageID = s.db.NewID(store.KindPart), to, m.ID
			if err := txn.Set(store.KeyPart(to, m.ID, pt.ID), &pt); err != nil {
				return 0, nil, err
			}
		}
	}
	return len(msgs), ids, nil
}

// copyExpected gives a fork what its source last left at each path, so
// its reverts check for outside edits the same way. A session that changed
// many files has more of these than one transaction holds: they are
// copied through a write batch, before the fork's record exists.
func (s *Service) copyExpected(ctx context.Context, from, to string) error {
	b := s.db.NewBatch()
	defer b.Cancel()
	prefix := store.PrefixExpected(from)
	err := s.db.View(ctx, func(txn *store.Txn) error {
		return txn.Scan(prefix, nil, false, false, func(key, val []byte) (bool, error) {
			return true, b.SetRaw(store.KeyExpected(to, store.TrimNUL(key, prefix)), val)
		})
	})
	if err != nil {
		return fmt.Errorf("copy expected entries: %w", err)
	}
	return b.Flush()
}

// putExpected records what the session left at each path: the reference
// a later revert checks for outside edits. A turn or a revert can change
// more paths than one transaction holds, so the entries go through a
// write batch, ahead of the record that relies on them.
func (s *Service) putExpected(sessionID string, entries map[string]snapshot.Entry) error {
	if len(entries) == 0 {
		return nil
	}
	b := s.db.NewBatch()
	defer b.Cancel()
	for p, e := range entries {
		v, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("encode expected entry of %s: %w", p, err)
		}
		if err := b.SetRaw(store.KeyExpected(sessionID, p), v); err != nil {
			return err
		}
	}
	if err := b.Flush(); err != nil {
		return fmt.Errorf("record expected entries: %w", err)
	}
	return nil
}

// moveRevertedToFork runs before a new turn of a reverted session: the
// hidden messages move into a fork (which keeps the revert, so it can be
// unreverted there), and the session goes on from the reverted point.
func (s *Service) moveRevertedToFork(ctx context.Context, ses Session) (Session, error) {
	rv := *ses.Revert
	// The messages from the revert point on move to the fork, so the
	// source has no message to name: forkedFrom names the session alone.
	fork := s.newFork(ses, " (undone)", ForkRef{SessionID: ses.ID})
	if err := s.copyExpected(ctx, ses.ID, fork.ID); err != nil {
		return Session{}, fmt.Errorf("move reverted messages of %s into a fork: %w", ses.ID, err)
	}
	var hidden []string
	err := s.db.Update(ctx, func(txn *store.Txn) error {
		hidden = hidden[:0]
		n, ids, err := s.copyMessages(txn, ses.ID, fork.ID, func(string) bool { return true })
		if err != nil {
			return err
		}
		fork.MessageCount = n
		frv := rv
		frv.MessageID = ids[rv.MessageID]
		fork.Revert = &frv
		if err := putNewSession(txn, &fork); err != nil {
			return err
		}
		// Badger allows one iterator at a time in a read-write
		// transaction: collect first, then delete.
		start := append(store.PrefixMessages(ses.ID), rv.MessageID...)
		err = txn.Scan(store.PrefixMessages(ses.ID), start, false, true, func(key, _ []byte) (bool, error) {
			hidden = append(hidden, store.LastComponent(key))
			return true, nil
		})
		if err != nil {
			return err
		}
		for _, id := range hidden {
			var parts [][]byte
			err := txn.Scan(store.PrefixParts(ses.ID, id), nil, false, true, func(pk, _ []byte) (bool, error) {
				parts = append(parts, pk)
				return true, nil
			})
			if err != nil {
				return err
			}
			for _, k := range append(parts, store.KeyMessage(ses.ID, id)) {
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
		}
		cur := Session{}
		if err := getSession(txn, ses.ID, &cur); err != nil {
			return err
		}
		cur.Revert = nil
		cur.MessageCount = max(0, cur.MessageCount-len(hidden))
		cur.Version++
		cur.Time.Updated = max(s.nowMs(), cur.Time.Updated)
		ses = cur
		return txn.Set(store.KeySession(cur.ID), &cur)
	})
	if err != nil {
		return Session{}, fmt.Errorf("move reverted messages of %s into a fork: %w", ses.ID, err)
	}
	s.publish(fork.ProjectID, fork.ID, "session.created", map[string]any{"info": fork})
	for _, id := range hidden {
		s.publish(ses.ProjectID, ses.ID, "message.removed", map[string]any{"sessionID": ses.ID, "messageID": id})
	}
	s.publish(ses.ProjectID, ses.ID, "session.updated", map[string]any{"info": ses})
	return ses, nil
}

// LiveSnapshots lists every snapshot a stored session still refers to, for
// the garbage collector: the turns' pairs, step snapshots, reverts, and
// pending journals.
func (s *Service) LiveSnapshots(ctx context.Context) ([]snapshot.ID, error) {
	seen := map[snapshot.ID]bool{}
	add := func(h string) {
		if h == "" {
			return
		}
		if id, err := store.ParseHash(h); err == nil {
			seen[id] = true
		}
	}
	err := s.db.View(ctx, func(txn *store.Txn) error {
		err := txn.Scan([]byte("msg/"), nil, false, false, func(_, val []byte) (bool, error) {
			var m Message
			if json.Unmarshal(val, &m) == nil && m.Snapshot != nil {
				add(m.Snapshot.Before)
				add(m.Snapshot.After)
			}
			return true, nil
		})
		if err != nil {
			return err
		}
		err = txn.Scan([]byte("prt/"), nil, false, false, func(_, val []byte) (bool, error) {
			if !strings.Contains(string(val), `"snapshot"`) {
				return true, nil
			}
			var p Part
			if json.Unmarshal(val, &p) == nil {
				add(p.Snapshot)
			}
			return true, nil
		})
		if err != nil {
			return err
		}
		err = txn.Scan(store.PrefixSessions(), nil, false, false, func(_, val []byte) (bool, error) {
			var ses Session
			if json.Unmarshal(val, &ses) == nil && ses.Revert != nil {
				add(ses.Revert.Snapshot)
			}
			return true, nil
		})
		if err != nil {
			return err
		}
		// A parked journal can wait for days: the capture its revert will
		// record for unrevert is named nowhere else until it finishes.
		return txn.Scan(store.PrefixJournals(), nil, false, false, func(_, val []byte) (bool, error) {
			var j journal
			if json.Unmarshal(val, &j) == nil && j.Revert != nil {
				add(j.Revert.Snapshot)
			}
			return true, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("find live snapshots: %w", err)
	}
	for _, id := range s.inflight.list() {
		seen[id] = true
	}
	out := make([]snapshot.ID, 0, len(seen))
	for id := range seen {
		out = append(out, id)
	}
	return out, nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// ArchivedWithSnapshots lists the archived sessions that still hold
// snapshots, archived longest ago first: what a store over its disk
// budget gives up first (deleted sessions hold none).
func (s *Service) ArchivedWithSnapshots(ctx context.Context) ([]Session, error) {
	var out []Session
	err := s.db.View(ctx, func(txn *store.Txn) error {
		return txn.Scan(store.PrefixSessions(), nil, false, false, func(_, val []byte) (bool, error) {
			var ses Session
			if err := json.Unmarshal(val, &ses); err != nil {
				return false, fmt.Errorf("decode session: %w", err)
			}
			// A parked journal still needs its session's snapshots.
			if ses.Lifecycle == LifecycleArchived && !ses.SnapshotsReleased && ses.PendingJournal == nil {
				out = append(out, ses)
			}
			return true, nil
		})
	})
	slices.SortFunc(out, func(a, b Session) int { return int(a.Time.Archived - b.Time.Archived) })
	return out, err
}

// ReleaseSnapshots drops a session's references to snapshots, so the
// collector can free them: its messages stay, but it can no longer be
// diffed, reverted or unreverted.
func (s *Service) ReleaseSnapshots(ctx context.Context, id string) error {
	release, ok := s.turns.try(id)
	if !ok {
		return ErrBusy
	}
	defer release()
	var ses Session
	err := s.db.Update(ctx, func(txn *store.Txn) error {
		ses = Session{}
		if err := getSession(txn, id, &ses); err != nil {
			return err
		}
		var msgs []Message
		err := txn.Scan(store.PrefixMessages(id), nil, false, false, func(_, val []byte) (bool, error) {
			var m Message
			if err := json.Unmarshal(val, &m); err != nil {
				return false, err
			}
			if m.Snapshot != nil {
				msgs = append(msgs, m)
			}
			return true, nil
		})
		if err != nil {
			return err
		}
		for _, m := range msgs {
			m.Snapshot = nil
			if err := txn.Set(store.KeyMessage(id, m.ID), &m); err != nil {
				return err
			}
			parts, err := readParts(txn, id, m.ID)
			if err != nil {
				return err
			}
			for _, p := range parts {
				if p.Snapshot != "" {
					p.Snapshot = ""
					if err := txn.Set(store.KeyPart(id, m.ID, p.ID), &p); err != nil {
						return err
					}
				}
			}
		}
		var keys [][]byte
		err = txn.Scan(store.PrefixExpected(id), nil, false, true, func(key, _ []byte) (bool, error) {
			keys = append(keys, key)
			return true, nil
		})
		if err != nil {
			return err
		}
		for _, k := range keys {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		ses.Revert, ses.SnapshotsReleased = nil, true
		ses.Version++
		ses.Time.Updated = max(s.nowMs(), ses.Time.Updated)
		return txn.Set(store.KeySession(id), &ses)
	})
	if err != nil {
		return err
	}
	s.publish(ses.ProjectID, ses.ID, "session.updated", map[string]any{"info": ses})
	return nil
}
