package session

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/session/provider"
	pt "github.com/sessiond/sessiond/session/provider/providertest"
)

// goNpmWorkspace fills a workspace with a Go module, an npm package with
// TypeScript, a Makefile, docs, CI, and things the file count must skip.
func goNpmWorkspace(f *agentFixture) {
	f.write("go.mod", "module example.com/shop\n\ngo 1.26\n\nrequire github.com/x/y v1.0.0\n")
	f.write("main.go", "package main\n\nfunc main() {}\n")
	f.write("cmd/shop/main.go", "package main\n")
	f.write("internal/cart/cart.go", "package cart\n")
	f.write("internal/cart/cart_test.go", "package cart\n")
	f.write("package.json", `{"name": "shop-web", "scripts": {"build": "tsc -p .", "test": "vitest run", "lint": "eslint .", "zzz": "echo `+"`"+`z`+"`"+`"}, "devDependencies": {"typescript": "^5"}}`)
	f.write("pnpm-lock.yaml", "lockfileVersion: '9.0'\n")
	f.write("tsconfig.json", "{}\n")
	f.write("web/src/app.ts", "export const x = 1\n")
	f.write("web/src/view.tsx", "export {}\n")
	f.write("Makefile", ".PHONY: all test\nVERSION := 1.0\nall: build ## build everything\n\tgo build ./...\ntest:\n\tgo test ./...\n%.o: %.c\n\tcc -c $<\nlint fmt: ## tidy\n\tgofmt -l .\n")
	f.write("README.md", "# Shop\n")
	f.write(".github/workflows/ci.yml", "on: push\n")
	f.write("node_modules/left-pad/index.js", "module.exports = 1\n")
	f.write(".cache/x.go", "package x\n")
	f.write("dist/bundle.js", "x\n")
	f.write(".gitignore", "generated/\n")
	f.write("generated/big.go", "package generated\n")
}

// TestInitFactualGoNpm: with no model, session/init writes a factual
// AGENTS.md (languages, the Go and npm and make commands, the layout) as
// a recorded turn with a file part and a patch part, and session/revert
// to that turn removes the file.
func TestInitFactualGoNpm(t *testing.T) {
	t.Parallel()
	f := newAgentFixture(t, userLoader(t, t.TempDir(), nil))
	goNpmWorkspace(f)
	ses := f.create(CreateParams{})

	res, err := f.svc.Init(f.ctx, InitParams{SessionID: ses.ID})
	if err != nil {
		t.Fatal(err)
	}
	if res.Mode != InitModeFactual || res.Path != AgentsFile || !strings.Contains(res.Note, "without a model: no model provider") {
		t.Errorf("result = %+v", res)
	}
	got := f.read("AGENTS.md")
	for _, want := range []string{
		"Languages: Go (4 files), TypeScript (2 files)",
		"Go module `example.com/shop` (go.mod): Go 1.26",
		"npm package `shop-web` (package.json): package manager: pnpm; TypeScript",
		"- build: `go build ./...`",
		"- test: `go test ./...`",
		"- install: `pnpm install`",
		"- build: `pnpm run build` — runs `tsc -p .`",
		"- test: `pnpm run test` — runs `vitest run`",
		"- zzz: `pnpm run zzz` — runs `echo 'z'`",
		"- all: `make all` — build everything",
		"- test: `make test`",
		"- lint: `make lint` — tidy",
		"- fmt: `make fmt` — tidy",
		"`make` alone runs the first target, all",
		"- `cmd/` (1 file)",
		"- `internal/` (2 files)",
		"- `web/` (2 files)",
		"- `README.md`",
		"- CI: `.github/workflows/ci.yml`",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("AGENTS.md lacks %q:\n%s", want, got)
		}
	}
	for _, not := range []string{"JavaScript", "node_modules", "dist", "generated", ".cache", "VERSION", "%.o", ".PHONY"} {
		if strings.Contains(got, not) {
			t.Errorf("AGENTS.md mentions %q:\n%s", not, got)
		}
	}
	// The npm scripts come in their usual order: build, test, lint, the rest.
	if b, tst, l := strings.Index(got, "pnpm run build"), strings.Index(got, "pnpm run test"), strings.Index(got, "pnpm run lint"); !(b < tst && tst < l) {
		t.Errorf("scripts out of order:\n%s", got)
	}

	m := res.Message
	if m.Info.Role != RoleUser || m.Info.Snapshot == nil || m.Info.Snapshot.Before == m.Info.Snapshot.After {
		t.Errorf("message = %+v", m.Info)
	}
	if got, want := partsOf(m), []string{PartText, PartFile, PartPatch}; !slices.Equal(got, want) {
		t.Fatalf("parts = %v, want %v", got, want)
	}
	if m.Parts[1].Path != AgentsFile || !slices.Equal(m.Parts[2].Files, []string{AgentsFile}) {
		t.Errorf("file part %+v, patch %v", m.Parts[1], m.Parts[2].Files)
	}
	if ms := f.messages(ses.ID); len(ms) != 1 || ms[0].Info.ID != m.Info.ID {
		t.Errorf("stored messages = %v", partsOfAll(ms))
	}

	if _, err := f.svc.Revert(f.ctx, RevertParams{SessionID: ses.ID, MessageID: m.Info.ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(f.ws, AgentsFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("AGENTS.md after revert: %v", err)
	}
	if _, err := f.svc.Unrevert(f.ctx, UnrevertParams{SessionID: ses.ID}); err != nil {
		t.Fatal(err)
	}
	if f.read("AGENTS.md") != got {
		t.Error("unrevert did not bring AGENTS.md back")
	}
}

// TestInitRefusesToOverwrite: an existing AGENTS.md is refused without
// force (nothing recorded, the file untouched); with force (here through
// the init command's argument) it is replaced, and revert brings the
// user's file back.
func TestInitRefusesToOverwrite(t *testing.T) {
	t.Parallel()
	f := newAgentFixture(t, userLoader(t, t.TempDir(), nil))
	f.write("go.mod", "module example.com/m\n")
	f.write("AGENTS.md", "# Mine\nHand-written.\n")
	ses := f.create(CreateParams{})

	_, err := f.svc.Init(f.ctx, InitParams{SessionID: ses.ID})
	if field, msg := paramField(t, err); field != "force" || !strings.Contains(msg, "already exists") {
		t.Errorf("init over an existing file: %q %q", field, msg)
	}
	_, err = f.svc.Command(f.ctx, CommandParams{SessionID: ses.ID, Name: "init"})
	if field, _ := paramField(t, err); field != "force" {
		t.Errorf("/init over an existing file: field %q", field)
	}
	if f.read("AGENTS.md") != "# Mine\nHand-written.\n" || len(f.messages(ses.ID)) != 0 {
		t.Fatal("a refused init changed something")
	}

	res, err := f.svc.Command(f.ctx, CommandParams{SessionID: ses.ID, Name: "init", Args: args(t, `"--force"`)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Init == nil || res.Init.Mode != InitModeFactual || !strings.Contains(f.read("AGENTS.md"), "`go test ./...`") {
		t.Fatalf("forced init = %+v; file:\n%s", res, f.read("AGENTS.md"))
	}
	if !strings.Contains(res.Init.Message.Parts[0].Text, "replaced AGENTS.md") {
		t.Errorf("message text = %q", res.Init.Message.Parts[0].Text)
	}
	if _, err := f.svc.Revert(f.ctx, RevertParams{SessionID: ses.ID, MessageID: res.Init.Message.Info.ID}); err != nil {
		t.Fatal(err)
	}
	if got := f.read("AGENTS.md"); got != "# Mine\nHand-written.\n" {
		t.Errorf("after revert AGENTS.md = %q", got)
	}
}

// TestInitWithModel: with a model, init is a prompt turn of the build
// agent told to study the workspace; the agent's write lands in the
// turn's patch and revert removes it. A model asked for that is not
// configured is NoProvider, not a silent factual file.
func TestInitWithModel(t *testing.T) {
	t.Parallel()
	srv := pt.NewOpenAI(t,
		pt.Reply(pt.Tool("c1", "write", `{"path":"AGENTS.md","content":"# Agents\nRun go test ./...\n"}`), pt.Finish("tool_calls")),
		pt.Reply(pt.Text("Wrote AGENTS.md."), pt.Finish("stop")),
	)
	f := newAgentFixture(t, userLoader(t, t.TempDir(), fakeModelConfig(srv)))
	f.write("go.mod", "module example.com/m\n")
	ses := f.create(CreateParams{Agent: "plan"})

	res, err := f.svc.Init(f.ctx, InitParams{SessionID: ses.ID, Instructions: "Mention the release process."})
	if err != nil {
		t.Fatal(err)
	}
	if res.Mode != InitModeAgent || res.Note != "" || res.Message.Info.Role != RoleAssistant || res.Message.Info.Agent != "build" {
		t.Errorf("result = %+v", res)
	}
	if got := f.read("AGENTS.md"); got != "# Agents\nRun go test ./...\n" {
		t.Errorf("AGENTS.md = %q", got)
	}
	body := string(srv.Requests()[0].Body)
	if !strings.Contains(body, "Study this workspace and write AGENTS.md") || !strings.Contains(body, "Mention the release process.") {
		t.Errorf("request = %s", body)
	}
	if _, err := f.svc.Revert(f.ctx, RevertParams{SessionID: ses.ID, MessageID: res.Message.Info.ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(f.ws, AgentsFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("AGENTS.md after revert: %v", err)
	}

	_, err = f.svc.Init(f.ctx, InitParams{SessionID: ses.ID, Model: &ModelRef{ProviderID: "nowhere", ModelID: "m"}})
	var npe *provider.NoProviderError
	if !errors.As(err, &npe) {
		t.Errorf("init with an unconfigured model: %v (%T)", err, err)
	}
}

// TestDescribeOtherProjects: Cargo, pyproject (Poetry, pytest, ruff),
// setup.cfg and requirements.txt projects, at the root and in a
// top-level directory.
func TestDescribeOtherProjects(t *testing.T) {
	t.Parallel()
	root := newDir(t)
	w := func(rel, s string) { writeFile(t, filepath.Join(root, rel), s) }
	w("Cargo.toml", "[package]\nname = \"fastcat\" # the crate\nedition = \"2021\"\n\n[dependencies]\nserde = \"1\"\n")
	w("src/main.rs", "fn main() {}\n")
	w("py/pyproject.toml", "[project]\nname = \"tooling\"\nrequires-python = \">=3.11\"\n\n[tool.poetry]\nname = \"ignored\"\n\n[tool.pytest.ini_options]\naddopts = \"-q\"\n\n[tool.ruff]\nline-length = 100\n")
	w("py/tooling/__init__.py", "")
	w("legacy/setup.cfg", "[metadata]\nname = oldpkg\n\n[tool:pytest]\ntestpaths = tests\n")
	w("scripts/requirements.txt", "requests\n")
	w("scripts/tests/test_x.py", "")
	got := describeWorkspace(root).markdown()
	for _, want := range []string{
		"Rust crate `fastcat` (Cargo.toml): edition 2021",
		"- test: `cargo test`",
		"Python project `tooling` (py/pyproject.toml): Python >=3.11; Poetry",
		"Python project `tooling` (py/pyproject.toml), run in `py/`:",
		"- install: `poetry install`",
		"- test: `poetry run pytest`",
		"- lint: `poetry run ruff check .`",
		"Python project `oldpkg` (legacy/setup.cfg)",
		"- test: `pytest`",
		"- install: `pip install -r requirements.txt`",
		"- test: `pytest` — a tests/ directory exists",
		"Languages: Python (2 files), Rust (1 file)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("description lacks %q:\n%s", want, got)
		}
	}

	empty := describeWorkspace(newDir(t)).markdown()
	if !strings.Contains(empty, "No source files of a known language were found.") || strings.Contains(empty, "## Build and test") {
		t.Errorf("empty workspace:\n%s", empty)
	}
}
