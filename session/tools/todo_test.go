package tools

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestTodos(t *testing.T) {
	t.Parallel()
	store := &memTodos{}
	env := newEnv(t, nil)
	env.Todos = store

	res := mustCall(t, env, "todoread", obj{})
	if res.Output != "The todo list is empty." || res.Title != "Todos (0 open)" {
		t.Errorf("res = %+v", res)
	}
	res = mustCall(t, env, "todoread", "")
	if res.Output != "The todo list is empty." {
		t.Errorf("Output = %q", res.Output)
	}

	res = mustCall(t, env, "todowrite", obj{"todos": []obj{
		{"id": "a", "content": "Read the code", "status": "completed", "priority": "high"},
		{"content": " Write tests ", "status": "in_progress"},
		{"id": "c", "content": "Ship", "status": "pending", "priority": "low"},
		{"id": "d", "content": "Gold-plate", "status": "cancelled", "priority": "low"},
	}})
	want := []Todo{
		{ID: "a", Content: "Read the code", Status: "completed", Priority: "high"},
		{ID: "2", Content: "Write tests", Status: "in_progress", Priority: "medium"},
		{ID: "c", Content: "Ship", Status: "pending", Priority: "low"},
		{ID: "d", Content: "Gold-plate", Status: "cancelled", Priority: "low"},
	}
	if !reflect.DeepEqual(store.todos, want) {
		t.Errorf("stored %+v", store.todos)
	}
	wantOut := "[x] (high) #a Read the code\n[~] (medium) #2 Write tests\n[ ] (low) #c Ship\n[-] (low) #d Gold-plate\n\n2 of 4 open ([ ] pending, [~] in progress, [x] completed, [-] cancelled)."
	if res.Output != wantOut || res.Title != "Todos (2 open)" || res.Metadata["open"] != 2 {
		t.Errorf("res = %+v", res)
	}
	if res.Changed != nil {
		t.Errorf("Changed = %v", res.Changed)
	}
	read := mustCall(t, env, "todoread", nil)
	if read.Output != wantOut || !reflect.DeepEqual(read.Metadata["todos"], want) {
		t.Errorf("todoread = %+v", read)
	}

	// An empty list clears it.
	mustCall(t, env, "todowrite", obj{"todos": []obj{}})
	if len(store.todos) != 0 {
		t.Errorf("stored %+v", store.todos)
	}
}

func TestTodoErrors(t *testing.T) {
	t.Parallel()
	env := newEnv(t, nil)
	env.Todos = &memTodos{todos: []Todo{{ID: "1", Content: "keep", Status: "pending", Priority: "low"}}}
	tests := []struct {
		todos []obj
		want  string
	}{
		{[]obj{{"content": "x", "status": "done"}}, `todos[0] has status "done"; use one of pending, in_progress, completed, cancelled`},
		{[]obj{{"content": "x", "status": "pending"}, {"content": "y", "status": "pending", "priority": "urgent"}}, `todos[1] has priority "urgent"; use one of high, medium, low`},
		{[]obj{{"content": " ", "status": "pending"}}, "todos[0] has no content"},
		{[]obj{{"content": "x"}}, `todos[0] has status ""`},
		{[]obj{{"id": "1", "content": "x", "status": "pending"}, {"id": "1", "content": "y", "status": "pending"}}, `todos[0] and todos[1] have the same id "1"`},
		{[]obj{{"content": "x", "status": "pending", "activeForm": "Doing x"}}, "todos[0] has an unknown field activeForm"},
	}
	for _, tt := range tests {
		_, err := call(t, env, "todowrite", obj{"todos": tt.todos})
		wantErr(t, err, tt.want)
	}
	if got := env.Todos.(*memTodos).todos; len(got) != 1 || got[0].Content != "keep" {
		t.Errorf("a failed todowrite changed the list: %+v", got)
	}

	none := newEnv(t, nil)
	_, err := call(t, none, "todowrite", obj{"todos": []obj{}})
	wantErr(t, err, "todo list is not available in this session")
	_, err = call(t, none, "todoread", obj{})
	wantErr(t, err, "todo list is not available in this session")

	broken := newEnv(t, nil)
	broken.Todos = &memTodos{err: errBoom}
	_, err = call(t, broken, "todowrite", obj{"todos": []obj{}})
	wantErr(t, err, "could not be saved: boom")
	_, err = call(t, broken, "todoread", obj{})
	wantErr(t, err, "could not be read: boom")
}

func TestTask(t *testing.T) {
	t.Parallel()
	runner := &fakeTask{answer: "The answer is 42."}
	env := newEnv(t, nil)
	env.Task = runner

	res := mustCall(t, env, "task", obj{"description": "Find the answer", "prompt": "What is it?"})
	if res.Output != "The answer is 42." || res.Title != "Find the answer" || res.Metadata["agent"] != "build" {
		t.Errorf("res = %+v", res)
	}
	mustCall(t, env, "task", obj{"description": "Look", "prompt": "Look around", "agent": "plan"})
	want := []TaskRequest{
		{Description: "Find the answer", Prompt: "What is it?", Agent: "build"},
		{Description: "Look", Prompt: "Look around", Agent: "plan"},
	}
	if !reflect.DeepEqual(runner.reqs, want) {
		t.Errorf("requests = %+v", runner.reqs)
	}

	_, err := call(t, env, "task", obj{"description": "x", "prompt": "y", "agent": "general"})
	wantErr(t, err, `unknown agent "general"; use one of build, plan`)
	_, err = call(t, env, "task", obj{"description": " ", "prompt": "y"})
	wantErr(t, err, "description is empty")
	_, err = call(t, env, "task", obj{"description": "x", "prompt": ""})
	wantErr(t, err, "prompt is empty")
	if len(runner.reqs) != 2 {
		t.Errorf("bad calls reached the runner: %+v", runner.reqs)
	}

	empty := newEnv(t, nil)
	empty.Task = &fakeTask{}
	if res := mustCall(t, empty, "task", obj{"description": "x", "prompt": "y"}); !strings.Contains(res.Output, "without an answer") {
		t.Errorf("Output = %q", res.Output)
	}

	failing := newEnv(t, nil)
	failing.Task = &fakeTask{err: errBoom}
	_, err = call(t, failing, "task", obj{"description": "Break", "prompt": "y"})
	wantErr(t, err, `task "Break" failed: boom`)

	none := newEnv(t, nil)
	_, err = call(t, none, "task", obj{"description": "x", "prompt": "y"})
	wantErr(t, err, "subtasks are not available in this session")

	blocking := newEnv(t, nil)
	blocking.Task = &fakeTask{block: true}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err = callCtx(t, ctx, blocking, "task", obj{"description": "x", "prompt": "y"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v", err)
	}
}
