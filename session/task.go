package session

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/sessiond/sessiond/session/tools"
)

// MaxTaskDepth is how deep the task tool may nest child sessions: a root
// session's children are at depth 1, and a session at this depth cannot
// start subtasks of its own.
const MaxTaskDepth = 3

// taskRunner runs the task tool's subtasks for one turn of a parent
// session (tools.TaskRunner). Each subtask is a new child session that
// gets the request's prompt as its first message and runs it as a prompt
// turn, queued and recorded like any other: its events, messages,
// snapshots and usage are its own.
type taskRunner struct {
	s      *Service
	parent Session // the session whose turn calls task
	// What the child inherits from the parent's turn: its model (no agent
	// has a model of its own yet), reasoning effort, and the client that
	// answers permission questions.
	model   ModelRef
	variant string
	asker   PermissionAsker
	// claims are the parent step's: what a child's turn wrote, the
	// parent's turn wrote through it.
	claims *claims
}

// taskRunner binds a runner to the loop's session and turn.
func (l *loop) taskRunner() tools.TaskRunner {
	return &taskRunner{
		s: l.s, parent: l.t.ses,
		model:   ModelRef{ProviderID: l.j.res.Ref.ProviderID, ModelID: l.j.res.Ref.ModelID},
		variant: l.j.p.Variant, asker: l.j.p.Asker,
		claims: &l.step,
	}
}

// Run creates the child session, runs req.Prompt as its turn and returns
// the child's final answer followed by "(session <id>)". Cancelling ctx
// (the parent's turn is aborted) aborts the child's turn, waits until it
// is recorded and returns ctx's error.
func (r *taskRunner) Run(ctx context.Context, req tools.TaskRequest) (string, error) {
	agent := cmp.Or(req.Agent, tools.AgentBuild)
	if !slices.Contains(tools.Agents(), agent) {
		return "", fmt.Errorf("unknown agent %q; use one of %s", agent, strings.Join(tools.Agents(), ", "))
	}
	if strings.TrimSpace(req.Prompt) == "" {
		return "", errors.New("the prompt is empty; say what the subtask is to do")
	}
	if depth := r.parent.Depth + 1; depth > MaxTaskDepth {
		return "", fmt.Errorf("subtasks nest at most %d deep and this session is already at depth %d; do the work yourself with the other tools",
			MaxTaskDepth, r.parent.Depth)
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	model := r.model
	child, err := r.s.Create(ctx, CreateParams{
		Title:     req.Description,
		Directory: r.parent.Directory,
		ParentID:  r.parent.ID,
		// The parent's rules bind the child: a subtask is no way around
		// a deny.
		Permission: r.parent.Permission,
		Agent:      agent,
		Model:      &model,
		UserID:     r.parent.UserID,
	})
	if err != nil {
		return "", fmt.Errorf("create the child session: %w", err)
	}
	j, err := r.s.enqueue(ctx, PromptParams{
		SessionID: child.ID,
		Parts:     []PromptPart{{Type: PartText, Text: req.Prompt}},
		Variant:   r.variant,
		Asker:     r.asker,
	})
	if err != nil {
		// Nothing ran: the child would stay an empty session.
		if derr := r.s.Delete(context.WithoutCancel(ctx), child.ID); derr != nil {
			r.s.log.Warn("cannot delete a child session whose subtask did not start", "session", child.ID, "err", derr)
		}
		return "", fmt.Errorf("start the subtask: %w", err)
	}
	select {
	case <-j.done:
	case <-ctx.Done():
		r.s.cancelJob(j, fmt.Errorf("the parent session's turn was aborted: %w", context.Cause(ctx)))
		<-j.done
		r.s.claimTurn(context.WithoutCancel(ctx), r.claims, j.out.Info)
		return "", fmt.Errorf("subtask session %s: %w", child.ID, ctx.Err())
	}
	r.s.claimTurn(ctx, r.claims, j.out.Info)
	if j.err != nil {
		return "", fmt.Errorf("subtask session %s: %w", child.ID, j.err)
	}
	out := finalText(j.out)
	if e := j.out.Info.Error; e != nil {
		// The step limit ends a turn without an error for its prompt.
		out = strings.TrimSpace(out + "\n\n(the subtask stopped early: " + e.Message + ")")
	}
	if out == "" {
		out = "(the subtask finished without an answer)"
	}
	return out + "\n\n(session " + child.ID + ")", nil
}

// finalText is an assistant message's answer: the text of its last step
// that has any.
func finalText(m MessageWithParts) string {
	var last, cur []string
	for _, p := range m.Parts {
		switch p.Type {
		case PartStepStart:
			cur = nil
		case PartText:
			if t := strings.TrimSpace(p.Text); t != "" {
				cur = append(cur, t)
				last = cur
			}
		}
	}
	return strings.Join(last, "\n\n")
}

// claimTurn adds to c what a recorded turn m changed: the paths its own
// snapshots differ in, and, when it has unattributed changes, that c
// cannot be sure either.
func (s *Service) claimTurn(ctx context.Context, c *claims, m Message) {
	if m.Snapshot == nil || m.Snapshot.Before == "" || m.Snapshot.After == "" {
		return
	}
	if len(m.Snapshot.Unattributed) > 0 {
		c.untraced(m.Snapshot.UnattributedReason)
	}
	before, after, err := snapPair(m)
	if err == nil {
		var changed []string
		if changed, err = s.engine.Changed(ctx, before, after); err == nil {
			c.claim(changed...)
			return
		}
	}
	s.log.Warn("cannot read what a subtask changed; its changes count as unattributed", "message", m.ID, "err", err)
	c.untraced("what a subtask changed could not be read")
}
