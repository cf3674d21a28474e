package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/sessiond/sessiond/daemon"
	"github.com/sessiond/sessiond/rpc"
	"github.com/sessiond/sessiond/session"
	"github.com/sessiond/sessiond/workspace/snapshot"
)

// The verbs of the time machine: run a command as a turn, read the turns,
// diff them, revert, unrevert and fork, and collect what nothing refers to.
func (a *app) timeMachineCmds() []*cobra.Command {
	return []*cobra.Command{a.shellCmd(), a.logCmd(), a.diffCmd(), a.revertCmd(), a.unrevertCmd(), a.forkCmd(), a.gcCmd(), a.journalCmd()}
}

// exitCode ends the process with a given status and no further message:
// `shell` passes on the command's own exit status.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// hintError puts a message that says what to do in place of a protocol
// error's, keeping the error underneath so main still exits 3.
type hintError struct {
	msg string
	err error
}

func (e *hintError) Error() string { return e.msg }
func (e *hintError) Unwrap() error { return e.err }

// rpcCode returns the protocol error code inside err, or 0.
func rpcCode(err error) int64 {
	var re *rpc.Error
	if errors.As(err, &re) {
		return re.Code
	}
	return 0
}

func (a *app) shellCmd() *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "shell SESSION -- COMMAND...",
		Short: "Run a shell command in a session's directory as a recorded turn",
		Long: `Run a command with your shell in the session's directory, as a turn of the
session: its output and exit code are recorded, and the files it changes are
snapshotted, so "sessiond diff" shows them and "sessiond revert" undoes them.

Give the command after "--" as words (each is quoted for the shell) or as one
quoted string (passed to the shell as is, so pipes and globs work):

  sessiond shell ses_… -- make test
  sessiond shell ses_… 'go test ./... 2>&1 | tail -5'

The command's output goes to stdout; a footer with the exit code, duration and
files changed goes to stderr. sessiond exits with the command's exit status
(124 when it timed out, 128+N when signal N ended it), or 1 when it could not
run it.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 {
				return errors.New("give a session and the command to run: sessiond shell SESSION -- COMMAND...")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if timeout < 0 || timeout > session.MaxShellTimeout {
				return fmt.Errorf("--timeout %s: give a duration between 0 (the default, 2m) and %s, e.g. 30s or 10m", timeout, session.MaxShellTimeout)
			}
			ctx := cmd.Context()
			p := session.ShellParams{SessionID: args[0], Command: commandLine(args[1:]), TimeoutMs: timeout.Milliseconds()}
			var m session.MessageWithParts
			output, started, stopped := "", false, false
			// The client closes when the context it was dialled with ends;
			// it must outlive ^C for the $/cancelRequest to reach the daemon.
			err := a.withClient(context.WithoutCancel(ctx), func(c *rpc.Client) error {
				if err := ctx.Err(); err != nil {
					return err // ^C while connecting: nothing ran
				}
				started = true
				if err := c.Call(ctx, "session/shell", p, &m); err != nil {
					if ctx.Err() != nil {
						stopped = awaitIdle(c, p.SessionID)
					}
					return err
				}
				output = a.wholeOutput(ctx, c, m)
				return nil
			})
			if ctx.Err() != nil && err != nil {
				switch {
				case !started:
					fmt.Fprintln(a.stderr, "sessiond: interrupted before the command started")
				case stopped:
					fmt.Fprintf(a.stderr, "sessiond: interrupted: the command was stopped; what it printed is recorded (sessiond log %s)\n", p.SessionID)
				default:
					fmt.Fprintf(a.stderr, "sessiond: interrupted, but the command still runs until it ends or times out (sessiond status %s)\n", p.SessionID)
				}
				return exitCode(130)
			}
			if err != nil {
				// Exit 1, not 3: scripts read any other status as the command's.
				return errors.New(err.Error())
			}
			info, _ := shellPart(m)
			if a.json {
				if err := a.printJSON(m); err != nil {
					return err
				}
			} else {
				io.WriteString(a.stdout, output)
				sep := ""
				if output != "" && !strings.HasSuffix(output, "\n") {
					sep = "\n" // keep stdout as the command wrote it
				}
				fmt.Fprintf(a.stderr, "%s── %s · %s\n", sep, shellFooter(info, patchFiles(m)), m.Info.ID)
			}
			if code := exitStatus(info); code != 0 {
				return exitCode(code)
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "stop the command after this long, e.g. 30s or 10m (default 2m)")
	cmd.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return newUsageError(cmd, err.Error()+" (put the command after --: sessiond shell SESSION -- COMMAND...)")
	})
	return cmd
}

// awaitIdle waits a little for a session to go idle: an interrupted
// `shell` holds the connection open until the daemon has had the
// $/cancelRequest and stopped the command (a client that just hangs up
// gets its requests finished, not cancelled).
func awaitIdle(c *rpc.Client, sessionID string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		var st map[string]session.Status
		if err := c.Call(ctx, "session/status", map[string]string{"sessionID": sessionID}, &st); err != nil {
			return false
		}
		if st[sessionID].State == "idle" {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// wholeOutput returns a shell turn's output, fetching it from the store
// when the message holds only its head and tail.
func (a *app) wholeOutput(ctx context.Context, c *rpc.Client, m session.MessageWithParts) string {
	info, ok := shellPart(m)
	if !ok || !info.Truncated {
		return info.Output
	}
	var res session.OutputResult
	if err := c.Call(ctx, "session/output", session.OutputParams{SessionID: m.Info.SessionID, PartID: info.PartID}, &res); err != nil {
		fmt.Fprintf(a.stderr, "sessiond: the output was cut and the whole of it could not be read (%v); showing its head and tail\n", err)
		return info.Output
	}
	return res.Output
}

// commandLine makes one shell command line of the words after SESSION: a
// single word is a command line already; several are quoted one by one.
func commandLine(words []string) string {
	if len(words) == 1 {
		return words[0]
	}
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = shellQuote(w)
	}
	return strings.Join(q, " ")
}

// shellQuote quotes s for a POSIX shell when it holds anything but plain
// characters.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_@%+=:,./-", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// shellInfo is what a shell turn's tool part says about the command.
type shellInfo struct {
	PartID    string
	Command   string
	Status    string // completed or error
	Error     string
	Output    string
	ExitCode  int
	Duration  time.Duration
	Signal    string
	TimedOut  bool
	Aborted   bool
	Truncated bool
	Bytes     int64 // the whole output's size
}

// shellPart finds the shell tool part of a message.
func shellPart(m session.MessageWithParts) (shellInfo, bool) {
	for _, p := range m.Parts {
		if info, ok := shellInfoOf(p); ok {
			return info, true
		}
	}
	return shellInfo{}, false
}

// shellInfoOf reads a shell tool part.
func shellInfoOf(p session.Part) (shellInfo, bool) {
	if p.Type != session.PartTool || p.Tool != "shell" || p.State == nil {
		return shellInfo{}, false
	}
	info := shellInfo{PartID: p.ID, Command: p.State.Title, Status: p.State.Status, Error: p.State.Error, Output: p.State.Output}
	if info.Command == "" {
		var in struct{ Command string }
		json.Unmarshal(p.State.Input, &in)
		info.Command = in.Command
	}
	num := func(k string) float64 { f, _ := p.Metadata[k].(float64); return f }
	flag := func(k string) bool { b, _ := p.Metadata[k].(bool); return b }
	info.ExitCode = int(num("exitCode"))
	info.Duration = time.Duration(num("durationMs")) * time.Millisecond
	info.Bytes = int64(num("bytes"))
	info.Signal, _ = p.Metadata["signal"].(string)
	info.TimedOut, info.Aborted, info.Truncated = flag("timedOut"), flag("aborted"), flag("truncated")
	return info, true
}

// exitStatus is what `sessiond shell` exits with, as a shell would report
// the command: its own status, 124 for a timeout (as timeout(1)), 128+N for
// signal N, 130 for an abort (as ^C), 1 when it could not start.
func exitStatus(info shellInfo) int {
	switch {
	case info.TimedOut:
		return 124
	case info.Aborted: // the daemon stopped it (with a signal of its own)
		return 130
	case info.Signal != "":
		if n := signalNumber(info.Signal); n > 0 {
			return 128 + n
		}
		return 1
	case info.ExitCode > 0:
		return min(info.ExitCode, 255)
	case info.Status == "error" || info.Status == "" || info.ExitCode < 0:
		return 1
	}
	return 0
}

// signalNumber maps a signal's name as Go prints it ("killed") back to
// its number, or 0.
func signalNumber(name string) int {
	for n := 1; n < 32; n++ {
		if syscall.Signal(n).String() == name {
			return n
		}
	}
	return 0
}

// shellFooter sums a shell turn up in one line.
func shellFooter(info shellInfo, files []string) string {
	return fmt.Sprintf("%s · %s · %s", shellOutcome(info), fmtDuration(info.Duration), filesChanged(files))
}

// shellOutcome says how a command ended.
func shellOutcome(info shellInfo) string {
	switch {
	case info.TimedOut:
		return fmt.Sprintf("timed out (exit %d)", exitStatus(info))
	case info.Aborted:
		return fmt.Sprintf("stopped (exit %d)", exitStatus(info))
	case info.Signal != "":
		return fmt.Sprintf("ended by signal: %s (exit %d)", info.Signal, exitStatus(info))
	case info.Status == "error" && info.ExitCode <= 0:
		return "could not run: " + cmp.Or(info.Error, "unknown error")
	}
	return fmt.Sprintf("exit %d", info.ExitCode)
}

// filesChanged says how many files changed, naming the first few.
func filesChanged(files []string) string {
	switch len(files) {
	case 0:
		return "no files changed"
	case 1:
		return "1 file changed: " + files[0]
	}
	s := fmt.Sprintf("%s changed: %s", plural(len(files), "file"), strings.Join(files[:min(len(files), 3)], ", "))
	if len(files) > 3 {
		s += fmt.Sprintf(" and %d more", len(files)-3)
	}
	return s
}

// plural counts things: "1 file", "2 files".
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

func fmtDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// patchFiles lists the files a message's patch parts name.
func patchFiles(m session.MessageWithParts) []string {
	var files []string
	for _, p := range m.Parts {
		if p.Type == session.PartPatch {
			files = append(files, p.Files...)
		}
	}
	return files
}

func (a *app) logCmd() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "log SESSION",
		Short: "Show a session's turns: commands, exit codes, output and files changed",
		Long: `Show a session's messages, oldest first, one block per message, with the
message IDs that "sessiond diff", "revert" and "fork" take. Messages hidden
by a revert are left out; --all shows them, marked reverted.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return a.withClient(ctx, func(c *rpc.Client) error {
				var s session.Session
				if err := c.Call(ctx, "session/get", map[string]string{"sessionID": args[0]}, &s); err != nil {
					return err
				}
				var msgs []session.MessageWithParts
				p := session.MessagesParams{SessionID: s.ID, IncludeReverted: all}
				if err := c.Call(ctx, "session/messages", p, &msgs); err != nil {
					return err
				}
				if a.json {
					return a.printJSON(msgs)
				}
				if len(msgs) == 0 {
					fmt.Fprintf(a.stdout, "No messages yet. Run a command with `sessiond shell %s -- COMMAND`.\n", s.ID)
				}
				for i, m := range msgs {
					if i > 0 {
						fmt.Fprintln(a.stdout)
					}
					writeMessage(a.stdout, m, s.Revert != nil && m.Info.ID >= s.Revert.MessageID)
				}
				if r := s.Revert; r != nil && all {
					fmt.Fprintf(a.stdout, "\nThe messages marked [reverted] were undone by a revert to before %s; `sessiond unrevert %s` brings them back.\n", r.MessageID, s.ID)
				} else if r != nil {
					fmt.Fprintf(a.stdout, "\nA revert hides %s and the messages after it: `sessiond log --all %s` shows them, `sessiond unrevert %s` brings them back.\n", r.MessageID, s.ID, s.ID)
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "include the messages a revert hides")
	return cmd
}

// logOutputLines is how many lines of a command's output `log` shows.
const logOutputLines = 5

// writeMessage writes one message's block of `sessiond log`.
func writeMessage(w io.Writer, m session.MessageWithParts, reverted bool) {
	head := fmt.Sprintf("── %s  %s  %s", m.Info.ID, stamp(m.Info.Time.Created), m.Info.Role)
	if m.Info.Agent != "" {
		head += " (" + m.Info.Agent + ")"
	}
	if reverted {
		head += "  [reverted]"
	}
	fmt.Fprintln(w, head)
	for _, p := range m.Parts {
		switch p.Type {
		case session.PartText:
			writeLines(w, "   ", p.Text, logOutputLines, "")
		case session.PartReasoning:
			writeLines(w, "   (thinking) ", p.Text, 1, "")
		case session.PartFile:
			fmt.Fprintf(w, "   file %s\n", cmp.Or(p.Path, p.URL))
		case session.PartPatch:
			fmt.Fprintf(w, "   %s\n", filesChanged(p.Files))
		case session.PartTool:
			if info, ok := shellInfoOf(p); ok {
				fmt.Fprintf(w, "   $ %s\n", info.Command)
				more := ""
				if info.Truncated {
					more = fmt.Sprintf("… (%s of output in all)", humanize.IBytes(uint64(info.Bytes)))
				}
				writeLines(w, "   │ ", info.Output, logOutputLines, more)
				if info.Status == "running" || info.Status == "pending" {
					fmt.Fprintln(w, "   still running")
				} else {
					fmt.Fprintf(w, "   %s · %s\n", shellOutcome(info), fmtDuration(info.Duration))
				}
				continue
			}
			status, title := "", ""
			if p.State != nil {
				status, title = p.State.Status, p.State.Title
			}
			fmt.Fprintf(w, "   tool %s %s %s\n", p.Tool, status, title)
		case session.PartStepStart, session.PartStepFinish:
			// bookkeeping: snapshots and tokens, nothing to read
		default:
			fmt.Fprintf(w, "   [%s]\n", p.Type)
		}
	}
	if e := m.Info.Error; e != nil {
		fmt.Fprintf(w, "   error: %s: %s\n", e.Kind, e.Message)
	}
}

// writeLines writes the first n lines of text, each prefixed, and says
// how many it left out, or more when text is itself cut.
func writeLines(w io.Writer, prefix, text string, n int, more string) {
	text = strings.TrimRight(text, "\n")
	if text == "" {
		return
	}
	lines := strings.Split(text, "\n")
	for _, l := range lines[:min(n, len(lines))] {
		if r := []rune(l); len(r) > 160 {
			l = string(r[:160]) + "…"
		}
		fmt.Fprintf(w, "%s%s\n", prefix, l)
	}
	switch {
	case more != "":
		fmt.Fprintf(w, "%s%s\n", prefix, more)
	case len(lines) > n:
		fmt.Fprintf(w, "%s… %d more lines\n", prefix, len(lines)-n)
	}
}

// stamp renders an epoch-ms time: the time alone today, else with the date.
func stamp(ms int64) string {
	t := time.UnixMilli(ms).Local()
	if t.Format(time.DateOnly) == time.Now().Format(time.DateOnly) {
		return t.Format(time.TimeOnly)
	}
	return t.Format(time.DateTime)
}

func (a *app) diffCmd() *cobra.Command {
	var stat bool
	var color string
	cmd := &cobra.Command{
		Use:   "diff SESSION [MESSAGE]",
		Short: "Show what a session (or one of its turns) changed, as a unified diff",
		Long: `Show the files a session's own turns changed, from before the first turn
that touched each to after the last, as a unified diff; with MESSAGE, what
that one turn changed. Edits made between turns (in your editor, by another
session) are not the session's and are not shown.

--stat prints one line per file with the lines added and deleted instead.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, _ := a.stdout.(*os.File)
			colored, err := useColor(color, f != nil && isTerminal(f), os.Getenv("NO_COLOR"), os.Getenv("TERM"))
			if err != nil {
				return err
			}
			p := session.DiffParams{SessionID: args[0], Patch: !stat}
			if len(args) == 2 {
				p.MessageID = args[1]
			}
			ctx := cmd.Context()
			return a.withClient(ctx, func(c *rpc.Client) error {
				diffs := []snapshot.FileDiff{}
				if err := c.Call(ctx, "session/diff", p, &diffs); err != nil {
					return err
				}
				switch {
				case a.json:
					return a.printJSON(diffs)
				case stat:
					for _, l := range statLines(diffs, colored) {
						fmt.Fprintln(a.stdout, l)
					}
				case len(diffs) == 0:
					fmt.Fprintln(a.stderr, "No changes.")
				default:
					for _, d := range diffs {
						io.WriteString(a.stdout, filePatch(d, colored))
					}
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&stat, "stat", false, "print lines added and deleted per file instead of the diff")
	cmd.Flags().StringVar(&color, "color", "auto", "colour the diff: auto (when stdout is a terminal and NO_COLOR is unset), always or never")
	return cmd
}

// useColor decides whether to colour output from --color, whether stdout
// is a terminal, and $NO_COLOR and $TERM (https://no-color.org: an explicit
// --color=always still wins).
func useColor(mode string, tty bool, noColor, term string) (bool, error) {
	switch mode {
	case "always":
		return true, nil
	case "never":
		return false, nil
	case "auto", "":
		return tty && noColor == "" && term != "dumb", nil
	}
	return false, fmt.Errorf("--color=%s: use auto, always or never", mode)
}

const (
	ansiReset = "\x1b[0m"
	ansiBold  = "\x1b[1m"
	ansiRed   = "\x1b[31m"
	ansiGreen = "\x1b[32m"
	ansiCyan  = "\x1b[36m"
)

func paint(on bool, code, s string) string {
	if !on || s == "" {
		return s
	}
	return code + s + ansiReset
}

// filePatch renders one file of `sessiond diff`: its unified patch, or a
// line saying why there is none.
func filePatch(d snapshot.FileDiff, color bool) string {
	from, to := "a/"+d.Path, "b/"+d.Path
	switch d.Status {
	case snapshot.StatusAdded:
		from = "/dev/null"
	case snapshot.StatusDeleted:
		to = "/dev/null"
	}
	var line string
	switch {
	case d.Skipped:
		line = fmt.Sprintf("Skipped %s (%s): over the snapshot size cap, so its content was not kept", d.Path, d.Status)
	case d.Binary:
		line = fmt.Sprintf("Binary files %s and %s differ", from, to) // as git says it
	case d.Patch != "":
		return colorPatch(d.Patch, color)
	case d.Status == snapshot.StatusModified:
		line = fmt.Sprintf("%s: modified, no line changed", d.Path)
	default:
		line = fmt.Sprintf("%s: empty file %s", d.Path, d.Status)
	}
	return paint(color, ansiBold, line) + "\n"
}

// colorPatch colours a unified patch as git does: bold file headers, cyan
// hunk headers, red deletions, green additions.
func colorPatch(patch string, color bool) string {
	if !color {
		return patch
	}
	var b strings.Builder
	header := true // "---" and "+++" before the first hunk name files
	for _, l := range strings.SplitAfter(patch, "\n") {
		body := strings.TrimSuffix(l, "\n")
		code := ""
		switch {
		case strings.HasPrefix(body, "@@"):
			header, code = false, ansiCyan
		case header && (strings.HasPrefix(body, "--- ") || strings.HasPrefix(body, "+++ ")):
			code = ansiBold
		case strings.HasPrefix(body, "+"):
			code = ansiGreen
		case strings.HasPrefix(body, "-"):
			code = ansiRed
		}
		b.WriteString(paint(code != "", code, body))
		b.WriteString(l[len(body):])
	}
	return b.String()
}

// statLines renders `sessiond diff --stat`: "path | +a -d" per file, and
// a total.
func statLines(diffs []snapshot.FileDiff, color bool) []string {
	if len(diffs) == 0 {
		return []string{"No changes."}
	}
	width := 0
	for _, d := range diffs {
		width = max(width, len(d.Path))
	}
	var out []string
	adds, dels := 0, 0
	for _, d := range diffs {
		var counts string
		switch {
		case d.Skipped:
			counts = "skipped (over the size cap)"
		case d.Binary:
			counts = "binary"
		default:
			counts = paint(color, ansiGreen, fmt.Sprintf("+%d", d.Additions)) + " " + paint(color, ansiRed, fmt.Sprintf("-%d", d.Deletions))
			adds, dels = adds+d.Additions, dels+d.Deletions
		}
		if d.Status != snapshot.StatusModified {
			counts += " (" + d.Status + ")"
		}
		out = append(out, fmt.Sprintf(" %-*s | %s", width, d.Path, counts))
	}
	return append(out, fmt.Sprintf(" %s changed, +%d -%d", plural(len(diffs), "file"), adds, dels))
}

func (a *app) revertCmd() *cobra.Command {
	var p session.RevertParams
	cmd := &cobra.Command{
		Use:   "revert SESSION MESSAGE",
		Short: "Put the files back as they were before a message, hiding it and what follows",
		Long: `Undo a session's turns from MESSAGE on: the files those turns changed are put
back as they were before MESSAGE, and the messages from MESSAGE on are hidden.
Nothing is lost: "sessiond unrevert SESSION" puts everything back.

Files the session changed but someone else edited since (your editor, another
session) are not overwritten: the revert is refused and names them. Pass
--force to overwrite them anyway.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			p.SessionID, p.MessageID = args[0], args[1]
			ctx := cmd.Context()
			return a.withClient(ctx, func(c *rpc.Client) error {
				var s session.Session
				if err := c.Call(ctx, "session/revert", p, &s); err != nil {
					return conflictHint(err, "revert", "sessiond revert "+p.SessionID+" "+p.MessageID)
				}
				if a.json {
					return a.printJSON(s)
				}
				var files []string
				if s.Revert != nil {
					files = s.Revert.Files
				}
				if len(files) == 0 {
					fmt.Fprintf(a.stdout, "Reverted %s to before %s; no file needed changing.\n", s.ID, p.MessageID)
				} else {
					fmt.Fprintf(a.stdout, "Reverted %s to before %s. Files put back as they were:\n", s.ID, p.MessageID)
				}
				for _, f := range files {
					fmt.Fprintf(a.stdout, "  %s\n", f)
				}
				fmt.Fprintf(a.stdout, "Messages from %s on are hidden (`sessiond log --all %s` shows them).\n", p.MessageID, s.ID)
				fmt.Fprintf(a.stdout, "Undo with: sessiond unrevert %s\n", s.ID)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&p.Force, "force", false, "overwrite files changed outside the session")
	cmd.Flags().StringVar(&p.PartID, "part", "", "revert to this step of MESSAGE instead of its start")
	return cmd
}

func (a *app) unrevertCmd() *cobra.Command {
	var p session.UnrevertParams
	cmd := &cobra.Command{
		Use:   "unrevert SESSION",
		Short: "Undo a revert: put the files back and show the hidden messages again",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p.SessionID = args[0]
			ctx := cmd.Context()
			return a.withClient(ctx, func(c *rpc.Client) error {
				var before session.Session
				if err := c.Call(ctx, "session/get", map[string]string{"sessionID": p.SessionID}, &before); err != nil {
					return err
				}
				var s session.Session
				if err := c.Call(ctx, "session/unrevert", p, &s); err != nil {
					return conflictHint(err, "unrevert", "sessiond unrevert "+p.SessionID)
				}
				if a.json {
					return a.printJSON(s)
				}
				if before.Revert == nil { // another client reverted it in between
					fmt.Fprintf(a.stdout, "Unreverted %s.\n", s.ID)
					return nil
				}
				fmt.Fprintf(a.stdout, "Unreverted %s. Files restored as they were before the revert:\n", s.ID)
				for _, f := range before.Revert.Files {
					fmt.Fprintf(a.stdout, "  %s\n", f)
				}
				fmt.Fprintf(a.stdout, "Messages from %s on are shown again.\n", before.Revert.MessageID)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&p.Force, "force", false, "overwrite files changed outside the session since the revert")
	return cmd
}

// conflictHint turns a Conflict into a message naming the files and how
// to go on; other errors pass unchanged.
func conflictHint(err error, op, again string) error {
	var re *rpc.Error
	if !errors.As(err, &re) || re.Code != rpc.CodeConflict {
		return err
	}
	if re.Data["reason"] != nil {
		// A path that cannot be written safely, or a parked journal: the
		// message says what to do, and --force would not help.
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s refused: these files were changed outside the session since it last wrote them, and would be overwritten:\n", op)
	if paths, ok := re.Data["paths"].([]any); ok {
		for _, p := range paths {
			fmt.Fprintf(&b, "  %v\n", p)
		}
	}
	fmt.Fprintf(&b, "Keep a copy of those edits if you want them, then run `%s --force` to overwrite them.", again)
	return &hintError{msg: b.String(), err: err}
}

func (a *app) forkCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "fork SESSION [MESSAGE]",
		Short: "Copy a session's messages (before MESSAGE, or all) into a new session",
		Long: `Start a new session from a copy of SESSION's messages: those before MESSAGE,
or every visible one. The files are not touched; the fork goes on from the
workspace as it is.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			p := session.ForkParams{SessionID: args[0]}
			if len(args) == 2 {
				p.MessageID = args[1]
			}
			ctx := cmd.Context()
			return a.withClient(ctx, func(c *rpc.Client) error {
				var s session.Session
				if err := c.Call(ctx, "session/fork", p, &s); err != nil {
					return err
				}
				if a.json {
					return a.printJSON(s)
				}
				fmt.Fprintf(a.stdout, "%s\t%s\n", s.ID, s.Title)
				from := ""
				if p.MessageID != "" {
					from = " before " + p.MessageID
				}
				fmt.Fprintf(a.stdout, "Forked from %s%s: copied %s; no file was touched.\n", p.SessionID, from, plural(s.MessageCount, "message"))
				return nil
			})
		},
	}
}

func (a *app) gcCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "gc",
		Short: "Free the snapshots and file contents no session refers to any more",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			return a.withClient(ctx, func(c *rpc.Client) error {
				var raw json.RawMessage
				if err := c.Call(ctx, "daemon/gc", nil, &raw); err != nil {
					if rpcCode(err) == rpc.CodeMethodNotFound {
						return a.oldDaemon(ctx, c, err)
					}
					return err
				}
				if a.json {
					return a.printJSON(raw)
				}
				for _, l := range kvLines(raw) {
					fmt.Fprintln(a.stdout, l)
				}
				return nil
			})
		},
	}
}

// oldDaemon explains a method the running daemon does not know: it was
// started from an older binary.
func (a *app) oldDaemon(ctx context.Context, c *rpc.Client, err error) error {
	msg := "the running daemon is older than this binary and has no daemon/gc: run `sessiond restart` to start this binary's daemon"
	var st daemon.DaemonStatus
	if c.Call(ctx, "daemon/status", nil, &st) == nil {
		running := fmt.Sprintf("the running daemon (version %s, pid %d)", st.Version, st.PID)
		if st.Version != buildVersion() {
			running += fmt.Sprintf(" is older than this binary (%s) and", buildVersion())
		}
		msg = fmt.Sprintf("%s has no daemon/gc: run `sessiond restart` to start this binary's daemon", running)
	}
	return &hintError{msg: msg, err: err}
}

// kvLines renders a JSON object as sorted "key: value" lines, nested
// objects as dotted keys; sizes in bytes and durations are spelled out.
func kvLines(raw json.RawMessage) []string {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return []string{strings.TrimSpace(string(raw))}
	}
	if len(m) == 0 {
		return []string{"done (the daemon reported nothing)"}
	}
	var out []string
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			if sub, ok := v.(map[string]any); ok && len(sub) > 0 {
				walk(prefix+k+".", sub)
				continue
			}
			out = append(out, prefix+k+": "+kvValue(k, v))
		}
	}
	walk("", m)
	slices.Sort(out)
	return out
}

func kvValue(key string, v any) string {
	switch v := v.(type) {
	case string:
		return v
	case json.Number:
		n, err := strconv.ParseInt(string(v), 10, 64)
		switch {
		case err != nil:
			return string(v)
		case strings.HasSuffix(key, "Bytes") && n >= 0:
			return humanize.IBytes(uint64(n))
		case strings.HasSuffix(key, "Ms"):
			return fmtDuration(time.Duration(n) * time.Millisecond)
		case key == "duration" || strings.HasSuffix(key, "Duration"): // a Go time.Duration: ns
			return fmtDuration(time.Duration(n))
		}
		return string(v)
	}
	b, _ := json.Marshal(v)
	return string(b)
}
