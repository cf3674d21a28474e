package session

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/sessiond/sessiond/session/provider"
	"github.com/sessiond/sessiond/session/tools"
)

// maxAgentsFile caps the AGENTS.md the system prompt carries.
const maxAgentsFile = 32 << 10

// systemPrompt tells the model who it is, where it works and how.
func systemPrompt(j *job, ses Session) string {
	var b strings.Builder
	fmt.Fprintf(&b, "You are the %s agent of sessiond, a coding assistant working in a user's workspace.\n\n", j.agent)
	fmt.Fprintf(&b, "Workspace root: %s\nWorking directory: %s\nDate: %s\n\n", j.root, ses.Directory, time.Now().Format("2006-01-02"))
	switch j.agent {
	case tools.AgentPlan:
		b.WriteString("You may only look: read, list, glob and grep the workspace and answer. Do not try to change files; " +
			"describe the changes you would make instead.\n")
	default:
		b.WriteString("Use the tools to read, search and change files and to run commands. Paths are relative to the working " +
			"directory, or absolute inside the workspace. Prefer edit to rewriting a whole file with write. " +
			"Check your changes (build, tests) with bash when the project has them.\n")
	}
	b.WriteString("Be concise: say what you did and what the user should know, without repeating file contents.\n")
	if data, err := readInRoot(j.root, "AGENTS.md", maxAgentsFile); err == nil && len(data) > 0 {
		fmt.Fprintf(&b, "\nThe workspace's AGENTS.md says:\n<agents>\n%s\n</agents>\n", data)
	}
	return b.String()
}

// conversation is the session's visible history as the model sees it:
// user prompts with their files, shell commands the user ran, and the
// assistant's earlier turns step by step with their tool calls and
// results.
func (s *Service) conversation(ctx context.Context, ses Session, j *job) ([]provider.Message, error) {
	msgs, err := s.Messages(ctx, MessagesParams{SessionID: ses.ID})
	if err != nil {
		return nil, err
	}
	// Only the messages from the latest context marker on (session/clear,
	// compaction) are sent, after the marker's summary (context.go).
	v := viewContext(msgs)
	out := contextSummaryMessage(v.summary)
	for _, m := range v.msgs {
		out = append(out, renderMessage(m, j.root, j.res.Ref.ProviderID)...)
	}
	return out, nil
}

// renderMessage renders one stored message as the model sees it; other
// roles than user and assistant render as nothing.
func renderMessage(m MessageWithParts, root, providerID string) []provider.Message {
	switch m.Info.Role {
	case RoleUser:
		if c := userContent(m, root); len(c) > 0 {
			return []provider.Message{{Role: provider.RoleUser, Content: c}}
		}
	case RoleAssistant:
		return assistantTurns(m, providerID)
	}
	return nil
}

// userContent renders a user message.
func userContent(m MessageWithParts, root string) []provider.Content {
	var c []provider.Content
	for _, p := range m.Parts {
		switch p.Type {
		case PartText:
			if strings.TrimSpace(p.Text) != "" {
				c = append(c, provider.Text{Text: p.Text})
			}
		case PartFile:
			if isImage(p.Mime) && p.Path != "" {
				data, err := readInRoot(root, p.Path, MaxPromptImage)
				if err != nil {
					c = append(c, provider.Text{Text: fmt.Sprintf("(the image %s is no longer readable: %v)", p.Path, err)})
					continue
				}
				c = append(c, provider.Image{Mime: p.Mime, Data: data})
			} else if !hasSynthetic(m.Parts, p.Path) {
				c = append(c, provider.Text{Text: fmt.Sprintf("(the user put the file %s in the workspace)", p.Path)})
			}
		case PartTool:
			if p.State == nil {
				continue
			}
			var in struct {
				Command string `json:"command"`
			}
			_ = json.Unmarshal(p.State.Input, &in)
			text := fmt.Sprintf("(the user ran a shell command: %s)\n%s", in.Command, p.State.Output)
			if p.State.Error != "" {
				text += "\n(" + p.State.Error + ")"
			}
			c = append(c, provider.Text{Text: text})
		}
	}
	return c
}

func hasSynthetic(parts []Part, path string) bool {
	for _, p := range parts {
		if p.Type == PartText && p.Metadata["file"] == path {
			return true
		}
	}
	return false
}

// assistantTurns renders an assistant message as one assistant message
// per step, each followed by its tool results. Thinking goes back only to
// the provider that produced it, which alone can check its signature.
func assistantTurns(m MessageWithParts, providerID string) []provider.Message {
	var out []provider.Message
	var content, results []provider.Content
	flush := func() {
		if len(content) > 0 {
			out = append(out, provider.Message{Role: provider.RoleAssistant, Content: content})
			if len(results) > 0 {
				out = append(out, provider.Message{Role: provider.RoleTool, Content: results})
			}
		}
		content, results = nil, nil
	}
	sameProvider := m.Info.Model != nil && m.Info.Model.ProviderID == providerID
	for _, p := range m.Parts {
		switch p.Type {
		case PartStepStart:
			flush()
		case PartText:
			if strings.TrimSpace(p.Text) != "" {
				content = append(content, provider.Text{Text: p.Text})
			}
		case PartReasoning:
			sig, _ := p.Metadata["signature"].(string)
			red, _ := p.Metadata["redacted"].(string)
			if sameProvider && (sig != "" || red != "") {
				content = append(content, provider.Reasoning{Text: p.Text, Signature: sig, Redacted: red})
			}
		case PartTool:
			if p.State == nil || p.CallID == "" {
				continue
			}
			input := p.State.Input
			if !json.Valid(input) {
				input = json.RawMessage("{}")
			}
			content = append(content, provider.ToolCall{ID: p.CallID, Name: p.Tool, Input: input})
			r := provider.ToolResult{CallID: p.CallID, Name: p.Tool, Output: p.State.Output}
			switch p.State.Status {
			case ToolCompleted:
			case ToolError:
				r.IsError = true
				if r.Output != "" {
					r.Output += "\n\n"
				}
				r.Output += p.State.Error
			default:
				r.IsError, r.Output = true, "the tool call did not run: the turn ended first"
			}
			if r.Output == "" {
				r.Output = "(no output)"
			}
			results = append(results, r)
		}
	}
	flush()
	return out
}
