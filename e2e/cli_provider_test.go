package e2e

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/rpc"
	"github.com/sessiond/sessiond/session"
)

// TestCLIProviderConnectionRefused: a prompt to a local model server that
// is not running fails at the first attempt, with ProviderError naming
// the URL it tried, instead of retrying for half a minute.
func TestCLIProviderConnectionRefused(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	base := "http://" + addr + "/v1"

	s := newSandbox(t)
	dir := filepath.Join(s.base, "home", ".config", "sessiond")
	os.MkdirAll(dir, 0o700)
	cfg := map[string]any{"model": "local/qwen", "providers": map[string]any{"local": map[string]any{"type": "openai", "baseURL": base}}}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(mustJSON(cfg)), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := s.command("serve")
	cmd.Env = slices.DeleteFunc(cmd.Env, func(kv string) bool {
		return strings.HasPrefix(kv, "OPENAI_") || strings.HasPrefix(kv, "ANTHROPIC_")
	})
	s.waitListening(s.start(cmd))

	c := s.dial()
	ses := c.create(session.CreateParams{Directory: s.dir("ws")})
	e := c.callErr("session/prompt", textPrompt(ses.ID, "hi"))
	errCheck(t, "prompt to a closed port", e, rpc.CodeProviderError, "")
	if e.Data["attempts"] != float64(1) || e.Data["retryable"] != false ||
		!strings.Contains(e.Message, base) || !strings.Contains(e.Message, "connection refused") {
		t.Errorf("prompt to a closed port: %s", mustJSON(e))
	}

	_, stderr, code := s.run(s.dir("ws"), "prompt", ses.ID, "hi again")
	if code != 3 || !strings.Contains(stderr, base) || !strings.Contains(stderr, "connection refused") {
		t.Errorf("sessiond prompt to a closed port: exit %d, stderr:\n%s", code, stderr)
	}
}
