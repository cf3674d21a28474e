package session

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"
	"strings"
	"unicode"

	"github.com/sessiond/sessiond/session/provider"
	"github.com/sessiond/sessiond/store"
)

// SummaryStateKey is the session state key (session/state/get) that holds
// the session's last model summary: the next session/summarize sends the
// model that summary and the messages after it. Removing the key makes the
// next summary start from the whole session again.
const SummaryStateKey = "sessiond.summary"

// Defaults of session/summarize, overridden by the "summary" key of the
// user or project config file ({"summary": {"minMessages": 4,
// "messagesPerCall": 50}}) and by the call's params.
const (
	// DefaultSummaryMinMessages is how many messages the stored summary
	// must lack before the model is asked to update it.
	DefaultSummaryMinMessages = 4
	// DefaultSummaryMessagesPerCall caps the messages one model call
	// reads; more are folded in over several calls.
	DefaultSummaryMessagesPerCall = 50
	MaxSummaryMessagesPerCall     = 1000
)

// Limits of what a model summary call carries and produces.
const (
	summaryMaxTokens     = 2048
	maxTranscriptMessage = 4000
	maxTranscriptTool    = 300
	summaryTopics        = 8
	summaryPoints        = 4
)

// SessionSummary is the result of session/summarize (DESIGN §3).
type SessionSummary struct {
	Text string `json:"text"`
	// MessageCount is how many messages the summary covers.
	MessageCount int `json:"messageCount"`
	// GeneratedAt is when the text was made (epoch ms).
	GeneratedAt int64 `json:"generatedAt"`
	// TokensUsed counts the model tokens spent on this summary, over the
	// calls that built it incrementally; 0 for an extractive one.
	TokensUsed int64 `json:"tokensUsed"`
	// KeyTopics are the terms that weigh most in the messages (a
	// TF-IDF-like score over the messages' text).
	KeyTopics []string `json:"keyTopics"`
	// Participants are who wrote the messages: "user" (or the session's
	// user ID), the agents ("build", "plan"), and the authors of events
	// in the session's log.
	Participants []string `json:"participants"`
	// FilesChanged are the workspace files the covered turns changed,
	// from their patch parts, sorted.
	FilesChanged []string `json:"filesChanged"`
	// IsIncremental says the text was built on an earlier summary (or
	// over several calls) rather than from all the messages at once.
	IsIncremental bool `json:"isIncremental"`
	// Extractive marks a summary made without a model: picked sentences,
	// counts and terms.
	Extractive bool `json:"extractive,omitempty"`
	// MessagesByRole counts the covered messages by role.
	MessagesByRole map[string]int `json:"messagesByRole,omitempty"`
	// Model wrote the text, if a model did.
	Model *ModelRef `json:"model,omitempty"`
	// LastMessageID is the newest message the summary covers.
	LastMessageID string `json:"lastMessageID,omitempty"`
	// Pending counts the messages after LastMessageID that the summary
	// does not cover yet: fewer than the minimum a model call waits for.
	Pending int `json:"pending,omitempty"`
	// Note says why the summary is extractive or not up to date.
	Note string `json:"note,omitempty"`
}

// SummarizeParams are the params of session/summarize.
type SummarizeParams struct {
	SessionID string `json:"sessionID"`
	// Model picks the model; without it, the session's or the configured
	// default. When none is configured (and none is asked for here) the
	// summary is extractive.
	Model *ModelRef `json:"model,omitempty"`
	// MinMessages and MessagesPerCall override the configured values
	// (DefaultSummaryMinMessages, DefaultSummaryMessagesPerCall); 0 keeps
	// them.
	MinMessages     int `json:"minMessages,omitempty"`
	MessagesPerCall int `json:"messagesPerCall,omitempty"`
	// Extractive makes the summary without a model even when one is
	// configured.
	Extractive bool `json:"extractive,omitempty"`
}

// SummaryConfig is the "summary" key of a config file.
type SummaryConfig struct {
	MinMessages     int `json:"minMessages,omitempty"`
	MessagesPerCall int `json:"messagesPerCall,omitempty"`
}

// summaryLocks keeps two summaries of one session from paying for the
// same model calls: the second waits and finds the first one's result.
var summaryLocks turnLocks

// Summarize returns a summary of the session's visible messages.
//
// With a model it is incremental: the last summary (kept under
// SummaryStateKey) and the messages after it go to the model, which
// writes the updated summary; it is stored and returned. Fewer new
// messages than the minimum return the stored summary with Pending set
// (or, before any, an extractive one), without a model call. More than
// messagesPerCall are folded in over several calls.
//
// Without a model it is extractive, and marked so: counts by role,
// participants, files changed, key topics by term weight and the
// sentences that carry them. Nothing is stored.
func (s *Service) Summarize(ctx context.Context, p SummarizeParams) (SessionSummary, error) {
	if p.MinMessages < 0 {
		return SessionSummary{}, paramErr("minMessages", "minMessages must not be negative")
	}
	if p.MessagesPerCall < 0 || p.MessagesPerCall > MaxSummaryMessagesPerCall {
		return SessionSummary{}, paramErr("messagesPerCall", "messagesPerCall must be between 1 and %d (0 keeps the configured value)", MaxSummaryMessagesPerCall)
	}
	if p.Model != nil && (p.Model.ProviderID == "" || p.Model.ModelID == "") {
		return SessionSummary{}, paramErr("model", "model needs both providerID and modelID")
	}
	ses, err := s.Get(ctx, p.SessionID)
	if err != nil {
		return SessionSummary{}, err
	}
	root, err := s.contextRoot(ctx, ses)
	if err != nil {
		return SessionSummary{}, err
	}
	authors, err := s.eventAuthors(ctx, ses.ID)
	if err != nil {
		return SessionSummary{}, err
	}
	if p.Extractive {
		msgs, err := s.completedMessages(ctx, ses.ID)
		if err != nil {
			return SessionSummary{}, err
		}
		return s.extractiveSummary(ses, msgs, authors, "an extractive summary was asked for"), nil
	}
	res, err := s.contextModel(ses, root, p.Model)
	if err != nil {
		var npe *provider.NoProviderError
		if !errors.As(err, &npe) || p.Model != nil {
			return SessionSummary{}, err
		}
		msgs, err := s.completedMessages(ctx, ses.ID)
		if err != nil {
			return SessionSummary{}, err
		}
		return s.extractiveSummary(ses, msgs, authors, "extractive, without a model: "+npe.Error()), nil
	}
	cfg := s.summaryConfig(root)
	minMsgs := cmp.Or(p.MinMessages, cfg.MinMessages, DefaultSummaryMinMessages)
	perCall := cmp.Or(p.MessagesPerCall, cfg.MessagesPerCall, DefaultSummaryMessagesPerCall)

	release, err := summaryLocks.acquire(ctx, ses.ID)
	if err != nil {
		return SessionSummary{}, err
	}
	defer release()
	msgs, err := s.completedMessages(ctx, ses.ID)
	if err != nil {
		return SessionSummary{}, err
	}
	prev, err := s.storedSummary(ctx, ses.ID)
	if err != nil {
		return SessionSummary{}, err
	}
	start := 0
	if prev != nil {
		i := slices.IndexFunc(msgs, func(m MessageWithParts) bool { return m.Info.ID == prev.LastMessageID })
		if i < 0 {
			prev = nil // a revert hid what it covered: start again
		} else {
			start = i + 1
		}
	}
	fresh := len(msgs) - start
	switch {
	case prev != nil && fresh < max(minMsgs, 1):
		out := *prev
		out.Pending = fresh
		return out, nil
	case prev == nil && (fresh == 0 || fresh < minMsgs):
		return s.extractiveSummary(ses, msgs, authors,
			fmt.Sprintf("the session has %d message(s), fewer than the %d a model summary waits for", fresh, minMsgs)), nil
	}

	ref := &ModelRef{ProviderID: res.Ref.ProviderID, ModelID: res.Ref.ModelID}
	text := ""
	var tokens int64
	if prev != nil {
		text, tokens = prev.Text, prev.TokensUsed
	}
	var out SessionSummary
	for calls := 1; start < len(msgs); calls++ {
		end := min(start+perCall, len(msgs))
		t, usage, err := s.summaryRequest(ctx, res, text, msgs[start:end])
		if usage.Total() > 0 {
			s.chargeSummary(ctx, ses.ID, res, usage)
		}
		if err != nil {
			return SessionSummary{}, err
		}
		text, tokens = t, tokens+usage.Total()
		out = s.summaryFacts(ses, msgs[:end], authors)
		out.Text, out.TokensUsed, out.Model = text, tokens, ref
		out.IsIncremental = prev != nil || calls > 1
		out.LastMessageID = msgs[end-1].Info.ID
		out.GeneratedAt = s.nowMs()
		// Stored after each call: a failure later keeps what was paid for.
		if err := s.storeSummary(ctx, ses.ID, out); err != nil {
			return SessionSummary{}, err
		}
		start = end
	}
	return out, nil
}

// completedMessages returns the session's visible messages up to the
// first one still being written (a running turn's): a summary covers a
// prefix of the conversation, and a message it covered never changes.
func (s *Service) completedMessages(ctx context.Context, sessionID string) ([]MessageWithParts, error) {
	msgs, err := s.Messages(ctx, MessagesParams{SessionID: sessionID})
	if err != nil {
		return nil, err
	}
	for i, m := range msgs {
		if m.Info.Time.Completed == 0 {
			return msgs[:i], nil
		}
	}
	return msgs, nil
}

// summaryConfig reads the "summary" key of the user and project config
// files, the project's winning field by field. A file that does not parse
// is left to the provider loader to report.
func (s *Service) summaryConfig(root string) SummaryConfig {
	_, userFile, projectFile := s.configDirs(root)
	var out SummaryConfig
	for _, f := range []string{userFile, projectFile} {
		if f == "" {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var top struct {
			Summary *SummaryConfig `json:"summary"`
		}
		if err := json.Unmarshal(data, &top); err != nil || top.Summary == nil {
			continue
		}
		if top.Summary.MinMessages > 0 {
			out.MinMessages = top.Summary.MinMessages
		}
		if n := top.Summary.MessagesPerCall; n > 0 && n <= MaxSummaryMessagesPerCall {
			out.MessagesPerCall = n
		}
	}
	return out
}

func (s *Service) storedSummary(ctx context.Context, sessionID string) (*SessionSummary, error) {
	var raw []byte
	err := s.db.View(ctx, func(txn *store.Txn) error {
		var err error
		raw, err = txn.GetRaw(store.KeySessionState(sessionID, SummaryStateKey))
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the summary of %s: %w", sessionID, err)
	}
	var sum SessionSummary
	if json.Unmarshal(raw, &sum) != nil || sum.LastMessageID == "" || sum.Text == "" {
		return nil, nil // not one of ours (a client wrote the key): start again
	}
	return &sum, nil
}

func (s *Service) storeSummary(ctx context.Context, sessionID string, sum SessionSummary) error {
	raw, err := json.Marshal(sum)
	if err != nil {
		return err
	}
	err = s.db.Update(ctx, func(txn *store.Txn) error {
		var ses Session
		if err := getSession(txn, sessionID, &ses); err != nil {
			return err
		}
		return txn.SetRaw(store.KeySessionState(sessionID, SummaryStateKey), raw)
	})
	if err != nil {
		return fmt.Errorf("store the summary of %s: %w", sessionID, err)
	}
	return nil
}

// chargeSummary adds a summary call's tokens and cost to the session's
// usage, where session/usage reports them.
func (s *Service) chargeSummary(ctx context.Context, sessionID string, res provider.Resolved, u provider.Usage) {
	cost := provider.Cost(res.Model, u)
	var ses Session
	err := s.db.Update(context.WithoutCancel(ctx), func(txn *store.Txn) error {
		ses = Session{}
		if err := getSession(txn, sessionID, &ses); err != nil {
			return err
		}
		addUsage(&ses, res.Ref.String(), u, cost)
		ses.Version++
		ses.Time.Updated = max(s.nowMs(), ses.Time.Updated)
		return txn.Set(store.KeySession(sessionID), &ses)
	})
	if err != nil {
		s.log.Warn("cannot count a summary's tokens", "session", sessionID, "err", err)
		return
	}
	s.publish(ses.ProjectID, ses.ID, "session.updated", map[string]any{"info": ses})
}

const summarySystem = `You keep the running summary of a coding session between a user and an AI coding agent working in the user's workspace.
Write for someone who will continue the work: what the user wants, what was decided and why, what was changed (name the files), what was tried and failed, and what is still open or next.
Keep every fact of an earlier summary that still holds; drop what the new messages made obsolete.
Reply with the summary only, in plain Markdown, under 400 words. Do not address the reader and do not mention that you are summarising.`

// summaryRequest asks the model for the summary of msgs, folding them into
// prev when there is one.
func (s *Service) summaryRequest(ctx context.Context, res provider.Resolved, prev string, msgs []MessageWithParts) (string, provider.Usage, error) {
	var b strings.Builder
	if prev != "" {
		b.WriteString("The summary so far:\n<summary>\n" + prev + "\n</summary>\n\nThe messages since then:\n")
	} else {
		b.WriteString("The session's messages:\n")
	}
	b.WriteString("<messages>\n")
	for _, m := range msgs {
		if m.Info.Role == RoleSystem {
			continue // context markers: what the model was shown, not what was said
		}
		b.WriteString(transcript(m))
		b.WriteString("\n")
	}
	b.WriteString("</messages>\n\n")
	if prev != "" {
		b.WriteString("Write the updated summary of the whole session.")
	} else {
		b.WriteString("Write the summary of the session.")
	}
	req := provider.Request{
		Model:     res.Model,
		System:    summarySystem,
		Messages:  []provider.Message{{Role: provider.RoleUser, Content: []provider.Content{provider.Text{Text: b.String()}}}},
		MaxTokens: summaryMaxTokens,
	}
	return s.summaryCall(ctx, res, req, nil)
}

// transcript renders a message for the summary model: its text, the
// tools it called, the files it attached or changed. File contents and
// reasoning are left out.
func transcript(m MessageWithParts) string {
	var b strings.Builder
	who := m.Info.Role
	if m.Info.Role == RoleAssistant && m.Info.Agent != "" {
		who += " (" + m.Info.Agent + " agent)"
	}
	fmt.Fprintf(&b, "[%s]", who)
	for _, p := range m.Parts {
		switch p.Type {
		case PartText:
			if p.Metadata["synthetic"] == true {
				continue
			}
			if t := strings.TrimSpace(p.Text); t != "" {
				b.WriteString("\n" + t)
			}
		case PartFile:
			fmt.Fprintf(&b, "\n(file %s)", cmp.Or(p.Path, p.URL, p.Filename))
		case PartTool:
			if p.State == nil {
				continue
			}
			title := cmp.Or(p.State.Title, compactJSON(p.State.Input))
			line := fmt.Sprintf("\n(%s: %s", p.Tool, truncate(title, 200))
			if p.State.Error != "" {
				line += " → error: " + truncate(p.State.Error, maxTranscriptTool)
			} else if p.Tool == "shell" || p.Tool == "bash" {
				if out := strings.TrimSpace(p.State.Output); out != "" {
					line += " → " + truncate(out, maxTranscriptTool)
				}
			}
			b.WriteString(line + ")")
		case PartPatch:
			fmt.Fprintf(&b, "\n(changed: %s)", strings.Join(p.Files, ", "))
		}
	}
	if m.Info.Error != nil {
		fmt.Fprintf(&b, "\n(the turn ended with %s: %s)", m.Info.Error.Kind, truncate(m.Info.Error.Message, 200))
	}
	return truncate(b.String(), maxTranscriptMessage)
}

func compactJSON(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return string(raw)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// eventAuthors maps the session's event IDs to their authors, in log
// order, for participants.
func (s *Service) eventAuthors(ctx context.Context, sessionID string) ([]eventAuthor, error) {
	evs, err := s.Events(ctx, EventsParams{SessionID: sessionID})
	if err != nil {
		return nil, err
	}
	out := make([]eventAuthor, 0, len(evs))
	for _, ev := range evs {
		out = append(out, eventAuthor{id: ev.ID, author: ev.Author, agent: ev.AgentID})
	}
	return out, nil
}

type eventAuthor struct{ id, author, agent string }

// summaryFacts counts what a summary covers: messages by role,
// participants, files changed and key topics.
func (s *Service) summaryFacts(ses Session, msgs []MessageWithParts, authors []eventAuthor) SessionSummary {
	out := SessionSummary{
		MessageCount:   len(msgs),
		MessagesByRole: map[string]int{},
		KeyTopics:      []string{},
		Participants:   []string{},
		FilesChanged:   []string{},
	}
	byEvent := map[string]eventAuthor{}
	for _, a := range authors {
		byEvent[a.id] = a
	}
	seenP := map[string]bool{}
	addP := func(p string) {
		if p == RoleUser {
			p = cmp.Or(ses.UserID, RoleUser)
		}
		if p != "" && !seenP[p] {
			seenP[p] = true
			out.Participants = append(out.Participants, p)
		}
	}
	files := map[string]bool{}
	for _, m := range msgs {
		out.MessagesByRole[m.Info.Role]++
		if m.Info.Role == RoleSystem {
			continue // context markers (clear, compaction): nobody's words
		}
		if a, ok := byEvent[m.Info.EventID]; ok && m.Info.EventID != "" {
			addP(cmp.Or(a.author, a.agent))
		} else {
			switch m.Info.Role {
			case RoleUser:
				addP(RoleUser)
			case RoleAssistant:
				addP(cmp.Or(m.Info.Agent, RoleAssistant))
			default:
				addP(m.Info.Role)
			}
		}
		for _, p := range m.Parts {
			if p.Type == PartPatch {
				for _, f := range p.Files {
					files[f] = true
				}
			}
		}
	}
	if len(msgs) > 0 {
		// Authors of events that recorded no message took part too.
		for _, a := range authors {
			addP(cmp.Or(a.author, a.agent))
		}
	}
	for f := range files {
		out.FilesChanged = append(out.FilesChanged, f)
	}
	slices.Sort(out.FilesChanged)
	weights := termWeights(messageTexts(msgs))
	out.KeyTopics = topTerms(weights, summaryTopics)
	if len(msgs) > 0 {
		out.LastMessageID = msgs[len(msgs)-1].Info.ID
	}
	return out
}

// extractiveSummary summarises without a model.
func (s *Service) extractiveSummary(ses Session, msgs []MessageWithParts, authors []eventAuthor, note string) SessionSummary {
	out := s.summaryFacts(ses, msgs, authors)
	out.Extractive, out.GeneratedAt, out.Note = true, s.nowMs(), note
	var b strings.Builder
	b.WriteString("Extractive summary (no model). ")
	if len(msgs) == 0 {
		b.WriteString("The session has no messages yet.")
		out.Text = b.String()
		return out
	}
	var roles []string
	for _, r := range slices.Sorted(maps.Keys(out.MessagesByRole)) {
		roles = append(roles, fmt.Sprintf("%d %s", out.MessagesByRole[r], r))
	}
	fmt.Fprintf(&b, "%d %s (%s)", len(msgs), plural(len(msgs), "message", "messages"), strings.Join(roles, ", "))
	if len(out.Participants) > 0 {
		fmt.Fprintf(&b, " by %s", strings.Join(out.Participants, ", "))
	}
	b.WriteString(".\n")
	if len(out.KeyTopics) > 0 {
		fmt.Fprintf(&b, "Key topics: %s.\n", strings.Join(out.KeyTopics, ", "))
	}
	if n := len(out.FilesChanged); n > 0 {
		shown := out.FilesChanged[:min(n, 10)]
		fmt.Fprintf(&b, "Files changed: %s", strings.Join(shown, ", "))
		if n > len(shown) {
			fmt.Fprintf(&b, " and %d more", n-len(shown))
		}
		b.WriteString(".\n")
	}
	texts := messageTexts(msgs)
	if pts := keySentences(texts, termWeights(texts), summaryPoints); len(pts) > 0 {
		b.WriteString("Key points:\n")
		for _, p := range pts {
			b.WriteString("- " + p + "\n")
		}
	}
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Info.Role == RoleUser {
			if t := strings.TrimSpace(texts[i]); t != "" {
				fmt.Fprintf(&b, "Latest request: %q\n", truncate(strings.Join(strings.Fields(t), " "), 200))
				break
			}
		}
	}
	out.Text = strings.TrimRight(b.String(), "\n")
	return out
}

// messageTexts is the text of each message that topics are drawn from:
// what the user and the agent wrote, and the tools' titles; not file
// contents, reasoning or tool output.
func messageTexts(msgs []MessageWithParts) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		var b strings.Builder
		for _, p := range m.Parts {
			switch {
			case p.Type == PartText && p.Metadata["synthetic"] != true:
				b.WriteString(p.Text + "\n")
			case p.Type == PartTool && p.State != nil && p.State.Title != "":
				b.WriteString(p.State.Title + "\n")
			}
		}
		out[i] = b.String()
	}
	return out
}

// stopwords are left out of key topics: function words, and words every
// coding conversation is full of.
var stopwords = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`
a about above after again against all also am an and any are aren as at be because been before being below
between both but by can cannot could couldn did didn do does doesn doing don down during each else etc even
ever every few for from further get gets got had hadn has hasn have haven having he her here hers herself him
himself his how however i if in into is isn it its itself just let lets like make makes made many may me might
more most much must my myself need needs no nor not now of off on once one only or other our ours ourselves
out over own please same shall she should shouldn so some such than thank thanks that the their theirs them
themselves then there these they this those through to too under until up upon us use used using very via
was wasn we were weren what when where which while who whom why will with within without won would wouldn
yes yet you your yours yourself yourselves okay ok sure done want wants see look looks try tried also still
something anything nothing thing things way well back first last new next now already able really going
lot bit ll ve re s t d m`) {
		m[w] = true
	}
	return m
}()

// terms splits text into lower-case words of three letters or more that
// are not stopwords or numbers; identifiers keep their underscores.
func terms(text string) []string {
	var out []string
	for _, w := range strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '_'
	}) {
		w = strings.Trim(w, "_")
		if len([]rune(w)) < 3 || stopwords[w] || strings.IndexFunc(w, unicode.IsLetter) < 0 {
			continue
		}
		out = append(out, w)
	}
	return out
}

// termWeights scores each term over the messages (each a document) by
// term frequency times a smoothed inverse document frequency: a term that
// recurs in a few messages weighs more than one spread thinly over all.
// A plural folds into its singular when both occur.
func termWeights(docs []string) map[string]float64 {
	tf := map[string]int{}
	df := map[string]int{}
	perDoc := make([][]string, len(docs))
	vocab := map[string]bool{}
	for i, d := range docs {
		perDoc[i] = terms(d)
		for _, t := range perDoc[i] {
			vocab[t] = true
		}
	}
	fold := func(t string) string {
		if len(t) > 3 && strings.HasSuffix(t, "s") && !strings.HasSuffix(t, "ss") && vocab[t[:len(t)-1]] {
			return t[:len(t)-1]
		}
		return t
	}
	for _, ts := range perDoc {
		seen := map[string]bool{}
		for _, t := range ts {
			t = fold(t)
			tf[t]++
			if !seen[t] {
				seen[t] = true
				df[t]++
			}
		}
	}
	n := float64(len(docs))
	w := make(map[string]float64, len(tf))
	for t, f := range tf {
		w[t] = float64(f) * (math.Log((1+n)/(1+float64(df[t]))) + 1)
	}
	return w
}

// topTerms returns the n heaviest terms, heaviest first; ties go to the
// alphabetically first, so the result is stable.
func topTerms(w map[string]float64, n int) []string {
	ts := slices.Collect(maps.Keys(w))
	slices.SortFunc(ts, func(a, b string) int {
		return cmp.Or(cmp.Compare(w[b], w[a]), strings.Compare(a, b))
	})
	if len(ts) > n {
		ts = ts[:n]
	}
	return ts
}

// keySentences picks the n sentences whose terms weigh most (per term,
// so long sentences do not win by length), in the order they were
// written.
func keySentences(texts []string, w map[string]float64, n int) []string {
	type cand struct {
		text  string
		score float64
		pos   int
	}
	var cands []cand
	seen := map[string]bool{}
	for _, t := range texts {
		for _, sen := range sentences(t) {
			if seen[sen] {
				continue
			}
			seen[sen] = true
			ts := terms(sen)
			if len(ts) < 3 {
				continue
			}
			score := 0.0
			for _, term := range ts {
				score += w[term]
				if len(term) > 3 && strings.HasSuffix(term, "s") {
					score += w[term[:len(term)-1]]
				}
			}
			cands = append(cands, cand{sen, score / math.Sqrt(float64(len(ts))), len(cands)})
		}
	}
	slices.SortStableFunc(cands, func(a, b cand) int { return cmp.Compare(b.score, a.score) })
	if len(cands) > n {
		cands = cands[:n]
	}
	slices.SortFunc(cands, func(a, b cand) int { return cmp.Compare(a.pos, b.pos) })
	out := make([]string, len(cands))
	for i, c := range cands {
		out[i] = c.text
	}
	return out
}

// sentences splits text at sentence ends and line breaks, dropping code
// blocks and keeping sentences of a readable length.
func sentences(text string) []string {
	var out []string
	inCode := false
	for _, line := range strings.Split(text, "\n") {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "```") {
			inCode = !inCode
			continue
		}
		if inCode || t == "" {
			continue
		}
		t = strings.TrimLeft(t, "#*->0123456789. ")
		start := 0
		for i := 0; i < len(t); i++ {
			if (t[i] == '.' || t[i] == '!' || t[i] == '?') && (i+1 == len(t) || t[i+1] == ' ') {
				out = append(out, t[start:i+1])
				start = i + 1
			}
		}
		if start < len(t) {
			out = append(out, t[start:])
		}
	}
	keep := out[:0]
	for _, s := range out {
		s = strings.TrimSpace(s)
		if len(s) >= 20 && len(s) <= 300 {
			keep = append(keep, s)
		}
	}
	return keep
}
