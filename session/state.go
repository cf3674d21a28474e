package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/sessiond/sessiond/store"
)

// State scopes (DESIGN §2). A key's prefix picks its scope; a key with no
// prefix, or "session:", belongs to the session.
const (
	scopeApp     = "app"
	scopeUser    = "user"
	scopeTemp    = "temp"
	scopeSession = "session"
)

// parseStateKey splits "scope:name" into its scope and name.
func parseStateKey(field, key string) (scope, name string, err error) {
	if strings.IndexByte(key, 0) >= 0 {
		return "", "", paramErr(field, "state key %q must not contain NUL characters", key)
	}
	scope, name, found := strings.Cut(key, ":")
	if !found {
		scope, name = scopeSession, key
	}
	switch scope {
	case scopeApp, scopeUser, scopeTemp, scopeSession:
	default:
		return "", "", paramErr(field, "state key %q has unknown scope %q: use app:, user:, temp:, session: or no prefix", key, scope)
	}
	if name == "" {
		return "", "", paramErr(field, "state key %q has an empty name", key)
	}
	return scope, name, nil
}

// durableDelta checks every key of delta and returns it without its temp:
// keys, which live for one turn and are never stored.
func durableDelta(field string, delta map[string]json.RawMessage) (map[string]json.RawMessage, error) {
	if len(delta) == 0 {
		return nil, nil
	}
	out := make(map[string]json.RawMessage, len(delta))
	for k, v := range delta {
		scope, _, err := parseStateKey(field+"."+k, k)
		if err != nil {
			return nil, err
		}
		if scope != scopeTemp {
			out[k] = v
		}
	}
	return out, nil
}

// applyDelta writes a checked delta; a JSON null removes the key.
func applyDelta(txn *store.Txn, ses *Session, delta map[string]json.RawMessage) error {
	// Sorted, so a delta applies the same way every time.
	keys := make([]string, 0, len(delta))
	for k := range delta {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		scope, name, _ := parseStateKey("", k)
		var key []byte
		switch scope {
		case scopeApp:
			key = store.KeyAppState(name)
		case scopeUser:
			key = store.KeyUserState(ses.UserID, name)
		default:
			key = store.KeySessionState(ses.ID, name)
		}
		v := delta[k]
		if len(v) == 0 || string(v) == "null" {
			if err := txn.Delete(key); err != nil {
				return err
			}
			continue
		}
		if err := txn.SetRaw(key, v); err != nil {
			return err
		}
	}
	return nil
}

// StateGetParams are the params of session/state/get.
type StateGetParams struct {
	SessionID string `json:"sessionID"`
	Key       string `json:"key,omitempty"`
}

// StateUpdateParams are the params of session/state/update.
type StateUpdateParams struct {
	SessionID string                     `json:"sessionID"`
	Delta     map[string]json.RawMessage `json:"delta"`
}

// StateResult carries a session's view of state: "app:" and "user:" keys
// with their prefix, session keys without one.
type StateResult struct {
	State map[string]json.RawMessage `json:"state"`
}

// StateGet returns the state a session sees, or one key of it.
func (s *Service) StateGet(ctx context.Context, p StateGetParams) (StateResult, error) {
	ses, err := s.Get(ctx, p.SessionID)
	if err != nil {
		return StateResult{}, err
	}
	res := StateResult{State: map[string]json.RawMessage{}}
	err = s.db.View(ctx, func(txn *store.Txn) error { return readState(txn, &ses, p.Key, res.State) })
	if err != nil {
		return StateResult{}, fmt.Errorf("read state of %s: %w", ses.ID, err)
	}
	return res, nil
}

func readState(txn *store.Txn, ses *Session, only string, into map[string]json.RawMessage) error {
	if only != "" {
		scope, name, err := parseStateKey("key", only)
		if err != nil {
			return err
		}
		var key []byte
		switch scope {
		case scopeTemp:
			return nil
		case scopeApp:
			key = store.KeyAppState(name)
		case scopeUser:
			key = store.KeyUserState(ses.UserID, name)
		default:
			key, only = store.KeySessionState(ses.ID, name), name
		}
		v, err := txn.GetRaw(key)
		if err == nil {
			into[only] = v
			return nil
		}
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	}
	scan := func(prefix []byte, label string) error {
		return txn.Scan(prefix, nil, false, false, func(key, val []byte) (bool, error) {
			into[label+store.TrimNUL(key, prefix)] = val
			return true, nil
		})
	}
	if err := scan(store.PrefixAppState(), "app:"); err != nil {
		return err
	}
	if err := scan(store.PrefixUserState(ses.UserID), "user:"); err != nil {
		return err
	}
	return scan(store.PrefixSessionState(ses.ID), "")
}

// StateUpdate applies a delta (null removes a key) and returns the new
// state. temp: keys are accepted but never stored.
func (s *Service) StateUpdate(ctx context.Context, p StateUpdateParams) (StateResult, error) {
	if p.SessionID == "" {
		return StateResult{}, paramErr("sessionID", "sessionID is required")
	}
	if p.Delta == nil {
		return StateResult{}, paramErr("delta", "delta is required: an object of key → value (null removes the key)")
	}
	delta, err := durableDelta("delta", p.Delta)
	if err != nil {
		return StateResult{}, err
	}
	res := StateResult{State: map[string]json.RawMessage{}}
	err = s.db.Update(ctx, func(txn *store.Txn) error {
		clear(res.State)
		var ses Session
		if err := getSession(txn, p.SessionID, &ses); err != nil {
			return err
		}
		if err := applyDelta(txn, &ses, delta); err != nil {
			return err
		}
		return readState(txn, &ses, "", res.State)
	})
	if err != nil {
		return StateResult{}, err
	}
	return res, nil
}
