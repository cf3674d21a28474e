package tools

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// newEnv makes a workspace in a temporary directory holding files (path →
// content; a path ending in "/" is an empty directory) and returns an Env
// on it.
func newEnv(t *testing.T, files map[string]string) *Env {
	t.Helper()
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, root, files)
	return &Env{Root: root, Dir: root}
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func readString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// call runs the named tool with input marshalled to JSON (a string or
// json.RawMessage is sent as it is).
func call(t *testing.T, env *Env, name string, input any) (Result, error) {
	t.Helper()
	return callCtx(t, t.Context(), env, name, input)
}

func callCtx(t *testing.T, ctx context.Context, env *Env, name string, input any) (Result, error) {
	t.Helper()
	tool, ok := Lookup(name)
	if !ok {
		t.Fatalf("no tool %q", name)
	}
	var raw json.RawMessage
	switch v := input.(type) {
	case string:
		raw = json.RawMessage(v)
	case json.RawMessage:
		raw = v
	default:
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		raw = b
	}
	res, err := tool.Run(ctx, env, raw)
	if err == nil {
		// Metadata goes to clients as JSON.
		if _, merr := json.Marshal(res.Metadata); merr != nil {
			t.Errorf("%s: Metadata does not marshal: %v", name, merr)
		}
	}
	return res, err
}

// mustCall is call that fails the test on an error.
func mustCall(t *testing.T, env *Env, name string, input any) Result {
	t.Helper()
	res, err := call(t, env, name, input)
	if err != nil {
		t.Fatalf("%s %v: %v", name, input, err)
	}
	return res
}

// wantErr checks that err is not nil and holds every fragment.
func wantErr(t *testing.T, err error, fragments ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want one containing %q", fragments)
	}
	for _, f := range fragments {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error %q does not contain %q", err, f)
		}
	}
}

type obj = map[string]any

// memTodos is a TodoStore in memory.
type memTodos struct {
	mu    sync.Mutex
	todos []Todo
	err   error
}

func (m *memTodos) Get(context.Context) ([]Todo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Todo(nil), m.todos...), m.err
}

func (m *memTodos) Set(_ context.Context, todos []Todo) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	m.todos = append([]Todo(nil), todos...)
	return nil
}

// fakeTask is a TaskRunner that records its requests.
type fakeTask struct {
	mu     sync.Mutex
	reqs   []TaskRequest
	answer string
	err    error
	block  bool // wait for ctx to end
}

func (f *fakeTask) Run(ctx context.Context, req TaskRequest) (string, error) {
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	f.mu.Unlock()
	if f.block {
		<-ctx.Done()
		return "", ctx.Err()
	}
	return f.answer, f.err
}

var errBoom = errors.New("boom")
