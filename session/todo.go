package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/sessiond/sessiond/session/tools"
	"github.com/sessiond/sessiond/store"
)

// TodoStateKey is the session state key that holds the session's todo
// list (session/state/get shows it as "todos").
const TodoStateKey = "todos"

// TodoParams are the params of session/todo.
type TodoParams struct {
	SessionID string `json:"sessionID"`
}

// Todo returns the session's todo list, as the agent's todowrite tool
// last wrote it.
func (s *Service) Todo(ctx context.Context, p TodoParams) ([]tools.Todo, error) {
	if _, err := s.Get(ctx, p.SessionID); err != nil {
		return nil, err
	}
	return s.readTodos(ctx, p.SessionID)
}

func (s *Service) readTodos(ctx context.Context, sessionID string) ([]tools.Todo, error) {
	todos := []tools.Todo{}
	err := s.db.View(ctx, func(txn *store.Txn) error {
		raw, err := txn.GetRaw(store.KeySessionState(sessionID, TodoStateKey))
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := json.Unmarshal(raw, &todos); err != nil {
			return fmt.Errorf("the session state key %q does not hold a todo list (%v); write a list with todowrite", TodoStateKey, err)
		}
		return nil
	})
	if todos == nil {
		todos = []tools.Todo{}
	}
	return todos, err
}

// todoStore is a session's todo list for the agent's tools.
type todoStore struct {
	s   *Service
	ses Session
}

func (t *todoStore) Get(ctx context.Context) ([]tools.Todo, error) {
	return t.s.readTodos(ctx, t.ses.ID)
}

func (t *todoStore) Set(ctx context.Context, todos []tools.Todo) error {
	if todos == nil {
		todos = []tools.Todo{}
	}
	err := t.s.db.Update(context.WithoutCancel(ctx), func(txn *store.Txn) error {
		var ses Session
		if err := getSession(txn, t.ses.ID, &ses); err != nil {
			return err
		}
		return txn.Set(store.KeySessionState(t.ses.ID, TodoStateKey), todos)
	})
	if err != nil {
		return err
	}
	t.s.publish(t.ses.ProjectID, t.ses.ID, "todo.updated", map[string]any{"sessionID": t.ses.ID, "todos": todos})
	return nil
}
