package session

// Context management (DESIGN §2 session/clear, session/context,
// session/compact; §6 compaction).
//
// What the model sees of a session is its context: the stored messages
// from the latest context marker on. A marker is a message of role system
// holding one compaction part:
//
//   - session/clear records a marker with kind "clear", no summary and
//     keep 0: nothing before it is sent any more.
//   - A compaction records a marker with kind "auto" (the turn loop, near
//     the model's window) or "manual" (session/compact) whose text is a
//     summary of the context's oldest messages, folded into the previous
//     summary (incremental), and whose metadata "keep" counts the messages
//     just before the marker that stay in the context verbatim.
//
// The context after a marker is then: its summary, the keep messages
// before it, and every message after it. Every message stays stored and
// listed by session/messages; markers are listed too, so clients can show
// where the context was cleared or compacted and with what summary.
//
// keep is a count, not a message ID, so a fork (which copies messages
// under new IDs, in order) and a revert (which hides a suffix of the
// messages) leave the marker meaning what it meant.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/sessiond/sessiond/session/provider"
	"github.com/sessiond/sessiond/session/tools"
	"github.com/sessiond/sessiond/store"
)

// Kinds of context markers (the "kind" metadata of a compaction part).
const (
	MarkerClear    = "clear"
	MarkerAuto     = "auto"
	MarkerManual   = "manual"
	metaKind       = "kind"
	metaKeep       = "keep"
	metaSummarized = "summarized"
)

// Context items' kinds.
const (
	ContextSystem  = "system"
	ContextSummary = "summary"
	ContextMessage = "message"
)

// The context budget (see contextBudgetOf).
const (
	// compactAtPercent: a model call whose estimated request exceeds this
	// share of the budget compacts the context first.
	compactAtPercent = 80
	// keepPercent: a compaction keeps the most recent messages verbatim
	// while they fit in this share of the room the budget leaves beside
	// the system prompt and the tools (up to the compaction threshold).
	keepPercent = 40
	// elideToPercent: when compaction cannot bring a request under the
	// threshold (the running turn itself is too big), the oldest tool
	// outputs of the request are elided until it fits in this share of
	// the budget.
	elideToPercent = 60
	// maxOutputReserve caps the output a request reserves: what the
	// Anthropic provider asks for at most when a request sets no
	// MaxTokens.
	maxOutputReserve = 32_000
	// maxSummaryTokens caps a summary's length.
	maxSummaryTokens = 8_192
	// imageTokens is what an image is estimated to cost (about what a
	// 1,000 x 1,000 image costs with either provider).
	imageTokens = 1_600
)

// ClearParams are the params of session/clear.
type ClearParams struct {
	SessionID string `json:"sessionID"`
}

// CompactParams are the params of session/compact.
type CompactParams struct {
	SessionID string `json:"sessionID"`
	// Model summarises; nil means the session's model, else the
	// configured default.
	Model *ModelRef `json:"model,omitempty"`
	// Instructions say what the summary should focus on (a /compact
	// command's arguments).
	Instructions string `json:"instructions,omitempty"`
}

// CompactResult says what session/compact did.
type CompactResult struct {
	// Compacted is false when the context held nothing to summarise; no
	// model was called and nothing was recorded.
	Compacted bool `json:"compacted"`
	// Message is the marker message (role system) whose compaction part
	// holds the summary.
	Message *MessageWithParts `json:"message,omitempty"`
	// TokensBefore and TokensAfter estimate the context's size (system
	// prompt and tools included) before and after.
	TokensBefore int64 `json:"tokensBefore"`
	TokensAfter  int64 `json:"tokensAfter"`
}

// ContextParams are the params of session/context.
type ContextParams struct {
	SessionID string `json:"sessionID"`
}

// ContextResult is what the session's next model call would carry,
// against what the model takes.
type ContextResult struct {
	// CurrentTokens is the size of the context: the tokens the model
	// counted at the last call (its input and output) plus an estimate of
	// what was added since, or, when the context changed since that call
	// (cleared, compacted) or there was none, an estimate of it all.
	CurrentTokens int64 `json:"currentTokens"`
	// Estimated says CurrentTokens is an estimate throughout.
	Estimated bool `json:"estimated"`
	// BudgetTokens is what a request may carry: the model's context
	// window minus the output a call reserves.
	BudgetTokens int64 `json:"budgetTokens"`
	// CompactAtTokens is where automatic compaction starts.
	CompactAtTokens int64 `json:"compactAtTokens"`
	// ContextWindow and MaxOutput are the model table's (or config's).
	ContextWindow int64 `json:"contextWindow"`
	MaxOutput     int64 `json:"maxOutput"`
	// Model is the model the budget is for: the session's, else the
	// configured default; nil when none is configured (the budget is
	// then the conservative default's).
	Model *ModelRef `json:"model,omitempty"`
	// Items are what the context holds, in the order it is sent; their
	// tokens are estimates.
	Items []ContextItem `json:"items"`
}

// ContextItem is one piece of the context: the system prompt with the
// tool definitions, the summary of compacted turns, or a message.
type ContextItem struct {
	Kind      string `json:"kind"` // system|summary|message
	MessageID string `json:"messageID,omitempty"`
	Role      string `json:"role,omitempty"`
	Tokens    int64  `json:"tokens"`
}

// ---------------------------------------------------------------------
// Estimation.

// approxTokens estimates the tokens of a text: about four bytes of UTF-8
// per token (English prose and code run three to four; counting bytes
// rather than characters keeps other scripts from being underestimated).
func approxTokens(s string) int64 { return int64(len(s)+3) / 4 }

// approxMessage estimates one message of a request, with a few tokens
// of framing per message and per tool call or result.
func approxMessage(m provider.Message) int64 {
	n := int64(4)
	for _, c := range m.Content {
		switch c := c.(type) {
		case provider.Text:
			n += approxTokens(c.Text)
		case provider.Image:
			n += imageTokens
		case provider.Reasoning:
			n += approxTokens(c.Text) + approxTokens(c.Redacted)
		case provider.ToolCall:
			n += 8 + approxTokens(c.Name) + approxTokens(string(c.Input))
		case provider.ToolResult:
			n += 8 + approxTokens(c.Output)
		}
	}
	return n
}

// approxMessages estimates a list of messages.
func approxMessages(msgs []provider.Message) int64 {
	var n int64
	for _, m := range msgs {
		n += approxMessage(m)
	}
	return n
}

// approxBase estimates the part of a request every call repeats: the
// system prompt and the tool definitions.
func approxBase(req provider.Request) int64 {
	n := int64(0)
	if req.System != "" {
		n += 4 + approxTokens(req.System)
	}
	for _, t := range req.Tools {
		n += 8 + approxTokens(t.Name) + approxTokens(t.Description) + approxTokens(string(t.Schema))
	}
	return n
}

// approxRequest estimates the input tokens of a request.
func approxRequest(req provider.Request) int64 {
	return approxBase(req) + approxMessages(req.Messages)
}

// contextBudget is what a model's context holds.
type contextBudget struct {
	window, maxOutput int64
	// reserve is the output a call reserves; budget = window - reserve.
	reserve, budget int64
	compactAt       int64
	elideTo         int64
}

// contextBudgetOf works out a model's budget. The output reserve is the
// model's max output, capped at what a request asks for (32,000) and at
// half the window (a config that gives a small window and keeps a large
// table max output would otherwise leave nothing).
func contextBudgetOf(m provider.ModelInfo) contextBudget {
	b := contextBudget{window: m.ContextWindow, maxOutput: m.MaxOutput}
	if b.window <= 0 {
		b.window = provider.DefaultContextWindow
	}
	if b.maxOutput <= 0 {
		b.maxOutput = provider.DefaultMaxOutput
	}
	b.reserve = min(b.maxOutput, maxOutputReserve, b.window/2)
	b.budget = b.window - b.reserve
	b.compactAt = b.budget * compactAtPercent / 100
	b.elideTo = b.budget * elideToPercent / 100
	return b
}

// keepTokens is how much of the most recent conversation a compaction
// keeps verbatim, given what the system prompt and tools take.
func (b contextBudget) keepTokens(base int64) int64 {
	return max(0, b.compactAt-base) * keepPercent / 100
}

// ---------------------------------------------------------------------
// The context of a session.

// markerOf returns the compaction part of a context marker: a message of
// role system with a compaction part. (session/appendEvent may record
// one too, with author "system": a framework that logs its sessions here
// can compact them the same way.)
func markerOf(m MessageWithParts) (Part, bool) {
	if m.Info.Role != RoleSystem {
		return Part{}, false
	}
	for i := len(m.Parts) - 1; i >= 0; i-- {
		if m.Parts[i].Type == PartCompaction {
			return m.Parts[i], true
		}
	}
	return Part{}, false
}

// metaInt reads an integer of a part's metadata: an int when the part was
// built here, a float64 once it went through JSON.
func metaInt(md map[string]any, key string) int {
	switch v := md[key].(type) {
	case int:
		return v
	case int64:
		return int(v)
	case float64:
		if v >= 0 && v <= math.MaxInt32 {
			return int(v)
		}
	}
	return 0
}

// contextView is the part of a session's visible messages the model sees.
type contextView struct {
	// marker is the latest context marker, nil if none.
	marker *MessageWithParts
	// summary is the marker's summary; "" after a clear.
	summary string
	// msgs are the messages in the context, oldest first, markers left
	// out; the first kept of them come from before the marker.
	msgs []MessageWithParts
	kept int
}

// viewContext applies the latest marker to a session's visible messages,
// oldest first.
func viewContext(all []MessageWithParts) contextView {
	var v contextView
	at := -1
	for i := len(all) - 1; i >= 0; i-- {
		if _, ok := markerOf(all[i]); ok {
			at = i
			break
		}
	}
	from := 0
	if at >= 0 {
		m := all[at]
		p, _ := markerOf(m)
		v.marker, v.summary = &m, p.Text
		keep := min(max(metaInt(p.Metadata, metaKeep), 0), at)
		from = at - keep
	}
	for i := from; i < len(all); i++ {
		if i == at {
			v.kept = len(v.msgs)
			continue
		}
		if _, ok := markerOf(all[i]); ok {
			continue // an earlier marker among the kept messages
		}
		v.msgs = append(v.msgs, all[i])
	}
	return v
}

// contextSummaryMessage is how a summary goes to the model: a user message ahead
// of the conversation it stands for.
func contextSummaryMessage(summary string) []provider.Message {
	if strings.TrimSpace(summary) == "" {
		return nil
	}
	return []provider.Message{{Role: provider.RoleUser, Content: []provider.Content{provider.Text{Text: "(The earlier part of this conversation was compacted to fit the model's context window. " +
		"This is its summary; the conversation goes on after it.)\n<summary>\n" + summary + "\n</summary>"}}}}
}

// sessionContext is a session's context as its next model call would
// send it.
type sessionContext struct {
	view contextView
	req  provider.Request
	// rendered[i] is view.msgs[i] as the model sees it; tokens[i] its
	// estimate.
	rendered [][]provider.Message
	tokens   []int64
	base     int64 // the system prompt and the tools
	summary  int64 // the summary message
}

// total is the estimate of the whole request.
func (c *sessionContext) total() int64 {
	n := c.base + c.summary
	for _, t := range c.tokens {
		n += t
	}
	return n
}

// contextLoad reads a session's context and renders it for the model as
// the agent agent with the provider providerID (which alone gets its
// thinking back).
func (s *Service) contextLoad(ctx context.Context, ses Session, root, agent, providerID string) (*sessionContext, error) {
	all, err := s.Messages(ctx, MessagesParams{SessionID: ses.ID})
	if err != nil {
		return nil, err
	}
	c := &sessionContext{view: viewContext(all)}
	toolset, err := tools.ForAgent(agent)
	if err != nil {
		toolset, _ = tools.ForAgent(tools.AgentBuild)
		agent = tools.AgentBuild
	}
	c.req = provider.Request{System: systemPrompt(&job{agent: agent, root: root}, ses), Tools: tools.ProviderTools(toolset)}
	c.base = approxBase(c.req)
	sum := contextSummaryMessage(c.view.summary)
	c.summary = approxMessages(sum)
	c.req.Messages = sum
	for _, m := range c.view.msgs {
		r := renderMessage(m, root, providerID)
		c.rendered = append(c.rendered, r)
		c.tokens = append(c.tokens, approxMessages(r))
		c.req.Messages = append(c.req.Messages, r...)
	}
	return c, nil
}

// contextRoot is the checkout root a session works in.
func (s *Service) contextRoot(ctx context.Context, ses Session) (string, error) {
	proj, err := s.projects.Get(ctx, ses.ProjectID)
	if err != nil {
		return "", fmt.Errorf("project of session %s: %w", ses.ID, err)
	}
	return proj.RootFor(ses.Directory), nil
}

// contextProviders loads the model providers for a checkout root.
func (s *Service) contextProviders(root string) (*provider.Registry, error) {
	load := s.agent.providers
	if load == nil {
		load = defaultProviders(s.log)
	}
	return load(root)
}

// contextModel picks the provider and model as a prompt does: override,
// else the session's model, else the configured default.
func (s *Service) contextModel(ses Session, root string, override *ModelRef) (provider.Resolved, error) {
	var ref provider.ModelRef
	switch {
	case override != nil:
		if override.ProviderID == "" || override.ModelID == "" {
			return provider.Resolved{}, paramErr("model", "model needs both providerID and modelID")
		}
		ref = provider.ModelRef{ProviderID: override.ProviderID, ModelID: override.ModelID}
	case ses.Model != nil:
		ref = provider.ModelRef{ProviderID: ses.Model.ProviderID, ModelID: ses.Model.ModelID}
	}
	reg, err := s.contextProviders(root)
	if err != nil {
		var npe *provider.NoProviderError
		if errors.As(err, &npe) {
			return provider.Resolved{}, err
		}
		return provider.Resolved{}, &provider.NoProviderError{Ref: ref, Msg: err.Error()}
	}
	return reg.Resolve(ref)
}

// Context reports the session's context: its estimated size against the
// budget of the session's model, and what it holds. It needs no working
// provider: with none configured, the budget is the default one.
func (s *Service) Context(ctx context.Context, p ContextParams) (ContextResult, error) {
	ses, err := s.Get(ctx, p.SessionID)
	if err != nil {
		return ContextResult{}, err
	}
	root, err := s.contextRoot(ctx, ses)
	if err != nil {
		return ContextResult{}, err
	}
	out := ContextResult{Items: []ContextItem{}}
	info := provider.ModelInfo{ContextWindow: provider.DefaultContextWindow, MaxOutput: provider.DefaultMaxOutput}
	if res, err := s.contextModel(ses, root, nil); err == nil {
		info = res.Model
		out.Model = &ModelRef{ProviderID: res.Ref.ProviderID, ModelID: res.Ref.ModelID}
	} else if ses.Model != nil {
		// The session names a model its provider cannot serve now (no
		// key): the table still knows its size.
		if reg, err := s.contextProviders(root); err == nil {
			info = reg.ModelInfo(provider.ModelRef{ProviderID: ses.Model.ProviderID, ModelID: ses.Model.ModelID})
			out.Model = ses.Model
		}
	}
	providerID := ""
	if out.Model != nil {
		providerID = out.Model.ProviderID
	}
	c, err := s.contextLoad(ctx, ses, root, cmp.Or(ses.Agent, tools.AgentBuild), providerID)
	if err != nil {
		return ContextResult{}, err
	}
	b := contextBudgetOf(info)
	out.BudgetTokens, out.CompactAtTokens = b.budget, b.compactAt
	out.ContextWindow, out.MaxOutput = b.window, b.maxOutput

	out.Items = append(out.Items, ContextItem{Kind: ContextSystem, Tokens: c.base})
	if c.summary > 0 {
		out.Items = append(out.Items, ContextItem{Kind: ContextSummary, MessageID: c.view.marker.Info.ID, Tokens: c.summary})
	}
	for i, m := range c.view.msgs {
		if len(c.rendered[i]) == 0 {
			continue // nothing of it goes to the model (an event's system message)
		}
		out.Items = append(out.Items, ContextItem{Kind: ContextMessage, MessageID: m.Info.ID, Role: m.Info.Role, Tokens: c.tokens[i]})
	}

	// The model's own count of its last call, if that call saw this
	// context: an assistant message after the latest marker.
	out.CurrentTokens, out.Estimated = c.total(), true
	for i := len(c.view.msgs) - 1; i >= c.view.kept; i-- {
		m := c.view.msgs[i]
		if m.Info.Role != RoleAssistant {
			continue
		}
		if n := lastCallTokens(m); n > 0 {
			for _, t := range c.tokens[i+1:] {
				n += t
			}
			out.CurrentTokens, out.Estimated = n, false
		}
		break
	}
	return out, nil
}

// lastCallTokens is what the model counted at a message's last call:
// its input (cached or not) and its output.
func lastCallTokens(m MessageWithParts) int64 {
	for i := len(m.Parts) - 1; i >= 0; i-- {
		p := m.Parts[i]
		if p.Type == PartStepFinish && p.Tokens != nil {
			t := p.Tokens
			return t.Input + t.Cache.Read + t.Cache.Write + t.Output + t.Reasoning
		}
	}
	return 0
}

// ---------------------------------------------------------------------
// Clear and compact.

// holdContext takes the session's turn for a context change, or answers
// Busy while a turn runs or prompts wait. A session with reverted
// messages first moves them into a fork, as a new turn does: the marker
// goes after the messages the session shows.
func (s *Service) holdContext(ctx context.Context, id string) (func(), Session, error) {
	ses, err := s.Get(ctx, id)
	if err != nil {
		return nil, Session{}, err
	}
	switch ses.Lifecycle {
	case LifecycleStopped, LifecycleArchived:
		return nil, Session{}, &ClosedError{ID: ses.ID, Lifecycle: ses.Lifecycle}
	}
	release, ok := s.turns.try(id)
	if !ok || slices.Contains(s.agentSessions(), id) {
		if ok {
			release()
		}
		return nil, Session{}, ErrBusy
	}
	if ses, err = s.Get(ctx, id); err != nil {
		release()
		return nil, Session{}, err
	}
	if ses.Revert != nil {
		if ses, err = s.moveRevertedToFork(ctx, ses); err != nil {
			release()
			return nil, Session{}, err
		}
	}
	return release, ses, nil
}

// Clear starts a new context epoch: a marker after which the model sees
// none of the earlier messages, which stay stored and listed. It answers
// Busy (ErrBusy) while the session runs a turn or has prompts queued, and
// Closed for a stopped or archived session. A context that is already
// empty is left as it is. Clear takes the session's turn: call it outside
// one.
func (s *Service) Clear(ctx context.Context, p ClearParams) (Session, error) {
	release, ses, err := s.holdContext(ctx, p.SessionID)
	if err != nil {
		return Session{}, err
	}
	defer release()
	all, err := s.Messages(ctx, MessagesParams{SessionID: ses.ID})
	if err != nil {
		return Session{}, err
	}
	v := viewContext(all)
	if len(v.msgs) == 0 && strings.TrimSpace(v.summary) == "" {
		return ses, nil
	}
	m := s.newMarker(ses.ID, MarkerClear, "")
	return s.recordMarker(context.WithoutCancel(ctx), &m, "", nil)
}

// Compact summarises the session's context with a model call: the
// summary (folded into the previous one) replaces every message of the
// context in what later model calls see; the messages stay stored and
// listed. It answers NoProvider with no model configured, Busy while the
// session runs a turn or has prompts queued, Closed for a stopped or
// archived session, and a ProviderError when the model call fails (then
// nothing is recorded). An empty context is not compacted. Compact takes
// the session's turn: call it outside one.
func (s *Service) Compact(ctx context.Context, p CompactParams) (CompactResult, error) {
	if err := checkText("instructions", p.Instructions); err != nil {
		return CompactResult{}, err
	}
	ses, err := s.Get(ctx, p.SessionID)
	if err != nil {
		return CompactResult{}, err
	}
	root, err := s.contextRoot(ctx, ses)
	if err != nil {
		return CompactResult{}, err
	}
	res, err := s.contextModel(ses, root, p.Model)
	if err != nil {
		return CompactResult{}, err
	}
	release, ses, err := s.holdContext(ctx, p.SessionID)
	if err != nil {
		return CompactResult{}, err
	}
	defer release()
	agent := cmp.Or(ses.Agent, tools.AgentBuild)
	c, err := s.contextLoad(ctx, ses, root, agent, res.Ref.ProviderID)
	if err != nil {
		return CompactResult{}, err
	}
	out := CompactResult{TokensBefore: c.total(), TokensAfter: c.total()}
	m, err := s.compact(ctx, compactJob{
		ses: ses, res: res, ctx: c, kind: MarkerManual,
		protect: len(c.view.msgs), keep: 0, instructions: p.Instructions,
	})
	if err != nil || m == nil {
		return out, err
	}
	out.Compacted, out.Message = true, m
	if after, err := s.contextLoad(ctx, ses, root, agent, res.Ref.ProviderID); err == nil {
		out.TokensAfter = after.total()
	}
	return out, nil
}

// compactJob is one compaction.
type compactJob struct {
	ses  Session
	res  provider.Resolved
	ctx  *sessionContext
	kind string
	// protect is the index in ctx.view.msgs from which messages are
	// always kept (the running turn's); len(msgs) protects none.
	protect int
	// keep is how many tokens of recent messages may stay verbatim.
	keep         int64
	instructions string
	onRetry      func(provider.RetryAttempt)
}

// compactSplit picks how many of the context's messages (oldest first) a
// compaction summarises: the most recent messages stay while they fit in
// keep tokens, the kept ones start at a user message, and those from
// protect on always stay. 0 means there is nothing to summarise.
func compactSplit(roles []string, tokens []int64, protect int, keep int64) int {
	n := len(tokens)
	if protect < 0 || protect > n {
		protect = n
	}
	suffix := make([]int64, n+1)
	for i := n - 1; i >= 0; i-- {
		suffix[i] = suffix[i+1] + tokens[i]
	}
	best := protect
	for k := protect - 1; k >= 1; k-- {
		if suffix[k] > keep {
			break
		}
		if roles[k] == RoleUser {
			best = k
		}
	}
	return best
}

// compact summarises the oldest messages of the context and records the
// marker; it returns nil when there was nothing to summarise.
func (s *Service) compact(ctx context.Context, j compactJob) (*MessageWithParts, error) {
	c := j.ctx
	roles := make([]string, len(c.view.msgs))
	for i, m := range c.view.msgs {
		roles[i] = m.Info.Role
	}
	k := compactSplit(roles, c.tokens, j.protect, j.keep)
	dropped := c.view.msgs[:k]
	if !slices.ContainsFunc(dropped, func(m MessageWithParts) bool { return m.Info.Role != RoleSystem }) {
		return nil, nil
	}
	summary, usage, err := s.summarizeContext(ctx, j.res, c.view.summary, dropped, j.instructions, j.onRetry)
	if err != nil {
		return nil, err
	}
	firstKept := ""
	if k < len(c.view.msgs) {
		firstKept = c.view.msgs[k].Info.ID
	}
	m := s.newMarker(j.ses.ID, j.kind, summary)
	m.Parts[0].Metadata[metaSummarized] = k
	ref := &ModelRef{ProviderID: j.res.Ref.ProviderID, ModelID: j.res.Ref.ModelID}
	cost := provider.Cost(j.res.Model, usage)
	tok := tokensOf(usage)
	m.Info.Model, m.Info.Tokens, m.Info.Cost = ref, &tok, cost
	if _, err := s.recordMarker(context.WithoutCancel(ctx), &m, firstKept, &markerUsage{model: j.res.Ref.String(), usage: usage, cost: cost}); err != nil {
		return nil, err
	}
	return &m, nil
}

// newMarker builds a marker message (not yet stored).
func (s *Service) newMarker(sessionID, kind, summary string) MessageWithParts {
	now := s.nowMs()
	m := MessageWithParts{Info: Message{
		ID: s.db.NewID(store.KindMessage), SessionID: sessionID, Role: RoleSystem,
		Time: MessageTime{Created: now, Completed: now},
	}}
	m.Parts = []Part{{
		ID: s.db.NewID(store.KindPart), SessionID: sessionID, MessageID: m.Info.ID, Type: PartCompaction,
		Text: summary, Time: &PartTime{Start: now, End: now},
		Metadata: map[string]any{metaKind: kind, metaKeep: 0},
	}}
	return m
}

type markerUsage struct {
	model string
	usage provider.Usage
	cost  float64
}

// recordMarker stores a marker message, counting the messages from
// firstKept on as kept ("" keeps none), with the model call it took in
// the session's usage, and publishes it.
func (s *Service) recordMarker(ctx context.Context, m *MessageWithParts, firstKept string, u *markerUsage) (Session, error) {
	sid := m.Info.SessionID
	var ses Session
	err := s.db.Update(ctx, func(txn *store.Txn) error {
		ses = Session{}
		if err := getSession(txn, sid, &ses); err != nil {
			return err
		}
		keep := 0
		if firstKept != "" {
			prefix := store.PrefixMessages(sid)
			err := txn.Scan(prefix, store.KeyMessage(sid, firstKept), false, true, func(key, _ []byte) (bool, error) {
				keep++
				return true, nil
			})
			if err != nil {
				return err
			}
		}
		m.Parts[0].Metadata[metaKeep] = keep
		if err := txn.Set(store.KeyMessage(sid, m.Info.ID), &m.Info); err != nil {
			return err
		}
		if err := txn.Set(store.KeyPart(sid, m.Info.ID, m.Parts[0].ID), &m.Parts[0]); err != nil {
			return err
		}
		if u != nil {
			addUsage(&ses, u.model, u.usage, u.cost)
		}
		ses.MessageCount++
		ses.Version++
		ses.Time.Updated = max(s.nowMs(), ses.Time.Updated)
		return txn.Set(store.KeySession(sid), &ses)
	})
	if err != nil {
		return Session{}, fmt.Errorf("record context marker: %w", err)
	}
	s.publish(ses.ProjectID, sid, "message.updated", map[string]any{"info": cloneMessage(m.Info)})
	s.publish(ses.ProjectID, sid, "part.updated", map[string]any{"part": clonePart(m.Parts[0])})
	s.publish(ses.ProjectID, sid, "session.updated", map[string]any{"info": ses})
	return ses, nil
}

// ---------------------------------------------------------------------
// Summaries.

// compactInstruction is the summariser's system prompt.
const compactInstruction = `You write the working summary of a conversation between a user and a coding agent. ` +
	`The summary replaces the conversation in the agent's context: the agent must be able to go on with the work from the summary alone.

Keep:
- the user's goals, requests and constraints, in their own words where the wording matters;
- decisions taken and why;
- what was done: files read, created or changed (with paths), commands run and what they showed, errors met and how they were resolved;
- the current state of the work, and what remains to do, next step first.

Keep exact paths, identifiers, commands, names and numbers. Leave out pleasantries, and anything later superseded. ` +
	`When a previous summary is given, fold the new conversation into it: your summary replaces both. ` +
	`Write in the language the user writes in. Answer with the summary only, in concise Markdown.`

// Caps on what the transcript a summariser reads shows of one piece.
const (
	transcriptText   = 8_000
	transcriptInput  = 1_000
	transcriptOutput = 2_000
)

// clip shortens s to about max bytes, keeping its head and tail.
func clipMiddle(s string, max int) string {
	if len(s) <= max || max <= 0 {
		return s
	}
	head, tail := max*2/3, max/3
	for head > 0 && !utf8.RuneStart(s[head]) {
		head--
	}
	t := len(s) - tail
	for t < len(s) && !utf8.RuneStart(s[t]) {
		t++
	}
	return s[:head] + fmt.Sprintf("\n[... %d bytes left out ...]\n", t-head) + s[t:]
}

// compactTranscript renders a message as text for the summariser: what was
// said and done, tool outputs shortened; thinking is left out.
func compactTranscript(m MessageWithParts) string {
	var b strings.Builder
	switch m.Info.Role {
	case RoleUser:
		b.WriteString("### User\n")
		for _, p := range m.Parts {
			switch p.Type {
			case PartText:
				if strings.TrimSpace(p.Text) != "" {
					b.WriteString(clipMiddle(p.Text, transcriptText) + "\n")
				}
			case PartFile:
				if isImage(p.Mime) {
					fmt.Fprintf(&b, "[image %s]\n", p.Path)
				} else if !hasSynthetic(m.Parts, p.Path) {
					fmt.Fprintf(&b, "[file %s]\n", p.Path)
				}
			case PartTool:
				if p.State == nil {
					continue
				}
				fmt.Fprintf(&b, "[the user ran a shell command: %s]\n%s\n", clipMiddle(string(p.State.Input), transcriptInput), clipMiddle(p.State.Output+p.State.Error, transcriptOutput))
			}
		}
	case RoleAssistant:
		b.WriteString("### Assistant\n")
		for _, p := range m.Parts {
			switch p.Type {
			case PartText:
				if strings.TrimSpace(p.Text) != "" {
					b.WriteString(clipMiddle(p.Text, transcriptText) + "\n")
				}
			case PartTool:
				if p.State == nil {
					continue
				}
				fmt.Fprintf(&b, "[tool %s %s: %s]\n", p.Tool, clipMiddle(string(p.State.Input), transcriptInput), p.State.Status)
				if out := strings.TrimSpace(p.State.Output + "\n" + p.State.Error); out != "" {
					b.WriteString(clipMiddle(out, transcriptOutput) + "\n")
				}
			case PartPatch:
				fmt.Fprintf(&b, "[files changed: %s]\n", strings.Join(p.Files, ", "))
			}
		}
		if m.Info.Error != nil {
			fmt.Fprintf(&b, "[the turn ended: %s]\n", m.Info.Error.Message)
		}
	default:
		return ""
	}
	return b.String()
}

// summarizeContext folds messages into the previous summary with model
// calls: one call when the transcript fits the model's window beside the
// previous summary, else one per chunk, each folding into the last.
func (s *Service) summarizeContext(ctx context.Context, res provider.Resolved, prev string, msgs []MessageWithParts, instructions string, onRetry func(provider.RetryAttempt)) (string, provider.Usage, error) {
	b := contextBudgetOf(res.Model)
	outTokens := min(b.maxOutput, maxSummaryTokens, b.window/4)
	// Room for the transcript: the window less the summary's output, the
	// instruction, and the previous summary (at most outTokens long, as
	// it was written by a call like this one).
	room := (b.window-outTokens)*compactAtPercent/100 - approxTokens(compactInstruction) - approxTokens(instructions) - max(outTokens, approxTokens(prev)) - 64
	room = max(room, 256)
	var chunks [][]string
	var cur []string
	var size int64
	for _, m := range msgs {
		t := compactTranscript(m)
		if t == "" {
			continue
		}
		t = clipMiddle(t, int(room*4))
		n := approxTokens(t)
		if size+n > room && len(cur) > 0 {
			chunks, cur, size = append(chunks, cur), nil, 0
		}
		cur, size = append(cur, t), size+n
	}
	if len(cur) > 0 {
		chunks = append(chunks, cur)
	}
	var total provider.Usage
	summary := prev
	for _, chunk := range chunks {
		var u strings.Builder
		if strings.TrimSpace(summary) != "" {
			u.WriteString("<previous-summary>\n" + summary + "\n</previous-summary>\n\n")
		}
		u.WriteString("<conversation>\n" + strings.Join(chunk, "\n") + "</conversation>\n\n")
		u.WriteString("Write the summary of the conversation")
		if strings.TrimSpace(summary) != "" {
			u.WriteString(", folded into the previous summary")
		}
		u.WriteString(".")
		if strings.TrimSpace(instructions) != "" {
			u.WriteString("\nFocus on: " + instructions)
		}
		req := provider.Request{
			Model: res.Model, System: compactInstruction, MaxTokens: outTokens,
			Messages: []provider.Message{{Role: provider.RoleUser, Content: []provider.Content{provider.Text{Text: u.String()}}}},
		}
		text, usage, err := s.summaryCall(ctx, res, req, onRetry)
		total = total.Add(usage)
		if err != nil {
			return "", total, err
		}
		summary = text
	}
	return summary, total, nil
}

// errEmptySummary reports a summariser that answered nothing.
var errEmptySummary = errors.New("the model wrote an empty summary")

// summaryCall makes one summarising model call and returns its text.
func (s *Service) summaryCall(ctx context.Context, res provider.Resolved, req provider.Request, onRetry func(provider.RetryAttempt)) (string, provider.Usage, error) {
	var usage provider.Usage
	if onRetry == nil {
		onRetry = func(provider.RetryAttempt) {}
	}
	st, err := provider.StreamWithRetry(ctx, res.Provider, req, s.agent.retry, onRetry)
	onRetry(provider.RetryAttempt{})
	if err != nil {
		return "", usage, err
	}
	defer st.Close()
	var done []string
	var open strings.Builder
	for {
		ev, err := st.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", usage, err
		}
		switch ev := ev.(type) {
		case provider.TextDelta:
			open.WriteString(ev.Text)
		case provider.TextDone:
			done = append(done, ev.Text)
			open.Reset()
		case provider.Usage:
			usage = ev
		}
	}
	if open.Len() > 0 {
		done = append(done, open.String())
	}
	text := strings.TrimSpace(strings.Join(done, "\n"))
	if text == "" {
		return "", usage, &provider.ProviderError{Provider: res.Ref.ProviderID, Model: res.Ref.ModelID, Message: "the model answered the summary request with no text", Err: errEmptySummary}
	}
	return text, usage, nil
}

// ---------------------------------------------------------------------
// The turn loop's side.

// contextFit is what the turn loop keeps between its model calls to fit
// each request in the model's window.
type contextFit struct {
	// ratio scales estimates to what the model counted at the last call
	// (at least 1: the estimate is only ever corrected upwards).
	ratio float64
	// sent is the (unscaled) estimate of the last request; mark the
	// turn's usage before it.
	sent int64
	mark provider.Usage
}

// scale applies the correction.
func (f *contextFit) scale(n int64) int64 {
	if f.ratio <= 1 {
		return n
	}
	return int64(math.Ceil(float64(n) * f.ratio))
}

// fitContext runs before each model call of a turn. When the request
// would exceed the compaction threshold it compacts the context (the
// turn's own messages stay) and rebuilds the history from the store;
// when that is not enough (the turn itself is too big), it elides the
// oldest tool outputs of the request. Elision changes only what is sent,
// never what is stored.
func (l *loop) fitContext(ctx context.Context, req provider.Request, msgs []provider.Message) ([]provider.Message, error) {
	f := &l.fit
	if f.sent > 0 {
		step := provider.Usage{
			Input:      l.usage.Input - f.mark.Input,
			CacheRead:  l.usage.CacheRead - f.mark.CacheRead,
			CacheWrite: l.usage.CacheWrite - f.mark.CacheWrite,
		}
		if counted := step.Input + step.CacheRead + step.CacheWrite; counted > 0 {
			f.ratio = min(max(float64(counted)/float64(f.sent), 1), 2)
		}
	}
	b := contextBudgetOf(l.j.res.Model)
	base := approxBase(req)
	est := func(m []provider.Message) int64 { return f.scale(base + approxMessages(m)) }
	if est(msgs) > b.compactAt {
		c, err := l.s.contextLoad(l.rec, l.t.ses, l.j.root, l.j.agent, l.j.res.Ref.ProviderID)
		if err != nil {
			return msgs, err
		}
		protect := slices.IndexFunc(c.view.msgs, func(m MessageWithParts) bool { return m.Info.ID >= l.j.userID })
		if protect < 0 {
			protect = len(c.view.msgs)
		}
		m, err := l.s.compact(ctx, compactJob{
			ses: l.t.ses, res: l.j.res, ctx: c, kind: MarkerAuto,
			protect: protect, keep: b.keepTokens(f.scale(base)),
			onRetry: func(a provider.RetryAttempt) { l.s.setRetry(l.j, a.Attempt, a.Next) },
		})
		switch {
		case err != nil && ctx.Err() != nil:
			return msgs, context.Cause(ctx)
		case errors.Is(err, errEmptySummary):
			l.s.log.Warn("compaction skipped", "session", l.t.ses.ID, "err", err)
		case err != nil:
			return msgs, fmt.Errorf("compact the context: %w", err)
		case m != nil:
			if msgs, err = l.s.conversation(l.rec, l.t.ses, l.j); err != nil {
				return msgs, err
			}
		}
		if n := est(msgs); n > b.compactAt {
			msgs = elideToolResults(msgs, int64(float64(n-b.elideTo)/max(f.ratio, 1)))
		}
	}
	f.sent = base + approxMessages(msgs)
	f.mark = l.usage
	return msgs, nil
}

// elidedOutput replaces a tool output elided from a request.
const elidedOutput = "(this output was left out to keep the conversation within the model's context window; run the tool again if you need it)"

// elideToolResults replaces tool outputs, oldest first, with a note until
// about need tokens are saved. The latest tool results (what the model is
// about to read) are kept. msgs is not modified.
func elideToolResults(msgs []provider.Message, need int64) []provider.Message {
	if need <= 0 {
		return msgs
	}
	last := -1
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role == provider.RoleTool {
			last = i
			break
		}
	}
	out := slices.Clone(msgs)
	saved := int64(0)
	note := approxTokens(elidedOutput)
	for i := 0; i < last && saved < need; i++ {
		var content []provider.Content
		for k, c := range out[i].Content {
			r, ok := c.(provider.ToolResult)
			if !ok || saved >= need || approxTokens(r.Output) <= note*2 {
				continue
			}
			if content == nil {
				content = slices.Clone(out[i].Content)
			}
			saved += approxTokens(r.Output) - note
			r.Output = elidedOutput
			content[k] = r
		}
		if content != nil {
			out[i].Content = content
		}
	}
	return out
}
