package session

import (
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/session/provider"
	pt "github.com/sessiond/sessiond/session/provider/providertest"
)

// say records a message through the event log: author "user" makes a
// user message, anyone else an assistant one.
func (f *agentFixture) say(sessionID, author, text string) {
	f.t.Helper()
	f.appendEvent(sessionID, Event{Author: author, Content: []Part{{Type: PartText, Text: text}}})
}

func (f *agentFixture) summarize(p SummarizeParams) SessionSummary {
	f.t.Helper()
	sum, err := f.svc.Summarize(f.ctx, p)
	if err != nil {
		f.t.Fatalf("Summarize(%+v): %v", p, err)
	}
	return sum
}

// TestSummarizeExtractive: with no model the summary is extractive and
// says so: counts by role, participants (the session's user, event
// authors), files changed from patch parts, key topics by term weight,
// the sentences that carry them, the latest request. Nothing is stored.
func TestSummarizeExtractive(t *testing.T) {
	t.Parallel()
	f := newAgentFixture(t, userLoader(t, t.TempDir(), nil))
	ses := f.create(CreateParams{UserID: "ann"})

	empty := f.summarize(SummarizeParams{SessionID: ses.ID})
	if !empty.Extractive || empty.MessageCount != 0 || !strings.Contains(empty.Text, "no messages yet") {
		t.Errorf("empty session: %+v", empty)
	}

	f.say(ses.ID, "user", "The snapshot journal is lost after a crash. Please fix the snapshot journal recovery so nothing is lost.")
	f.say(ses.ID, "reviewer", "I read the journal code: the snapshot restore renames before fsync, so a crash loses the journal entries.")
	if _, err := f.svc.Upload(f.ctx, UploadParams{SessionID: ses.ID, Path: "store/journal.go", Content: base64.StdEncoding.EncodeToString([]byte("package store\n"))}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Shell(f.ctx, ShellParams{SessionID: ses.ID, Command: "echo journal > notes.txt"}); err != nil {
		t.Fatal(err)
	}
	f.say(ses.ID, "user", "Now make the journal replay idempotent, so that a second crash during replay is harmless.")

	sum := f.summarize(SummarizeParams{SessionID: ses.ID})
	if !sum.Extractive || sum.IsIncremental || sum.TokensUsed != 0 || sum.Model != nil || !strings.Contains(sum.Note, "without a model: no model provider") {
		t.Errorf("summary flags = %+v", sum)
	}
	if sum.MessageCount != 5 || sum.MessagesByRole[RoleUser] != 4 || sum.MessagesByRole[RoleAssistant] != 1 {
		t.Errorf("counts = %d %v", sum.MessageCount, sum.MessagesByRole)
	}
	if !slices.Equal(sum.Participants, []string{"ann", "reviewer"}) {
		t.Errorf("participants = %v", sum.Participants)
	}
	if !slices.Equal(sum.FilesChanged, []string{"notes.txt", "store/journal.go"}) {
		t.Errorf("files changed = %v", sum.FilesChanged)
	}
	if len(sum.KeyTopics) < 3 || sum.KeyTopics[0] != "journal" || !slices.Contains(sum.KeyTopics[:3], "snapshot") || !slices.Contains(sum.KeyTopics, "crash") {
		t.Errorf("key topics = %v", sum.KeyTopics)
	}
	for _, stop := range []string{"the", "please", "so", "now"} {
		if slices.Contains(sum.KeyTopics, stop) {
			t.Errorf("key topics hold the stopword %q: %v", stop, sum.KeyTopics)
		}
	}
	for _, want := range []string{
		"Extractive summary (no model). 5 messages (1 assistant, 4 user) by ann, reviewer.",
		"Key topics: journal, ",
		"Files changed: notes.txt, store/journal.go.",
		"Key points:\n- ",
		`Latest request: "Now make the journal replay idempotent, so that a second crash during replay is harmless."`,
	} {
		if !strings.Contains(sum.Text, want) {
			t.Errorf("text lacks %q:\n%s", want, sum.Text)
		}
	}
	if st := f.state(ses.ID, SummaryStateKey); len(st) != 0 {
		t.Errorf("an extractive summary was stored: %v", st)
	}
	if _, err := f.svc.Summarize(f.ctx, SummarizeParams{SessionID: ses.ID, Model: &ModelRef{ProviderID: "none", ModelID: "m"}}); !isNoProvider(err) {
		t.Errorf("a model asked for and not configured: %v", err)
	}
	if _, err := f.svc.Summarize(f.ctx, SummarizeParams{SessionID: ses.ID, MessagesPerCall: -1}); err == nil {
		t.Error("messagesPerCall -1 was accepted")
	}
}

func isNoProvider(err error) bool {
	var npe *provider.NoProviderError
	return errors.As(err, &npe)
}

// TestSummarizeModelIncremental: with a model the first summary reads the
// messages; it is stored, and the next one sends the model the previous
// summary and only the messages since. Fewer new messages than the
// minimum return the stored summary with the count pending, no call
// made. A revert that hides summarised messages starts over. The calls'
// tokens count in the session's usage.
func TestSummarizeModelIncremental(t *testing.T) {
	t.Parallel()
	use := pt.Usage{Input: 100, Output: 20}
	srv := pt.NewOpenAI(t,
		pt.Reply(pt.Text("First summary: "), pt.Text("the journal fix."), pt.Tokens(use), pt.Finish("stop")),
		pt.Reply(pt.Text("Second summary: journal fix and replay."), pt.Tokens(use), pt.Finish("stop")),
		pt.Reply(pt.Text("Third summary, from scratch."), pt.Tokens(use), pt.Finish("stop")),
	)
	f := newAgentFixture(t, userLoader(t, t.TempDir(), fakeModelConfig(srv)))
	ses := f.create(CreateParams{})
	for i, text := range []string{"alpha: fix the journal", "beta: journal fixed", "gamma: add a test", "delta: test added"} {
		f.say(ses.ID, []string{"user", "build"}[i%2], text)
	}

	first := f.summarize(SummarizeParams{SessionID: ses.ID})
	msgs := f.messages(ses.ID)
	if first.Text != "First summary: the journal fix." || first.Extractive || first.IsIncremental || first.MessageCount != 4 ||
		first.LastMessageID != msgs[3].Info.ID || first.TokensUsed != 120 || first.Model == nil || first.Model.ModelID != "gpt-4o-mini" {
		t.Fatalf("first = %+v", first)
	}
	if !slices.Equal(first.Participants, []string{"user", "build"}) || first.GeneratedAt == 0 {
		t.Errorf("first participants %v, generatedAt %d", first.Participants, first.GeneratedAt)
	}
	body := string(srv.Requests()[0].Body)
	if !strings.Contains(body, "alpha: fix the journal") || !strings.Contains(body, "delta: test added") || strings.Contains(body, "<summary>") {
		t.Errorf("first request = %s", body)
	}
	if st := f.state(ses.ID, SummaryStateKey); st[SummaryStateKey] == nil {
		t.Errorf("the summary was not stored: %v", st)
	}

	// Nothing new, then too little new: the stored summary, no call.
	if again := f.summarize(SummarizeParams{SessionID: ses.ID}); again.Text != first.Text || again.Pending != 0 {
		t.Errorf("again = %+v", again)
	}
	f.say(ses.ID, "user", "epsilon: now the replay")
	f.say(ses.ID, "build", "zeta: replay started")
	if pending := f.summarize(SummarizeParams{SessionID: ses.ID}); pending.Text != first.Text || pending.Pending != 2 || pending.MessageCount != 4 {
		t.Errorf("pending = %+v", pending)
	}
	if n := len(srv.Requests()); n != 1 {
		t.Fatalf("%d requests, want 1", n)
	}

	f.say(ses.ID, "user", "eta: make it idempotent")
	f.say(ses.ID, "build", "theta: replay is idempotent")
	second := f.summarize(SummarizeParams{SessionID: ses.ID})
	if second.Text != "Second summary: journal fix and replay." || !second.IsIncremental || second.MessageCount != 8 || second.TokensUsed != 240 {
		t.Fatalf("second = %+v", second)
	}
	body = string(srv.Requests()[1].Body)
	if !strings.Contains(body, "<summary>") || !strings.Contains(body, "First summary: the journal fix.") ||
		!strings.Contains(body, "epsilon: now the replay") || !strings.Contains(body, "theta: replay is idempotent") ||
		strings.Contains(body, "alpha: fix the journal") {
		t.Errorf("second request = %s", body)
	}
	u, err := f.svc.Usage(f.ctx, UsageParams{SessionID: ses.ID})
	if err != nil {
		t.Fatal(err)
	}
	if u.TotalTokens != 240 || u.ByModel["fake/gpt-4o-mini"].TotalTokens != 240 {
		t.Errorf("usage = %+v", u)
	}

	// A revert hides the last summarised message: the next summary
	// starts again from what the session shows.
	msgs = f.messages(ses.ID)
	if _, err := f.svc.Revert(f.ctx, RevertParams{SessionID: ses.ID, MessageID: msgs[6].Info.ID}); err != nil {
		t.Fatal(err)
	}
	third := f.summarize(SummarizeParams{SessionID: ses.ID})
	body = string(srv.Requests()[2].Body)
	if third.Text != "Third summary, from scratch." || third.IsIncremental || third.MessageCount != 6 || third.TokensUsed != 120 ||
		strings.Contains(body, "<summary>") || !strings.Contains(body, "alpha: fix the journal") || strings.Contains(body, "eta: make it idempotent") {
		t.Errorf("third = %+v; request %s", third, body)
	}

	// Extractive on request, with a model configured: no call.
	if ex := f.summarize(SummarizeParams{SessionID: ses.ID, Extractive: true}); !ex.Extractive || len(srv.Requests()) != 3 {
		t.Errorf("extractive = %+v", ex)
	}
	res, err := f.svc.Command(f.ctx, CommandParams{SessionID: ses.ID, Name: "summarize", Args: args(t, `"extractive"`)})
	if err != nil || res.Summary == nil || !res.Summary.Extractive {
		t.Errorf("/summarize extractive = %+v, %v", res, err)
	}
}

// TestSummarizeChunksAndConfig: the config file sets the minimum and the
// messages per call; more messages than one call takes are folded in
// over several calls, each building on the last; a params value beats
// the config; a failed call stores nothing and is a ProviderError.
func TestSummarizeChunksAndConfig(t *testing.T) {
	t.Parallel()
	srv := pt.NewOpenAI(t,
		pt.Reply(pt.Text("S1"), pt.Finish("stop")),
		pt.Reply(pt.Text("S2"), pt.Finish("stop")),
		pt.Reply(pt.Text("S3"), pt.Finish("stop")),
		pt.Fail(400, "bad request"),
	)
	f := newAgentFixture(t, userLoader(t, t.TempDir(), fakeModelConfig(srv)))
	f.write(".sessiond/config.json", `{"summary": {"minMessages": 1, "messagesPerCall": 2}}`)
	ses := f.create(CreateParams{})

	short := f.create(CreateParams{})
	f.say(short.ID, "user", "only one message")
	if sum := f.summarize(SummarizeParams{SessionID: short.ID, MinMessages: 3}); !sum.Extractive || !strings.Contains(sum.Note, "fewer than the 3") {
		t.Errorf("below the minimum: %+v", sum)
	}

	for _, text := range []string{"m1", "m2", "m3", "m4", "m5"} {
		f.say(ses.ID, "user", "message "+text)
	}
	sum := f.summarize(SummarizeParams{SessionID: ses.ID})
	reqs := srv.Requests()
	if sum.Text != "S3" || !sum.IsIncremental || sum.MessageCount != 5 || len(reqs) != 3 {
		t.Fatalf("summary = %+v after %d requests", sum, len(reqs))
	}
	for i, want := range []struct{ has, hasNot string }{
		{"message m2", "message m3"},
		{"<summary>\\nS1\\n</summary>", "message m2"},
		{"<summary>\\nS2\\n</summary>", "message m4"},
	} {
		body := string(reqs[i].Body)
		if !strings.Contains(body, want.has) || strings.Contains(body, want.hasNot) {
			t.Errorf("request %d: want %q and not %q: %s", i, want.has, want.hasNot, body)
		}
	}

	f.say(ses.ID, "user", "message m6")
	_, err := f.svc.Summarize(f.ctx, SummarizeParams{SessionID: ses.ID})
	var pe *provider.ProviderError
	if !errors.As(err, &pe) || pe.Status != 400 {
		t.Fatalf("a failed call: %v (%T)", err, err)
	}
	if kept := f.summarize(SummarizeParams{SessionID: ses.ID, MinMessages: 5}); kept.Text != "S3" || kept.Pending != 1 {
		t.Errorf("after the failure: %+v", kept)
	}
}

func TestTermWeightsAndSentences(t *testing.T) {
	t.Parallel()
	docs := []string{
		"The daemon reverts files. Files are reverted by the daemon.",
		"Revert the file via the journal; the journal is replayed.",
		"Nothing here matters at all, really.",
	}
	w := termWeights(docs)
	if w["file"] == 0 || w["files"] != 0 {
		t.Errorf("plural not folded: file %v files %v", w["file"], w["files"])
	}
	// file: 3 uses in 2 of 3 messages; daemon and journal: 2 uses in one
	// message each, a tie the alphabet breaks; revert: 2 uses in 2.
	if top := topTerms(w, 4); !slices.Equal(top, []string{"file", "daemon", "journal", "revert"}) {
		t.Errorf("top terms = %v", top)
	}
	if got := terms("the 42 foo_bar Übung ok abc1 __x__"); !slices.Equal(got, []string{"foo_bar", "übung", "abc1"}) {
		t.Errorf("terms = %q", got)
	}
	got := sentences("# Title that is long enough\n```\ncode line that is long enough to count\n```\nFirst sentence is here. Second one, too!\nshort\n- a list item that is long enough")
	want := []string{"Title that is long enough", "First sentence is here.", "a list item that is long enough"}
	if !slices.Equal(got, want) {
		t.Errorf("sentences = %q, want %q", got, want)
	}
}
