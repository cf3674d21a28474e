package session

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/sessiond/sessiond/session/tools"
)

// Permission actions (DESIGN §6).
const (
	PermissionAllow = "allow"
	PermissionAsk   = "ask"
	PermissionDeny  = "deny"
)

// Permission outcomes a client answers session/requestPermission with.
const (
	OutcomeAllowOnce    = "allow_once"
	OutcomeAllowAlways  = "allow_always"
	OutcomeRejectOnce   = "reject_once"
	OutcomeRejectAlways = "reject_always"
	OutcomeCancelled    = "cancelled"
)

// PermissionAsker asks the user whether a tool call may run: the client
// that sent the prompt, over session/requestPermission.
type PermissionAsker interface {
	AskPermission(ctx context.Context, req PermissionRequest) (string, error)
}

// PermissionRequest is the params of session/requestPermission.
type PermissionRequest struct {
	SessionID string          `json:"sessionID"`
	MessageID string          `json:"messageID"`
	PartID    string          `json:"partID"`
	CallID    string          `json:"callID"`
	Tool      string          `json:"tool"`
	Input     json.RawMessage `json:"input"`
	// Pattern is what the rule matched: bash's command, a file tool's
	// path.
	Pattern string             `json:"pattern,omitempty"`
	Options []PermissionOption `json:"options"`
}

// PermissionOption is one answer the client may pick.
type PermissionOption struct {
	OptionID string `json:"optionId"`
	Name     string `json:"name"`
	Kind     string `json:"kind"`
}

// PermissionResult is the answer to session/requestPermission.
type PermissionResult struct {
	Outcome string `json:"outcome"`
}

var permissionOptions = []PermissionOption{
	{OptionID: OutcomeAllowOnce, Name: "Allow once", Kind: OutcomeAllowOnce},
	{OptionID: OutcomeAllowAlways, Name: "Always allow this tool in this session", Kind: OutcomeAllowAlways},
	{OptionID: OutcomeRejectOnce, Name: "Reject", Kind: OutcomeRejectOnce},
	{OptionID: OutcomeRejectAlways, Name: "Always reject this tool in this session", Kind: OutcomeRejectAlways},
}

// permissionRules are a session's rules: by tool name ("*" for any tool
// without rules of its own), patterns with their action, longest pattern
// first.
type permissionRules map[string][]patternRule

type patternRule struct {
	pattern, action string
}

// parsePermission reads a session's permission field:
//
//	{"bash": "ask", "edit": "deny", "*": "allow",
//	 "write": {"*.md": "allow", "*": "ask"}}
//
// A tool maps to an action, or to patterns (matched against bash's
// command or a file tool's path; * matches any run of characters, ?
// one) each with an action; the longest matching pattern wins.
func parsePermission(raw json.RawMessage) (permissionRules, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		return nil, errors.New(`permission must be an object mapping tool names to "allow", "ask" or "deny", or to {pattern: action}`)
	}
	rules := permissionRules{}
	for tool, v := range top {
		if tool != "*" {
			if _, ok := tools.Lookup(tool); !ok {
				var names []string
				for _, t := range tools.All() {
					names = append(names, t.Name())
				}
				return nil, fmt.Errorf("permission names an unknown tool %q; the tools are %s, and * for any", tool, strings.Join(names, ", "))
			}
		}
		var action string
		if json.Unmarshal(v, &action) == nil {
			if err := checkAction(tool, action); err != nil {
				return nil, err
			}
			rules[tool] = []patternRule{{pattern: "*", action: action}}
			continue
		}
		var pats map[string]string
		if err := json.Unmarshal(v, &pats); err != nil {
			return nil, fmt.Errorf("permission.%s must be \"allow\", \"ask\", \"deny\" or an object of pattern: action", tool)
		}
		var list []patternRule
		for pat, action := range pats {
			if err := checkAction(tool+"."+pat, action); err != nil {
				return nil, err
			}
			list = append(list, patternRule{pattern: pat, action: action})
		}
		sort.Slice(list, func(i, j int) bool {
			if len(list[i].pattern) != len(list[j].pattern) {
				return len(list[i].pattern) > len(list[j].pattern)
			}
			return list[i].pattern < list[j].pattern
		})
		rules[tool] = list
	}
	return rules, nil
}

func checkAction(where, action string) error {
	switch action {
	case PermissionAllow, PermissionAsk, PermissionDeny:
		return nil
	}
	return fmt.Errorf("permission.%s is %q: use \"allow\", \"ask\" or \"deny\"", where, action)
}

// match returns the action of the first of r's rules that matches a call
// of tool on subject.
func (r permissionRules) match(tool, subject string) (string, bool) {
	for _, name := range []string{tool, "*"} {
		for _, pr := range r[name] {
			if wildcard(pr.pattern, subject) {
				return pr.action, true
			}
		}
	}
	return "", false
}

// permissionLayers are rule sets in order of precedence: the session's
// own (session/create {permission}), then the user's config file, then the
// project's .sessiond/config.json. The first set with a matching rule
// decides, so a session can loosen or tighten anything, and a cloned
// repository's config can add rules but never override the user's.
type permissionLayers []permissionRules

// decide returns the action for a call of tool on subject; no rule means
// allow.
func (ls permissionLayers) decide(tool, subject string) string {
	for _, r := range ls {
		if action, ok := r.match(tool, subject); ok {
			return action
		}
	}
	return PermissionAllow
}

// configPermission reads the "permission" key of a config file, in the
// same format as session/create {permission}. A missing file or key is no
// rules.
func configPermission(path string) (permissionRules, error) {
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var top struct {
		Permission json.RawMessage `json:"permission"`
	}
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	rules, err := parsePermission(top.Permission)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return rules, nil
}

// wildcard matches s against a pattern where * is any run of characters
// (slashes and spaces included) and ? any one character.
func wildcard(pattern, s string) bool {
	p, str := []rune(pattern), []rune(s)
	pi, si, star, mark := 0, 0, -1, 0
	for si < len(str) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == str[si]):
			pi++
			si++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// subjectOf is what a call's patterns are matched against.
func subjectOf(input json.RawMessage) string {
	var in map[string]any
	if json.Unmarshal(input, &in) != nil {
		return ""
	}
	for _, k := range []string{"command", "path", "pattern"} {
		if v, ok := in[k].(string); ok {
			return v
		}
	}
	return ""
}

// permit applies the session's rules to the tool call at part i, asking
// the prompt's client when a rule says ask. A non-nil error is the reason
// the call may not run, for the model.
func (l *loop) permit(ctx context.Context, i int, tool tools.Tool) error {
	p := &l.m.Parts[i]
	name := tool.Name()
	subject := subjectOf(p.State.Input)
	action := l.j.rules.decide(name, subject)
	about := name
	if subject != "" {
		about = fmt.Sprintf("%s (%s)", name, subject)
	}
	a := &l.s.agent
	if action == PermissionAsk {
		a.mu.Lock()
		if v := a.always[l.t.ses.ID][name]; v != "" {
			action = v
		}
		a.mu.Unlock()
	}
	switch action {
	case PermissionAllow:
		return nil
	case PermissionDeny:
		return fmt.Errorf("permission denied: the session's permission rules deny %s; do not retry it, find another way or ask the user", about)
	}
	asker := l.j.p.Asker
	if asker == nil {
		return fmt.Errorf("permission rejected: the session's rules say to ask the user before %s, and no connected client can answer; ask the user to allow it or to change the session's rules", about)
	}
	p.Metadata = withMeta(p.Metadata, "permission", "asked")
	l.save(false, i)
	outcome, err := asker.AskPermission(ctx, PermissionRequest{
		SessionID: l.t.ses.ID, MessageID: l.m.Info.ID, PartID: p.ID, CallID: p.CallID,
		Tool: name, Input: p.State.Input, Pattern: subject, Options: slices.Clone(permissionOptions),
	})
	p = &l.m.Parts[i]
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("aborted while asking for permission: %w", context.Cause(ctx))
		}
		p.Metadata = withMeta(p.Metadata, "permission", "rejected")
		return fmt.Errorf("permission rejected: the client could not answer the permission request for %s: %v", about, err)
	}
	remember := func(v string) {
		a.mu.Lock()
		if a.always[l.t.ses.ID] == nil {
			a.always[l.t.ses.ID] = map[string]string{}
		}
		a.always[l.t.ses.ID][name] = v
		a.mu.Unlock()
	}
	p.Metadata = withMeta(p.Metadata, "permission", outcome)
	switch outcome {
	case OutcomeAllowOnce:
		return nil
	case OutcomeAllowAlways:
		remember(PermissionAllow)
		return nil
	case OutcomeRejectAlways:
		remember(PermissionDeny)
		return fmt.Errorf("permission rejected: the user rejected %s for the rest of this session; do not retry it", about)
	case OutcomeRejectOnce:
		return fmt.Errorf("permission rejected: the user rejected %s; ask what they want instead", about)
	case OutcomeCancelled:
		return fmt.Errorf("permission rejected: the user dismissed the request for %s", about)
	}
	return fmt.Errorf("permission rejected: the client answered %q, which is not one of allow_once, allow_always, reject_once, reject_always, cancelled", outcome)
}
