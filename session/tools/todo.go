package tools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

var (
	todoStatuses   = []string{TodoPending, TodoInProgress, TodoCompleted, TodoCancelled}
	todoPriorities = []string{PriorityHigh, PriorityMedium, PriorityLow}
)

// errNoTodos answers todowrite and todoread when Env.Todos is nil.
var errNoTodos = errors.New("the todo list is not available in this session; keep track of the steps in your answer instead")

type todoWriteTool struct{}

func (todoWriteTool) Name() string   { return "todowrite" }
func (todoWriteTool) ReadOnly() bool { return false }

func (todoWriteTool) Description() string {
	return `Replaces the session's todo list, which the user sees, with the list given. Use it to plan and track work of three steps or more: write the steps down when you start, mark one in_progress when you begin it and completed as soon as it is done, add steps you discover, and cancel those that no longer apply. Skip it for a single simple step.

- todos is the whole new list, in order; items left out are removed. Send the full list every time.
- Each item has content (what to do, one imperative sentence), status (pending, in_progress, completed or cancelled), priority (high, medium or low; default medium) and id (a short unique id; default: its position in the list). Keep ids stable across calls.
- Have at most one item in_progress at a time.`
}

func (todoWriteTool) Schema() json.RawMessage {
	return json.RawMessage(`{
  "type": "object",
  "properties": {
    "todos": {
      "type": "array",
      "description": "The whole new todo list, in order.",
      "items": {
        "type": "object",
        "properties": {
          "id": {"type": "string", "description": "A short unique id. Default: the item's 1-based position."},
          "content": {"type": "string", "description": "What to do."},
          "status": {"type": "string", "enum": ["pending", "in_progress", "completed", "cancelled"]},
          "priority": {"type": "string", "enum": ["high", "medium", "low"], "description": "Default medium."}
        },
        "required": ["content", "status"],
        "additionalProperties": false
      }
    }
  },
  "required": ["todos"],
  "additionalProperties": false
}`)
}

type todoWriteInput struct {
	Todos []Todo `json:"todos"`
}

func (t todoWriteTool) Run(ctx context.Context, env *Env, input json.RawMessage) (Result, error) {
	var in todoWriteInput
	if err := decode(t, input, &in); err != nil {
		return Result{}, err
	}
	if err := checkTodoFields(input); err != nil {
		return Result{}, err
	}
	todos, err := normalizeTodos(in.Todos)
	if err != nil {
		return Result{}, err
	}
	if env.Todos == nil {
		return Result{}, fmt.Errorf("todowrite: %w", errNoTodos)
	}
	if err := env.Todos.Set(ctx, todos); err != nil {
		return Result{}, fmt.Errorf("todowrite: the todo list could not be saved: %w", err)
	}
	return todoResult(todos), nil
}

// checkTodoFields refuses unknown fields in the items, which decode does
// not look into.
func checkTodoFields(input json.RawMessage) error {
	var raw struct {
		Todos []map[string]json.RawMessage `json:"todos"`
	}
	if err := json.Unmarshal(input, &raw); err != nil {
		return nil // decode has already accepted it; nothing more to say
	}
	for i, item := range raw.Todos {
		for k := range item {
			switch k {
			case "id", "content", "status", "priority":
			default:
				return fmt.Errorf("todowrite: todos[%d] has an unknown field %s; an item takes id, content, status and priority", i, k)
			}
		}
	}
	return nil
}

// normalizeTodos checks a list and fills in defaults: priority medium, id
// the 1-based position.
func normalizeTodos(in []Todo) ([]Todo, error) {
	out := make([]Todo, len(in))
	seen := map[string]int{}
	for i, td := range in {
		td.ID = strings.TrimSpace(td.ID)
		td.Content = strings.TrimSpace(td.Content)
		td.Status = strings.TrimSpace(td.Status)
		td.Priority = strings.TrimSpace(td.Priority)
		if td.ID == "" {
			td.ID = strconv.Itoa(i + 1)
		}
		if td.Priority == "" {
			td.Priority = PriorityMedium
		}
		switch {
		case td.Content == "":
			return nil, fmt.Errorf("todowrite: todos[%d] has no content; say what is to be done", i)
		case !slices.Contains(todoStatuses, td.Status):
			return nil, fmt.Errorf("todowrite: todos[%d] has status %q; use one of %s", i, td.Status, strings.Join(todoStatuses, ", "))
		case !slices.Contains(todoPriorities, td.Priority):
			return nil, fmt.Errorf("todowrite: todos[%d] has priority %q; use one of %s", i, td.Priority, strings.Join(todoPriorities, ", "))
		}
		if j, dup := seen[td.ID]; dup {
			return nil, fmt.Errorf("todowrite: todos[%d] and todos[%d] have the same id %q; ids must be unique", j, i, td.ID)
		}
		seen[td.ID] = i
		out[i] = td
	}
	return out, nil
}

type todoReadTool struct{}

func (todoReadTool) Name() string   { return "todoread" }
func (todoReadTool) ReadOnly() bool { return true }

func (todoReadTool) Description() string {
	return `Returns the session's todo list, as todowrite last wrote it: each item's status, priority, id and content. It takes no input.`
}

func (todoReadTool) Schema() json.RawMessage {
	return json.RawMessage(`{"type": "object", "properties": {}, "required": [], "additionalProperties": false}`)
}

func (t todoReadTool) Run(ctx context.Context, env *Env, input json.RawMessage) (Result, error) {
	var in struct{}
	if err := decode(t, input, &in); err != nil {
		return Result{}, err
	}
	if env.Todos == nil {
		return Result{}, fmt.Errorf("todoread: %w", errNoTodos)
	}
	todos, err := env.Todos.Get(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("todoread: the todo list could not be read: %w", err)
	}
	return todoResult(todos), nil
}

// todoResult renders a list for the model: one line an item,
// "[x] (high) #3 content", and a count of what is left.
func todoResult(todos []Todo) Result {
	counts := map[string]int{}
	var b strings.Builder
	for _, td := range todos {
		counts[td.Status]++
		mark := "[ ]"
		switch td.Status {
		case TodoInProgress:
			mark = "[~]"
		case TodoCompleted:
			mark = "[x]"
		case TodoCancelled:
			mark = "[-]"
		}
		fmt.Fprintf(&b, "%s (%s) #%s %s\n", mark, td.Priority, td.ID, td.Content)
	}
	open := counts[TodoPending] + counts[TodoInProgress]
	if len(todos) == 0 {
		b.WriteString("The todo list is empty.")
	} else {
		fmt.Fprintf(&b, "\n%d of %d open ([ ] pending, [~] in progress, [x] completed, [-] cancelled).", open, len(todos))
	}
	if todos == nil {
		todos = []Todo{}
	}
	return Result{
		Title:  fmt.Sprintf("Todos (%d open)", open),
		Output: b.String(),
		Metadata: map[string]any{
			"todos": todos,
			"open":  open,
		},
	}
}
