package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/sessiond/sessiond/session/tools"
	"github.com/sessiond/sessiond/store"
)

// turnMarker is stored under store.KeyTurn while a turn runs.
type turnMarker struct {
	MessageID string `json:"messageID"`
}

// errDaemonStopped is why a turn cut off by the daemon's death ended.
const errDaemonStopped = "the daemon stopped while this turn ran (it was killed or crashed); what the turn had written is recorded, and session/diff and session/revert work on it"

// ResumeTurns finishes the record of every turn a killed daemon left
// running: the message is marked aborted with the reason, and the turn's
// files are settled as a turn's end would, so its diff and revert work.
// What the turn's steps had recorded is its own; writes of a tool or
// command that was still running could not be traced to their end, so
// what changed since is recorded as unattributed. The daemon runs it
// before it serves anything.
func (s *Service) ResumeTurns(ctx context.Context) error {
	if s.engine == nil {
		return nil
	}
	type pending struct {
		sessionID string
		marker    turnMarker
	}
	var ps []pending
	err := s.db.View(ctx, func(txn *store.Txn) error {
		prefix := store.PrefixTurns()
		return txn.Scan(prefix, nil, false, false, func(key, val []byte) (bool, error) {
			var mk turnMarker
			if err := json.Unmarshal(val, &mk); err != nil {
				return false, fmt.Errorf("decode turn marker %s: %w", key, err)
			}
			ps = append(ps, pending{sessionID: string(key[len(prefix):]), marker: mk})
			return true, nil
		})
	})
	if err != nil {
		return fmt.Errorf("find interrupted turns: %w", err)
	}
	for _, p := range ps {
		s.log.Warn("finishing the record of a turn the daemon was killed in", "session", p.sessionID, "message", p.marker.MessageID)
		if err := s.resumeTurn(ctx, p.sessionID, p.marker.MessageID); err != nil {
			// One session's trouble must not keep the daemon from serving
			// the others: the marker stays, and the next start tries again.
			s.log.Error("cannot finish an interrupted turn; it stays marked and is retried at the next start",
				"session", p.sessionID, "message", p.marker.MessageID, "err", err)
		}
	}
	return nil
}

func (s *Service) resumeTurn(ctx context.Context, sessionID, messageID string) error {
	dropMarker := func() error {
		return s.db.Update(ctx, func(txn *store.Txn) error { return txn.Delete(store.KeyTurn(sessionID)) })
	}
	m, err := s.Message(ctx, MessageParams{SessionID: sessionID, MessageID: messageID})
	var nf *NotFoundError
	if errors.As(err, &nf) {
		return dropMarker() // the session or message is gone: nothing to finish
	}
	if err != nil {
		return err
	}
	if m.Info.Time.Completed != 0 || m.Info.Snapshot == nil || m.Info.Snapshot.Before == "" {
		return dropMarker()
	}
	before, err := store.ParseHash(m.Info.Snapshot.Before)
	if err != nil {
		return fmt.Errorf("message %s: bad snapshot: %w", messageID, err)
	}
	release, ok := s.turns.try(sessionID)
	if !ok {
		return ErrBusy
	}
	ses, err := s.Get(ctx, sessionID)
	if err != nil {
		release()
		return err
	}
	tr, err := s.tracker(ctx, &ses)
	if err != nil {
		release()
		return err
	}
	s.inflight.add(before)
	t := &turn{ses: ses, tracker: tr, before: before, snap: before, release: release}
	// The steps that ended were settled: the last one's snapshot is where
	// the turn's own files stand. Tools after it are settled now.
	last := -1
	for i, p := range m.Parts {
		if p.Type == PartStepFinish && p.Snapshot != "" {
			last = i
		}
	}
	if last >= 0 {
		if id, err := store.ParseHash(m.Parts[last].Snapshot); err == nil {
			t.hold(s, id)
		}
	}
	var c claims
	now := s.nowMs()
	for i := range m.Parts {
		p := &m.Parts[i]
		switch p.Type {
		case PartTool:
			if i < last || p.State == nil {
				continue
			}
			if changed, ok := p.Metadata["changed"].([]any); ok && p.State.Status == ToolCompleted {
				for _, v := range changed {
					if rel, ok := v.(string); ok {
						c.claim(rel)
					}
				}
			}
			if p.State.Status == ToolPending || p.State.Status == ToolRunning {
				if tool, ok := tools.Lookup(p.Tool); p.State.Status == ToolRunning && (!ok || !tool.ReadOnly()) {
					c.untraced("the daemon stopped while " + p.Tool + " ran")
				}
				st := *p.State
				st.Status, st.Error = ToolError, "did not finish: "+errDaemonStopped
				st.Time = &PartTime{End: now}
				if p.State.Time != nil {
					st.Time.Start = p.State.Time.Start
				}
				p.State = &st
				p.Metadata = withMeta(p.Metadata, "interrupted", true)
			}
		case PartText, PartReasoning:
			if p.Time != nil && p.Time.End == 0 {
				p.Time = &PartTime{Start: p.Time.Start, End: now}
				p.Metadata = withMeta(p.Metadata, "interrupted", true)
			}
		}
	}
	m.Info.Error = &MessageError{Kind: ErrorKindAborted, Message: errDaemonStopped}
	m.Info.Time.Completed = now
	return s.endTurn(ctx, t, &m, &c)
}
