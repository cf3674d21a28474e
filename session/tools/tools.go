// Package tools holds the agent's tools (DESIGN §6): read, write, edit,
// list, glob, grep, bash, todowrite, todoread and task. The turn loop gives
// a tool the model's JSON input and an Env, and sends the model the
// Result's Output, or the error's text as a tool error.
//
// # Confinement
//
// Every path a tool takes is confined to the workspace, Env.Root, by
// workspace/confine, the resolver the session layer's methods use too. A
// relative path resolves against the session's directory, Env.Dir; an
// absolute one is accepted only inside Root. A path that climbs out with
// ".." is refused before any file is touched; links are followed one
// component at a time, and one that leads out (or is absolute) is
// refused; all file I/O goes through an os.Root opened on Root. Links that
// stay inside are followed. Every file tool, read-only or not, refuses
// anything inside a .git directory, checked both on the path as given and
// on the path its links lead to: git runs what it finds there, and
// .git/config may hold credentials. list, glob and grep never descend into
// .git, nor into directories reached through links, and skip a file link
// that leads into .git or out.
//
// bash is the exception: it runs a shell command in Env.Dir, and a shell
// can reach anything the daemon can. Confining it is the permission
// layer's job (allow | ask | deny per tool and pattern), not this
// package's.
//
// # Errors
//
// An error from Tool.Run is a tool failure to report to the model: bad
// input (a missing field, a wrong type, an unknown field), a path outside
// the workspace, a file that does not exist, an edit whose old_string is
// not found. Messages name the path and say what to do instead. An error
// that wraps ctx.Err() means the call was aborted.
package tools

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sessiond/sessiond/session/provider"
	"github.com/sessiond/sessiond/session/shellrun/writetrace"
)

// Env is what a tool call may use: the workspace, the session's todo list
// and a way to run subtasks. One Env may serve concurrent calls.
type Env struct {
	// Root is the workspace checkout root, an absolute path. Every path a
	// tool takes is confined to it.
	Root string
	// Dir is the session's directory, where relative paths resolve and
	// bash runs: an absolute path inside Root, or a path relative to Root.
	// Empty means Root.
	Dir string
	// Todos keeps the session's todo list; nil makes todowrite and
	// todoread fail with a message that says the list is unavailable.
	Todos TodoStore
	// Task runs a child session for the task tool; nil makes task answer
	// that subtasks are unavailable.
	Task TaskRunner
	// BashTimeout is bash's timeout when the model gives none; 0 means
	// DefaultBashTimeout. The model may ask for up to
	// max(MaxBashTimeout, BashTimeout).
	BashTimeout time.Duration
	// OutputCap bounds the Output of read, list, glob, grep and bash, in
	// bytes; 0 means DefaultOutputCap.
	OutputCap int
	// Shell runs bash's commands: an absolute path or a name looked up in
	// PATH. Empty: bash from PATH, else /bin/sh. The user's $SHELL is not
	// used: the model writes bash.
	Shell string
	// ShellEnv is the whole environment of bash's commands; nil means the
	// daemon's.
	ShellEnv []string
	// NoWriteTrace runs bash's commands untraced, and says why: their
	// changes are then unattributed (see Result.Writes).
	NoWriteTrace string
}

// Limits.
const (
	// DefaultOutputCap is the Output cap when Env.OutputCap is 0.
	DefaultOutputCap = 64 << 10
	// DefaultBashTimeout is bash's timeout when neither the model nor
	// Env.BashTimeout gives one.
	DefaultBashTimeout = 2 * time.Minute
	// MaxBashTimeout is the longest timeout the model may ask bash for
	// (unless Env.BashTimeout is longer).
	MaxBashTimeout = 10 * time.Minute
	// DefaultReadLimit is how many lines read returns when not told.
	DefaultReadLimit = 2000
	// MaxLineChars is where read cuts a long line, in characters.
	MaxLineChars = 2000
	// MaxListEntries caps list's entries.
	MaxListEntries = 1000
	// MaxGlobResults caps glob's paths.
	MaxGlobResults = 100
	// MaxGrepMatches caps grep's matching lines.
	MaxGrepMatches = 100
	// MaxGrepLineChars is where grep cuts a matching line, in characters.
	MaxGrepLineChars = 500
	// MaxGrepFileSize is the largest file grep searches; bigger ones are
	// skipped and counted.
	MaxGrepFileSize = 10 << 20
)

func (e *Env) outputCap() int {
	if e.OutputCap > 0 {
		return e.OutputCap
	}
	return DefaultOutputCap
}

// Todo is one item of a session's todo list (DESIGN §3).
type Todo struct {
	ID      string `json:"id"`
	Content string `json:"content"`
	// Status is pending, in_progress, completed or cancelled.
	Status string `json:"status"`
	// Priority is high, medium or low.
	Priority string `json:"priority"`
}

// Todo statuses and priorities.
const (
	TodoPending    = "pending"
	TodoInProgress = "in_progress"
	TodoCompleted  = "completed"
	TodoCancelled  = "cancelled"

	PriorityHigh   = "high"
	PriorityMedium = "medium"
	PriorityLow    = "low"
)

// TodoStore keeps a session's todo list; the session layer provides it.
type TodoStore interface {
	Get(ctx context.Context) ([]Todo, error)
	// Set replaces the whole list.
	Set(ctx context.Context, todos []Todo) error
}

// TaskRequest asks for a subtask: a child session that gets Prompt as its
// first message and runs with Agent's tools.
type TaskRequest struct {
	// Description is a short title for the subtask (3–5 words).
	Description string
	// Prompt is the child's task, in full: it sees none of the parent's
	// conversation.
	Prompt string
	// Agent is the child's agent, one of Agents(); the task tool sets
	// "build" when the model gives none.
	Agent string
}

// TaskRunner runs a child session to its end and returns its final
// answer; the session layer provides it. It returns ctx's error when
// the parent's turn is aborted.
type TaskRunner interface {
	Run(ctx context.Context, req TaskRequest) (string, error)
}

// Tool is one tool the model may call.
type Tool interface {
	// Name is the tool's name as the model calls it.
	Name() string
	// Description is what the model reads about the tool: what it does,
	// its rules for paths and its limits.
	Description() string
	// Schema is the JSON Schema of the input, an object.
	Schema() json.RawMessage
	// ReadOnly says the tool changes nothing in the workspace or the
	// session; the plan agent has only these.
	ReadOnly() bool
	// Run runs one call. input is the model's JSON object (nil means {}).
	// An error is a tool failure to report to the model.
	Run(ctx context.Context, env *Env, input json.RawMessage) (Result, error)
}

// Result is what a successful call produced.
type Result struct {
	// Title is a short line for UIs ("Read main.go", "Edit a.txt").
	Title string
	// Output is what the model sees.
	Output string
	// Metadata holds structured extras for clients (lines, matches,
	// exitCode, truncated, diff, ...); its values marshal to JSON.
	Metadata map[string]any
	// Changed lists the workspace-relative, slash-separated paths this call
	// wrote, after following links (so a write through a link names the
	// file it changed). nil for bash, which reports Writes instead.
	Changed []string
	// Writes is what a command's process tree wrote (bash), when it ran;
	// the loop claims those paths for the turn.
	Writes *writetrace.Report
	// Lingering is shellrun's: closed once no process of the command is
	// left.
	Lingering <-chan struct{}
	// Full is a command's whole output when Output holds only its head and
	// tail (bash; up to shellrun.MaxFullOutput bytes), nil otherwise. The
	// loop keeps it in the store and references it from the tool part.
	Full []byte
}

// Agent names.
const (
	AgentBuild = "build"
	AgentPlan  = "plan"
)

// Agents lists the known agents.
func Agents() []string { return []string{AgentBuild, AgentPlan} }

// All returns the build agent's tools: every tool, in a fixed order.
func All() []Tool {
	return []Tool{
		readTool{}, writeTool{}, editTool{}, listTool{}, globTool{}, grepTool{},
		bashTool{}, todoWriteTool{}, todoReadTool{}, taskTool{},
	}
}

// ForAgent returns an agent's tools: "build" has all of them, "plan" the
// read-only ones (read, list, glob, grep, todoread).
func ForAgent(agent string) ([]Tool, error) {
	switch agent {
	case AgentBuild:
		return All(), nil
	case AgentPlan:
		var ts []Tool
		for _, t := range All() {
			if t.ReadOnly() {
				ts = append(ts, t)
			}
		}
		return ts, nil
	}
	return nil, fmt.Errorf("unknown agent %q; known agents: %s", agent, strings.Join(Agents(), ", "))
}

// Lookup finds a tool by name.
func Lookup(name string) (Tool, bool) {
	i := slices.IndexFunc(All(), func(t Tool) bool { return t.Name() == name })
	if i < 0 {
		return nil, false
	}
	return All()[i], true
}

// ProviderTools describes tools to a model provider.
func ProviderTools(ts []Tool) []provider.Tool {
	out := make([]provider.Tool, len(ts))
	for i, t := range ts {
		out[i] = provider.Tool{Name: t.Name(), Description: t.Description(), Schema: t.Schema()}
	}
	return out
}
