package tools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

type taskTool struct{}

func (taskTool) Name() string   { return "task" }
func (taskTool) ReadOnly() bool { return false }

func (taskTool) Description() string {
	return `Runs a subtask in a child session: a new agent gets prompt as its only message, works with its own tools in the same workspace until it is done, and its final answer comes back as this tool's result.

- Use it for self-contained work that needs many steps of searching or reading, such as "find where sessions are deleted and explain the flow", so that your own context stays small.
- The child sees none of this conversation: prompt must say everything it needs (the goal, the files or names you know of, what to return). Ask for a concise answer with the facts you need.
- agent is "build" (all tools; the default) or "plan" (read-only tools: read, list, glob, grep). Use plan when the subtask only has to look.
- description is a short title (3-5 words) shown to the user.
- The child's answer is not shown to the user; summarize what matters from it.`
}

func (taskTool) Schema() json.RawMessage {
	return json.RawMessage(`{
  "type": "object",
  "properties": {
    "description": {"type": "string", "description": "A short title for the subtask (3-5 words)."},
    "prompt": {"type": "string", "description": "The complete task for the child agent, which sees nothing else."},
    "agent": {"type": "string", "enum": ["build", "plan"], "description": "The child's agent: build (default) or plan (read-only)."}
  },
  "required": ["description", "prompt"],
  "additionalProperties": false
}`)
}

type taskInput struct {
	Description string `json:"description"`
	Prompt      string `json:"prompt"`
	Agent       string `json:"agent"`
}

func (t taskTool) Run(ctx context.Context, env *Env, input json.RawMessage) (Result, error) {
	var in taskInput
	if err := decode(t, input, &in); err != nil {
		return Result{}, err
	}
	in.Description = strings.TrimSpace(in.Description)
	switch {
	case in.Description == "":
		return Result{}, errors.New("task: description is empty; give a short title for the subtask")
	case strings.TrimSpace(in.Prompt) == "":
		return Result{}, errors.New("task: prompt is empty; say what the subtask is to do")
	}
	if in.Agent == "" {
		in.Agent = AgentBuild
	}
	if !slices.Contains(Agents(), in.Agent) {
		return Result{}, fmt.Errorf("task: unknown agent %q; use one of %s", in.Agent, strings.Join(Agents(), ", "))
	}
	if env.Task == nil {
		return Result{}, errors.New("task: subtasks are not available in this session; do the work yourself with the other tools")
	}
	out, err := env.Task.Run(ctx, TaskRequest{Description: in.Description, Prompt: in.Prompt, Agent: in.Agent})
	if err != nil {
		if ctx.Err() != nil {
			return Result{}, fmt.Errorf("task %q: aborted: %w", in.Description, ctx.Err())
		}
		return Result{}, fmt.Errorf("task %q failed: %w", in.Description, err)
	}
	if strings.TrimSpace(out) == "" {
		out = "(the subtask finished without an answer)"
	}
	return Result{
		Title:    firstLine(in.Description, 80),
		Output:   out,
		Metadata: map[string]any{"agent": in.Agent, "description": in.Description},
	}, nil
}
