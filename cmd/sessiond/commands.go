package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/sessiond/sessiond/daemon"
	"github.com/sessiond/sessiond/rpc"
	"github.com/sessiond/sessiond/session"
	"github.com/sessiond/sessiond/workspace"
)

// The session commands' verbs: summarize a session, write its
// workspace's AGENTS.md.
func (a *app) commandCmds() []*cobra.Command {
	return []*cobra.Command{a.summarizeCmd(), a.initCmd()}
}

func (a *app) summarizeCmd() *cobra.Command {
	var p session.SummarizeParams
	cmd := &cobra.Command{
		Use:   "summarize SESSION [--extractive]",
		Short: "Summarize a session: what was done, key topics, who took part, files changed",
		Long: `Print a summary of a session's messages, then its key topics, participants,
the files its turns changed and how many messages it covers.

With a model configured the summary is written by the model, incrementally:
the stored summary plus the messages since, so asking again is cheap. Too few
new messages since the last one and the stored summary is shown, with the
number still pending. Without a model, or with --extractive, it is extractive:
picked sentences, counts and terms, made on the spot and not stored.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return errors.New("give one session: sessiond summarize SESSION (`sessiond ls` lists them)")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			p.SessionID = args[0]
			ctx := cmd.Context()
			return a.withClient(ctx, func(c *rpc.Client) error {
				var s session.SessionSummary
				if err := c.Call(ctx, "session/summarize", p, &s); err != nil {
					if rpcCode(err) == rpc.CodeMethodNotFound {
						return a.tooOld(ctx, c, "session/summarize", err)
					}
					return err
				}
				if a.json {
					return a.printJSON(s)
				}
				writeSummary(a.stdout, p.SessionID, s)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&p.Extractive, "extractive", false, "summarize without a model even when one is configured")
	return cmd
}

// writeSummary writes the text of `sessiond summarize`.
func writeSummary(w io.Writer, sessionID string, s session.SessionSummary) {
	text := strings.TrimSpace(s.Text)
	if text == "" {
		text = fmt.Sprintf("(nothing to summarize yet: run a turn with `sessiond prompt %s TEXT` or `sessiond shell %s -- COMMAND`)", sessionID, sessionID)
	}
	fmt.Fprintln(w, text)
	fmt.Fprintln(w)
	none := func(xs []string) string {
		if len(xs) == 0 {
			return "none"
		}
		return strings.Join(xs, ", ")
	}
	fmt.Fprintf(w, "Key topics:     %s\n", none(s.KeyTopics))
	fmt.Fprintf(w, "Participants:   %s\n", none(s.Participants))
	fmt.Fprintf(w, "Files changed:  %s\n", none(s.FilesChanged))
	fmt.Fprintf(w, "Messages:       %s\n", messageCounts(s.MessageCount, s.MessagesByRole))
	fmt.Fprintln(w, summarySource(s))
}

// messageCounts says how many messages a summary covers, by role: "4 (2
// user, 2 assistant)".
func messageCounts(total int, byRole map[string]int) string {
	s := fmt.Sprint(total)
	roles := make([]string, 0, len(byRole))
	for r := range byRole {
		roles = append(roles, r)
	}
	// user, then assistant, then the rest by name
	rank := func(r string) int {
		switch r {
		case session.RoleUser:
			return 0
		case session.RoleAssistant:
			return 1
		}
		return 2
	}
	slices.SortFunc(roles, func(x, y string) int {
		if d := rank(x) - rank(y); d != 0 {
			return d
		}
		return strings.Compare(x, y)
	})
	var parts []string
	for _, r := range roles {
		if byRole[r] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", byRole[r], r))
		}
	}
	if len(parts) > 0 {
		s += " (" + strings.Join(parts, ", ") + ")"
	}
	return s
}

// summarySource is the line that says how a summary was made: extractive
// or by which model, incremental or not, and what it does not cover yet.
func summarySource(s session.SessionSummary) string {
	var b strings.Builder
	switch {
	case s.Extractive:
		b.WriteString("── extractive (no model)")
		// The note starts by saying it is extractive, as this line does.
		n := strings.TrimSpace(s.Note)
		for _, pre := range []string{"extractive, without a model: ", "extractive, "} {
			n = strings.TrimPrefix(n, pre)
		}
		if n != "" {
			b.WriteString(" · " + n)
		}
	default:
		model := "a model"
		if s.Model != nil {
			model = s.Model.ProviderID + "/" + s.Model.ModelID
		}
		b.WriteString("── by " + model)
		if s.IsIncremental {
			b.WriteString(" · incremental (built on the earlier summary)")
		} else {
			b.WriteString(" · from all its messages at once")
		}
		if s.TokensUsed > 0 {
			b.WriteString(" · " + humanize.Comma(s.TokensUsed) + " tokens")
		}
		if n := strings.TrimSpace(s.Note); n != "" {
			b.WriteString(" · " + n)
		}
	}
	if s.Pending > 0 {
		fmt.Fprintf(&b, " · %s pending (newer than the summary, too few yet for a model call; ask again later, or --extractive for all of them now)", plural(s.Pending, "message"))
	}
	return b.String()
}

func (a *app) initCmd() *cobra.Command {
	var p session.InitParams
	cmd := &cobra.Command{
		Use:   "init SESSION [--force] [--factual]",
		Short: "Write the workspace's AGENTS.md as a recorded, revertible turn",
		Long: `Write AGENTS.md at the root of the session's workspace: what the project is,
how to build and test it, its layout and conventions, for coding agents.

With a model configured the build agent studies the workspace and writes it,
as a turn of the session; without one, or with --factual, sessiond writes it
from what the workspace's files show (languages, go.mod, package.json,
Makefile, Cargo.toml, pyproject.toml, ...). Either way the turn is recorded:
"sessiond revert SESSION MESSAGE" undoes the file.

An existing AGENTS.md is refused; --force replaces it (the agent is told to
improve it). SESSION "new" creates a session in the current directory first.`,
		Example: `  sessiond init new
  sessiond init ses_… --factual --force`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return errors.New(`give one session, or "new" for a new one in the current directory: sessiond init SESSION`)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runInit(cmd.Context(), args[0], p)
		},
	}
	cmd.Flags().BoolVar(&p.Force, "force", false, "replace an existing AGENTS.md (sessiond revert undoes it)")
	cmd.Flags().BoolVar(&p.Factual, "factual", false, "build it from the workspace's files, without a model, even when one is configured")
	return cmd
}

func (a *app) runInit(ctx context.Context, sessionArg string, p session.InitParams) error {
	// The agent's turn may ask before a tool runs: ask on the terminal as
	// `prompt` does. No events are followed here, so the view only asks
	// and notes, without waiting for the tool's event first.
	v := newStreamView(a.stdout, a.stderr)
	v.quiet, v.done = true, true
	asker := &permAsker{v: v, in: a.stdin, tty: isTerminal(a.stdin)}
	opts := rpc.ClientOptions{OnCall: asker.onCall("init")}
	// The client closes when the context it was dialled with ends; it
	// must outlive ^C for the $/cancelRequest to reach the daemon.
	c, err := a.connectWith(context.WithoutCancel(ctx), opts)
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(a.stderr, "sessiond: interrupted before anything ran")
			return exitCode(130)
		}
		return err
	}
	defer c.Close()

	p.SessionID = sessionArg
	created := sessionArg == "new"
	if created {
		wd, err := cwd()
		if err != nil {
			return err
		}
		var s session.Session
		if err := c.Call(ctx, "session/create", session.CreateParams{Directory: wd, Title: "init: " + session.AgentsFile}, &s); err != nil {
			return err
		}
		p.SessionID = s.ID
		fmt.Fprintf(a.stderr, "sessiond: new session %s in %s\n", s.ID, s.Directory)
	}

	var res session.InitResult
	err = c.Call(ctx, "session/init", p, &res)
	switch {
	case err != nil && ctx.Err() != nil:
		fmt.Fprintf(a.stderr, "sessiond: interrupted: what ran is recorded (`sessiond log %s` shows it, `sessiond status %s` whether it still runs)\n", p.SessionID, p.SessionID)
		return exitCode(130)
	case err != nil:
		if rpcCode(err) == rpc.CodeMethodNotFound {
			return a.tooOld(ctx, c, "session/init", err)
		}
		err = a.explain(ctx, c, existingHint(err, sessionArg))
		if code := rpcCode(err); created && (code == rpc.CodeInvalidParams || code == rpc.CodeNoProvider) {
			// Refused before it ran: the new session holds nothing.
			if c.Call(context.WithoutCancel(ctx), "session/delete", map[string]string{"sessionID": p.SessionID}, nil) == nil {
				fmt.Fprintf(a.stderr, "sessiond: %v\nsessiond: removed the new session %s: nothing ran\n", err, p.SessionID)
				return exitCode(3)
			}
		}
		return err
	}
	if a.json {
		return a.printJSON(res)
	}
	where := a.agentsPath(ctx, c, p.SessionID, res.Path)
	writeInit(a.stdout, p.SessionID, where, res)
	if res.Mode == session.InitModeAgent && !wroteAgents(res) {
		return fmt.Errorf("the agent's turn ended without writing %s: `sessiond log %s` shows what it did; `sessiond init %s --factual` writes one from the workspace's files instead", res.Path, p.SessionID, p.SessionID)
	}
	return nil
}

// existingHint adds to the daemon's refusal of an existing AGENTS.md the
// flag that replaces it; other errors pass unchanged.
func existingHint(err error, sessionArg string) error {
	var re *rpc.Error
	if !errors.As(err, &re) || re.Code != rpc.CodeInvalidParams || re.Data["field"] != "force" {
		return err
	}
	return &hintError{
		msg: fmt.Sprintf("%s\nsessiond: run `sessiond init %s --force` to replace it; `sessiond revert` undoes that", re.Message, sessionArg),
		err: err,
	}
}

// agentsPath makes the workspace-relative path of AGENTS.md absolute,
// from the session's workspace root; it leaves it relative when the
// daemon does not say.
func (a *app) agentsPath(ctx context.Context, c *rpc.Client, sessionID, rel string) string {
	var s session.Session
	if c.Call(ctx, "session/get", map[string]string{"sessionID": sessionID}, &s) != nil {
		return rel
	}
	var ps []workspace.Project
	if c.Call(ctx, "workspace/list", nil, &ps) == nil {
		for _, p := range ps {
			if p.ID == s.ProjectID {
				return filepath.Join(p.RootFor(s.Directory), rel)
			}
		}
	}
	return rel + " at the workspace root of " + s.Directory
}

// wroteAgents reports whether an agent turn's patches name AGENTS.md.
func wroteAgents(res session.InitResult) bool {
	return slices.Contains(patchFiles(res.Message), res.Path)
}

// writeInit writes the text of `sessiond init`.
func writeInit(w io.Writer, sessionID, where string, res session.InitResult) {
	msg := res.Message.Info.ID
	switch {
	case res.Mode == session.InitModeFactual:
		fmt.Fprintf(w, "Wrote %s from what the workspace's files show (factual, no model).\n", where)
	case wroteAgents(res):
		fmt.Fprintf(w, "Wrote %s: the agent studied the workspace in a turn (agent).\n", where)
	default:
		fmt.Fprintf(w, "%s was not written: the agent's turn (agent) ended without writing it.\n", where)
	}
	if n := strings.TrimSpace(res.Note); n != "" && !(res.Mode == session.InitModeAgent && !wroteAgents(res)) {
		fmt.Fprintf(w, "Note: %s\n", n)
	}
	fmt.Fprintf(w, "Message: %s\n", msg)
	fmt.Fprintf(w, "Undo with: sessiond revert %s %s\n", sessionID, msg)
}

// tooOld explains a method the running daemon does not know.
func (a *app) tooOld(ctx context.Context, c *rpc.Client, method string, err error) error {
	msg := fmt.Sprintf("the running daemon is older than this binary and has no %s: run `sessiond restart` to start this binary's daemon", method)
	var st daemon.DaemonStatus
	if c.Call(ctx, "daemon/status", nil, &st) == nil && st.PID > 0 {
		msg = fmt.Sprintf("the running daemon (version %s, pid %d) has no %s: run `sessiond restart` to start this binary's daemon", st.Version, st.PID, method)
	}
	return &hintError{msg: msg, err: err}
}
