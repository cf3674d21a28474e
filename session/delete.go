package session

import (
	"context"
	"errors"
	"fmt"

	"github.com/sessiond/sessiond/store"
)

// Delete removes a session, its children recursively and all their data.
//
// It works in two steps so that a daemon killed halfway never shows half a
// session: one transaction removes the session records and their index
// entries and leaves a purge marker per session; then the messages, parts,
// events and state are removed in bulk and the marker last. A daemon that
// starts with markers left finishes the purge (ResumePurges).
func (s *Service) Delete(ctx context.Context, id string) error {
	root, err := s.Get(ctx, id)
	if err != nil {
		return err
	}
	// A running turn would write its records after the purge.
	release, ok := s.turns.try(id)
	if !ok {
		return ErrBusy
	}
	defer release()
	var doomed []Session
	err = s.db.Update(ctx, func(txn *store.Txn) error {
		doomed = doomed[:0]
		queue := []string{root.ID}
		for len(queue) > 0 {
			cur := queue[0]
			queue = queue[1:]
			var ses Session
			if err := getSession(txn, cur, &ses); err != nil {
				var nf *NotFoundError
				if errors.As(err, &nf) {
					continue
				}
				return err
			}
			if cur != root.ID && s.turns.busy(cur) {
				return ErrBusy // a child's turn would write after the purge
			}
			doomed = append(doomed, ses)
			err := txn.Scan(store.PrefixSessionsByParent(cur), nil, false, true, func(key, _ []byte) (bool, error) {
				queue = append(queue, store.LastComponent(key))
				return true, txn.Delete(key)
			})
			if err != nil {
				return err
			}
		}
		if len(doomed) == 0 {
			return &NotFoundError{Kind: "session", ID: root.ID}
		}
		for _, ses := range doomed {
			for _, k := range [][]byte{
				store.KeySession(ses.ID),
				store.KeySessionByProject(ses.ProjectID, ses.ID),
			} {
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
			if err := txn.SetRaw(store.KeyPurge(ses.ID), nil); err != nil {
				return err
			}
		}
		if root.ParentID != "" {
			return txn.Delete(store.KeySessionByParent(root.ParentID, root.ID))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete session %s: %w", id, err)
	}
	for i := len(doomed) - 1; i >= 0; i-- {
		ses := doomed[i]
		s.publish(ses.ProjectID, ses.ID, "session.deleted", map[string]any{"info": ses})
	}
	for _, ses := range doomed {
		if err := s.purge(ctx, ses.ID); err != nil {
			// The marker stays; the next start finishes the job.
			s.log.Warn("purge of deleted session data failed; will retry at next start", "session", ses.ID, "err", err)
		}
	}
	return nil
}

// ResumePurges finishes deletes that a previous daemon left halfway.
func (s *Service) ResumePurges(ctx context.Context) error {
	var ids []string
	err := s.db.View(ctx, func(txn *store.Txn) error {
		return txn.Scan(store.PrefixPurge(), nil, false, true, func(key, _ []byte) (bool, error) {
			ids = append(ids, store.LastComponent(key))
			return true, nil
		})
	})
	if err != nil {
		return fmt.Errorf("find pending purges: %w", err)
	}
	for _, id := range ids {
		if err := s.purge(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

// purge removes every record keyed under a deleted session, then its
// marker.
func (s *Service) purge(ctx context.Context, id string) error {
	prefixes := [][]byte{
		store.PrefixMessages(id),
		store.PrefixSessionParts(id),
		store.PrefixEvents(id),
		store.PrefixSessionState(id),
		store.PrefixExpected(id),
		store.PrefixOutputs(id),
		store.PrefixSessionsByParent(id),
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for _, prefix := range prefixes {
		err := s.db.View(ctx, func(txn *store.Txn) error {
			return txn.Scan(prefix, nil, false, true, func(key, _ []byte) (bool, error) {
				return true, wb.Delete(key)
			})
		})
		if err != nil {
			return fmt.Errorf("purge session %s: %w", id, err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("purge session %s: %w", id, err)
	}
	// A parked journal or an unfinished turn's marker of a deleted session
	// has nothing left to finish.
	return s.db.Update(ctx, func(txn *store.Txn) error {
		for _, k := range [][]byte{store.KeyJournal(id), store.KeyTurn(id), store.KeyPurge(id)} {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}
