package session

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/sessiond/sessiond/store"
)

// errReverted stops an append on a reverted session until its hidden
// messages have moved to a fork.
var errReverted = errors.New("session is reverted")

// AppendEventParams are the params of session/appendEvent.
type AppendEventParams struct {
	SessionID string `json:"sessionID"`
	Event     Event  `json:"event"`
}

// AppendEvent adds an event to a session's log. Content becomes a message
// (author "user" → a user message, "system" → system, anyone else →
// assistant), and a state delta is applied, all in the same transaction as
// the event itself.
func (s *Service) AppendEvent(ctx context.Context, p AppendEventParams) (Event, error) {
	if p.SessionID == "" {
		return Event{}, paramErr("sessionID", "sessionID is required")
	}
	ev := p.Event
	if strings.TrimSpace(ev.Author) == "" {
		return Event{}, paramErr("event.author", "event.author is required: who wrote the event, e.g. \"user\" or an agent name")
	}
	if err := checkBranch(ev.Branch); err != nil {
		return Event{}, err
	}
	for i := range ev.Content {
		if err := checkPart(fmt.Sprintf("event.content[%d]", i), &ev.Content[i]); err != nil {
			return Event{}, err
		}
	}
	var delta map[string]json.RawMessage
	if ev.Actions != nil {
		actions := *ev.Actions // the caller's copy stays as it was
		ev.Actions = &actions
		var err error
		if delta, err = durableDelta("event.actions.stateDelta", ev.Actions.StateDelta); err != nil {
			return Event{}, err
		}
		// temp: keys live for one turn only; they are never stored.
		ev.Actions.StateDelta = delta
	}

	now := s.nowMs()
	ev.ID = s.db.NewID(store.KindEvent)
	ev.SessionID = p.SessionID
	ev.Time = now
	ev.MessageID = ""
	var msg *MessageWithParts
	if len(ev.Content) > 0 {
		m := MessageWithParts{Info: Message{
			ID:        s.db.NewID(store.KindMessage),
			SessionID: p.SessionID,
			Role:      roleOf(ev.Author),
			Time:      MessageTime{Created: now, Completed: now},
			Agent:     cmp.Or(ev.AgentID, ev.Author),
			EventID:   ev.ID,
		}}
		for _, c := range ev.Content {
			// Snapshots are the daemon's own record of the files; a
			// client cannot name one (a revert would trust it).
			c.Snapshot = ""
			c.ID = s.db.NewID(store.KindPart)
			c.SessionID, c.MessageID = p.SessionID, m.Info.ID
			m.Parts = append(m.Parts, c)
		}
		ev.MessageID = m.Info.ID
		// The log keeps the content with the IDs of the recorded parts.
		ev.Content = m.Parts
		msg = &m
	}

	var ses Session
	update := func(txn *store.Txn) error {
		ses = Session{}
		if err := getSession(txn, p.SessionID, &ses); err != nil {
			return err
		}
		if ses.Lifecycle == LifecycleStopped || ses.Lifecycle == LifecycleArchived {
			return &ClosedError{ID: ses.ID, Lifecycle: ses.Lifecycle}
		}
		if ses.Revert != nil && msg != nil {
			return errReverted
		}
		if err := txn.Set(store.KeyEvent(ses.ID, ev.ID), &ev); err != nil {
			return err
		}
		if msg != nil {
			if err := txn.Set(store.KeyMessage(ses.ID, msg.Info.ID), &msg.Info); err != nil {
				return err
			}
			for i := range msg.Parts {
				if err := txn.Set(store.KeyPart(ses.ID, msg.Info.ID, msg.Parts[i].ID), &msg.Parts[i]); err != nil {
					return err
				}
			}
			ses.MessageCount++
		}
		if err := applyDelta(txn, &ses, delta); err != nil {
			return err
		}
		ses.Version++
		ses.Time.Updated = max(now, ses.Time.Updated)
		return txn.Set(store.KeySession(ses.ID), &ses)
	}
	err := s.db.Update(ctx, update)
	if errors.Is(err, errReverted) {
		// A new message on a reverted session would be hidden at once:
		// like a new turn, it first moves the hidden messages to a fork.
		cur, gerr := s.Get(ctx, p.SessionID)
		if gerr != nil {
			return Event{}, gerr
		}
		if cur.Revert != nil {
			if _, err := s.moveRevertedToFork(ctx, cur); err != nil {
				return Event{}, err
			}
		}
		err = s.db.Update(ctx, update)
	}
	if err != nil {
		return Event{}, err
	}
	if msg != nil {
		s.publish(ses.ProjectID, ses.ID, "message.updated", map[string]any{"info": msg.Info})
		for _, part := range msg.Parts {
			s.publish(ses.ProjectID, ses.ID, "part.updated", map[string]any{"part": part})
		}
	}
	s.publish(ses.ProjectID, ses.ID, "session.updated", map[string]any{"info": ses})
	return ev, nil
}

func roleOf(author string) string {
	switch author {
	case RoleUser:
		return RoleUser
	case RoleSystem:
		return RoleSystem
	}
	return RoleAssistant
}

// checkBranch accepts "" or dot-separated non-empty names, as in "a.b.c".
func checkBranch(b string) error {
	if b == "" {
		return nil
	}
	for _, seg := range strings.Split(b, ".") {
		if seg == "" {
			return paramErr("event.branch", "branch %q has an empty segment: use dot-separated agent names such as \"root.planner\"", b)
		}
	}
	return nil
}

var partTypes = map[string]bool{
	PartText: true, PartReasoning: true, PartFile: true, PartTool: true,
	PartStepStart: true, PartStepFinish: true, PartPatch: true,
	PartSubtask: true, PartRetry: true, PartCompaction: true,
}

func checkPart(field string, p *Part) error {
	if !partTypes[p.Type] {
		return paramErr(field+".type", "unknown part type %q: use one of text, reasoning, file, tool, step-start, step-finish, patch, subtask, retry, compaction", p.Type)
	}
	switch p.Type {
	case PartFile:
		if p.Path == "" && p.URL == "" {
			return paramErr(field+".path", "a file part needs a path or a url")
		}
	case PartTool:
		if p.Tool == "" {
			return paramErr(field+".tool", "a tool part needs the tool's name")
		}
	}
	return nil
}

// EventsParams are the params of session/events.
type EventsParams struct {
	SessionID string `json:"sessionID"`
	Author    string `json:"author,omitempty"`
	AgentID   string `json:"agentID,omitempty"`
	// Branch keeps the events an agent on that branch sees: those on the
	// branch itself, on its ancestors, and on no branch.
	Branch string `json:"branch,omitempty"`
	// Since and Until bound the event time (epoch ms, inclusive).
	Since  int64 `json:"since,omitempty"`
	Until  int64 `json:"until,omitempty"`
	Limit  int   `json:"limit,omitempty"`
	Offset int   `json:"offset,omitempty"`
}

// Events returns a session's log, oldest first, filtered.
func (s *Service) Events(ctx context.Context, p EventsParams) ([]Event, error) {
	if p.Limit < 0 {
		return nil, paramErr("limit", "limit must not be negative")
	}
	if p.Offset < 0 {
		return nil, paramErr("offset", "offset must not be negative")
	}
	if p.Since != 0 && p.Until != 0 && p.Until < p.Since {
		return nil, paramErr("until", "until (%d) is before since (%d)", p.Until, p.Since)
	}
	if _, err := s.Get(ctx, p.SessionID); err != nil {
		return nil, err
	}
	out := []Event{}
	skip := p.Offset
	err := s.db.View(ctx, func(txn *store.Txn) error {
		return txn.Scan(store.PrefixEvents(p.SessionID), nil, false, false, func(_, val []byte) (bool, error) {
			var ev Event
			if err := json.Unmarshal(val, &ev); err != nil {
				return false, fmt.Errorf("decode event: %w", err)
			}
			if (p.Until != 0 && ev.Time > p.Until) ||
				(p.Author != "" && ev.Author != p.Author) ||
				(p.AgentID != "" && ev.AgentID != p.AgentID) ||
				(p.Since != 0 && ev.Time < p.Since) ||
				(p.Branch != "" && !branchVisible(ev.Branch, p.Branch)) {
				return true, nil
			}
			if skip > 0 {
				skip--
				return true, nil
			}
			out = append(out, ev)
			return p.Limit == 0 || len(out) < p.Limit, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read events of %s: %w", p.SessionID, err)
	}
	return out, nil
}

// branchVisible reports whether an event on branch evb is visible to an
// agent on branch b: evb is b, an ancestor of b, or no branch.
func branchVisible(evb, b string) bool {
	return evb == "" || evb == b || strings.HasPrefix(b, evb+".")
}

// MessagesParams are the params of session/messages.
type MessagesParams struct {
	SessionID string `json:"sessionID"`
	// Limit caps the number of messages; 0 means all.
	Limit  int `json:"limit,omitempty"`
	Offset int `json:"offset,omitempty"`
	// Cursor is a message ID: only messages after it are returned.
	Cursor          string `json:"cursor,omitempty"`
	IncludeReverted bool   `json:"includeReverted,omitempty"`
}

// Messages returns a session's messages with their parts, oldest first.
func (s *Service) Messages(ctx context.Context, p MessagesParams) ([]MessageWithParts, error) {
	if p.Limit < 0 {
		return nil, paramErr("limit", "limit must not be negative")
	}
	if p.Offset < 0 {
		return nil, paramErr("offset", "offset must not be negative")
	}
	if p.Cursor != "" && !store.ValidID(store.KindMessage, p.Cursor) {
		return nil, paramErr("cursor", "cursor %q is not a message ID", p.Cursor)
	}
	ses, err := s.Get(ctx, p.SessionID)
	if err != nil {
		return nil, err
	}
	hideFrom := "" // a revert hides its message and everything after it
	if ses.Revert != nil && !p.IncludeReverted {
		hideFrom = ses.Revert.MessageID
	}
	prefix := store.PrefixMessages(p.SessionID)
	var start []byte
	if p.Cursor != "" {
		start = append(append([]byte{}, prefix...), p.Cursor...)
		start = append(start, 0)
	}
	out := []MessageWithParts{}
	skip := p.Offset
	err = s.db.View(ctx, func(txn *store.Txn) error {
		return txn.Scan(prefix, start, false, false, func(key, val []byte) (bool, error) {
			if hideFrom != "" && store.LastComponent(key) >= hideFrom {
				return false, nil
			}
			if skip > 0 {
				skip--
				return true, nil
			}
			var m MessageWithParts
			if err := json.Unmarshal(val, &m.Info); err != nil {
				return false, fmt.Errorf("decode message: %w", err)
			}
			parts, err := readParts(txn, p.SessionID, m.Info.ID)
			if err != nil {
				return false, err
			}
			m.Parts = parts
			out = append(out, m)
			return p.Limit == 0 || len(out) < p.Limit, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read messages of %s: %w", p.SessionID, err)
	}
	return out, nil
}

// MessageParams are the params of session/message.
type MessageParams struct {
	SessionID string `json:"sessionID"`
	MessageID string `json:"messageID"`
}

// Message returns one message with its parts.
func (s *Service) Message(ctx context.Context, p MessageParams) (MessageWithParts, error) {
	if p.MessageID == "" {
		return MessageWithParts{}, paramErr("messageID", "messageID is required")
	}
	if _, err := s.Get(ctx, p.SessionID); err != nil {
		return MessageWithParts{}, err
	}
	var m MessageWithParts
	err := s.db.View(ctx, func(txn *store.Txn) error {
		err := txn.Get(store.KeyMessage(p.SessionID, p.MessageID), &m.Info)
		if errors.Is(err, store.ErrNotFound) {
			return &NotFoundError{Kind: "message", ID: p.MessageID}
		}
		if err != nil {
			return err
		}
		m.Parts, err = readParts(txn, p.SessionID, p.MessageID)
		return err
	})
	return m, err
}

func readParts(txn *store.Txn, sessionID, messageID string) ([]Part, error) {
	parts := []Part{}
	err := txn.Scan(store.PrefixParts(sessionID, messageID), nil, false, false, func(_, val []byte) (bool, error) {
		var part Part
		if err := json.Unmarshal(val, &part); err != nil {
			return false, fmt.Errorf("decode part: %w", err)
		}
		parts = append(parts, part)
		return true, nil
	})
	return parts, err
}
