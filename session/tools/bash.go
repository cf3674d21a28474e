package tools

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/sessiond/sessiond/session/shellrun"
	"github.com/sessiond/sessiond/session/shellrun/writetrace"
)

type bashTool struct{}

func (bashTool) Name() string   { return "bash" }
func (bashTool) ReadOnly() bool { return false }

func (bashTool) Description() string {
	return fmt.Sprintf(`Runs a shell command with bash in the session's working directory and returns its combined stdout and stderr, with the exit code when it is not 0.

- Use it for builds, tests, git, package managers and other programs. To read, find, search or change files prefer read, glob, grep, edit and write: they are confined to the workspace and their output is made for you.
- Each call is a fresh shell in the working directory: cd, variables and aliases do not carry over to the next call. Chain commands with && or ; in one call. There is no terminal and no input: do not run interactive programs (editors, pagers, prompts); pass flags such as --yes or --no-pager.
- timeout_ms bounds the run: default %d (%s), at most %d (%s) unless configured otherwise. When it passes, the command and every process it started are killed. Start long-lived servers in the background with their output redirected to a file.
- Output over the cap (64 KiB unless configured) is cut to its start and end; redirect big output to a file and grep or read that instead.
- description says in 5-10 words what the command does, for the user.`,
		DefaultBashTimeout.Milliseconds(), DefaultBashTimeout, MaxBashTimeout.Milliseconds(), MaxBashTimeout)
}

func (bashTool) Schema() json.RawMessage {
	return json.RawMessage(`{
  "type": "object",
  "properties": {
    "command": {"type": "string", "description": "The command line to run with bash -c."},
    "timeout_ms": {"type": "integer", "minimum": 1, "description": "Timeout in milliseconds. Default 120000 (2 minutes), at most 600000."},
    "description": {"type": "string", "description": "What the command does, in 5-10 words, for the user."}
  },
  "required": ["command"],
  "additionalProperties": false
}`)
}

type bashInput struct {
	Command     string `json:"command"`
	TimeoutMs   int64  `json:"timeout_ms"`
	Description string `json:"description"`
}

// Run runs the command with its writes traced: Result.Writes says which
// files its processes asked to modify, so the turn claims those and not
// what a person changed meanwhile. On abort it returns what the command printed so far together with
// an error that wraps ctx.Err().
func (t bashTool) Run(ctx context.Context, env *Env, input json.RawMessage) (Result, error) {
	var in bashInput
	if err := decode(t, input, &in); err != nil {
		return Result{}, err
	}
	if strings.TrimSpace(in.Command) == "" {
		return Result{}, errors.New("bash: command is empty; give the command line to run")
	}
	timeout := env.BashTimeout
	if timeout <= 0 {
		timeout = DefaultBashTimeout
	}
	if in.TimeoutMs != 0 {
		limit := max(MaxBashTimeout, timeout)
		if in.TimeoutMs < 0 || in.TimeoutMs > limit.Milliseconds() {
			return Result{}, fmt.Errorf("bash: timeout_ms must be between 1 and %d (%s), got %d", limit.Milliseconds(), limit, in.TimeoutMs)
		}
		timeout = time.Duration(in.TimeoutMs) * time.Millisecond
	}
	w, err := env.open()
	if err != nil {
		return Result{}, err
	}
	dir := w.dirAbs()
	w.Close()

	title := in.Description
	if title == "" {
		title = in.Command
	}
	title = firstLine(title, 80)

	res, err := shellrun.Run(ctx, shellrun.Options{
		Dir:         dir,
		Command:     in.Command,
		Shell:       env.shell(),
		Env:         env.ShellEnv,
		Timeout:     timeout,
		OutputCap:   env.outputCap(),
		TraceWrites: env.NoWriteTrace == "",
	})
	if err != nil && !res.Aborted {
		if ctx.Err() != nil {
			return Result{}, fmt.Errorf("bash: not run: %w", ctx.Err())
		}
		return Result{}, fmt.Errorf("bash: could not run the command: %v", err)
	}

	meta := map[string]any{
		"exitCode":   res.ExitCode,
		"timedOut":   res.TimedOut,
		"truncated":  res.Truncated,
		"bytes":      res.Bytes,
		"durationMs": res.Duration.Milliseconds(),
	}
	if res.Signal != "" {
		meta["signal"] = res.Signal
	}
	if in.Description != "" {
		meta["description"] = in.Description
	}
	var b strings.Builder
	b.WriteString(res.Output)
	if res.Output == "" {
		b.WriteString("(no output)")
	}
	var notes []string
	if res.Truncated {
		notes = append(notes, fmt.Sprintf("the output was %d bytes; only its start and end are shown: redirect it to a file and use grep or read on that to see the rest", res.Bytes))
	}
	switch {
	case res.Aborted:
		notes = append(notes, "aborted: the command and its process group were killed")
	case res.TimedOut:
		notes = append(notes, fmt.Sprintf("timed out after %s: the command and its process group were killed; give a longer timeout_ms, or run long jobs in the background with output to a file", timeout))
	case res.Signal != "":
		notes = append(notes, fmt.Sprintf("killed by signal %s", res.Signal))
	case res.ExitCode != 0:
		notes = append(notes, fmt.Sprintf("exit code %d", res.ExitCode))
	}
	if len(notes) > 0 {
		if !strings.HasSuffix(b.String(), "\n") {
			b.WriteString("\n")
		}
		b.WriteString("\n(" + strings.Join(notes, "; ") + ")")
	}
	out := Result{Title: title, Output: b.String(), Metadata: meta, Full: res.Full, Writes: res.Writes, Lingering: res.Lingering}
	if out.Writes == nil {
		out.Writes = &writetrace.Report{Reason: cmp.Or(env.NoWriteTrace, "the command's writes were not traced")}
	}
	if res.Aborted {
		cause := ctx.Err()
		if cause == nil {
			cause = context.Canceled
		}
		return out, fmt.Errorf("bash: aborted: %w", cause)
	}
	return out, nil
}

// shell is the shell bash runs commands with.
func (e *Env) shell() string {
	if e.Shell != "" {
		return e.Shell
	}
	if p, err := exec.LookPath("bash"); err == nil {
		return p
	}
	return "/bin/sh"
}

// firstLine returns s's first line, cut to max characters.
func firstLine(s string, max int) string {
	s = strings.TrimSpace(s)
	cut := false
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s, cut = strings.TrimSpace(s[:i]), true
	}
	if r := []rune(s); len(r) > max {
		s, cut = string(r[:max]), true
	}
	if cut {
		s += "…"
	}
	return s
}
