package e2e

// Paths a client or the model names never reach .git/ or leave the
// workspace, however they are spelt: "..", absolute paths, symbolic links
// at any component. A symlink checked into a repository (linkgit -> .git)
// must not let an upload, a prompt's file part, an agent tool or a command
// file touch git's metadata: git runs what it finds there (hooks,
// core.fsmonitor), and .git/config may hold credentials.

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/rpc"
	"github.com/sessiond/sessiond/session"
	"github.com/sessiond/sessiond/session/provider"
	pt "github.com/sessiond/sessiond/session/provider/providertest"
)

// pathsSecret stands for a credential git keeps in .git/config (as
// actions/checkout does with http.extraheader).
const pathsSecret = "AUTHORIZATION: basic c2VjcmV0LXRva2Vu"

// pathsLinks plants the links every test here goes through, in ws (a git
// repository) next to outside:
//
//	linkgit  -> .git                 (a directory link into .git)
//	cfg      -> .git/config          (a file link into .git)
//	sub/git  -> ../.git/hooks        (a link one level down)
//	outdir   -> <outside>            (a directory link out)
//	outfile  -> <outside>/secret.txt (a file link out)
//	sub/up   -> ../..                (a relative link climbing out)
//	inlink   -> sub                  (stays inside: allowed)
func pathsLinks(t *testing.T, ws, outside string) {
	t.Helper()
	tmWriteFile(t, filepath.Join(outside, "secret.txt"), "outside secret\n", 0o644)
	tmWriteFile(t, filepath.Join(ws, "sub", "keep.txt"), "keep\n", 0o644)
	for link, target := range map[string]string{
		"linkgit": ".git",
		"cfg":     ".git/config",
		"sub/git": "../.git/hooks",
		"outdir":  outside,
		"outfile": filepath.Join(outside, "secret.txt"),
		"sub/up":  "../..",
		"inlink":  "sub",
	} {
		if err := os.Symlink(target, filepath.Join(ws, filepath.FromSlash(link))); err != nil {
			t.Fatal(err)
		}
	}
}

// pathsGitState is what must not change in .git: its config, byte for
// byte, and the hooks directory's listing.
func pathsGitState(t *testing.T, ws string) string {
	t.Helper()
	cfg, err := os.ReadFile(filepath.Join(ws, ".git", "config"))
	if err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(filepath.Join(ws, ".git", "hooks"))
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return string(cfg) + "\nhooks: " + strings.Join(names, ",")
}

// TestPathsUploadRefusesGitAndOutside: session/upload refuses every path
// that resolves into .git/ or out of the workspace, with InvalidParams on
// "path" and a message saying what is refused and why; nothing is written
// and no turn is recorded. An upload through a link that stays inside
// still works.
func TestPathsUploadRefusesGitAndOutside(t *testing.T) {
	t.Parallel()
	w := tmSetup(t, true, func(w *tmWorld) {
		tmGit(t, w.ws, "config", "http.extraheader", pathsSecret)
		pathsLinks(t, w.ws, w.outside)
	})
	ses := w.newSession("upload paths")
	gitBefore := pathsGitState(t, w.ws)
	treeBefore := tmTree(t, w.ws)
	outsideBefore := tmTree(t, w.outside)
	payload := base64.StdEncoding.EncodeToString([]byte("[core]\n\tfsmonitor = touch pwned\n"))

	const intoGit = "into .git/"
	const linkOut = "symbolic link that leads outside the workspace"
	const outside = "outside the workspace"
	for _, tt := range []struct {
		path string
		want []string // in the message
	}{
		{"linkgit/config", []string{"linkgit/config", intoGit, "never writes"}},
		{"linkgit/hooks/pre-commit", []string{intoGit}},
		{"sub/../linkgit/config", []string{intoGit}},
		{w.path("linkgit/config"), []string{intoGit}},
		{"cfg", []string{"cfg", intoGit}},
		{"sub/git/post-checkout", []string{intoGit}},
		{"inlink/../linkgit/new", []string{intoGit}},
		{".git/config", []string{"inside .git/"}},
		{"outdir/x.txt", []string{linkOut}},
		{"outdir/new/x.txt", []string{linkOut}},
		{"outfile", []string{linkOut}},
		{"sub/up/x.txt", []string{linkOut}},
		{"../x.txt", []string{outside, ".."}},
		{"sub/../../x.txt", []string{outside}},
		{filepath.Join(w.outside, "x.txt"), []string{outside}},
	} {
		e := w.callErr("session/upload", session.UploadParams{SessionID: ses.ID, Path: tt.path, Content: payload}, rpc.CodeInvalidParams, "path")
		for _, s := range tt.want {
			if !strings.Contains(e.Message, s) {
				t.Errorf("upload %s: message %q does not say %q", tt.path, e.Message, s)
			}
		}
	}
	if got := pathsGitState(t, w.ws); got != gitBefore {
		t.Errorf(".git changed:\n%s\nwas\n%s", got, gitBefore)
	}
	tmSameTree(t, "after the refused uploads", w.ws, treeBefore)
	if d := tmDiffManifests(tmTree(t, w.outside), outsideBefore); len(d) > 0 {
		t.Errorf("a refused upload wrote outside the workspace:\n  %s", strings.Join(d, "\n  "))
	}
	if n := len(w.messages(ses.ID, true)); n != 0 {
		t.Errorf("the refused uploads recorded %d messages", n)
	}

	// A link that stays inside the workspace is fine.
	var m session.MessageWithParts
	w.call("session/upload", session.UploadParams{SessionID: ses.ID, Path: "inlink/new.txt", Content: base64.StdEncoding.EncodeToString([]byte("new\n"))}, &m)
	if b, err := os.ReadFile(w.path("sub/new.txt")); err != nil || string(b) != "new\n" {
		t.Errorf("upload through inlink wrote %q, %v", b, err)
	}
}

// pathsAgentSetup is a git workspace with pathsLinks and a secret in
// .git/config, and a daemon whose model is a fake server answering with
// responses.
func pathsAgentSetup(t *testing.T, responses ...pt.Response) (*agWorld, *pt.Server, string) {
	t.Helper()
	w, srv := agSetup(t, provider.TypeOpenAI, "gpt-4o-mini", responses...)
	outside := tmTempDir(t)
	tmGit(t, w.ws, "init", "-q")
	tmGit(t, w.ws, "config", "http.extraheader", pathsSecret)
	pathsLinks(t, w.ws, outside)
	return w, srv, outside
}

// TestPathsPromptFileRefusesGitAndOutside: a prompt's file part that
// resolves into .git/ or out of the workspace is InvalidParams on
// parts[0].path, and nothing reaches the model or the store.
func TestPathsPromptFileRefusesGitAndOutside(t *testing.T) {
	t.Parallel()
	w, srv, outside := pathsAgentSetup(t)
	ses := w.session(session.CreateParams{Title: "file parts"})
	for _, tt := range []struct {
		path string
		want string
	}{
		{"linkgit/config", "into .git/"},
		{"cfg", "into .git/"},
		{"sub/../linkgit/config", "into .git/"},
		{filepath.Join(w.ws, "linkgit", "config"), "into .git/"},
		{".git/config", "inside .git/"},
		{"outdir/secret.txt", "symbolic link that leads outside the workspace"},
		{"outfile", "symbolic link that leads outside the workspace"},
		{"sub/up/" + filepath.Base(outside) + "/secret.txt", "symbolic link that leads outside the workspace"},
		{"../x", "outside the workspace"},
	} {
		e := w.c.callErr("session/prompt", map[string]any{"sessionID": ses.ID, "parts": []any{
			map[string]any{"type": "text", "text": "read this"},
			map[string]any{"type": "file", "path": tt.path},
		}})
		errCheck(t, "prompt with file "+tt.path, e, rpc.CodeInvalidParams, "parts[1].path")
		if e != nil && !strings.Contains(e.Message, tt.want) {
			t.Errorf("prompt with file %s: message %q does not say %q", tt.path, e.Message, tt.want)
		}
	}
	if n := len(srv.Requests()); n != 0 {
		t.Errorf("the model got %d requests", n)
	}
	var msgs []session.MessageWithParts
	w.c.call("session/messages", map[string]any{"sessionID": ses.ID}, &msgs)
	if len(msgs) != 0 {
		t.Errorf("the refused prompts stored %d messages", len(msgs))
	}
}

// TestPathsAgentToolsRefuseGit: the agent's tools refuse .git/ through a
// link as tool errors the model reads (the turn goes on): write and edit
// change nothing, and read, grep and glob show nothing of .git, so the
// credential in .git/config never reaches the model.
func TestPathsAgentToolsRefuseGit(t *testing.T) {
	t.Parallel()
	w, srv, _ := pathsAgentSetup(t,
		pt.Reply(
			pt.Tool("w1", "write", `{"path":"linkgit/config","content":"[core]\n\tfsmonitor = touch pwned\n"}`),
			pt.Tool("w2", "write", `{"path":"sub/git/pre-commit","content":"#!/bin/sh\ntouch pwned\n"}`),
			pt.Tool("e1", "edit", `{"path":"cfg","old_string":"[core]","new_string":"[core]\n\tfsmonitor = touch pwned"}`),
			pt.Tool("r1", "read", `{"path":"linkgit/config"}`),
			pt.Tool("r2", "read", `{"path":"cfg"}`),
			pt.Tool("r3", "read", `{"path":".git/config"}`),
			pt.Tool("g1", "grep", `{"pattern":"extraheader"}`),
			pt.Tool("g2", "grep", `{"pattern":"extraheader","path":"linkgit"}`),
			pt.Tool("l1", "list", `{"path":"linkgit"}`),
			pt.Tool("o1", "glob", `{"pattern":"linkgit/*"}`),
			pt.Finish("tool_calls")),
		pt.Reply(pt.Text("done"), pt.Finish("stop")),
	)
	gitBefore := pathsGitState(t, w.ws)
	ses := w.session(session.CreateParams{Title: "tools"})
	var m session.MessageWithParts
	w.c.call("session/prompt", textPrompt(ses.ID, "change git's config"), &m)

	want := map[string]string{
		"w1": "into .git/", "w2": "into .git/", "e1": "into .git/",
		"r1": "into .git/", "r2": "into .git/", "r3": "inside .git/",
		"g2": "into .git/", "l1": "into .git/",
	}
	seen := map[string]bool{}
	for _, p := range m.Parts {
		if p.Type != session.PartTool {
			continue
		}
		seen[p.CallID] = true
		wantErr, refused := want[p.CallID]
		switch {
		case refused && (p.State.Status != "error" || !strings.Contains(p.State.Error, wantErr)):
			t.Errorf("%s %s: status %s, error %q; want a tool error saying %q", p.CallID, p.Tool, p.State.Status, p.State.Error, wantErr)
		case !refused && p.State.Status != "completed":
			t.Errorf("%s %s: status %s, error %q; want it to complete without .git", p.CallID, p.Tool, p.State.Status, p.State.Error)
		}
	}
	if len(seen) != 10 {
		t.Errorf("tool parts %v, want the 10 calls", seen)
	}
	if m.Info.Finish != "stop" || m.Info.Error != nil {
		t.Errorf("the turn did not go on after the refusals: %s", mustJSON(m.Info))
	}
	if got := pathsGitState(t, w.ws); got != gitBefore {
		t.Errorf(".git changed:\n%s\nwas\n%s", got, gitBefore)
	}
	for i, r := range srv.Requests() {
		if strings.Contains(string(r.Body), "c2VjcmV0LXRva2Vu") {
			t.Errorf("request %d to the model carries the credential from .git/config", i)
		}
	}
}

// TestPathsCommandFileThroughGitLink: a command file that is a link into
// .git/ is not a command (its text would go to the model); session/commands
// lists it as a problem saying why.
func TestPathsCommandFileThroughGitLink(t *testing.T) {
	t.Parallel()
	w, _, _ := pathsAgentSetup(t)
	dir := filepath.Join(w.ws, ".sessiond", "commands")
	tmWriteFile(t, filepath.Join(dir, "fine.md"), "Explain $ARGUMENTS\n", 0o644)
	if err := os.Symlink("../../.git/config", filepath.Join(dir, "leak.md")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../linkgit/description", filepath.Join(dir, "leak2.md")); err != nil {
		t.Fatal(err)
	}
	ses := w.session(session.CreateParams{Title: "commands"})
	var res session.CommandsResult
	w.c.call("session/commands", session.CommandsParams{SessionID: ses.ID}, &res)
	var names []string
	for _, c := range res.Commands {
		names = append(names, c.Name)
	}
	if !slices.Contains(names, "fine") || slices.Contains(names, "leak") || slices.Contains(names, "leak2") {
		t.Errorf("commands = %v; want fine and neither leak nor leak2", names)
	}
	problems := map[string]string{}
	for _, p := range res.Problems {
		problems[filepath.Base(p.Path)] = p.Message
	}
	for _, name := range []string{"leak.md", "leak2.md"} {
		if !strings.Contains(problems[name], "into .git/") {
			t.Errorf("problem of %s = %q; want it to say it leads into .git/", name, problems[name])
		}
	}
}

// TestPathsInitThroughGitLink: an AGENTS.md that is a link into .git is
// not written by a factual session/init: Conflict (reason unsafePath)
// naming AGENTS.md, .git unchanged, no turn recorded.
func TestPathsInitThroughGitLink(t *testing.T) {
	t.Parallel()
	w := tmSetup(t, true, func(w *tmWorld) {
		w.symlink("AGENTS.md", ".git/config")
	})
	ses := w.newSession("init through a link")
	gitBefore := pathsGitState(t, w.ws)
	e := w.callErr("session/init", map[string]any{"sessionID": ses.ID, "force": true, "factual": true}, rpc.CodeConflict, "")
	if e.Data["reason"] != "unsafePath" || !strings.Contains(e.Message, "AGENTS.md") || !strings.Contains(e.Message, ".git") {
		t.Errorf("session/init answered %q (data %v), want Conflict unsafePath naming AGENTS.md and .git", e.Message, e.Data)
	}
	if got := pathsGitState(t, w.ws); got != gitBefore {
		t.Errorf("session/init changed .git")
	}
	if ms := w.messages(ses.ID, false); len(ms) != 0 {
		t.Errorf("a refused init recorded %d messages", len(ms))
	}
}
