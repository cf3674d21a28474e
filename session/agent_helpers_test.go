package session

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/session/provider"
	"github.com/sessiond/sessiond/session/provider/builtin"
	pt "github.com/sessiond/sessiond/session/provider/providertest"
	"github.com/sessiond/sessiond/store"
	"github.com/sessiond/sessiond/workspace"
	"github.com/sessiond/sessiond/workspace/snapshot"
)

// agentWait bounds every wait of the agent tests; a wait that succeeds
// returns as soon as it can.
const agentWait = 30 * time.Second

// agentFixture is a Service with the time machine (a real engine and
// real watching trackers) and model providers the test chooses.
type agentFixture struct {
	*fixture
	ws    string // the workspace, canonical
	hooks *hookRecorder
}

// newAgentFixture builds a Service over a fresh store and workspace.
// The providers come from load; opts add to the service's options.
func newAgentFixture(t *testing.T, load ProviderLoader, opts ...Option) *agentFixture {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	engine, err := snapshot.New(db, snapshot.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { engine.Close() })
	trackers := workspace.NewTrackers(engine, workspace.TrackerOptions{})
	t.Cleanup(func() { trackers.Close() })
	pub := &recorder{}
	hooks := &hookRecorder{recorder: pub}
	reg := workspace.NewRegistry(db, nil)
	all := append([]Option{
		WithTimeMachine(engine, trackers),
		WithProviders(load),
		WithRetryPolicy(provider.RetryPolicy{MaxAttempts: 3, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond}),
	}, opts...)
	svc := New(db, reg, hooks, nil, all...)
	t.Cleanup(svc.Close)
	f := &agentFixture{fixture: &fixture{t: t, ctx: ctx, db: db, reg: reg, svc: svc, pub: pub, dir: newDir(t)}, hooks: hooks}
	f.ws = f.dir
	return f
}

// configLoader loads providers from a user config file holding cfg (and
// nothing from the environment), with the built-in implementations.
func configLoader(t *testing.T, cfg map[string]any) ProviderLoader {
	t.Helper()
	dir := t.TempDir()
	if cfg != nil {
		b, err := json.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, "sessiond"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "sessiond", "config.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return func(projectDir string) (*provider.Registry, error) {
		c, err := provider.Load(provider.LoadOptions{ProjectDir: projectDir, UserConfigDir: dir, Getenv: func(string) string { return "" }})
		if err != nil {
			return nil, err
		}
		return builtin.NewRegistry(c, provider.RegistryOptions{}), nil
	}
}

// serverLoader points a provider named "fake" of the server's type at a
// providertest server, with model as the default model.
func serverLoader(t *testing.T, srv *pt.Server, typ, model string) ProviderLoader {
	t.Helper()
	return configLoader(t, map[string]any{
		"model": "fake/" + model,
		"providers": map[string]any{"fake": map[string]any{
			"type": typ, "baseURL": srv.URL, "apiKey": pt.APIKey,
		}},
	})
}

// wire is one of the two wire formats the fake servers speak.
type wire struct {
	name  string
	typ   string
	start func(testing.TB, ...pt.Response) *pt.Server
	model string
}

var wires = []wire{
	{"openai", provider.TypeOpenAI, pt.NewOpenAI, "gpt-4o-mini"},
	{"anthropic", provider.TypeAnthropic, pt.NewAnthropic, "claude-haiku-4-5"},
}

// fakeProvider hands each model call to the test, which feeds it events
// one by one: the test decides exactly when a stream moves on.
type fakeProvider struct {
	calls chan *fakeCall
}

type fakeCall struct {
	ctx    context.Context
	req    provider.Request
	events chan provider.Event
}

func (f *fakeProvider) ID() string { return "fake" }

func (f *fakeProvider) Stream(ctx context.Context, req provider.Request) (provider.Stream, error) {
	c := &fakeCall{ctx: ctx, req: req, events: make(chan provider.Event)}
	select {
	case f.calls <- c:
		return c, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *fakeCall) Recv() (provider.Event, error) {
	select {
	case ev, ok := <-c.events:
		if !ok {
			return nil, io.EOF
		}
		return ev, nil
	case <-c.ctx.Done():
		return nil, c.ctx.Err()
	}
}

func (c *fakeCall) Close() error { return nil }

// send gives the stream one event, failing if the turn stopped reading.
func (c *fakeCall) send(t *testing.T, evs ...provider.Event) {
	t.Helper()
	for _, ev := range evs {
		select {
		case c.events <- ev:
		case <-c.ctx.Done():
			t.Fatalf("the turn stopped reading before %T", ev)
		case <-time.After(agentWait):
			t.Fatalf("the turn did not read %T", ev)
		}
	}
}

// end finishes the stream with reason.
func (c *fakeCall) end(t *testing.T, reason provider.FinishReason) {
	t.Helper()
	c.send(t, provider.Usage{Input: 10, Output: 5}, provider.Finish{Reason: reason})
	close(c.events)
}

// fakeLoader serves every model of provider "fake" with f.
func fakeLoader(t *testing.T, f *fakeProvider) ProviderLoader {
	t.Helper()
	inner := configLoader(t, map[string]any{
		"model":     "fake/gpt-4o-mini",
		"providers": map[string]any{"fake": map[string]any{"type": "openai", "baseURL": "http://127.0.0.1:1/v1"}},
	})
	return func(projectDir string) (*provider.Registry, error) {
		reg, err := inner(projectDir)
		if err != nil {
			return nil, err
		}
		return provider.NewRegistry(reg.Config(), provider.RegistryOptions{Factories: map[string]provider.Factory{
			provider.TypeOpenAI: func(provider.Settings, provider.FactoryOptions) (provider.Provider, error) { return f, nil },
		}}), nil
	}
}

// next waits for the next model call.
func (f *fakeProvider) next(t *testing.T) *fakeCall {
	t.Helper()
	select {
	case c := <-f.calls:
		return c
	case <-time.After(agentWait):
		t.Fatal("no model call")
		return nil
	}
}

// asyncPrompt runs Prompt in the background.
type asyncPrompt struct {
	done chan struct{}
	m    MessageWithParts
	err  error
}

func (f *agentFixture) promptAsync(ctx context.Context, p PromptParams) *asyncPrompt {
	a := &asyncPrompt{done: make(chan struct{})}
	go func() {
		defer close(a.done)
		a.m, a.err = f.svc.Prompt(ctx, p)
	}()
	return a
}

func (a *asyncPrompt) wait(t *testing.T) (MessageWithParts, error) {
	t.Helper()
	select {
	case <-a.done:
		return a.m, a.err
	case <-time.After(agentWait):
		t.Fatal("the prompt did not return")
		return MessageWithParts{}, nil
	}
}

// prompt runs a text prompt that must succeed.
func (f *agentFixture) prompt(sessionID, text string) MessageWithParts {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(f.ctx, agentWait)
	defer cancel()
	m, err := f.svc.Prompt(ctx, PromptParams{SessionID: sessionID, Parts: []PromptPart{{Type: PartText, Text: text}}})
	if err != nil {
		f.t.Fatalf("Prompt(%q): %v", text, err)
	}
	return m
}

// waitFor polls cond until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(agentWait)
	delay := time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(delay)
		delay = min(2*delay, 20*time.Millisecond)
	}
}

func (f *agentFixture) status(id string) Status {
	f.t.Helper()
	st, err := f.svc.Status(f.ctx, id)
	if err != nil {
		f.t.Fatal(err)
	}
	return st[id]
}

func (f *agentFixture) messages(id string) []MessageWithParts {
	f.t.Helper()
	ms, err := f.svc.Messages(f.ctx, MessagesParams{SessionID: id})
	if err != nil {
		f.t.Fatal(err)
	}
	return ms
}

func (f *agentFixture) read(rel string) string {
	f.t.Helper()
	b, err := os.ReadFile(filepath.Join(f.ws, rel))
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return string(b)
}

func (f *agentFixture) write(rel, content string) {
	f.t.Helper()
	p := filepath.Join(f.ws, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

// partsOf lists a message's part types.
func partsOf(m MessageWithParts) []string {
	out := make([]string, len(m.Parts))
	for i, p := range m.Parts {
		out[i] = p.Type
		if p.Type == PartTool {
			out[i] = "tool:" + p.Tool + ":" + p.State.Status
		}
	}
	return out
}

func toolArgs(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// storedPart reads a part from the store.
func (f *agentFixture) storedPart(p Part) (Part, bool) {
	var out Part
	err := f.db.View(f.ctx, func(txn *store.Txn) error {
		return txn.Get(store.KeyPart(p.SessionID, p.MessageID, p.ID), &out)
	})
	if errors.Is(err, store.ErrNotFound) {
		return out, false
	}
	if err != nil {
		f.t.Error(err)
	}
	return out, true
}

// hookRecorder is a recorder that also shows each change to a hook as it
// is published, so a test can look at the store at that moment.
type hookRecorder struct {
	*recorder
	mu   sync.Mutex
	hook func(Change)
}

func (h *hookRecorder) Publish(c Change) {
	h.mu.Lock()
	hook := h.hook
	h.mu.Unlock()
	if hook != nil {
		hook(c)
	}
	h.recorder.Publish(c)
}

func (h *hookRecorder) setHook(fn func(Change)) {
	h.mu.Lock()
	h.hook = fn
	h.mu.Unlock()
}
