package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/sessiond/sessiond/daemon"
	"github.com/sessiond/sessiond/rpc"
	"github.com/sessiond/sessiond/session"
	"github.com/sessiond/sessiond/session/tools"
)

// The agent's verbs: send it a prompt and watch it work, stop its turn,
// read its todo list and what it spent.
func (a *app) agentCmds() []*cobra.Command {
	return []*cobra.Command{a.promptCmd(), a.abortCmd(), a.todoCmd(), a.usageCmd()}
}

// connectWith is connect with handlers for what the daemon sends the
// client: events, and requests such as session/requestPermission.
func (a *app) connectWith(ctx context.Context, opts rpc.ClientOptions) (*rpc.Client, error) {
	cfg, err := a.config()
	if err != nil {
		return nil, err
	}
	conn, err := daemon.Dial(ctx, cfg, daemon.DialOptions{AutoStart: true})
	if err != nil {
		return nil, err
	}
	return a.handshake(ctx, rpc.Dial(ctx, conn, opts))
}

// promptFlags are the flags of `sessiond prompt`.
type promptFlags struct {
	files                 []string
	agent, model, variant string
	reasoning             bool
	reasoningSet          bool // --reasoning was given, either way
}

// abortWait is how long an interrupted prompt waits for its turn to stop.
const abortWait = 30 * time.Second

func (a *app) promptCmd() *cobra.Command {
	var f promptFlags
	cmd := &cobra.Command{
		Use:   "prompt SESSION TEXT... [--file PATH]...",
		Short: "Send the agent a prompt and stream its answer as it works",
		Long: `Send a prompt to a session's agent and print its answer as the model writes
it. The words after SESSION are the prompt ("-" reads it from stdin); --file
attaches a file of the workspace. SESSION "new" creates a session in the
current directory first.

The answer goes to stdout. The tools the agent calls show on stderr as one
line each (· running, ✓ done, ✗ failed), and a footer gives the tokens, the
cost and the files changed. The model's reasoning shows dimmed when stdout is
a terminal; elsewhere only with --reasoning.

When the session's permission rules say to ask before a tool runs, you are
asked on the terminal: y allows it once, a always (for this session), n
rejects it, N always rejects it. Without a terminal on stdin the call is
rejected, and the agent is told so.

Ctrl-C aborts the turn: what the agent wrote and the files it changed so far
are kept ("sessiond log", "diff" and "revert" see them), and sessiond exits
with status 130. With no model configured it exits with status 3 and says
what to set.`,
		Example: `  sessiond prompt new 'add a --verbose flag to main.go'
  sessiond prompt ses_… 'why does the test fail?' --file test.log
  sessiond prompt ses_… --agent plan --model anthropic/claude-sonnet-4-5 'plan the refactor'
  git diff | sessiond prompt ses_… -`,
		Args: func(cmd *cobra.Command, args []string) error {
			switch {
			case len(args) == 0:
				return errors.New(`give a session (or "new") and the prompt: sessiond prompt SESSION TEXT...`)
			case len(args) == 1 && len(f.files) == 0:
				return fmt.Errorf("give the prompt after the session: sessiond prompt %s TEXT... (or attach a file with --file PATH)", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			f.reasoningSet = cmd.Flags().Changed("reasoning")
			return a.runPrompt(cmd.Context(), args[0], args[1:], f)
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&f.files, "file", nil, "attach a file of the workspace (repeatable)")
	fl.StringVar(&f.agent, "agent", "", "build (every tool) or plan (read-only tools); default: the session's")
	fl.StringVar(&f.model, "model", "", "the model as provider/model, e.g. openai/gpt-4o; default: the session's, else the configured one")
	fl.StringVar(&f.variant, "variant", "", "reasoning effort: low, medium or high")
	fl.BoolVar(&f.reasoning, "reasoning", false, "show the model's reasoning (default: only when stdout is a terminal)")
	return cmd
}

// promptParams builds the params of session/prompt: the text, then the
// files, made absolute from wd so they mean what they mean in the shell.
func promptParams(text string, files []string, wd string, f promptFlags) (session.PromptParams, error) {
	p := session.PromptParams{Agent: f.agent, Variant: f.variant}
	if strings.TrimSpace(text) != "" {
		p.Parts = append(p.Parts, session.PromptPart{Type: session.PartText, Text: text})
	}
	for _, file := range files {
		if file == "" {
			return p, errors.New("--file needs a path")
		}
		if !filepath.IsAbs(file) {
			file = filepath.Join(wd, file)
		}
		p.Parts = append(p.Parts, session.PromptPart{Type: session.PartFile, Path: file})
	}
	if len(p.Parts) == 0 {
		return p, errors.New("the prompt is empty: give some text or --file PATH")
	}
	if f.model != "" {
		m, err := parseModel(f.model)
		if err != nil {
			return p, err
		}
		p.Model = m
	}
	return p, nil
}

// parseModel reads --model provider/model; the model ID may hold slashes
// of its own (openrouter/anthropic/claude-sonnet-4-5).
func parseModel(s string) (*session.ModelRef, error) {
	prov, model, ok := strings.Cut(s, "/")
	if !ok || prov == "" || model == "" {
		return nil, fmt.Errorf("--model %q: give the provider and the model as provider/model, e.g. openai/gpt-4o or anthropic/claude-sonnet-4-5", s)
	}
	return &session.ModelRef{ProviderID: prov, ModelID: model}, nil
}

// titleFrom makes a new session's title of its first prompt.
func titleFrom(text string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(text), "\n")
	line = strings.TrimSpace(line)
	if r := []rune(line); len(r) > 60 {
		line = strings.TrimSpace(string(r[:59])) + "…"
	}
	return line
}

func (a *app) runPrompt(ctx context.Context, sessionArg string, words []string, f promptFlags) error {
	text := strings.Join(words, " ")
	fromStdin := len(words) == 1 && words[0] == "-"
	if fromStdin {
		b, err := io.ReadAll(a.stdin)
		if err != nil {
			return fmt.Errorf("read the prompt from stdin: %w", err)
		}
		text = string(b)
	}
	wd, err := cwd()
	if err != nil {
		return err
	}
	p, err := promptParams(text, f.files, wd, f)
	if err != nil {
		return err
	}

	outF, _ := a.stdout.(*os.File)
	errF, _ := a.stderr.(*os.File)
	ttyOut, ttyErr := outF != nil && isTerminal(outF), errF != nil && isTerminal(errF)
	color, _ := useColor("auto", ttyOut, os.Getenv("NO_COLOR"), os.Getenv("TERM"))
	colorErr, _ := useColor("auto", ttyErr, os.Getenv("NO_COLOR"), os.Getenv("TERM"))
	v := newStreamView(a.stdout, a.stderr)
	v.ttyErr, v.shared = ttyErr, sameFile(outF, errF)
	v.color, v.colorErr = color, colorErr
	v.reasoning = ttyOut
	if f.reasoningSet {
		v.reasoning = f.reasoning
	}
	v.quiet = a.json
	asker := &permAsker{v: v, in: a.stdin, tty: !fromStdin && isTerminal(a.stdin)}

	opts := rpc.ClientOptions{OnNotify: v.notify, OnCall: asker.onCall("prompt")}
	// The client closes when the context it was dialled with ends; it
	// must outlive ^C to abort the turn and hear that it stopped.
	c, err := a.connectWith(context.WithoutCancel(ctx), opts)
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(a.stderr, "sessiond: interrupted before the prompt was sent")
			return exitCode(130)
		}
		return err
	}
	defer c.Close()

	p.SessionID = sessionArg
	created := sessionArg == "new"
	if created {
		var s session.Session
		if err := c.Call(ctx, "session/create", session.CreateParams{Directory: wd, Title: titleFrom(text)}, &s); err != nil {
			return err
		}
		p.SessionID = s.ID
		v.note(fmt.Sprintf("new session %s in %s", s.ID, s.Directory))
	}
	v.expect(p)
	var st map[string]session.Status
	if err := c.Call(ctx, "session/status", map[string]string{"sessionID": p.SessionID}, &st); err != nil {
		return a.explain(ctx, c, err)
	}
	if s := st[p.SessionID]; s.State != "idle" && s.State != "" {
		v.note("the session is busy with another turn: this prompt waits in its queue (Ctrl-C drops it)")
	}

	started := time.Now()
	callCtx, cancelCall := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelCall()
	var m session.MessageWithParts
	done := make(chan error, 1)
	go func() { done <- c.Call(callCtx, "session/prompt", p, &m) }()
	interrupted := false
	select {
	case err = <-done:
	case <-ctx.Done():
		interrupted = true
		err = interruptPrompt(c, v, p.SessionID, cancelCall, done)
	}

	var again *interruptedAgain
	switch {
	case err == nil:
		// Done, even if ^C came as the turn ended: the answer is whole.
		v.finish(m, time.Since(started))
		if a.json {
			return a.printJSON(m)
		}
		return nil
	case errors.As(err, &again):
		v.close()
		fmt.Fprintf(a.stderr, "sessiond: interrupted again: not waiting for the turn to stop; `sessiond status %s` shows whether it still runs, `sessiond abort %s` stops it\n", p.SessionID, p.SessionID)
		return exitCode(130)
	case interrupted && (rpcCode(err) == rpc.CodeAborted || errors.Is(err, context.Canceled)):
		v.close()
		fmt.Fprintln(a.stderr, abortedLine(err, p.SessionID, v.started()))
		return exitCode(130)
	}
	v.close()
	err = a.explain(context.WithoutCancel(ctx), c, err)
	if code := rpcCode(err); created && (code == rpc.CodeNoProvider || code == rpc.CodeInvalidParams) {
		// Refused before it ran: the new session holds nothing.
		if c.Call(context.WithoutCancel(ctx), "session/delete", map[string]string{"sessionID": p.SessionID}, nil) == nil {
			fmt.Fprintf(a.stderr, "sessiond: %v\nsessiond: removed the new session %s: the prompt did not run\n", err, p.SessionID)
			return exitCode(3)
		}
	}
	return err
}

// sameFile reports whether stdout and stderr go to the same place (a
// terminal, or 2>&1), where their lines must be kept apart.
func sameFile(a, b *os.File) bool {
	if a == nil || b == nil {
		return false
	}
	fa, err := a.Stat()
	if err != nil {
		return false
	}
	fb, err := b.Stat()
	return err == nil && os.SameFile(fa, fb)
}

// interruptedAgain ends a prompt whose turn did not stop before a second
// ^C.
type interruptedAgain struct{}

func (*interruptedAgain) Error() string { return "interrupted again" }

// interruptPrompt stops the prompt after ^C and returns its answer: a
// running turn is aborted with session/abort (the daemon answers the
// prompt with Aborted once the partial message is kept); a prompt still
// waiting in the queue is cancelled, which drops it.
func interruptPrompt(c *rpc.Client, v *streamView, sessionID string, cancelCall context.CancelFunc, done <-chan error) error {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	v.breakLines()
	if v.started() {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), abortWait)
			defer cancel()
			var res session.AbortResult
			if err := c.Call(ctx, "session/abort", session.AbortParams{SessionID: sessionID}, &res); err != nil {
				cancelCall() // an older daemon, say: cancelling aborts it too
			}
		}()
	} else {
		cancelCall()
	}
	select {
	case err := <-done:
		return err
	case <-sig:
		return &interruptedAgain{}
	case <-time.After(abortWait):
		return fmt.Errorf("the turn did not stop within %s of Ctrl-C; `sessiond status %s` shows it, `sessiond abort %s` stops it", abortWait, sessionID, sessionID)
	}
}

// abortedLine says what an aborted prompt left behind.
func abortedLine(err error, sessionID string, started bool) string {
	var re *rpc.Error
	if errors.As(err, &re) {
		if id, _ := re.Data["messageID"].(string); id != "" {
			return fmt.Sprintf("aborted: the partial answer %s and the files changed so far are kept (`sessiond log %s`, `sessiond diff %s`)", id, sessionID, sessionID)
		}
	}
	if !started {
		return "aborted: the prompt was dropped before its turn started"
	}
	return fmt.Sprintf("aborted: what the turn did so far is kept (`sessiond log %s`)", sessionID)
}

// streamView prints a prompt's turn as its events arrive: the answer's
// text on stdout, its reasoning dimmed, a line per tool call on stderr.
// Events come from the client's notification goroutine, permission
// questions from its call goroutines, the end from the prompt's answer.
type streamView struct {
	mu       sync.Mutex
	out, err io.Writer

	ttyErr          bool // tool lines are finished in place
	shared          bool // stdout and stderr go to one place: keep their lines apart
	color, colorErr bool
	reasoning       bool // print reasoning parts
	quiet           bool // --json: print nothing but notes

	sessionID string
	want      string              // the signature of our prompt's user message
	users     map[string]*userMsg // the session's user messages, by ID
	asst      string              // our turn's assistant message, once seen

	printed  map[string]string // text printed so far, by part
	tools    map[string]int    // 1: its · line is printed, 2: its ✓/✗ line
	lastPart string            // the part stdout text last came from
	outMid   bool              // stdout is in the middle of a line
	openTool string            // the part whose · line waits for its mark (ttyErr)
	attempt  int               // the retry last told of
	asked    map[string]bool   // tool parts marked as waiting for permission
	done     bool
}

// userMsg collects a user message's parts, to recognise our prompt.
type userMsg struct {
	texts []string
	files int
	seen  map[string]bool
}

func newStreamView(out, err io.Writer) *streamView {
	return &streamView{
		out: out, err: err,
		users: map[string]*userMsg{}, printed: map[string]string{}, tools: map[string]int{}, asked: map[string]bool{},
	}
}

// expect sets the session and the prompt whose turn to show.
func (v *streamView) expect(p session.PromptParams) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.sessionID = p.SessionID
	u := &userMsg{}
	for _, part := range p.Parts {
		if part.Type == session.PartText {
			u.texts = append(u.texts, part.Text)
		} else {
			u.files++
		}
	}
	v.want = u.signature()
}

func (u *userMsg) signature() string {
	return fmt.Sprintf("%d\x00%s", u.files, strings.Join(u.texts, "\x00"))
}

// awaitAsked waits a little for the event that marks a tool part as
// asking for permission. The daemon sends it before the question, but
// events travel apart from requests: once it is here, so is everything
// the turn did before, and the question does not land among its lines.
func (v *streamView) awaitAsked(partID string) {
	for range 50 {
		v.mu.Lock()
		seen := v.asked[partID] || v.done
		v.mu.Unlock()
		if seen {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// started reports whether our turn's assistant message has appeared.
func (v *streamView) started() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.asst != ""
}

// notify takes one of the daemon's notifications.
func (v *streamView) notify(method string, params json.RawMessage) {
	if method != "session/event" {
		return
	}
	var ev struct {
		Type       string          `json:"type"`
		Properties json.RawMessage `json:"properties"`
	}
	if json.Unmarshal(params, &ev) != nil {
		return
	}
	switch ev.Type {
	case "message.updated":
		var p struct {
			Info session.Message `json:"info"`
		}
		if json.Unmarshal(ev.Properties, &p) == nil {
			v.message(p.Info)
		}
	case "part.updated":
		var p struct {
			Part session.Part `json:"part"`
		}
		if json.Unmarshal(ev.Properties, &p) == nil {
			v.part(p.Part)
		}
	case "session.status":
		var p struct {
			SessionID string         `json:"sessionID"`
			Status    session.Status `json:"status"`
		}
		if json.Unmarshal(ev.Properties, &p) == nil {
			v.status(p.SessionID, p.Status)
		}
	}
}

// message recognises our turn's assistant message: the first whose
// parent is a user message with our prompt's text (other clients may
// queue prompts in the same session).
func (v *streamView) message(m session.Message) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.done || m.SessionID != v.sessionID || v.sessionID == "" {
		return
	}
	switch m.Role {
	case session.RoleUser:
		if v.users[m.ID] == nil {
			v.users[m.ID] = &userMsg{seen: map[string]bool{}}
		}
	case session.RoleAssistant:
		if u := v.users[m.ParentID]; v.asst == "" && u != nil && u.signature() == v.want {
			v.asst = m.ID
		}
	}
}

func (v *streamView) part(p session.Part) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.done || p.SessionID != v.sessionID || v.sessionID == "" {
		return
	}
	if u := v.users[p.MessageID]; u != nil {
		if u.seen[p.ID] {
			return
		}
		u.seen[p.ID] = true
		switch {
		case p.Type == session.PartFile:
			u.files++
		case p.Type == session.PartText && p.Metadata["synthetic"] != true:
			u.texts = append(u.texts, p.Text)
		}
		return
	}
	if p.MessageID != v.asst || v.asst == "" {
		return
	}
	if p.Metadata["permission"] == "asked" {
		v.asked[p.ID] = true
	}
	if !v.quiet {
		v.show(p)
	}
}

// show prints what is new in a part of our turn.
func (v *streamView) show(p session.Part) {
	switch p.Type {
	case session.PartText, session.PartReasoning:
		if p.Type == session.PartReasoning && !v.reasoning {
			return
		}
		prev := v.printed[p.ID]
		if !strings.HasPrefix(p.Text, prev) || len(p.Text) == len(prev) {
			return
		}
		v.writeOut(p.ID, p.Text[len(prev):], p.Type == session.PartReasoning)
		v.printed[p.ID] = p.Text
	case session.PartTool:
		if p.State == nil {
			return
		}
		switch p.State.Status {
		case session.ToolRunning:
			if v.tools[p.ID] == 0 {
				v.toolStarted(p)
			}
		case session.ToolCompleted, session.ToolError:
			if v.tools[p.ID] < 2 {
				v.toolEnded(p)
			}
		}
	}
}

func (v *streamView) status(sessionID string, st session.Status) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.done || v.quiet || sessionID != v.sessionID || v.asst == "" {
		return
	}
	if st.State != "retry" || st.Attempt == v.attempt {
		return
	}
	v.attempt = st.Attempt
	wait := ""
	if st.Next > 0 {
		wait = " in " + fmtDuration(max(time.Until(time.UnixMilli(st.Next)), 0).Round(time.Second))
	}
	v.lineErr(fmt.Sprintf("· the model provider failed; retrying (attempt %d)%s", st.Attempt, wait))
}

// writeOut prints streamed text of a part on stdout.
func (v *streamView) writeOut(partID, s string, dim bool) {
	if v.openTool != "" {
		io.WriteString(v.err, "\n")
		v.openTool = ""
	}
	if partID != v.lastPart && v.outMid {
		io.WriteString(v.out, "\n")
	}
	v.lastPart = partID
	if dim && v.color {
		s = ansiDim + s + ansiReset
	}
	io.WriteString(v.out, s)
	v.outMid = !strings.HasSuffix(s, "\n") && !strings.HasSuffix(s, "\n"+ansiReset)
}

// lineErr prints a whole line on stderr, apart from stdout's text.
func (v *streamView) lineErr(line string) {
	v.endOutLine()
	if v.openTool != "" {
		io.WriteString(v.err, "\n")
		v.openTool = ""
	}
	io.WriteString(v.err, line+"\n")
}

// endOutLine ends stdout's line when stderr lines would land on it.
func (v *streamView) endOutLine() {
	if v.shared && v.outMid {
		io.WriteString(v.out, "\n")
		v.outMid = false
	}
}

func (v *streamView) toolStarted(p session.Part) {
	v.tools[p.ID] = 1
	line := "· " + toolLabel(p.Tool, p.State.Input)
	if !v.ttyErr {
		v.lineErr(line)
		return
	}
	v.endOutLine()
	if v.openTool != "" {
		io.WriteString(v.err, "\n")
	}
	io.WriteString(v.err, line)
	v.openTool = p.ID
}

func (v *streamView) toolEnded(p session.Part) {
	v.tools[p.ID] = 2
	line := toolEndLine(p, v.colorErr)
	if v.ttyErr && v.openTool == p.ID {
		io.WriteString(v.err, "\r\x1b[K"+line+"\n")
		v.openTool = ""
		return
	}
	v.lineErr(line)
}

// toolEndLine is a finished tool call's line: ✓ or ✗, what it did, and
// why it failed.
func toolEndLine(p session.Part, color bool) string {
	label := toolLabel(p.Tool, p.State.Input)
	if p.State.Status == session.ToolError {
		return paint(color, ansiRed, "✗") + " " + label + ": " + oneLine(p.State.Error, 120)
	}
	return paint(color, ansiGreen, "✓") + " " + label
}

// toolLabel names a tool call by its tool and what it acts on: bash's
// command, a file tool's path, a search's pattern.
func toolLabel(tool string, input json.RawMessage) string {
	var in map[string]any
	json.Unmarshal(input, &in)
	for _, k := range []string{"command", "path", "pattern", "description"} {
		if s, ok := in[k].(string); ok && strings.TrimSpace(s) != "" {
			return tool + " " + oneLine(s, 72)
		}
	}
	if todos, ok := in["todos"].([]any); ok {
		return fmt.Sprintf("%s (%s)", tool, plural(len(todos), "item"))
	}
	return tool
}

// oneLine shortens s to its first line and at most n runes.
func oneLine(s string, n int) string {
	s = strings.TrimSpace(s)
	line, _, more := strings.Cut(s, "\n")
	line = strings.TrimSpace(line)
	if r := []rune(line); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	if more {
		return line + " …"
	}
	return line
}

// note prints a message from sessiond itself on stderr.
func (v *streamView) note(s string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.lineErr("sessiond: " + s)
}

// breakLines ends the lines in progress, e.g. before ^C's message.
func (v *streamView) breakLines() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.endOutLine()
	if v.openTool != "" {
		io.WriteString(v.err, "\n")
		v.openTool = ""
	}
}

// close stops the view: later events print nothing; stdout's line ends.
func (v *streamView) close() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.stop()
}

func (v *streamView) stop() {
	if v.done {
		return
	}
	v.done = true
	if v.outMid {
		io.WriteString(v.out, "\n")
		v.outMid = false
	}
	if v.openTool != "" {
		io.WriteString(v.err, "\n")
		v.openTool = ""
	}
}

// finish prints what the events did not carry yet (the answer may come
// before the last events), then the footer.
func (v *streamView) finish(m session.MessageWithParts, took time.Duration) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.done {
		return
	}
	if !v.quiet {
		v.asst = m.Info.ID
		for _, p := range m.Parts {
			v.show(p)
		}
	}
	v.stop()
	if v.quiet {
		return
	}
	if e := m.Info.Error; e != nil {
		io.WriteString(v.err, "sessiond: "+e.Message+"\n")
	}
	io.WriteString(v.err, promptFooter(m, took)+"\n")
}

// promptFooter sums a turn up: model, tokens, cost, time, files changed.
func promptFooter(m session.MessageWithParts, took time.Duration) string {
	var parts []string
	if ref := m.Info.Model; ref != nil {
		parts = append(parts, ref.ProviderID+"/"+ref.ModelID)
	}
	if t := m.Info.Tokens; t != nil {
		parts = append(parts, tokensLine(t.Input, t.Output, t.Reasoning, t.Cache.Read, t.Cache.Write))
	}
	// Each step's patch names the files it changed, and the turn's all.
	files := slices.Compact(slices.Sorted(slices.Values(patchFiles(m))))
	parts = append(parts, fmtCost(m.Info.Cost), fmtDuration(took), filesChanged(files))
	return "── " + strings.Join(parts, " · ")
}

// tokensLine says how many tokens, split by kind.
func tokensLine(in, out, reasoning, cacheRead, cacheWrite int64) string {
	total := in + out + reasoning + cacheRead + cacheWrite
	kinds := []string{humanize.Comma(in) + " in", humanize.Comma(out) + " out"}
	for _, k := range []struct {
		n    int64
		name string
	}{{reasoning, "reasoning"}, {cacheRead, "cache read"}, {cacheWrite, "cache write"}} {
		if k.n != 0 {
			kinds = append(kinds, humanize.Comma(k.n)+" "+k.name)
		}
	}
	return fmt.Sprintf("%s tokens (%s)", humanize.Comma(total), strings.Join(kinds, ", "))
}

// fmtCost renders US dollars: cents, or tenths of a cent below one.
func fmtCost(c float64) string {
	switch {
	case c <= 0:
		return "$0.00"
	case c < 0.0001:
		return "<$0.0001"
	case c < 0.01:
		return fmt.Sprintf("$%.4f", c)
	}
	return fmt.Sprintf("$%.2f", c)
}

const ansiDim = "\x1b[2m"

// permAsker answers session/requestPermission by asking on the terminal,
// one question at a time.
type permAsker struct {
	v   *streamView
	in  io.Reader
	tty bool

	mu    sync.Mutex
	once  sync.Once
	lines chan string // stdin's lines, read by one goroutine for all questions
}

func (p *permAsker) ask(ctx context.Context, req session.PermissionRequest) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.v.awaitAsked(req.PartID)
	about := toolLabel(req.Tool, req.Input)
	if req.Pattern != "" {
		about = req.Tool + " " + oneLine(req.Pattern, 72)
	}
	if !p.tty {
		p.v.note(fmt.Sprintf("rejected %s: the session's rules say to ask before it runs, and stdin is not a terminal to ask on; run the prompt from a terminal, or allow %s in the session's permission rules", about, req.Tool))
		return session.OutcomeRejectOnce
	}
	p.once.Do(func() {
		p.lines = make(chan string)
		go func() {
			sc := bufio.NewScanner(p.in)
			for sc.Scan() {
				p.lines <- sc.Text()
			}
			close(p.lines)
		}()
	})
	question := fmt.Sprintf("? allow %s?  y once · a always · n reject · N always reject: ", about)
	p.v.ask(question)
	for {
		select {
		case <-ctx.Done(): // the turn was aborted, or the daemon gave up
			p.v.note("the question was withdrawn")
			return session.OutcomeCancelled
		case line, ok := <-p.lines:
			if !ok {
				p.v.note("stdin ended: rejected " + about)
				return session.OutcomeRejectOnce
			}
			if outcome, ok := permAnswer(line); ok {
				return outcome
			}
			p.v.ask("  answer y (allow once), a (always allow), n (reject) or N (always reject): ")
		}
	}
}

// ask prints a question on stderr and leaves the cursor after it.
func (v *streamView) ask(q string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.endOutLine()
	if v.openTool != "" {
		io.WriteString(v.err, "\n")
		v.openTool = ""
	}
	io.WriteString(v.err, q)
}

// permAnswer reads an answer to a permission question: y allow once, a
// always allow, n reject, N always reject.
func permAnswer(line string) (string, bool) {
	switch strings.TrimSpace(line) {
	case "y", "Y", "yes", "Yes", "YES":
		return session.OutcomeAllowOnce, true
	case "a", "A", "always", "Always":
		return session.OutcomeAllowAlways, true
	case "n", "no", "No":
		return session.OutcomeRejectOnce, true
	case "N", "never", "Never", "NO":
		return session.OutcomeRejectAlways, true
	}
	return "", false
}

func (a *app) abortCmd() *cobra.Command {
	var p session.AbortParams
	cmd := &cobra.Command{
		Use:   "abort SESSION",
		Short: "Stop the agent's running turn, keeping what it did so far",
		Long: `Stop the prompt turn a session's agent is running: the model call and any
running tool are cancelled, and the partial message is kept, marked aborted,
with the files the turn changed ("sessiond revert" undoes them). Prompts
queued behind it run next, unless --clear-queue drops them too.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p.SessionID = args[0]
			ctx := cmd.Context()
			return a.withClient(ctx, func(c *rpc.Client) error {
				var res session.AbortResult
				if err := c.Call(ctx, "session/abort", p, &res); err != nil {
					return err
				}
				if a.json {
					return a.printJSON(res)
				}
				for _, l := range abortLines(res, p) {
					fmt.Fprintln(a.stdout, l)
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&p.ClearQueue, "clear-queue", false, "also drop the prompts queued behind the turn")
	return cmd
}

// abortLines say what session/abort stopped.
func abortLines(res session.AbortResult, p session.AbortParams) []string {
	var out []string
	switch {
	case res.Aborted && res.MessageID != "":
		out = append(out, fmt.Sprintf("Aborted the running turn of %s; its partial message %s is kept (`sessiond log %s` shows it).", p.SessionID, res.MessageID, p.SessionID))
	case res.Aborted:
		out = append(out, fmt.Sprintf("Aborted the running turn of %s.", p.SessionID))
	default:
		out = append(out, fmt.Sprintf("No turn of %s was running; nothing to abort.", p.SessionID))
	}
	switch {
	case res.Cleared > 0:
		out = append(out, fmt.Sprintf("Dropped %s from the queue.", plural(res.Cleared, "queued prompt")))
	case p.ClearQueue:
		out = append(out, "No prompt was queued.")
	}
	return out
}

func (a *app) todoCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "todo SESSION",
		Short: "Show the agent's todo list for a session",
		Long: `Show the todo list the agent keeps with its todowrite tool as it works:
[x] done, [>] in progress, [ ] pending, [-] cancelled.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return a.withClient(ctx, func(c *rpc.Client) error {
				todos := []tools.Todo{}
				if err := c.Call(ctx, "session/todo", session.TodoParams{SessionID: args[0]}, &todos); err != nil {
					return err
				}
				if a.json {
					return a.printJSON(todos)
				}
				if len(todos) == 0 {
					fmt.Fprintf(a.stdout, "No todos: the agent of %s has not written a todo list (it does for work of several steps).\n", args[0])
					return nil
				}
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				for _, t := range todos {
					fmt.Fprintf(tw, "%s %s\t%s\n", todoMark(t.Status), oneLine(t.Content, 100), t.Priority)
				}
				tw.Flush()
				fmt.Fprintln(a.stdout, todoSummary(todos))
				return nil
			})
		},
	}
}

// todoMark is a todo's status as a checkbox.
func todoMark(status string) string {
	switch status {
	case tools.TodoCompleted:
		return "[x]"
	case tools.TodoInProgress:
		return "[>]"
	case tools.TodoPending:
		return "[ ]"
	case tools.TodoCancelled:
		return "[-]"
	}
	return "[?]"
}

// todoSummary counts a todo list by status.
func todoSummary(todos []tools.Todo) string {
	n := map[string]int{}
	for _, t := range todos {
		n[t.Status]++
	}
	s := fmt.Sprintf("── %d of %d done", n[tools.TodoCompleted], len(todos))
	for _, k := range []struct{ status, name string }{
		{tools.TodoInProgress, "in progress"}, {tools.TodoPending, "pending"}, {tools.TodoCancelled, "cancelled"},
	} {
		if n[k.status] > 0 {
			s += fmt.Sprintf(", %d %s", n[k.status], k.name)
		}
	}
	return s
}

func (a *app) usageCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "usage SESSION",
		Short: "Show the tokens a session's agent spent and what they cost, by model",
		Long: `Show the tokens every model call of a session's agent spent, aborted turns'
included, and their cost in US dollars where the model's price is known, in
total and by model.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return a.withClient(ctx, func(c *rpc.Client) error {
				var u session.UsageResult
				if err := c.Call(ctx, "session/usage", session.UsageParams{SessionID: args[0]}, &u); err != nil {
					return err
				}
				if a.json {
					return a.printJSON(u)
				}
				writeUsage(a.stdout, args[0], u)
				return nil
			})
		},
	}
}

// writeUsage renders `sessiond usage`: the totals, then a row per model.
func writeUsage(w io.Writer, sessionID string, u session.UsageResult) {
	if u.TotalTokens == 0 && len(u.ByModel) == 0 {
		fmt.Fprintf(w, "No tokens spent yet in %s: `sessiond prompt %s TEXT` runs the agent.\n", sessionID, sessionID)
		return
	}
	fmt.Fprintf(w, "tokens  %s\n", tokensLine(u.Input, u.Output, u.Reasoning, u.CacheRead, u.CacheWrite))
	fmt.Fprintf(w, "cost    %s\n\n", fmtCost(u.TotalCost))
	rows := [][]string{{"MODEL", "TOKENS", "INPUT", "OUTPUT", "REASONING", "CACHE READ", "CACHE WRITE", "COST"}}
	models := make([]string, 0, len(u.ByModel))
	for m := range u.ByModel {
		models = append(models, m)
	}
	slices.Sort(models)
	for _, name := range models {
		m := u.ByModel[name]
		rows = append(rows, []string{name, humanize.Comma(m.TotalTokens), humanize.Comma(m.Input), humanize.Comma(m.Output),
			humanize.Comma(m.Reasoning), humanize.Comma(m.CacheRead), humanize.Comma(m.CacheWrite), fmtCost(m.Cost)})
	}
	for _, l := range table(rows) {
		fmt.Fprintln(w, l)
	}
}

// table aligns rows in columns two spaces apart: the first column to the
// left, the others (numbers) to the right.
func table(rows [][]string) []string {
	var width []int
	for _, r := range rows {
		for i, cell := range r {
			if i == len(width) {
				width = append(width, 0)
			}
			width[i] = max(width[i], utf8.RuneCountInString(cell))
		}
	}
	out := make([]string, len(rows))
	for j, r := range rows {
		var b strings.Builder
		for i, cell := range r {
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(cell))
			switch {
			case i == 0:
				b.WriteString(cell + pad)
			default:
				b.WriteString("  " + pad + cell)
			}
		}
		out[j] = b.String()
	}
	return out
}

// onCall answers the daemon's session/requestPermission requests with
// asker; verb names the command in the error for any other request.
func (a *permAsker) onCall(verb string) func(ctx context.Context, method string, params json.RawMessage) (any, error) {
	return func(ctx context.Context, method string, params json.RawMessage) (any, error) {
		if method != "session/requestPermission" {
			return nil, rpc.NewError(rpc.CodeMethodNotFound, "sessiond %s answers session/requestPermission only, not %q", verb, method).With("method", method)
		}
		var req session.PermissionRequest
		if err := json.Unmarshal(params, &req); err != nil {
			return nil, rpc.NewError(rpc.CodeInvalidParams, "session/requestPermission: %v", err)
		}
		return session.PermissionResult{Outcome: a.ask(ctx, req)}, nil
	}
}
