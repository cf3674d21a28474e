package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sessiond/sessiond/daemon"
	"github.com/sessiond/sessiond/rpc"
)

// usageError is a mistake in a verb's arguments or flags: what is wrong,
// the verb's usage line and where to read more. It exits 1.
type usageError struct {
	msg string
}

func (e *usageError) Error() string { return e.msg }

// newUsageError says what is wrong with how cmd was called, then its usage
// line and a one-line hint.
func newUsageError(cmd *cobra.Command, what string) error {
	help := "`" + cmd.CommandPath() + " --help`"
	hint := "Run " + help + " for more."
	switch {
	case !cmd.HasParent():
		hint = "Run " + help + " for the verbs."
	case strings.Contains(argSpec(cmd), "SESSION"):
		hint = "Run " + help + " for more; `sessiond ls` lists the sessions."
	}
	return &usageError{msg: fmt.Sprintf("%s\nUsage: %s\n%s", what, cmd.UseLine(), hint)}
}

// usageErrors makes every verb's argument and flag mistakes a usageError,
// in place of cobra's bare "accepts 1 arg(s), received 0". It wraps each
// verb's Args validator, so it is done once here for all of them.
func usageErrors(root *cobra.Command) {
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return newUsageError(cmd, err.Error())
	})
	// The root runs `stdio` without a verb, so an argument is a verb that
	// does not exist.
	root.SuggestionsMinimumDistance = 2
	root.Args = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return nil
		}
		what := fmt.Sprintf("unknown command %q", args[0])
		if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
			what += fmt.Sprintf(" (did you mean %s?)", strings.Join(s, " or "))
		}
		return newUsageError(cmd, what)
	}
	for _, c := range root.Commands() {
		if c.Args == nil {
			continue
		}
		check := c.Args
		c.Args = func(cmd *cobra.Command, args []string) error {
			err := check(cmd, args)
			if err == nil {
				return nil
			}
			what := err.Error()
			if isCobraArgsError(what) {
				what = describeArgs(cmd, args)
			}
			return newUsageError(cmd, what)
		}
	}
}

// isCobraArgsError recognises the messages of cobra's own validators
// (ExactArgs, RangeArgs, NoArgs, ...); verbs' own validators say what is
// wrong already.
func isCobraArgsError(msg string) bool {
	return strings.Contains(msg, "arg(s)") || strings.HasPrefix(msg, "unknown command")
}

// argSpec is the arguments part of a verb's usage: "SESSION [MESSAGE]".
func argSpec(cmd *cobra.Command) string {
	return strings.TrimSpace(strings.TrimPrefix(cmd.Use, cmd.Name()))
}

// describeArgs says what a verb takes and what it got: `show needs
// SESSION; got no arguments`.
func describeArgs(cmd *cobra.Command, args []string) string {
	got := "no arguments"
	if len(args) > 0 {
		quoted := make([]string, len(args))
		for i, a := range args {
			quoted[i] = fmt.Sprintf("%q", a)
		}
		got = fmt.Sprintf("%s: %s", plural(len(args), "argument"), strings.Join(quoted, " "))
	}
	spec := argSpec(cmd)
	switch {
	case spec == "":
		return fmt.Sprintf("%s takes no arguments; got %s", cmd.Name(), got)
	case strings.HasPrefix(spec, "["):
		return fmt.Sprintf("%s takes %s; got %s", cmd.Name(), spec, got)
	}
	return fmt.Sprintf("%s needs %s; got %s", cmd.Name(), spec, got)
}

// explain adds what to do to the protocol errors a user meets most: a
// session or message that does not exist, and a model key the running
// daemon does not have. Other errors, and errors a verb explained itself,
// pass unchanged.
func (a *app) explain(ctx context.Context, c *rpc.Client, err error) error {
	var re *rpc.Error
	var he *hintError
	if err == nil || !errors.As(err, &re) || errors.As(err, &he) {
		return err
	}
	switch re.Code {
	case rpc.CodeNotFound:
		return a.notFoundHint(re, err)
	case rpc.CodeNoProvider:
		return a.noProviderHint(ctx, c, re, err)
	}
	return err
}

// notFoundHint says where to find what was not found.
func (a *app) notFoundHint(re *rpc.Error, err error) error {
	switch re.Data["resource"] {
	case "session":
		return &hintError{msg: re.Message + "; run `sessiond ls` (or `sessiond ls --all`) to see the sessions", err: err}
	case "message", "part":
		log := "sessiond log SESSION"
		if len(a.args) > 0 && strings.HasPrefix(a.args[0], "ses_") {
			log = "sessiond log " + a.args[0]
		}
		return &hintError{msg: fmt.Sprintf("%s; run `%s` to see the session's messages (`--all` shows those a revert hides)", re.Message, log), err: err}
	}
	return err
}

// noProviderHint tells the user when the caller's environment has a
// variable the daemon's lacks: the daemon's environment is fixed when it
// starts, so a key exported since is invisible to it until a restart.
func (a *app) noProviderHint(ctx context.Context, c *rpc.Client, re *rpc.Error, err error) error {
	var set []string
	for _, name := range noProviderEnv(re) {
		if os.Getenv(name) != "" {
			set = append(set, name)
		}
	}
	if len(set) == 0 || c == nil {
		return err
	}
	daemonDesc := "the running daemon"
	var st daemon.DaemonStatus
	if c.Call(ctx, "daemon/status", nil, &st) == nil && st.PID > 0 {
		daemonDesc = fmt.Sprintf("the running daemon (pid %d, started %s)", st.PID, time.UnixMilli(st.StartedAt).Local().Format(time.DateTime))
	}
	vars, is, it := set[0], "is", "it"
	if len(set) > 1 {
		vars, is, it = strings.Join(set[:len(set)-1], ", ")+" and "+set[len(set)-1], "are", "them"
	}
	msg := fmt.Sprintf("%s\nsessiond: %s %s set in your shell, but %s was started without %s: a daemon keeps the environment it started with. Run `sessiond restart` to start it again from this shell.",
		re.Message, vars, is, daemonDesc, it)
	return &hintError{msg: msg, err: err}
}

// setVar finds "set NAME" in an older daemon's NoProvider message.
var setVar = regexp.MustCompile(`\bset ([A-Z][A-Z0-9_]*)\b`)

// noProviderEnv is the variables a NoProvider error says would fix it:
// data.env from a daemon that sends it; from an older one, the two keys
// and any variable its message says to set.
func noProviderEnv(re *rpc.Error) []string {
	if list, ok := re.Data["env"].([]any); ok {
		var out []string
		for _, v := range list {
			if s, ok := v.(string); ok && s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	var out []string
	for _, name := range []string{"ANTHROPIC_API_KEY", "OPENAI_API_KEY"} {
		if strings.Contains(re.Message, name) {
			out = append(out, name)
		}
	}
	for _, m := range setVar.FindAllStringSubmatch(re.Message, -1) {
		if !slices.Contains(out, m[1]) {
			out = append(out, m[1])
		}
	}
	return out
}
