package session

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sessiond/sessiond/session/provider"
	"github.com/sessiond/sessiond/session/provider/builtin"
	"github.com/sessiond/sessiond/session/tools"
	"github.com/sessiond/sessiond/store"
)

// PromptPart is one piece of a prompt: text, or a file of the workspace
// whose content goes to the model with the text.
type PromptPart struct {
	Type string `json:"type"` // "text" or "file"
	Text string `json:"text,omitempty"`
	// Path is relative to the session's directory, or absolute inside the
	// workspace.
	Path string `json:"path,omitempty"`
}

// PromptParams are the params of session/prompt and session/promptAsync.
type PromptParams struct {
	SessionID string       `json:"sessionID"`
	Parts     []PromptPart `json:"parts"`
	// Agent is "build" (every tool) or "plan" (read-only tools); empty
	// means the session's agent.
	Agent string `json:"agent,omitempty"`
	// Model overrides the session's model, which overrides the configured
	// default.
	Model *ModelRef `json:"model,omitempty"`
	// Variant is the reasoning effort: low, medium or high.
	Variant string `json:"variant,omitempty"`
	// Asker answers the turn's permission questions: the client that sent
	// the prompt. Nil means nobody can answer, and a rule that says "ask"
	// rejects the call.
	Asker PermissionAsker `json:"-"`
}

// PromptAsyncResult is the result of session/promptAsync.
type PromptAsyncResult struct {
	// MessageID is the ID the prompt's user message has once its turn
	// starts; the assistant message that answers it has it as parentID.
	MessageID string `json:"messageID"`
}

// AbortParams are the params of session/abort.
type AbortParams struct {
	SessionID string `json:"sessionID"`
	// ClearQueue also drops the prompts waiting behind the running turn;
	// without it they run next.
	ClearQueue bool `json:"clearQueue,omitempty"`
}

// AbortResult says what session/abort stopped.
type AbortResult struct {
	// Aborted is true when a turn was running and was stopped; its partial
	// message is stored by the time Abort returns.
	Aborted bool `json:"aborted"`
	// MessageID is the stopped turn's assistant message, if it had one.
	MessageID string `json:"messageID,omitempty"`
	// Cleared counts the queued prompts dropped (clearQueue).
	Cleared int `json:"cleared"`
}

// AbortedError answers a prompt whose turn was aborted (or which was
// dropped from the queue before it ran). The daemon answers it with the
// Aborted code.
type AbortedError struct {
	SessionID string
	// MessageID is the assistant message kept with what the turn produced
	// before it stopped; empty when the prompt never ran.
	MessageID string
	Reason    string
}

func (e *AbortedError) Error() string {
	if e.MessageID == "" {
		return fmt.Sprintf("the prompt was aborted before it ran: %s", e.Reason)
	}
	return fmt.Sprintf("the turn was aborted: %s; the partial message %s is kept", e.Reason, e.MessageID)
}

// Abort causes.
var (
	errAbortRequested = errors.New("stopped by session/abort")
	errRequestGone    = errors.New("the client cancelled the prompt's request or disconnected")
	errShutdown       = errors.New("the daemon is shutting down")
)

// ErrShuttingDown answers prompts sent while the service closes.
var ErrShuttingDown = errors.New("sessiond is shutting down: try again once it has restarted")

// ProviderLoader returns the model providers configured for a workspace
// checkout root: the user's config, the root's .sessiond/config.json and
// the environment.
type ProviderLoader func(projectDir string) (*provider.Registry, error)

// WithProviders sets how the service finds model providers. Without it,
// the service loads them with provider.Load and the built-in
// implementations at every prompt.
func WithProviders(load ProviderLoader) Option {
	return func(s *Service) { s.agent.providers = load }
}

// WithRetryPolicy sets how provider calls are retried (tests make the
// waits short).
func WithRetryPolicy(p provider.RetryPolicy) Option {
	return func(s *Service) { s.agent.retry = p }
}

// AgentLimits bound a turn's agent loop.
type AgentLimits struct {
	// MaxSteps caps the model calls of one turn; 0 means DefaultMaxSteps.
	MaxSteps int
	// BashTimeout is the bash tool's default timeout; 0 means the tool's.
	BashTimeout time.Duration
	// ShellEnv is the environment commands (the bash tool, session/shell)
	// start from; nil means the daemon's. Secrets are removed from it
	// either way (commandEnv).
	ShellEnv []string
}

// DefaultMaxSteps is how many model calls one turn makes at most.
const DefaultMaxSteps = 50

// WithAgentLimits bounds the agent loop.
func WithAgentLimits(l AgentLimits) Option {
	return func(s *Service) { s.agent.limits = l }
}

// agentState is the agent runtime's part of the Service: the prompt queue
// of each session and its running turn.
type agentState struct {
	providers ProviderLoader
	retry     provider.RetryPolicy
	limits    AgentLimits

	mu     sync.Mutex
	ctx    context.Context // ends at Close; every turn's context derives from it
	stop   context.CancelCauseFunc
	closed bool
	runs   map[string]*sessionRun
	// always holds the allow_always / reject_always answers: session →
	// tool → allow|deny. They last as long as the daemon.
	always map[string]map[string]string
	wg     sync.WaitGroup
}

// sessionRun is a session's prompt queue and the turn it runs. It exists
// while the session has prompts to run; its runner holds the session's
// turn from the first prompt until the queue is empty, so a prompt keeps
// its place ahead of shell and upload calls sent after it.
type sessionRun struct {
	queue []*job
	cur   *job
}

// job is one prompt on its way through the queue.
type job struct {
	p       PromptParams
	ses     Session
	root    string
	agent   string
	effort  provider.Effort
	res     provider.Resolved
	toolset []tools.Tool
	rules   permissionLayers
	files   []string // workspace-relative paths of the file parts, in order

	userID, asstID string

	ctx    context.Context
	cancel context.CancelCauseFunc
	done   chan struct{}
	out    MessageWithParts
	err    error

	// Guarded by agentState.mu.
	attempt int   // the retry being waited for, 0 if none
	next    int64 // when it happens, epoch ms
}

func (a *agentState) init() {
	if a.ctx == nil {
		a.ctx, a.stop = context.WithCancelCause(context.Background())
		a.runs = map[string]*sessionRun{}
		a.always = map[string]map[string]string{}
	}
}

// Prompt runs a prompt as a turn of the agent and returns the assistant's
// message once the turn ends. While the session runs another turn the
// prompt waits in its queue. It fails with *provider.NoProviderError,
// storing nothing, when no model is configured; with *AbortedError when
// the turn is aborted (the partial message is kept); with a wrapped
// *provider.ProviderError when the model provider failed. Cancelling ctx
// aborts the prompt's turn, or drops it from the queue.
func (s *Service) Prompt(ctx context.Context, p PromptParams) (MessageWithParts, error) {
	j, err := s.enqueue(ctx, p)
	if err != nil {
		return MessageWithParts{}, err
	}
	select {
	case <-j.done:
	case <-ctx.Done():
		s.cancelJob(j, errRequestGone)
		<-j.done
		return MessageWithParts{}, ctx.Err()
	}
	return j.out, j.err
}

// PromptAsync queues a prompt and returns at once with the ID its user
// message will have; the turn's output arrives as events. The same
// checks as Prompt's run first, so a prompt that cannot run is refused
// here.
func (s *Service) PromptAsync(ctx context.Context, p PromptParams) (PromptAsyncResult, error) {
	j, err := s.enqueue(ctx, p)
	if err != nil {
		return PromptAsyncResult{}, err
	}
	return PromptAsyncResult{MessageID: j.userID}, nil
}

// Abort stops the session's running prompt turn: the provider stream and
// any running tool are cancelled, and the partial message is kept, marked
// aborted. Queued prompts run next unless ClearQueue, which drops them
// (their callers get *AbortedError). It returns once the stopped turn is
// recorded.
func (s *Service) Abort(ctx context.Context, p AbortParams) (AbortResult, error) {
	if _, err := s.Get(ctx, p.SessionID); err != nil {
		return AbortResult{}, err
	}
	a := &s.agent
	var res AbortResult
	var cur *job
	a.mu.Lock()
	if r := a.runs[p.SessionID]; r != nil {
		if p.ClearQueue {
			for _, j := range r.queue {
				j.err = &AbortedError{SessionID: p.SessionID, Reason: "dropped from the queue by session/abort {clearQueue: true}"}
				j.cancel(errAbortRequested)
				close(j.done)
			}
			res.Cleared = len(r.queue)
			r.queue = nil
		}
		cur = r.cur
	}
	a.mu.Unlock()
	if cur != nil {
		cur.cancel(errAbortRequested)
		select {
		case <-cur.done:
		case <-ctx.Done():
			return res, ctx.Err()
		}
		var ae *AbortedError
		if errors.As(cur.err, &ae) {
			res.Aborted, res.MessageID = true, ae.MessageID
		}
	}
	if cur == nil {
		// No prompt turn: a shell command may be running, or about to
		// (its turn is held while the files are captured before it).
		deadline := time.Now().Add(2 * time.Second)
		for {
			if id, ok := s.shells.abort(p.SessionID); ok {
				res.Aborted, res.MessageID = true, id
				break
			}
			if !s.turns.busy(p.SessionID) || time.Now().After(deadline) {
				break
			}
			select {
			case <-ctx.Done():
				return res, ctx.Err()
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	s.publishStatus(p.SessionID)
	return res, nil
}

// Close aborts every running turn, drops the queued prompts and waits for
// the turns to be recorded. Prompts sent afterwards fail.
func (s *Service) Close() {
	a := &s.agent
	a.mu.Lock()
	a.init()
	a.closed = true
	for _, r := range a.runs {
		for _, j := range r.queue {
			j.err = &AbortedError{SessionID: j.ses.ID, Reason: errShutdown.Error()}
			close(j.done)
		}
		r.queue = nil
	}
	a.stop(errShutdown)
	a.mu.Unlock()
	a.wg.Wait()
	// Shell and upload turns cut by their closed connections record what
	// they did before the store closes.
	s.turns.wait()
}

// cancelJob drops j from its queue, or aborts its turn if it runs.
func (s *Service) cancelJob(j *job, cause error) {
	a := &s.agent
	a.mu.Lock()
	if r := a.runs[j.ses.ID]; r != nil {
		if i := slices.Index(r.queue, j); i >= 0 {
			r.queue = slices.Delete(r.queue, i, i+1)
			j.err = &AbortedError{SessionID: j.ses.ID, Reason: cause.Error()}
			close(j.done)
		}
	}
	a.mu.Unlock()
	j.cancel(cause)
	s.publishStatus(j.ses.ID)
}

// enqueue checks a prompt and puts it in its session's queue, starting the
// session's runner if none runs.
func (s *Service) enqueue(ctx context.Context, p PromptParams) (*job, error) {
	j, err := s.preparePrompt(ctx, p)
	if err != nil {
		return nil, err
	}
	a := &s.agent
	a.mu.Lock()
	a.init()
	if a.closed {
		a.mu.Unlock()
		return nil, ErrShuttingDown
	}
	// IDs are made here, under the lock, so the messages of queued prompts
	// sort in the order the prompts run.
	j.userID = s.db.NewID(store.KindMessage)
	j.asstID = s.db.NewID(store.KindMessage)
	j.ctx, j.cancel = context.WithCancelCause(a.ctx)
	j.done = make(chan struct{})
	r := a.runs[j.ses.ID]
	start := r == nil
	if start {
		r = &sessionRun{}
		a.runs[j.ses.ID] = r
	}
	r.queue = append(r.queue, j)
	if start {
		a.wg.Add(1)
		go s.runSession(j.ses.ID, r)
	}
	a.mu.Unlock()
	s.publishStatus(j.ses.ID)
	return j, nil
}

// runSession runs a session's queued prompts one after another, holding
// the session's turn until the queue is empty. The turn is given back
// before the last prompt's caller hears of its end, so a client can
// revert as soon as its prompt returns.
func (s *Service) runSession(sessionID string, r *sessionRun) {
	a := &s.agent
	defer a.wg.Done()
	release, err := s.turns.acquire(a.ctx, sessionID)
	if err != nil {
		release = func() {}
	}
	// next takes the next prompt, or ends the run when there is none.
	next := func() *job {
		a.mu.Lock()
		defer a.mu.Unlock()
		r.cur = nil
		if len(r.queue) == 0 {
			delete(a.runs, sessionID)
			return nil
		}
		j := r.queue[0]
		r.queue = slices.Delete(r.queue, 0, 1)
		r.cur = j
		return j
	}
	j := next()
	for j != nil {
		s.publishStatus(sessionID)
		if err != nil {
			j.err = &AbortedError{SessionID: sessionID, Reason: context.Cause(a.ctx).Error()}
		} else {
			j.out, j.err = s.runTurn(j)
		}
		j.cancel(nil)
		done := j
		if j = next(); j == nil {
			release()
		}
		close(done.done)
	}
	s.publishStatus(sessionID)
}

// preparePrompt checks a prompt and resolves everything it needs before
// it is queued: the agent, the model and its provider, the files.
// Nothing is stored.
func (s *Service) preparePrompt(ctx context.Context, p PromptParams) (*job, error) {
	if s.engine == nil {
		return nil, ErrNoTimeMachine
	}
	ses, err := s.Get(ctx, p.SessionID)
	if err != nil {
		return nil, err
	}
	switch ses.Lifecycle {
	case LifecycleStopped, LifecycleArchived:
		return nil, &ClosedError{ID: ses.ID, Lifecycle: ses.Lifecycle}
	}
	if err := parkedErr(ses); err != nil {
		return nil, err
	}
	proj, err := s.projects.Get(ctx, ses.ProjectID)
	if err != nil {
		return nil, fmt.Errorf("project of session %s: %w", ses.ID, err)
	}
	j := &job{p: p, ses: ses, root: proj.RootFor(ses.Directory)}

	if len(p.Parts) == 0 {
		return nil, paramErr("parts", "parts is required: at least one {type: \"text\", text} or {type: \"file\", path}")
	}
	hasText := false
	for i, part := range p.Parts {
		field := fmt.Sprintf("parts[%d]", i)
		switch part.Type {
		case PartText:
			if err := checkText(field+".text", part.Text); err != nil {
				return nil, err
			}
			if strings.TrimSpace(part.Text) != "" {
				hasText = true
			}
		case PartFile:
			if part.Path == "" {
				return nil, paramErr(field+".path", "%s.path is required for a file part", field)
			}
			rel, err := checkPromptFile(j.root, ses.Directory, field+".path", part.Path)
			if err != nil {
				return nil, err
			}
			j.files = append(j.files, rel)
			hasText = true
		default:
			return nil, paramErr(field+".type", "%s.type %q is not supported: use \"text\" or \"file\"", field, part.Type)
		}
	}
	if !hasText {
		return nil, paramErr("parts", "the prompt is empty: give some text or a file")
	}

	j.agent = cmp.Or(p.Agent, ses.Agent, tools.AgentBuild)
	if j.toolset, err = tools.ForAgent(j.agent); err != nil {
		return nil, paramErr("agent", "%v", err)
	}
	if j.effort, err = provider.ParseEffort(p.Variant); err != nil {
		return nil, paramErr("variant", "%v", err)
	}
	own, err := parsePermission(ses.Permission)
	if err != nil {
		return nil, paramErr("permission", "the session's permission rules are invalid: %v; fix them with a new session", err)
	}
	j.rules = permissionLayers{own}

	var ref provider.ModelRef
	switch {
	case p.Model != nil:
		if p.Model.ProviderID == "" || p.Model.ModelID == "" {
			return nil, paramErr("model", "model needs both providerID and modelID")
		}
		ref = provider.ModelRef{ProviderID: p.Model.ProviderID, ModelID: p.Model.ModelID}
	case ses.Model != nil:
		ref = provider.ModelRef{ProviderID: ses.Model.ProviderID, ModelID: ses.Model.ModelID}
	}
	load := s.agent.providers
	if load == nil {
		load = defaultProviders(s.log)
	}
	reg, err := load(j.root)
	if err != nil {
		var npe *provider.NoProviderError
		if errors.As(err, &npe) {
			return nil, err
		}
		return nil, &provider.NoProviderError{Ref: ref, Msg: err.Error()}
	}
	if j.res, err = reg.Resolve(ref); err != nil {
		return nil, err
	}
	if cfg := reg.Config(); cfg != nil {
		for _, path := range []string{cfg.UserPath, cfg.ProjectPath} {
			rules, err := configPermission(path)
			if err != nil {
				return nil, paramErr("permission", "the permission rules in a config file are invalid: %v; fix the file", err)
			}
			j.rules = append(j.rules, rules)
		}
	}
	return j, nil
}

// defaultProviders loads the providers from the config files and the
// environment at every call, so an edited config applies at the next
// prompt.
func defaultProviders(log *slog.Logger) ProviderLoader {
	return func(projectDir string) (*provider.Registry, error) {
		cfg, err := provider.Load(provider.LoadOptions{ProjectDir: projectDir})
		if err != nil {
			return nil, err
		}
		return builtin.NewRegistry(cfg, provider.RegistryOptions{Logger: log}), nil
	}
}

// The largest files a prompt attaches: text, and images.
const (
	MaxPromptFile  = 256 << 10
	MaxPromptImage = 4 << 20
)

func isImage(mime string) bool {
	switch mime {
	case "image/png", "image/jpeg", "image/gif", "image/webp":
		return true
	}
	return false
}

// publishStatus sends session.status with the session's run state.
func (s *Service) publishStatus(sessionID string) {
	ctx := context.Background()
	st, err := s.Status(ctx, sessionID)
	if err != nil {
		return
	}
	ses, err := s.Get(ctx, sessionID)
	if err != nil {
		return
	}
	s.publish(ses.ProjectID, ses.ID, "session.status", map[string]any{"sessionID": sessionID, "status": st[sessionID]})
}

// agentStatus adds the prompt queue and retry state to a session's status.
func (s *Service) agentStatus(id string, st *Status) {
	a := &s.agent
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.runs[id]
	if r == nil {
		return
	}
	st.State = "busy"
	st.Queued = len(r.queue)
	if r.cur != nil && r.cur.attempt > 0 {
		st.State, st.Attempt, st.Next = "retry", r.cur.attempt, r.cur.next
	}
}

// agentSessions lists the sessions with prompts running or queued.
func (s *Service) agentSessions() []string {
	a := &s.agent
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]string, 0, len(a.runs))
	for id := range a.runs {
		out = append(out, id)
	}
	return out
}

// setRetry records the retry a turn waits for (attempt 0 clears it) and
// publishes the status.
func (s *Service) setRetry(j *job, attempt int, next time.Time) {
	a := &s.agent
	a.mu.Lock()
	changed := j.attempt != attempt
	j.attempt = attempt
	if attempt > 0 {
		j.next = next.UnixMilli()
	} else {
		j.next = 0
	}
	a.mu.Unlock()
	if changed {
		s.publishStatus(j.ses.ID)
	}
}
