package session

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/sessiond/sessiond/session/provider"
	"github.com/sessiond/sessiond/session/tools"
	"github.com/sessiond/sessiond/store"
	"github.com/sessiond/sessiond/workspace/confine"
	"github.com/sessiond/sessiond/workspace/ignore"
)

// AgentsFile is the file session/init writes at the workspace root, and
// the one every prompt's system prompt carries.
const AgentsFile = "AGENTS.md"

// How session/init made AGENTS.md.
const (
	InitModeAgent   = "agent"   // a prompt turn: the agent studied the workspace and wrote it
	InitModeFactual = "factual" // no model: built from what the workspace's files show
)

// InitParams are the params of session/init.
type InitParams struct {
	SessionID string `json:"sessionID"`
	// Force replaces an existing AGENTS.md (the agent is told to improve
	// it). Without it an existing file is refused and nothing runs.
	Force bool `json:"force,omitempty"`
	// Model picks the model; without it, the session's or the configured
	// default. When none is configured (and none is asked for here) the
	// file is built from the workspace's files instead.
	Model   *ModelRef `json:"model,omitempty"`
	Variant string    `json:"variant,omitempty"`
	// Factual builds the file from the workspace's files even when a
	// model is configured.
	Factual bool `json:"factual,omitempty"`
	// Instructions add to what the agent is told.
	Instructions string `json:"instructions,omitempty"`
	// Asker answers the turn's permission questions (see PromptParams).
	Asker PermissionAsker `json:"-"`
}

// InitResult says how AGENTS.md was made.
type InitResult struct {
	Mode string `json:"mode"` // agent or factual
	// Path is the file, relative to the workspace root.
	Path string `json:"path"`
	// Message is the turn: the assistant message of the agent's turn, or
	// the recorded user message that wrote the file. Either way
	// session/revert to it undoes the file.
	Message MessageWithParts `json:"message"`
	// Note says why the file was built without a model, or that the
	// agent's turn ended without writing it.
	Note string `json:"note,omitempty"`
}

// Init analyses the workspace and writes AGENTS.md at its root, as a
// recorded, revertible turn. With a model it is a prompt turn of the
// build agent told to study the workspace and write the file with its
// write tool; with none it writes a factual file from what the workspace
// shows: languages, build and test commands from go.mod, package.json,
// Makefile, Cargo.toml, pyproject.toml and the like, top-level
// directories. An existing AGENTS.md is never replaced without Force.
func (s *Service) Init(ctx context.Context, p InitParams) (InitResult, error) {
	if err := checkText("instructions", p.Instructions); err != nil {
		return InitResult{}, err
	}
	ses, err := s.Get(ctx, p.SessionID)
	if err != nil {
		return InitResult{}, err
	}
	root, err := s.contextRoot(ctx, ses)
	if err != nil {
		return InitResult{}, err
	}
	exists, err := agentsFileExists(root)
	if err != nil {
		return InitResult{}, err
	}
	if exists && !p.Force {
		return InitResult{}, refuseExisting(root)
	}
	note := ""
	if !p.Factual {
		m, err := s.Prompt(ctx, PromptParams{
			SessionID: ses.ID,
			Parts:     []PromptPart{{Type: PartText, Text: initInstruction(exists, p.Instructions)}},
			Agent:     tools.AgentBuild,
			Model:     p.Model,
			Variant:   p.Variant,
			Asker:     p.Asker,
		})
		var npe *provider.NoProviderError
		switch {
		case err == nil:
			res := InitResult{Mode: InitModeAgent, Path: AgentsFile, Message: m}
			if !wroteFile(m, AgentsFile) {
				res.Note = "the agent's turn ended without writing " + AgentsFile
			}
			return res, nil
		case errors.As(err, &npe) && p.Model == nil:
			note = AgentsFile + " was built from the workspace's files, without a model: " + npe.Error()
		default:
			return InitResult{}, err
		}
	}
	m, err := s.writeFactualAgents(ctx, ses.ID, root, p.Force)
	if err != nil {
		return InitResult{}, err
	}
	return InitResult{Mode: InitModeFactual, Path: AgentsFile, Message: m, Note: note}, nil
}

func refuseExisting(root string) error {
	return paramErr("force", "%s already exists in %s; pass force: true to replace it (session/revert undoes the change)", AgentsFile, root)
}

func agentsFileExists(root string) (bool, error) {
	r, err := os.OpenRoot(root)
	if err != nil {
		return false, err
	}
	defer r.Close()
	_, err = r.Lstat(AgentsFile)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, err
}

// wroteFile reports whether a turn's patch parts name rel.
func wroteFile(m MessageWithParts, rel string) bool {
	for _, p := range m.Parts {
		if p.Type == PartPatch && slices.Contains(p.Files, rel) {
			return true
		}
	}
	return false
}

// initInstruction is the prompt of init's agent turn.
func initInstruction(exists bool, extra string) string {
	var b strings.Builder
	b.WriteString("Study this workspace and write " + AgentsFile + " at the workspace root with the write tool. ")
	if exists {
		b.WriteString("An " + AgentsFile + " exists already: read it first, keep what is still true, correct what is not, and add what is missing. ")
	}
	b.WriteString(`AGENTS.md tells coding agents what they need to work here. Look at the manifests and build files (go.mod, package.json, Makefile, Cargo.toml, pyproject.toml, ...), the README and docs, CI configuration and the source layout, then write, in concise Markdown:

- what the project is, in two or three sentences;
- the commands to build, test (including how to run one test), lint and format, exactly as they are run here;
- the layout: the main directories and what lives in each;
- the conventions the code follows (style, error handling, naming, tests) that are not obvious from a single file;
- anything an agent must not do or must take care with.

State only what you verified in the files; do not invent commands. Keep it short: an agent reads it at every turn. Reply with one sentence once the file is written.`)
	if strings.TrimSpace(extra) != "" {
		b.WriteString("\n\nAlso: " + strings.TrimSpace(extra))
	}
	return b.String()
}

// writeFactualAgents writes the factual AGENTS.md as a recorded turn:
// a user message saying what ran, with a file part for AGENTS.md, the
// files captured before and after, so session/revert takes the file back.
func (s *Service) writeFactualAgents(ctx context.Context, sessionID, root string, force bool) (MessageWithParts, error) {
	t, err := s.beginTurn(ctx, sessionID)
	if err != nil {
		return MessageWithParts{}, err
	}
	abandon := func() {
		s.inflight.done(t.before) // no turn is recorded: the collector may free its snapshot
		t.release()
	}
	// Checked again while the session is held: a turn that ran since may
	// have written it.
	exists, err := agentsFileExists(root)
	if err != nil {
		abandon()
		return MessageWithParts{}, err
	}
	if exists && !force {
		abandon()
		return MessageWithParts{}, refuseExisting(root)
	}
	content := describeWorkspace(root).markdown()
	now := s.nowMs()
	m := MessageWithParts{Info: Message{
		ID: s.db.NewID(store.KindMessage), SessionID: t.ses.ID, Role: RoleUser,
		Agent: t.ses.Agent, Time: MessageTime{Created: now},
	}}
	verb := "wrote"
	if exists {
		verb = "replaced"
	}
	m.Parts = []Part{{
		ID: s.db.NewID(store.KindPart), SessionID: t.ses.ID, MessageID: m.Info.ID, Type: PartText,
		Text:     fmt.Sprintf("/init: sessiond %s %s from what the workspace's files show (no model was used).", verb, AgentsFile),
		Metadata: map[string]any{"command": CommandInit},
	}, {
		ID: s.db.NewID(store.KindPart), SessionID: t.ses.ID, MessageID: m.Info.ID, Type: PartFile,
		Path: AgentsFile, Filename: AgentsFile, Mime: "text/markdown",
		Metadata: map[string]any{"bytes": len(content), "command": CommandInit, "mode": InitModeFactual},
	}}
	if err := writeInRoot(root, AgentsFile, []byte(content)); err != nil {
		abandon()
		var refused *confine.Error
		if errors.As(err, &refused) {
			// AGENTS.md leads somewhere sessiond never writes (into .git,
			// out of the workspace): the workspace's state, not a bug.
			return MessageWithParts{}, &UnsafePathError{Op: "init", Paths: []PathConflict{{Path: AgentsFile, Reason: refused.Error()}}}
		}
		return MessageWithParts{}, fmt.Errorf("write %s: %w", AgentsFile, err)
	}
	m.Info.Time.Completed = s.nowMs()
	var c claims
	c.claim(AgentsFile)
	if err := s.endTurn(ctx, t, &m, &c); err != nil {
		return MessageWithParts{}, err
	}
	return m, nil
}

// workspaceFacts is what the factual AGENTS.md says.
type workspaceFacts struct {
	languages []langCount
	projects  []projectFacts
	dirs      []dirCount
	docs      []string
	ci        []string
	truncated bool // the file walk stopped at its cap
}

type langCount struct {
	name  string
	files int
}

type dirCount struct {
	name  string
	files int
}

// projectFacts is what one manifest says.
type projectFacts struct {
	dir      string // "" for the root, else a top-level directory
	kind     string // "Go module", "npm package", ...
	name     string
	details  []string
	commands []factCommand
	file     string
}

type factCommand struct {
	what string // build, test, ...
	cmd  string
	note string
}

// Limits of the workspace walk.
const (
	maxInitWalk    = 20000
	maxInitScripts = 20
	maxInitTargets = 25
	maxManifest    = 1 << 20
)

var languageByExt = map[string]string{
	".go": "Go", ".ts": "TypeScript", ".tsx": "TypeScript", ".mts": "TypeScript", ".cts": "TypeScript",
	".js": "JavaScript", ".jsx": "JavaScript", ".mjs": "JavaScript", ".cjs": "JavaScript",
	".py": "Python", ".rs": "Rust", ".java": "Java", ".kt": "Kotlin", ".kts": "Kotlin",
	".rb": "Ruby", ".php": "PHP", ".c": "C", ".h": "C", ".cc": "C++", ".cpp": "C++", ".cxx": "C++",
	".hpp": "C++", ".hh": "C++", ".cs": "C#", ".swift": "Swift", ".m": "Objective-C", ".lua": "Lua",
	".sh": "Shell", ".bash": "Shell", ".zig": "Zig", ".ex": "Elixir", ".exs": "Elixir", ".erl": "Erlang",
	".scala": "Scala", ".dart": "Dart", ".vue": "Vue", ".svelte": "Svelte", ".hs": "Haskell",
	".ml": "OCaml", ".clj": "Clojure", ".r": "R", ".jl": "Julia", ".nim": "Nim", ".pl": "Perl",
	".sql": "SQL", ".proto": "Protocol Buffers", ".tf": "Terraform",
}

// skipDirs are directories of dependencies and build output: not the
// project's own files.
var skipDirs = map[string]bool{
	"node_modules": true, "vendor": true, "target": true, "dist": true, "build": true,
	"__pycache__": true, "venv": true, "env": true, "bower_components": true, "Pods": true,
}

// describeWorkspace gathers the facts of the workspace at root. It reads
// only: the walk honours the ignore rules and skips hidden directories
// and dependency trees.
func describeWorkspace(root string) workspaceFacts {
	var f workspaceFacts
	m, _ := ignore.New(root, ignore.Options{})
	langs := map[string]int{}
	perDir := map[string]int{}
	var top []string
	n := 0
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root {
				return err
			}
			return nil
		}
		if p == root {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return nil
		}
		rel = filepath.ToSlash(rel)
		name := d.Name()
		if d.IsDir() {
			if strings.HasPrefix(name, ".") || skipDirs[name] || (m != nil && m.IgnoredEntry(rel, true)) {
				return filepath.SkipDir
			}
			if !strings.Contains(rel, "/") {
				top = append(top, name)
			}
			return nil
		}
		if m != nil && m.IgnoredEntry(rel, false) {
			return nil
		}
		if n++; n > maxInitWalk {
			f.truncated = true
			return filepath.SkipAll
		}
		if !d.Type().IsRegular() {
			return nil
		}
		if lang := languageByExt[strings.ToLower(path.Ext(name))]; lang != "" {
			langs[lang]++
		}
		if first, _, ok := strings.Cut(rel, "/"); ok {
			perDir[first]++
		}
		return nil
	})
	for l, c := range langs {
		f.languages = append(f.languages, langCount{l, c})
	}
	slices.SortFunc(f.languages, func(a, b langCount) int {
		return cmp.Or(cmp.Compare(b.files, a.files), strings.Compare(a.name, b.name))
	})
	slices.Sort(top)
	for _, d := range top {
		f.dirs = append(f.dirs, dirCount{d, perDir[d]})
	}
	if r, err := os.OpenRoot(root); err == nil {
		for _, dir := range append([]string{""}, top...) {
			f.projects = append(f.projects, detectProjects(r, dir)...)
		}
		r.Close()
	}
	for _, name := range []string{"README.md", "README", "README.rst", "README.txt", "CONTRIBUTING.md", "ARCHITECTURE.md", "CLAUDE.md", ".cursorrules", "docs"} {
		if fi, err := os.Stat(filepath.Join(root, name)); err == nil {
			if fi.IsDir() {
				name += "/"
			}
			f.docs = append(f.docs, name)
		}
	}
	if es, err := os.ReadDir(filepath.Join(root, ".github", "workflows")); err == nil {
		for _, e := range es {
			if ext := path.Ext(e.Name()); !e.IsDir() && (ext == ".yml" || ext == ".yaml") {
				f.ci = append(f.ci, ".github/workflows/"+e.Name())
			}
		}
	}
	for _, name := range []string{".gitlab-ci.yml", ".circleci/config.yml", "Jenkinsfile", ".travis.yml"} {
		if _, err := os.Stat(filepath.Join(root, name)); err == nil {
			f.ci = append(f.ci, name)
		}
	}
	return f
}

// detectProjects reads the manifests of one directory ("" the root),
// through r, so a link in the workspace cannot make it read a file
// outside.
func detectProjects(r *os.Root, dir string) []projectFacts {
	rel := func(name string) string { return path.Join(cmp.Or(dir, "."), name) }
	has := func(name string) bool {
		fi, err := r.Stat(rel(name))
		return err == nil && !fi.IsDir()
	}
	read := func(name string) string {
		fi, err := r.Stat(rel(name))
		if err != nil || !fi.Mode().IsRegular() || fi.Size() > maxManifest {
			return ""
		}
		b, err := r.ReadFile(rel(name))
		if err != nil {
			return ""
		}
		return string(b)
	}
	tests := func() bool {
		fi, err := r.Stat(rel("tests"))
		return err == nil && fi.IsDir()
	}()
	var out []projectFacts
	add := func(p projectFacts) {
		p.dir = dir
		out = append(out, p)
	}
	if data := read("go.mod"); data != "" {
		add(goFacts(data, has("go.work")))
	}
	if data := read("package.json"); data != "" {
		add(npmFacts(data, has))
	}
	for _, name := range []string{"GNUmakefile", "makefile", "Makefile"} {
		if data := read(name); data != "" {
			add(makeFacts(name, data))
			break
		}
	}
	if data := read("Cargo.toml"); data != "" {
		add(cargoFacts(data))
	}
	if data := read("pyproject.toml"); data != "" {
		add(pyprojectFacts(data, has, tests))
	} else if has("setup.cfg") || has("setup.py") {
		add(setupFacts(read("setup.cfg"), has, tests))
	} else if has("requirements.txt") {
		p := projectFacts{kind: "Python project", file: "requirements.txt"}
		p.commands = append(p.commands, factCommand{what: "install", cmd: "pip install -r requirements.txt"})
		if tests {
			p.commands = append(p.commands, factCommand{what: "test", cmd: "pytest", note: "a tests/ directory exists; the runner is not declared"})
		}
		add(p)
	}
	if data := read("CMakeLists.txt"); data != "" {
		p := projectFacts{kind: "CMake project", file: "CMakeLists.txt"}
		if mm := cmakeProject.FindStringSubmatch(data); mm != nil {
			p.name = mm[1]
		}
		p.commands = append(p.commands, factCommand{what: "build", cmd: "cmake -S . -B build && cmake --build build"})
		if strings.Contains(strings.ToLower(data), "enable_testing") {
			p.commands = append(p.commands, factCommand{what: "test", cmd: "ctest --test-dir build"})
		}
		add(p)
	}
	if has("pom.xml") {
		mvn := "mvn"
		if has("mvnw") {
			mvn = "./mvnw"
		}
		add(projectFacts{kind: "Maven project", file: "pom.xml", commands: []factCommand{{what: "build", cmd: mvn + " package"}, {what: "test", cmd: mvn + " test"}}})
	}
	for _, g := range []string{"build.gradle.kts", "build.gradle"} {
		if has(g) {
			gradle := "gradle"
			if has("gradlew") {
				gradle = "./gradlew"
			}
			add(projectFacts{kind: "Gradle project", file: g, commands: []factCommand{{what: "build", cmd: gradle + " build"}, {what: "test", cmd: gradle + " test"}}})
			break
		}
	}
	if has("Gemfile") {
		p := projectFacts{kind: "Ruby project", file: "Gemfile", commands: []factCommand{{what: "install", cmd: "bundle install"}}}
		if has("Rakefile") {
			p.commands = append(p.commands, factCommand{what: "tasks", cmd: "bundle exec rake -T", note: "lists the Rakefile's tasks"})
		}
		add(p)
	}
	for _, d := range []string{"deno.json", "deno.jsonc"} {
		if data := read(d); data != "" {
			p := projectFacts{kind: "Deno project", file: d}
			var cfg struct {
				Tasks map[string]any `json:"tasks"`
			}
			if json.Unmarshal([]byte(data), &cfg) == nil {
				for _, k := range slices.Sorted(maps.Keys(cfg.Tasks)) {
					p.commands = append(p.commands, factCommand{what: k, cmd: "deno task " + k})
				}
			}
			add(p)
			break
		}
	}
	return out
}

func goFacts(data string, work bool) projectFacts {
	p := projectFacts{kind: "Go module", file: "go.mod"}
	for _, l := range strings.Split(data, "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "module":
			p.name = strings.Trim(f[1], `"`)
		case "go":
			p.details = append(p.details, "Go "+f[1])
		case "toolchain":
			p.details = append(p.details, "toolchain "+f[1])
		}
	}
	if work {
		p.details = append(p.details, "a go.work file joins several modules")
	}
	p.commands = []factCommand{
		{what: "build", cmd: "go build ./..."},
		{what: "test", cmd: "go test ./..."},
		{what: "one test", cmd: "go test ./path/to/pkg -run TestName"},
		{what: "vet", cmd: "go vet ./..."},
		{what: "format", cmd: "gofmt -w ."},
	}
	return p
}

// npmDefaultTest is the test script npm init writes.
const npmDefaultTest = `echo "Error: no test specified" && exit 1`

// preferredScripts come first, in this order; the others follow by name.
var preferredScripts = []string{"build", "dev", "start", "test", "lint", "format", "typecheck", "check"}

func npmFacts(data string, has func(string) bool) projectFacts {
	p := projectFacts{kind: "npm package", file: "package.json"}
	var pkg struct {
		Name            string            `json:"name"`
		Scripts         map[string]string `json:"scripts"`
		Workspaces      json.RawMessage   `json:"workspaces"`
		PackageManager  string            `json:"packageManager"`
		DevDependencies map[string]string `json:"devDependencies"`
		Dependencies    map[string]string `json:"dependencies"`
		Type            string            `json:"type"`
	}
	if err := json.Unmarshal([]byte(data), &pkg); err != nil {
		p.details = append(p.details, "package.json does not parse: "+err.Error())
		return p
	}
	p.name = pkg.Name
	pm := "npm"
	switch {
	case strings.HasPrefix(pkg.PackageManager, "pnpm"), has("pnpm-lock.yaml"):
		pm = "pnpm"
	case strings.HasPrefix(pkg.PackageManager, "yarn"), has("yarn.lock"):
		pm = "yarn"
	case strings.HasPrefix(pkg.PackageManager, "bun"), has("bun.lockb"), has("bun.lock"):
		pm = "bun"
	}
	p.details = append(p.details, "package manager: "+pm)
	if has("tsconfig.json") || pkg.DevDependencies["typescript"] != "" || pkg.Dependencies["typescript"] != "" {
		p.details = append(p.details, "TypeScript (tsconfig.json or a typescript dependency)")
	}
	if len(pkg.Workspaces) > 0 && string(pkg.Workspaces) != "null" {
		p.details = append(p.details, "declares workspaces: "+string(pkg.Workspaces))
	}
	p.commands = append(p.commands, factCommand{what: "install", cmd: pm + " install"})
	names := slices.Sorted(maps.Keys(pkg.Scripts))
	slices.SortStableFunc(names, func(a, b string) int {
		ia, ib := slices.Index(preferredScripts, a), slices.Index(preferredScripts, b)
		if ia < 0 {
			ia = len(preferredScripts)
		}
		if ib < 0 {
			ib = len(preferredScripts)
		}
		return cmp.Compare(ia, ib)
	})
	shown := 0
	for _, name := range names {
		script := pkg.Scripts[name]
		if name == "test" && strings.TrimSpace(script) == npmDefaultTest {
			p.details = append(p.details, "the test script is npm's placeholder: there are no tests to run")
			continue
		}
		if shown++; shown > maxInitScripts {
			p.details = append(p.details, fmt.Sprintf("%d more scripts in package.json", len(names)-maxInitScripts))
			break
		}
		p.commands = append(p.commands, factCommand{what: name, cmd: pm + " run " + name, note: "runs `" + strings.ReplaceAll(truncate(script, 100), "`", "'") + "`"})
	}
	return p
}

var (
	// makeTarget matches a rule line: one or more targets, a colon that
	// is not an assignment's (:=, ::=), then the prerequisites.
	makeTarget   = regexp.MustCompile(`^([A-Za-z0-9_][A-Za-z0-9_./ \t-]*?)\s*::?([^=].*)?$`)
	cmakeProject = regexp.MustCompile(`(?i)project\(\s*([A-Za-z0-9_.-]+)`)
)

func makeFacts(file, data string) projectFacts {
	p := projectFacts{kind: "Makefile", file: file}
	seen := map[string]bool{}
	var targets []factCommand
	sc := bufio.NewScanner(strings.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), maxManifest)
	for sc.Scan() {
		l := sc.Text()
		if l == "" || l[0] == '\t' || l[0] == '#' || l[0] == ' ' {
			continue
		}
		mm := makeTarget.FindStringSubmatch(l)
		if mm == nil || strings.Contains(l, ":=") {
			continue
		}
		// "a b: deps" names several targets; take them all.
		for _, t := range strings.Fields(mm[1]) {
			if seen[t] || strings.ContainsAny(t, "%$") || strings.HasPrefix(t, ".") {
				continue
			}
			seen[t] = true
			note := ""
			if _, doc, ok := strings.Cut(mm[2], "##"); ok {
				note = strings.TrimSpace(doc)
			}
			targets = append(targets, factCommand{what: t, cmd: "make " + t, note: note})
		}
	}
	if len(targets) > maxInitTargets {
		p.details = append(p.details, fmt.Sprintf("%d more targets in %s", len(targets)-maxInitTargets, file))
		targets = targets[:maxInitTargets]
	}
	if len(targets) > 0 {
		p.details = append(p.details, "`make` alone runs the first target, "+targets[0].what)
	}
	p.commands = targets
	return p
}

// tomlSections splits a TOML file into its tables' "key = value" lines,
// enough to read names and versions: table name → key → raw value.
func tomlSections(data string) map[string]map[string]string {
	out := map[string]map[string]string{"": {}}
	cur := ""
	for _, l := range strings.Split(data, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if strings.HasPrefix(l, "[") {
			cur = strings.Trim(l, "[] ")
			if out[cur] == nil {
				out[cur] = map[string]string{}
			}
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		if i := strings.Index(v, " #"); i >= 0 && !strings.HasPrefix(v, `"`) {
			v = strings.TrimSpace(v[:i])
		}
		out[cur][strings.TrimSpace(k)] = v
	}
	return out
}

func tomlString(v string) string {
	v = strings.TrimSpace(v)
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') {
		if end := strings.IndexByte(v[1:], v[0]); end >= 0 {
			return v[1 : end+1]
		}
	}
	return v
}

func cargoFacts(data string) projectFacts {
	p := projectFacts{kind: "Rust crate", file: "Cargo.toml"}
	sec := tomlSections(data)
	if pkg := sec["package"]; pkg != nil {
		p.name = tomlString(pkg["name"])
		if e := pkg["edition"]; e != "" {
			p.details = append(p.details, "edition "+tomlString(e))
		}
	}
	if _, ok := sec["workspace"]; ok {
		p.kind = "Cargo workspace"
	}
	p.commands = []factCommand{
		{what: "build", cmd: "cargo build"},
		{what: "test", cmd: "cargo test"},
		{what: "one test", cmd: "cargo test test_name"},
		{what: "lint", cmd: "cargo clippy", note: "if clippy is installed"},
		{what: "format", cmd: "cargo fmt"},
	}
	return p
}

func pyprojectFacts(data string, has func(string) bool, tests bool) projectFacts {
	p := projectFacts{kind: "Python project", file: "pyproject.toml"}
	sec := tomlSections(data)
	if proj := sec["project"]; proj != nil {
		p.name = tomlString(proj["name"])
		if r := proj["requires-python"]; r != "" {
			p.details = append(p.details, "Python "+tomlString(r))
		}
	}
	if poetry := sec["tool.poetry"]; poetry != nil && p.name == "" {
		p.name = tomlString(poetry["name"])
	}
	if b := sec["build-system"]; b != nil && b["build-backend"] != "" {
		p.details = append(p.details, "build backend "+tomlString(b["build-backend"]))
	}
	_, poetry := sec["tool.poetry"]
	run, install := "", "pip install -e ."
	switch {
	case has("uv.lock"):
		run, install = "uv run ", "uv sync"
		p.details = append(p.details, "uv (uv.lock)")
	case poetry || has("poetry.lock"):
		run, install = "poetry run ", "poetry install"
		p.details = append(p.details, "Poetry")
	case has("pdm.lock"):
		run, install = "pdm run ", "pdm install"
		p.details = append(p.details, "PDM")
	}
	p.commands = append(p.commands, factCommand{what: "install", cmd: install})
	_, pytestCfg := sec["tool.pytest.ini_options"]
	switch {
	case pytestCfg || strings.Contains(data, "pytest"):
		p.commands = append(p.commands, factCommand{what: "test", cmd: run + "pytest"})
	case has("tox.ini"):
		p.commands = append(p.commands, factCommand{what: "test", cmd: "tox"})
	case tests:
		p.commands = append(p.commands, factCommand{what: "test", cmd: run + "python -m pytest", note: "a tests/ directory exists; the runner is not declared"})
	}
	if _, ok := sec["tool.ruff"]; ok || has("ruff.toml") {
		p.commands = append(p.commands, factCommand{what: "lint", cmd: run + "ruff check ."}, factCommand{what: "format", cmd: run + "ruff format ."})
	}
	if _, ok := sec["tool.black"]; ok {
		p.commands = append(p.commands, factCommand{what: "format", cmd: run + "black ."})
	}
	if _, ok := sec["tool.mypy"]; ok {
		p.commands = append(p.commands, factCommand{what: "typecheck", cmd: run + "mypy ."})
	}
	return p
}

func setupFacts(cfg string, has func(string) bool, tests bool) projectFacts {
	p := projectFacts{kind: "Python project", file: "setup.py"}
	if cfg != "" {
		p.file = "setup.cfg"
		section := ""
		for _, l := range strings.Split(cfg, "\n") {
			t := strings.TrimSpace(l)
			if strings.HasPrefix(t, "[") {
				section = strings.Trim(t, "[] ")
				continue
			}
			if k, v, ok := strings.Cut(t, "="); ok && section == "metadata" && strings.TrimSpace(k) == "name" {
				p.name = strings.TrimSpace(v)
			}
		}
	}
	p.commands = append(p.commands, factCommand{what: "install", cmd: "pip install -e ."})
	switch {
	case strings.Contains(cfg, "[tool:pytest]"):
		p.commands = append(p.commands, factCommand{what: "test", cmd: "pytest"})
	case has("tox.ini"):
		p.commands = append(p.commands, factCommand{what: "test", cmd: "tox"})
	case tests:
		p.commands = append(p.commands, factCommand{what: "test", cmd: "python -m pytest", note: "a tests/ directory exists; the runner is not declared"})
	}
	return p
}

// markdown renders the facts as AGENTS.md.
func (f workspaceFacts) markdown() string {
	var b strings.Builder
	b.WriteString("# AGENTS.md\n\n")
	b.WriteString("Written by sessiond's /init without a model: it says only what the workspace's files show. " +
		"Edit it freely, or run /init again with a model configured (force: true) for a fuller guide.\n")

	b.WriteString("\n## Project\n\n")
	if len(f.languages) > 0 {
		var ls []string
		for i, l := range f.languages {
			if i == 8 {
				break
			}
			ls = append(ls, fmt.Sprintf("%s (%d %s)", l.name, l.files, plural(l.files, "file", "files")))
		}
		fmt.Fprintf(&b, "- Languages: %s\n", strings.Join(ls, ", "))
	} else {
		b.WriteString("- No source files of a known language were found.\n")
	}
	for _, p := range f.projects {
		line := "- " + p.label()
		if len(p.details) > 0 {
			line += ": " + strings.Join(p.details, "; ")
		}
		b.WriteString(line + "\n")
	}
	if f.truncated {
		fmt.Fprintf(&b, "- The file count stopped at %d files.\n", maxInitWalk)
	}

	var withCmds []projectFacts
	for _, p := range f.projects {
		if len(p.commands) > 0 {
			withCmds = append(withCmds, p)
		}
	}
	if len(withCmds) > 0 {
		b.WriteString("\n## Build and test\n")
		for _, p := range withCmds {
			b.WriteString("\n" + p.label())
			if p.dir != "" {
				fmt.Fprintf(&b, ", run in `%s/`", p.dir)
			}
			b.WriteString(":\n\n")
			for _, c := range p.commands {
				line := fmt.Sprintf("- %s: `%s`", c.what, c.cmd)
				if c.note != "" {
					line += " — " + c.note
				}
				b.WriteString(line + "\n")
			}
		}
	}

	if len(f.dirs) > 0 {
		b.WriteString("\n## Layout\n\n")
		for _, d := range f.dirs {
			fmt.Fprintf(&b, "- `%s/` (%d %s)\n", d.name, d.files, plural(d.files, "file", "files"))
		}
	}
	if len(f.docs) > 0 || len(f.ci) > 0 {
		b.WriteString("\n## More to read\n\n")
		for _, d := range f.docs {
			fmt.Fprintf(&b, "- `%s`\n", d)
		}
		for _, c := range f.ci {
			fmt.Fprintf(&b, "- CI: `%s`\n", c)
		}
	}
	return b.String()
}

// label names the project and the file it was read from.
func (p projectFacts) label() string {
	l := p.kind
	if p.name != "" {
		l += " `" + p.name + "`"
	}
	if w := p.where(); w != p.kind {
		l += " (" + w + ")"
	}
	return l
}

func (p projectFacts) where() string {
	if p.dir == "" {
		return p.file
	}
	return p.dir + "/" + p.file
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
