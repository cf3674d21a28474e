package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/sessiond/sessiond/session/provider"
	"github.com/sessiond/sessiond/session/tools"
	"github.com/sessiond/sessiond/store"
	"github.com/sessiond/sessiond/workspace/confine"
	"github.com/sessiond/sessiond/workspace/snapshot"
)

// Message error kinds the agent loop records.
const (
	ErrorKindAborted       = "Aborted"
	ErrorKindProviderError = "ProviderError"
	ErrorKindStepLimit     = "StepLimit"
	ErrorKindInternal      = "InternalError"
)

// Tool call states.
const (
	ToolPending   = "pending"
	ToolRunning   = "running"
	ToolCompleted = "completed"
	ToolError     = "error"
)

// runTurn runs one queued prompt as a turn: it records the user message,
// then the assistant message as the model streams it, runs the tools the
// model calls and feeds their results back until the model stops, and
// records the snapshots of every step that may have changed files. The
// runner holds the session's turn.
func (s *Service) runTurn(j *job) (MessageWithParts, error) {
	ctx := j.ctx
	t, err := s.startTurn(ctx, j.ses.ID)
	if err != nil {
		if ctx.Err() != nil {
			return MessageWithParts{}, &AbortedError{SessionID: j.ses.ID, Reason: context.Cause(ctx).Error()}
		}
		return MessageWithParts{}, err
	}
	t.release = func() {} // the runner releases the session after its queue
	// Records are written whatever happens to the turn's context: an
	// aborted turn keeps what it did.
	rec := context.WithoutCancel(ctx)
	ref := &ModelRef{ProviderID: j.res.Ref.ProviderID, ModelID: j.res.Ref.ModelID}

	user := s.userMessage(t, j, ref)
	asst := MessageWithParts{Info: Message{
		ID: j.asstID, SessionID: t.ses.ID, Role: RoleAssistant, Time: MessageTime{Created: s.nowMs()},
		Agent: j.agent, Model: ref, Variant: j.p.Variant, ParentID: user.Info.ID,
	}, Parts: []Part{}}

	l := &loop{s: s, j: j, t: t, m: &asst, rec: rec}
	turnErr := s.recordUser(rec, t, &user)
	var history []provider.Message
	if turnErr == nil {
		history, turnErr = s.conversation(rec, t.ses, j)
	}
	if turnErr == nil {
		turnErr = s.recordStart(rec, t, &asst)
	}
	if turnErr == nil {
		turnErr = l.run(ctx, history)
	}
	result := l.finish(ctx, turnErr)
	if err := s.endTurn(rec, t, &asst, nil); err != nil {
		return MessageWithParts{}, err
	}
	if result != nil {
		return asst, result
	}
	return asst, nil
}

// userMessage builds the prompt's user message: its text, and each file
// with its content in a synthetic text part (images go to the model as
// images, read again from the workspace).
func (s *Service) userMessage(t *turn, j *job, ref *ModelRef) MessageWithParts {
	now := s.nowMs()
	m := MessageWithParts{Info: Message{
		ID: j.userID, SessionID: t.ses.ID, Role: RoleUser, Time: MessageTime{Created: now, Completed: now},
		Agent: j.agent, Model: ref, Variant: j.p.Variant,
	}}
	newPart := func(typ string) Part {
		return Part{ID: s.db.NewID(store.KindPart), SessionID: t.ses.ID, MessageID: m.Info.ID, Type: typ}
	}
	files := j.files
	for _, pp := range j.p.Parts {
		if pp.Type == PartText {
			p := newPart(PartText)
			p.Text = pp.Text
			m.Parts = append(m.Parts, p)
			continue
		}
		rel := files[0]
		files = files[1:]
		fp := newPart(PartFile)
		fp.Path, fp.Filename, fp.Mime = rel, path.Base(rel), mimeOf(rel)
		data, err := readInRoot(j.root, rel, MaxPromptImage)
		fp.Metadata = map[string]any{"bytes": len(data)}
		m.Parts = append(m.Parts, fp)
		var text string
		switch {
		case err != nil:
			text = fmt.Sprintf("(the file %s could not be read: %v)", rel, err)
		case isImage(fp.Mime):
			continue // sent as an image
		case !utf8.Valid(data) || slices.Contains(data, 0):
			text = fmt.Sprintf("(the file %s is binary, %d bytes; it is not shown)", rel, len(data))
		default:
			text = fmt.Sprintf("<file path=%q>\n%s\n</file>", rel, data)
		}
		tp := newPart(PartText)
		tp.Text = text
		tp.Metadata = map[string]any{"synthetic": true, "file": rel}
		m.Parts = append(m.Parts, tp)
	}
	return m
}

// readInRoot reads a workspace file (rel, relative to root), resolved as
// every path is (workspace/confine: never .git, never outside), up to
// limit bytes.
func readInRoot(root, rel string, limit int64) ([]byte, error) {
	r, err := confine.Open(root, "")
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return r.ReadFile(rel, "read", limit)
}

// recordUser stores the user message, counting it on the session.
func (s *Service) recordUser(ctx context.Context, t *turn, m *MessageWithParts) error {
	var ses Session
	err := s.db.Update(ctx, func(txn *store.Txn) error {
		ses = Session{}
		if err := getSession(txn, t.ses.ID, &ses); err != nil {
			return err
		}
		if err := txn.Set(store.KeyMessage(ses.ID, m.Info.ID), &m.Info); err != nil {
			return err
		}
		for i := range m.Parts {
			if err := txn.Set(store.KeyPart(ses.ID, m.Info.ID, m.Parts[i].ID), &m.Parts[i]); err != nil {
				return err
			}
		}
		ses.MessageCount++
		ses.Version++
		ses.Time.Updated = max(s.nowMs(), ses.Time.Updated)
		return txn.Set(store.KeySession(ses.ID), &ses)
	})
	if err != nil {
		return fmt.Errorf("record prompt: %w", err)
	}
	s.publish(ses.ProjectID, ses.ID, "message.updated", map[string]any{"info": m.Info})
	for _, p := range m.Parts {
		s.publish(ses.ProjectID, ses.ID, "part.updated", map[string]any{"part": p})
	}
	s.publish(ses.ProjectID, ses.ID, "session.updated", map[string]any{"info": ses})
	return nil
}

// loop is one turn's agent loop.
type loop struct {
	s   *Service
	j   *job
	t   *turn
	m   *MessageWithParts // the assistant message
	rec context.Context   // for records: never cancelled
	env *tools.Env
	// step are the paths the running step's tools claim to have written.
	step  claims
	usage provider.Usage
	cost  float64
	// fit keeps each request within the model's window (context.go).
	fit contextFit
}

// stepResult is what one model call produced.
type stepResult struct {
	content []provider.Content // the assistant's message, as sent back
	calls   []int              // the tool parts, in the order they completed
	usage   provider.Usage
	finish  provider.FinishReason
}

func (l *loop) newPart(typ string) Part {
	return Part{ID: l.s.db.NewID(store.KindPart), SessionID: l.t.ses.ID, MessageID: l.m.Info.ID, Type: typ}
}

// add appends a part to the message, stores it and publishes it.
func (l *loop) add(p Part) int {
	l.m.Parts = append(l.m.Parts, p)
	i := len(l.m.Parts) - 1
	l.save(false, i)
	return i
}

// save stores the parts at idx (and the message info if withInfo) in one
// transaction, then publishes them: a part's state is committed before the
// event that shows it.
func (l *loop) save(withInfo bool, idx ...int) {
	sid, mid := l.t.ses.ID, l.m.Info.ID
	err := l.s.db.Update(l.rec, func(txn *store.Txn) error {
		if withInfo {
			if err := txn.Set(store.KeyMessage(sid, mid), &l.m.Info); err != nil {
				return err
			}
		}
		for _, i := range idx {
			if err := txn.Set(store.KeyPart(sid, mid, l.m.Parts[i].ID), &l.m.Parts[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		// The message is written whole again when the turn ends.
		l.s.log.Warn("cannot store a part of a running turn", "session", sid, "message", mid, "err", err)
	}
	if withInfo {
		l.s.publish(l.t.ses.ProjectID, sid, "message.updated", map[string]any{"info": cloneMessage(l.m.Info)})
	}
	for _, i := range idx {
		l.s.publish(l.t.ses.ProjectID, sid, "part.updated", map[string]any{"part": clonePart(l.m.Parts[i])})
	}
}

// open starts a streamed part (text, reasoning). It is stored when it is
// complete; until then its deltas are published.
func (l *loop) open(typ string) int {
	p := l.newPart(typ)
	p.Time = &PartTime{Start: l.s.nowMs()}
	l.m.Parts = append(l.m.Parts, p)
	return len(l.m.Parts) - 1
}

// delta publishes a streamed piece of a part without storing it.
// delta announces text added to a streaming part. The event carries the
// part without its text so far, only the delta: with the whole text each
// event would grow with the turn and a long answer would cost the square
// of its length to send. The part.updated that completes the part carries
// the whole text.
func (l *loop) delta(i int, d string) {
	p := clonePart(l.m.Parts[i])
	p.Text = ""
	l.s.publish(l.t.ses.ProjectID, l.t.ses.ID, "part.updated", map[string]any{"part": p, "delta": d})
}

// run calls the model and the tools it asks for until the model stops.
func (l *loop) run(ctx context.Context, history []provider.Message) error {
	j := l.j
	l.env = &tools.Env{
		Root: j.root, Dir: l.t.ses.Directory, Todos: &todoStore{s: l.s, ses: l.t.ses},
		BashTimeout: l.s.agent.limits.BashTimeout, ShellEnv: l.s.commandEnv(ctx, l.t.ses),
		NoWriteTrace: l.s.noWriteTrace,
		Task:         l.taskRunner(),
	}
	maxSteps := l.s.agent.limits.MaxSteps
	if maxSteps <= 0 {
		maxSteps = DefaultMaxSteps
	}
	req := provider.Request{
		Model:  j.res.Model,
		System: systemPrompt(j, l.t.ses),
		Tools:  tools.ProviderTools(j.toolset),
		Effort: j.effort,
	}
	msgs := history
	for step := 1; ; step++ {
		if step > maxSteps {
			return &stepLimitError{steps: maxSteps}
		}
		var err error
		if msgs, err = l.fitContext(ctx, req, msgs); err != nil {
			return err
		}
		start := l.newPart(PartStepStart)
		start.Snapshot = l.t.snap.String()
		l.step = claims{}
		start.Time = &PartTime{Start: l.s.nowMs()}
		l.add(start)

		req.Messages = msgs
		res, err := l.stream(ctx, req)
		if err != nil {
			return err
		}
		var results []provider.Content
		changing := false
		for _, i := range res.calls {
			if ctx.Err() != nil {
				break
			}
			r, mutating := l.runCall(ctx, i)
			results = append(results, r)
			changing = changing || mutating
		}
		if err := l.endStep(res, changing); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		msgs = append(msgs, provider.Message{Role: provider.RoleAssistant, Content: res.content})
		if len(results) > 0 {
			msgs = append(msgs, provider.Message{Role: provider.RoleTool, Content: results})
		}
		l.m.Info.Finish = string(res.finish)
		// Go on while the model calls tools. Some OpenAI-compatible
		// servers (Ollama, llama.cpp) say "stop" after tool calls, so the
		// calls decide, not only the finish reason.
		if len(res.calls) == 0 || res.finish == provider.FinishContentFilter {
			return nil
		}
	}
}

type stepLimitError struct{ steps int }

func (e *stepLimitError) Error() string {
	return fmt.Sprintf("stopped after %d model calls in one turn; send another prompt to let the agent go on", e.steps)
}

// stream makes one model call and records its output as it arrives.
func (l *loop) stream(ctx context.Context, req provider.Request) (stepResult, error) {
	var res stepResult
	st, err := provider.StreamWithRetry(ctx, l.j.res.Provider, req, l.s.agent.retry, func(a provider.RetryAttempt) {
		l.s.setRetry(l.j, a.Attempt, a.Next)
	})
	l.s.setRetry(l.j, 0, time.Time{})
	if err != nil {
		return res, err
	}
	defer st.Close()
	text, reasoning := -1, -1
	calls := map[string]int{}
	now := l.s.nowMs
	for {
		ev, err := st.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return res, err
		}
		switch ev := ev.(type) {
		case provider.TextDelta:
			if text < 0 {
				text = l.open(PartText)
			}
			l.m.Parts[text].Text += ev.Text
			l.delta(text, ev.Text)
		case provider.TextDone:
			if text < 0 {
				if ev.Text == "" {
					continue
				}
				text = l.open(PartText)
			}
			p := &l.m.Parts[text]
			p.Text = ev.Text
			p.Time = &PartTime{Start: p.Time.Start, End: now()}
			l.save(false, text)
			res.content = append(res.content, provider.Text{Text: ev.Text})
			text = -1
		case provider.ReasoningDelta:
			if reasoning < 0 {
				reasoning = l.open(PartReasoning)
			}
			l.m.Parts[reasoning].Text += ev.Text
			l.delta(reasoning, ev.Text)
		case provider.ReasoningDone:
			if reasoning < 0 {
				reasoning = l.open(PartReasoning)
			}
			p := &l.m.Parts[reasoning]
			p.Text = ev.Text
			p.Time = &PartTime{Start: p.Time.Start, End: now()}
			meta := map[string]any{"providerID": l.j.res.Ref.ProviderID}
			if ev.Signature != "" {
				meta["signature"] = ev.Signature
			}
			if ev.Redacted != "" {
				meta["redacted"] = ev.Redacted
			}
			p.Metadata = meta
			l.save(false, reasoning)
			res.content = append(res.content, provider.Reasoning{Text: ev.Text, Signature: ev.Signature, Redacted: ev.Redacted})
			reasoning = -1
		case provider.ToolCallStart:
			p := l.newPart(PartTool)
			p.CallID, p.Tool = ev.ID, ev.Name
			p.State = &ToolState{Status: ToolPending, Input: json.RawMessage("{}"), Time: &PartTime{Start: now()}}
			calls[ev.ID] = l.add(p)
		case provider.ToolCallDelta:
			// The arguments are shown once complete.
		case provider.ToolCallDone:
			i, ok := calls[ev.ID]
			if !ok {
				p := l.newPart(PartTool)
				p.CallID, p.Tool = ev.ID, ev.Name
				p.State = &ToolState{Status: ToolPending, Time: &PartTime{Start: now()}}
				l.m.Parts = append(l.m.Parts, p)
				i = len(l.m.Parts) - 1
			}
			p := &l.m.Parts[i]
			st := &ToolState{Status: ToolRunning, Input: ev.Input, Time: &PartTime{Start: p.State.Time.Start}}
			if ev.Malformed != "" {
				p.Metadata = map[string]any{"malformedInput": ev.Malformed}
			}
			p.State = st
			l.save(false, i)
			res.calls = append(res.calls, i)
			res.content = append(res.content, provider.ToolCall{ID: ev.ID, Name: ev.Name, Input: ev.Input})
		case provider.Usage:
			res.usage = ev
		case provider.Finish:
			res.finish = ev.Reason
		}
	}
	return res, nil
}

// runCall runs one tool call and records its outcome. It returns the
// result for the model and whether the tool may have changed files.
func (l *loop) runCall(ctx context.Context, i int) (provider.ToolResult, bool) {
	p := &l.m.Parts[i]
	call := provider.ToolResult{CallID: p.CallID, Name: p.Tool}
	input := p.State.Input
	var (
		tool     tools.Tool
		res      tools.Result
		runErr   error
		mutating bool
	)
	if idx := slices.IndexFunc(l.j.toolset, func(t tools.Tool) bool { return t.Name() == p.Tool }); idx >= 0 {
		tool = l.j.toolset[idx]
	}
	switch {
	case tool == nil:
		names := make([]string, len(l.j.toolset))
		for k, t := range l.j.toolset {
			names[k] = t.Name()
		}
		runErr = fmt.Errorf("there is no tool %q for the %s agent; the tools are: %v", p.Tool, l.j.agent, names)
	case p.Metadata["malformedInput"] != nil:
		runErr = fmt.Errorf("the arguments of this %s call were not valid JSON; call it again with a JSON object matching its schema", p.Tool)
	default:
		if err := l.permit(ctx, i, tool); err != nil {
			runErr = err
			break
		}
		mutating = !tool.ReadOnly()
		res, runErr = tool.Run(ctx, l.env, input)
	}
	p = &l.m.Parts[i] // permit may have saved it
	st := &ToolState{Status: ToolCompleted, Input: input, Title: res.Title, Output: res.Output, Time: &PartTime{Start: p.State.Time.Start, End: l.s.nowMs()}}
	meta := maps.Clone(p.Metadata)
	if len(res.Metadata) > 0 {
		if meta == nil {
			meta = map[string]any{}
		}
		maps.Copy(meta, res.Metadata)
	}
	if len(res.Changed) > 0 {
		if meta == nil {
			meta = map[string]any{}
		}
		meta["changed"] = res.Changed
	}
	l.step.claim(res.Changed...)
	l.s.lingering.watch(res.Lingering)
	if res.Writes != nil {
		var c claims
		c.addTrace(l.t.tracker.Root(), res.Writes)
		if written := c.list(); len(written) > 0 {
			if meta == nil {
				meta = map[string]any{}
			}
			meta["changed"] = written
		}
		l.step.merge(&c)
	}
	if len(res.Full) > 0 {
		err := l.s.db.Update(l.rec, func(txn *store.Txn) error {
			return txn.SetRaw(store.KeyOutput(l.t.ses.ID, p.ID), res.Full)
		})
		if err == nil {
			if meta == nil {
				meta = map[string]any{}
			}
			meta["fullOutput"] = "session/output"
		} else {
			l.s.log.Warn("cannot keep a tool's whole output", "session", l.t.ses.ID, "err", err)
		}
	}
	call.Output = res.Output
	if runErr != nil {
		st.Status, st.Error = ToolError, runErr.Error()
		if ctx.Err() != nil {
			st.Error = "aborted: " + context.Cause(ctx).Error()
			if meta == nil {
				meta = map[string]any{}
			}
			meta["aborted"] = true
		}
		call.IsError = true
		if call.Output != "" {
			call.Output += "\n\n"
		}
		call.Output += st.Error
	}
	if call.Output == "" {
		call.Output = "(no output)"
	}
	p.State, p.Metadata = st, meta
	l.save(false, i)
	return call, mutating
}

// endStep settles what a step's tools claim to have written (a capture,
// and the claimed changes overlaid on the turn's snapshot), adds a patch
// part when they changed files, and stores the step-finish part
// with the step's tokens and cost, the message's totals and the session's
// usage in one transaction.
func (l *loop) endStep(res stepResult, changing bool) error {
	s := l.s
	var idx []int
	if changing {
		files, err := s.settle(l.rec, l.t, &l.step)
		if err != nil {
			return fmt.Errorf("record the files a step changed: %w", err)
		}
		if len(files) > 0 {
			p := l.newPart(PartPatch)
			p.Files, p.Snapshot = files, l.t.snap.String()
			l.m.Parts = append(l.m.Parts, p)
			idx = append(idx, len(l.m.Parts)-1)
		}
	}
	cost := provider.Cost(l.j.res.Model, res.usage)
	tok := tokensOf(res.usage)
	fin := l.newPart(PartStepFinish)
	fin.Snapshot, fin.Tokens, fin.Cost = l.t.snap.String(), &tok, cost
	fin.Time = &PartTime{End: s.nowMs()}
	fin.Metadata = map[string]any{"reason": string(res.finish)}
	l.m.Parts = append(l.m.Parts, fin)
	idx = append(idx, len(l.m.Parts)-1)

	l.usage = l.usage.Add(res.usage)
	l.cost += cost
	total := tokensOf(l.usage)
	l.m.Info.Tokens, l.m.Info.Cost = &total, l.cost
	model := l.j.res.Ref.String()
	sid, mid := l.t.ses.ID, l.m.Info.ID
	var ses Session
	err := s.db.Update(l.rec, func(txn *store.Txn) error {
		ses = Session{}
		if err := getSession(txn, sid, &ses); err != nil {
			return err
		}
		if err := txn.Set(store.KeyMessage(sid, mid), &l.m.Info); err != nil {
			return err
		}
		for _, i := range idx {
			if err := txn.Set(store.KeyPart(sid, mid, l.m.Parts[i].ID), &l.m.Parts[i]); err != nil {
				return err
			}
		}
		addUsage(&ses, model, res.usage, cost)
		ses.Version++
		ses.Time.Updated = max(s.nowMs(), ses.Time.Updated)
		return txn.Set(store.KeySession(sid), &ses)
	})
	if err != nil {
		return fmt.Errorf("record a step: %w", err)
	}
	s.publish(ses.ProjectID, sid, "message.updated", map[string]any{"info": cloneMessage(l.m.Info)})
	for _, i := range idx {
		s.publish(ses.ProjectID, sid, "part.updated", map[string]any{"part": clonePart(l.m.Parts[i])})
	}
	s.publish(ses.ProjectID, sid, "session.updated", map[string]any{"info": ses})
	return nil
}

// finish marks what the turn left unfinished and says how it ended on the
// message; it returns the error the prompt answers with, nil on success.
func (l *loop) finish(ctx context.Context, err error) error {
	m := l.m
	now := l.s.nowMs()
	var result error
	mark := ""
	var pe *provider.ProviderError
	var sl *stepLimitError
	switch {
	case err == nil:
	case ctx.Err() != nil:
		cause := context.Cause(ctx)
		m.Info.Error = &MessageError{Kind: ErrorKindAborted, Message: "the turn was aborted: " + cause.Error()}
		result = &AbortedError{SessionID: m.Info.SessionID, MessageID: m.Info.ID, Reason: cause.Error()}
		mark = "aborted"
	case errors.As(err, &sl):
		// The turn ran as far as it may; the message says why it stopped.
		m.Info.Error = &MessageError{Kind: ErrorKindStepLimit, Message: err.Error()}
	case errors.As(err, &pe):
		m.Info.Error = &MessageError{Kind: ErrorKindProviderError, Message: err.Error()}
		result, mark = err, "incomplete"
	default:
		m.Info.Error = &MessageError{Kind: ErrorKindInternal, Message: err.Error()}
		result, mark = err, "incomplete"
	}
	for i := range m.Parts {
		p := &m.Parts[i]
		switch p.Type {
		case PartText, PartReasoning:
			if p.Time != nil && p.Time.End == 0 {
				p.Time = &PartTime{Start: p.Time.Start, End: now}
				p.Metadata = withMeta(p.Metadata, mark, true)
			}
		case PartTool:
			if p.State != nil && (p.State.Status == ToolPending || p.State.Status == ToolRunning) {
				st := *p.State
				st.Status = ToolError
				st.Error = "the tool call did not finish: the turn ended first"
				if m.Info.Error != nil {
					st.Error = "the tool call did not finish: " + m.Info.Error.Message
				}
				st.Time = &PartTime{End: now}
				if p.State.Time != nil {
					st.Time.Start = p.State.Time.Start
				}
				p.State = &st
				p.Metadata = withMeta(p.Metadata, mark, true)
			}
		}
	}
	m.Info.Time.Completed = now
	return result
}

func withMeta(m map[string]any, key string, v any) map[string]any {
	if key == "" {
		return m
	}
	out := maps.Clone(m)
	if out == nil {
		out = map[string]any{}
	}
	out[key] = v
	return out
}

// changedFiles lists the files (not directories alone) that differ
// between two snapshots.
func (s *Service) changedFiles(ctx context.Context, before, after snapshot.ID) ([]string, error) {
	if before == after {
		return nil, nil
	}
	changed, err := s.engine.Changed(ctx, before, after)
	if err != nil {
		return nil, fmt.Errorf("compare snapshots: %w", err)
	}
	afters, err := s.engine.LookupAll(ctx, after, changed)
	if err != nil {
		return nil, fmt.Errorf("read snapshot: %w", err)
	}
	befores, err := s.engine.LookupAll(ctx, before, changed)
	if err != nil {
		return nil, fmt.Errorf("read snapshot: %w", err)
	}
	var files []string
	for i, p := range changed {
		e, b := afters[i], befores[i]
		if e.Kind != store.EntryDir && b.Kind != store.EntryDir || e.Kind != b.Kind && e.Exists() && b.Exists() {
			files = append(files, p)
		}
	}
	return files, nil
}

func tokensOf(u provider.Usage) Tokens {
	return Tokens{Input: u.Input, Output: u.Output, Reasoning: u.Reasoning, Cache: CacheUsage{Read: u.CacheRead, Write: u.CacheWrite}}
}

// clonePart copies a part deeply enough that the turn may change it while
// the event that carries the copy waits to be sent.
func clonePart(p Part) Part {
	if p.State != nil {
		st := *p.State
		if st.Time != nil {
			t := *st.Time
			st.Time = &t
		}
		p.State = &st
	}
	if p.Time != nil {
		t := *p.Time
		p.Time = &t
	}
	if p.Tokens != nil {
		t := *p.Tokens
		p.Tokens = &t
	}
	p.Metadata = maps.Clone(p.Metadata)
	p.Files = slices.Clone(p.Files)
	return p
}

func cloneMessage(m Message) Message {
	if m.Tokens != nil {
		t := *m.Tokens
		m.Tokens = &t
	}
	if m.Error != nil {
		e := *m.Error
		m.Error = &e
	}
	if m.Snapshot != nil {
		sp := *m.Snapshot
		m.Snapshot = &sp
	}
	return m
}
