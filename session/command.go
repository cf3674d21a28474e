package session

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/sessiond/sessiond/session/provider"
	"github.com/sessiond/sessiond/session/tools"
	"github.com/sessiond/sessiond/workspace/confine"
)

// Built-in commands of session/command. They come before any template
// file: a file named init.md is reported as a problem, never run.
const (
	CommandInit      = "init"
	CommandSummarize = "summarize"
	CommandCompact   = "compact"
	CommandClear     = "clear"
)

// Where command templates live: CommandsDir under the workspace root, and
// "commands" in sessiond's user config dir (the directory of the user
// config.json, $XDG_CONFIG_HOME/sessiond).
const (
	CommandsDir      = ".sessiond/commands"
	userCommandsDir  = "commands"
	maxCommandFile   = 256 << 10
	maxCommandDescr  = 120
	commandExtension = ".md"
)

// Sources of a command.
const (
	CommandSourceBuiltin   = "builtin"
	CommandSourceWorkspace = "workspace"
	CommandSourceUser      = "user"
)

var builtinCommands = []CommandInfo{
	{Name: CommandInit, Source: CommandSourceBuiltin, Description: "Study the workspace and write AGENTS.md (args: force, then extra instructions for the agent)"},
	{Name: CommandSummarize, Source: CommandSourceBuiltin, Description: "Summarise the session (args: extractive, to skip the model)"},
	{Name: CommandCompact, Source: CommandSourceBuiltin, Description: "Replace the model's view of earlier turns with a summary; the messages stay stored"},
	{Name: CommandClear, Source: CommandSourceBuiltin, Description: "Start a new context: earlier messages stay stored and listed, but are no longer sent to the model"},
}

// CommandArgs are a command's arguments. On the wire they are a string,
// split like a shell splits words (quotes group, no expansion), or an
// array of strings, one per argument.
type CommandArgs struct {
	// Raw is what $ARGUMENTS becomes: the string as sent, or the array
	// joined with spaces.
	Raw string
	// List holds $1, $2, ...
	List []string
}

// UnmarshalJSON accepts a string, an array of strings or null.
func (a *CommandArgs) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case string(b) == "null":
		*a = CommandArgs{}
		return nil
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*a = CommandArgs{Raw: s, List: splitArgs(s)}
		return nil
	case len(b) > 0 && b[0] == '[':
		var l []string
		if err := json.Unmarshal(b, &l); err != nil {
			return &json.UnmarshalTypeError{Value: "array of non-strings", Type: reflect.TypeFor[[]string]()}
		}
		*a = CommandArgs{Raw: strings.Join(l, " "), List: l}
		return nil
	}
	return &json.UnmarshalTypeError{Value: jsonKind(b), Type: reflect.TypeFor[string]()}
}

// MarshalJSON writes the arguments as the array they were split into.
func (a CommandArgs) MarshalJSON() ([]byte, error) {
	if a.List == nil {
		return []byte("[]"), nil
	}
	return json.Marshal(a.List)
}

func jsonKind(b []byte) string {
	switch {
	case len(b) == 0:
		return "nothing"
	case b[0] == '{':
		return "object"
	case b[0] == 't' || b[0] == 'f':
		return "bool"
	}
	return "number"
}

// splitArgs splits s into words: whitespace separates them, single and
// double quotes group (a backslash escapes a quote inside double quotes).
func splitArgs(s string) []string {
	var (
		out   []string
		cur   strings.Builder
		in    bool // a word has started (quotes may make it empty)
		quote rune
	)
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case quote != 0:
			switch {
			case r == quote:
				quote = 0
			case quote == '"' && r == '\\' && i+1 < len(rs) && (rs[i+1] == '"' || rs[i+1] == '\\'):
				i++
				cur.WriteRune(rs[i])
			default:
				cur.WriteRune(r)
			}
		case r == '"' || r == '\'':
			quote, in = r, true
		case r == ' ' || r == '\t' || r == '\n' || r == '\r':
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if in {
		out = append(out, cur.String())
	}
	return out
}

// CommandParams are the params of session/command.
type CommandParams struct {
	SessionID string `json:"sessionID"`
	// Name is the command, with or without a leading "/".
	Name string      `json:"name"`
	Args CommandArgs `json:"args,omitzero"`
	// Agent, Model and Variant override the template's front matter (and
	// it the session's) for a template command, and init's choices.
	Agent   string    `json:"agent,omitempty"`
	Model   *ModelRef `json:"model,omitempty"`
	Variant string    `json:"variant,omitempty"`
	// Asker answers the turn's permission questions (see PromptParams).
	Asker PermissionAsker `json:"-"`
}

// CommandResult is what session/command did. One field besides Name and
// Source is set: Message for a template command (the assistant message
// of its prompt turn, as session/prompt returns it), Init for init,
// Summary for summarize, Compact for compact (as session/compact returns
// it), Session for clear (as session/clear returns it).
type CommandResult struct {
	Name    string            `json:"name"`
	Source  string            `json:"source"`
	Message *MessageWithParts `json:"message,omitempty"`
	Init    *InitResult       `json:"init,omitempty"`
	Summary *SessionSummary   `json:"summary,omitempty"`
	Compact *CompactResult    `json:"compact,omitempty"`
	Session *Session          `json:"session,omitempty"`
}

// CommandInfo describes one command of session/commands.
type CommandInfo struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	// Source is builtin, workspace (CommandsDir under the workspace
	// root) or user (the user config dir).
	Source string `json:"source"`
	// Path is the template file.
	Path string `json:"path,omitempty"`
	// Agent and Model are the template's front matter choices.
	Agent string    `json:"agent,omitempty"`
	Model *ModelRef `json:"model,omitempty"`
	// ArgumentHint is the front matter's argument-hint, for completion.
	ArgumentHint string `json:"argumentHint,omitempty"`
	// Placeholders lists what the template substitutes: "$ARGUMENTS",
	// "$1", "$2", ...
	Placeholders []string `json:"placeholders,omitempty"`
	// Overrides is the user template a workspace template of the same
	// name hides.
	Overrides string `json:"overrides,omitempty"`

	template string
}

// CommandProblem is a template file that cannot be used, and why.
type CommandProblem struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

// CommandsParams are the params of session/commands.
type CommandsParams struct {
	SessionID string `json:"sessionID"`
}

// CommandsResult lists the commands a session can run: the built-ins
// first, then the templates by name; and the template files that could
// not be read, so a user sees why a command is missing.
type CommandsResult struct {
	Commands []CommandInfo    `json:"commands"`
	Problems []CommandProblem `json:"problems,omitempty"`
}

// Commands lists the commands of a session's workspace.
func (s *Service) Commands(ctx context.Context, p CommandsParams) (CommandsResult, error) {
	ses, err := s.Get(ctx, p.SessionID)
	if err != nil {
		return CommandsResult{}, err
	}
	root, err := s.contextRoot(ctx, ses)
	if err != nil {
		return CommandsResult{}, err
	}
	return s.commandSet(root), nil
}

// Command runs a built-in command or a template. A template's text, with
// its arguments substituted, becomes a prompt: it is queued, streamed and
// recorded exactly like session/prompt, and needs a model (NoProvider
// without one). An unknown name is InvalidParams listing the commands.
func (s *Service) Command(ctx context.Context, p CommandParams) (CommandResult, error) {
	ses, err := s.Get(ctx, p.SessionID)
	if err != nil {
		return CommandResult{}, err
	}
	root, err := s.contextRoot(ctx, ses)
	if err != nil {
		return CommandResult{}, err
	}
	name := strings.TrimPrefix(strings.TrimSpace(p.Name), "/")
	set := s.commandSet(root)
	i := slices.IndexFunc(set.Commands, func(c CommandInfo) bool { return c.Name == name })
	if i < 0 {
		names := make([]string, len(set.Commands))
		for k, c := range set.Commands {
			names[k] = c.Name
		}
		if name == "" {
			return CommandResult{}, paramErr("name", "name is required; the commands are: %s", strings.Join(names, ", "))
		}
		msg := fmt.Sprintf("unknown command %q; the commands are: %s", name, strings.Join(names, ", "))
		for _, pr := range set.Problems {
			if strings.TrimSuffix(filepath.Base(pr.Path), commandExtension) == name {
				msg += fmt.Sprintf(" (%s cannot be used: %s)", pr.Path, pr.Message)
			}
		}
		return CommandResult{}, &ParamError{Field: "name", Msg: msg}
	}
	cmd := set.Commands[i]
	res := CommandResult{Name: cmd.Name, Source: cmd.Source}
	switch {
	case cmd.Source != CommandSourceBuiltin:
		m, err := s.runTemplate(ctx, cmd, p)
		if err != nil {
			return CommandResult{}, err
		}
		res.Message = &m
	case cmd.Name == CommandInit:
		ip := InitParams{SessionID: ses.ID, Model: p.Model, Variant: p.Variant, Asker: p.Asker}
		var rest []string
		for _, a := range p.Args.List {
			switch strings.ToLower(a) {
			case "force", "--force", "-f":
				ip.Force = true
			default:
				rest = append(rest, a)
			}
		}
		ip.Instructions = strings.Join(rest, " ")
		ir, err := s.Init(ctx, ip)
		if err != nil {
			return CommandResult{}, err
		}
		res.Init = &ir
	case cmd.Name == CommandSummarize:
		sp := SummarizeParams{SessionID: ses.ID, Model: p.Model}
		for _, a := range p.Args.List {
			switch strings.ToLower(a) {
			case "extractive", "--extractive":
				sp.Extractive = true
			default:
				return CommandResult{}, paramErr("args", "summarize takes no argument but \"extractive\", not %q", a)
			}
		}
		sum, err := s.Summarize(ctx, sp)
		if err != nil {
			return CommandResult{}, err
		}
		res.Summary = &sum
	case cmd.Name == CommandCompact:
		// The arguments say what the summary should focus on.
		cr, err := s.Compact(ctx, CompactParams{SessionID: ses.ID, Model: p.Model, Instructions: strings.TrimSpace(p.Args.Raw)})
		if err != nil {
			return CommandResult{}, err
		}
		res.Compact = &cr
	case cmd.Name == CommandClear:
		if strings.TrimSpace(p.Args.Raw) != "" {
			return CommandResult{}, paramErr("args", "clear takes no arguments")
		}
		cleared, err := s.Clear(ctx, ClearParams{SessionID: ses.ID})
		if err != nil {
			return CommandResult{}, err
		}
		res.Session = &cleared
	}
	return res, nil
}

// runTemplate runs a template command as a prompt.
func (s *Service) runTemplate(ctx context.Context, cmd CommandInfo, p CommandParams) (MessageWithParts, error) {
	text := expandTemplate(cmd.template, p.Args)
	if strings.TrimSpace(text) == "" {
		return MessageWithParts{}, paramErr("args", "the command %s expands to an empty prompt", cmd.Name)
	}
	pp := PromptParams{
		SessionID: p.SessionID,
		Parts:     []PromptPart{{Type: PartText, Text: text}},
		Agent:     cmp.Or(p.Agent, cmd.Agent),
		Model:     cmd.Model,
		Variant:   p.Variant,
		Asker:     p.Asker,
	}
	if p.Model != nil {
		pp.Model = p.Model
	}
	return s.Prompt(ctx, pp)
}

// expandTemplate substitutes $ARGUMENTS (all the arguments as sent) and
// $1..$n (each one; a missing one becomes empty). A template with no
// placeholder gets the arguments appended as a paragraph of their own, so
// they are never dropped silently.
func expandTemplate(tmpl string, args CommandArgs) string {
	var b strings.Builder
	used := false
	for i := 0; i < len(tmpl); {
		j := strings.IndexByte(tmpl[i:], '$')
		if j < 0 {
			b.WriteString(tmpl[i:])
			break
		}
		b.WriteString(tmpl[i : i+j])
		i += j
		rest := tmpl[i+1:]
		switch {
		case strings.HasPrefix(rest, "ARGUMENTS"):
			b.WriteString(args.Raw)
			i += 1 + len("ARGUMENTS")
			used = true
		case len(rest) > 0 && rest[0] >= '1' && rest[0] <= '9':
			k := 0
			for k < len(rest) && rest[k] >= '0' && rest[k] <= '9' {
				k++
			}
			if n, err := strconv.Atoi(rest[:k]); err == nil && n <= len(args.List) {
				b.WriteString(args.List[n-1])
			}
			i += 1 + k
			used = true
		default:
			b.WriteByte('$')
			i++
		}
	}
	out := b.String()
	if !used && strings.TrimSpace(args.Raw) != "" {
		out = strings.TrimRight(out, "\n") + "\n\n" + args.Raw
	}
	return out
}

// placeholders lists what a template substitutes, in order: $ARGUMENTS
// first, then $1, $2, ... up to the highest used.
func placeholders(tmpl string) []string {
	var out []string
	maxN := 0
	args := false
	for i := 0; i < len(tmpl); i++ {
		if tmpl[i] != '$' {
			continue
		}
		rest := tmpl[i+1:]
		if strings.HasPrefix(rest, "ARGUMENTS") {
			args = true
			continue
		}
		k := 0
		for k < len(rest) && rest[k] >= '0' && rest[k] <= '9' {
			k++
		}
		if k > 0 && rest[0] != '0' {
			if n, err := strconv.Atoi(rest[:k]); err == nil {
				maxN = max(maxN, n)
			}
		}
	}
	if args {
		out = append(out, "$ARGUMENTS")
	}
	for n := 1; n <= min(maxN, 99); n++ {
		out = append(out, "$"+strconv.Itoa(n))
	}
	return out
}

// configDirs returns sessiond's user config dir (where the user
// config.json is, so the same directory the providers were loaded from)
// and the paths of the user and project config files. Broken config
// falls back to the platform's user config dir.
func (s *Service) configDirs(root string) (userDir, userFile, projectFile string) {
	if reg, err := s.contextProviders(root); err == nil && reg != nil && reg.Config() != nil {
		c := reg.Config()
		if c.UserPath != "" {
			userDir = filepath.Dir(c.UserPath)
		}
		userFile, projectFile = c.UserPath, c.ProjectPath
	}
	if userDir == "" {
		if d, err := os.UserConfigDir(); err == nil {
			userDir = filepath.Join(d, "sessiond")
			userFile = filepath.Join(userDir, "config.json")
		}
	}
	if projectFile == "" {
		projectFile = filepath.Join(root, filepath.FromSlash(provider.ProjectConfigPath))
	}
	return userDir, userFile, projectFile
}

// commandSet is every command a workspace can run: the built-ins, then
// the templates by name, a workspace template hiding a user one of the
// same name.
func (s *Service) commandSet(root string) CommandsResult {
	res := CommandsResult{Commands: slices.Clone(builtinCommands)}
	userDir, _, _ := s.configDirs(root)
	var user, ws []CommandInfo
	if userDir != "" {
		dir := filepath.Join(userDir, userCommandsDir)
		user = readCommandDir(os.DirFS(dir), ".", dir, CommandSourceUser, &res.Problems)
	}
	if r, err := confine.Open(root, ""); err == nil {
		// Resolved as every path is: a link in the workspace cannot make
		// a template of a file outside it or in .git.
		ws = readCommandDir(r.FS("."), CommandsDir, filepath.Join(root, filepath.FromSlash(CommandsDir)), CommandSourceWorkspace, &res.Problems)
		r.Close()
	}
	byName := map[string]CommandInfo{}
	for _, c := range user {
		byName[c.Name] = c
	}
	for _, c := range ws {
		if u, ok := byName[c.Name]; ok {
			c.Overrides = u.Path
		}
		byName[c.Name] = c
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		c := byName[n]
		if slices.ContainsFunc(builtinCommands, func(b CommandInfo) bool { return b.Name == n }) {
			res.Problems = append(res.Problems, CommandProblem{Path: c.Path, Message: fmt.Sprintf("%q is a built-in command, which a template cannot replace: rename the file", n)})
			continue
		}
		res.Commands = append(res.Commands, c)
	}
	return res
}

// readCommandDir reads the *.md templates of the directory dir of fsys;
// abs is its path, for messages.
func readCommandDir(fsys fs.FS, dir, abs, source string, problems *[]CommandProblem) []CommandInfo {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			*problems = append(*problems, CommandProblem{Path: abs, Message: err.Error()})
		}
		return nil
	}
	var out []CommandInfo
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), commandExtension) || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		file := filepath.Join(abs, e.Name())
		name := strings.TrimSuffix(e.Name(), commandExtension)
		if !validCommandName(name) {
			*problems = append(*problems, CommandProblem{Path: file, Message: "a command name is letters, digits, '.', '_' and '-', starting with a letter or digit"})
			continue
		}
		data, err := readLimited(fsys, path.Join(dir, e.Name()), maxCommandFile)
		if err != nil {
			*problems = append(*problems, CommandProblem{Path: file, Message: err.Error()})
			continue
		}
		c, err := parseCommand(name, data)
		if err != nil {
			*problems = append(*problems, CommandProblem{Path: file, Message: err.Error()})
			continue
		}
		c.Source, c.Path = source, file
		out = append(out, c)
	}
	return out
}

func readLimited(fsys fs.FS, name string, limit int64) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && !fi.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("larger than the %d bytes a command template may have", limit)
	}
	return data, nil
}

func validCommandName(n string) bool {
	if n == "" || len(n) > 64 {
		return false
	}
	for i, r := range n {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case i > 0 && (r == '.' || r == '_' || r == '-'):
		default:
			return false
		}
	}
	return true
}

// parseCommand reads a template: optional front matter between "---"
// lines, then the prompt text.
//
// The front matter is the flat subset of YAML that command files use:
// one "key: value" per line, values plain or quoted ('...' or "..."), "#"
// comments. Known keys are description, agent, model ("provider/model")
// and argument-hint; other keys are ignored, so files written for other
// tools (allowed-tools, ...) still load. A known key whose value is not on
// its line (a block or a list) is an error naming the line. This small
// parser keeps a YAML library out of the module for three scalar keys.
func parseCommand(name string, data []byte) (CommandInfo, error) {
	if !utf8.Valid(data) {
		return CommandInfo{}, errors.New("not UTF-8 text")
	}
	text := strings.TrimPrefix(string(data), "\ufeff")
	text = strings.ReplaceAll(text, "\r\n", "\n")
	c := CommandInfo{Name: name}
	body := text
	if first, rest, ok := strings.Cut(text, "\n"); ok && strings.TrimRight(first, " \t") == "---" {
		lines := strings.Split(rest, "\n")
		end := -1
		for i, l := range lines {
			if t := strings.TrimRight(l, " \t"); t == "---" || t == "..." {
				end = i
				break
			}
		}
		if end < 0 {
			return CommandInfo{}, errors.New("the front matter starting at line 1 has no closing \"---\" line")
		}
		if err := parseFrontMatter(&c, lines[:end]); err != nil {
			return CommandInfo{}, err
		}
		body = strings.Join(lines[end+1:], "\n")
	}
	c.template = strings.TrimSpace(body)
	if c.template == "" {
		return CommandInfo{}, errors.New("the template is empty: write the prompt after the front matter")
	}
	if c.Description == "" {
		c.Description = firstLine(c.template)
	}
	c.Placeholders = placeholders(c.template)
	return c, nil
}

func parseFrontMatter(c *CommandInfo, lines []string) error {
	known := map[string]*string{"description": &c.Description, "agent": &c.Agent, "argument-hint": &c.ArgumentHint}
	var model string
	known["model"] = &model
	for i, l := range lines {
		lineNo := i + 2
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		if l[0] == ' ' || l[0] == '\t' || strings.HasPrefix(t, "- ") {
			continue // belongs to a key with a block value; known keys refuse those below
		}
		key, val, ok := strings.Cut(t, ":")
		if !ok {
			return fmt.Errorf("front matter line %d is not \"key: value\": %q", lineNo, t)
		}
		key = strings.ToLower(strings.TrimSpace(key))
		dst, isKnown := known[key]
		if !isKnown {
			continue
		}
		v, err := scalar(strings.TrimSpace(val))
		if err != nil {
			return fmt.Errorf("front matter line %d (%s): %v", lineNo, key, err)
		}
		if v == "" || v == "|" || v == ">" {
			return fmt.Errorf("front matter line %d: %s needs its value on the same line", lineNo, key)
		}
		*dst = v
	}
	if model != "" {
		ref, err := provider.ParseModelRef(model)
		if err != nil {
			return fmt.Errorf("front matter: %v", err)
		}
		c.Model = &ModelRef{ProviderID: ref.ProviderID, ModelID: ref.ModelID}
	}
	if c.Agent != "" {
		if _, err := tools.ForAgent(c.Agent); err != nil {
			return fmt.Errorf("front matter: %v", err)
		}
	}
	if len(c.Description) > maxCommandDescr*4 {
		c.Description = truncate(c.Description, maxCommandDescr*4)
	}
	return nil
}

// scalar reads a front matter value: quoted, or plain up to a " #"
// comment.
func scalar(v string) (string, error) {
	switch {
	case strings.HasPrefix(v, `"`):
		end := closingQuote(v)
		if end < 0 {
			return "", errors.New("unterminated \"...\" string")
		}
		s, err := strconv.Unquote(v[:end+1])
		if err != nil {
			return "", fmt.Errorf("bad \"...\" string: %v", err)
		}
		return s, nil
	case strings.HasPrefix(v, "'"):
		var b strings.Builder
		for i := 1; i < len(v); i++ {
			if v[i] == '\'' {
				if i+1 < len(v) && v[i+1] == '\'' {
					b.WriteByte('\'')
					i++
					continue
				}
				return b.String(), nil
			}
			b.WriteByte(v[i])
		}
		return "", errors.New("unterminated '...' string")
	}
	if i := strings.Index(v, " #"); i >= 0 {
		v = v[:i]
	}
	return strings.TrimSpace(v), nil
}

func closingQuote(v string) int {
	for i := 1; i < len(v); i++ {
		switch v[i] {
		case '\\':
			i++
		case '"':
			return i
		}
	}
	return -1
}

func firstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(strings.TrimLeft(l, "# ")); l != "" {
			return truncate(l, maxCommandDescr)
		}
	}
	return ""
}

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
