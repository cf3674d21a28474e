package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/session"
)

// TestReadmeNeovimSnippet runs the README's Neovim snippet as written, in
// the Neovim this machine has (Debian's is 0.7), against the real binary:
// it must start the relay and list the project's sessions.
func TestReadmeNeovimSnippet(t *testing.T) {
	t.Parallel()
	nvim, err := exec.LookPath("nvim")
	if err != nil {
		t.Skip("nvim is not installed (.ci/run installs Debian's neovim)")
	}
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	start := strings.Index(text, "```lua\nlocal dispatchers")
	if start < 0 {
		t.Fatal("README.md has no Neovim snippet (```lua starting with `local dispatchers`)")
	}
	snippet := text[start+len("```lua\n"):]
	snippet = snippet[:strings.Index(snippet, "```")]
	const comment = "  -- res.sessions: the sessions of the project holding the current directory\n"
	if !strings.Contains(snippet, comment) {
		t.Fatalf("the README snippet's callback changed; update this test:\n%s", snippet)
	}

	s := newSandbox(t)
	s.serve("--idle-timeout", "0")
	ws := s.dir("ws")
	c := s.dial()
	ses := c.create(session.CreateParams{Directory: ws, Title: "made elsewhere"})

	// The callback writes what it got, then quits Neovim.
	out := filepath.Join(s.base, "nvim.out")
	snippet = strings.Replace(snippet, comment, `  local f = io.open(`+luaString(out)+`, 'w')
  if err then f:write('error: ' .. vim.inspect(err)) else
    for _, s in ipairs(res.sessions) do f:write(s.id .. '\t' .. s.title .. '\n') end
  end
  f:close()
  vim.schedule(function() vim.cmd('qa!') end)
`, 1)
	lua := filepath.Join(s.base, "snippet.lua")
	if err := os.WriteFile(lua, []byte(snippet), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nvim, "--headless", "-u", "NONE", "-c", "luafile "+lua)
	cmd.Dir = ws
	// `sessiond` on PATH is the binary under test; the sandbox's data dir
	// and socket lead it to the daemon above.
	cmd.Env = append(s.env, "PATH="+filepath.Dir(bin)+":"+os.Getenv("PATH"))
	p := s.start(cmd)
	if code := p.wait(); code != 0 {
		t.Fatalf("nvim exited with %d; stderr:\n%s", code, p.stderr.String())
	}
	got := readFile(t, out)
	if want := ses.ID + "\tmade elsewhere\n"; got != want {
		t.Errorf("the snippet's session/list gave %q, want %q; nvim stderr:\n%s", got, want, p.stderr.String())
	}
}

// luaString quotes s for Lua.
func luaString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
