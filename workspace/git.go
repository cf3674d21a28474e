package workspace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// gitTimeout bounds one git command: rev-list walks the whole history, which
// takes a moment on big repositories, but a hung git must not hang Open.
const gitTimeout = 5 * time.Second

// findGitTop returns the nearest directory at or above dir that holds a
// .git entry (a directory, or a file as in worktrees and submodules), or ""
// when dir is in no repository. It only stats, so it is cheap enough to run
// on every Open.
func findGitTop(dir string) string {
	for d := dir; ; {
		if _, err := os.Lstat(filepath.Join(d, ".git")); err == nil {
			return d
		}
		parent := filepath.Dir(d)
		if parent == d {
			return ""
		}
		d = parent
	}
}

// rootCommit returns the root commit of HEAD in the repository at top; with
// several roots (merged unrelated histories) the lexicographically smallest,
// so every clone picks the same one.
func rootCommit(ctx context.Context, top string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, gitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", "-C", top, "rev-list", "--max-parents=0", "HEAD")
	cmd.Env = gitEnv(os.Environ())
	// Don't wait for grandchildren holding our pipes after a kill.
	cmd.WaitDelay = time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return "", fmt.Errorf("git rev-list in %s: %w: %s", top, err, msg)
		}
		return "", fmt.Errorf("git rev-list in %s: %w", top, err)
	}
	roots := strings.Fields(string(out))
	if len(roots) == 0 {
		return "", errors.New("git rev-list in " + top + " printed no root commit")
	}
	return slices.Min(roots), nil
}

// isGitLocalEnv reports the variables that point git at a particular
// repository (`git rev-parse --local-env-vars`). The daemon may have been
// started from a hook or an editor inside some repository; they must not
// redirect the commands we run on another.
func isGitLocalEnv(name string) bool {
	switch name {
	case "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_CONFIG", "GIT_CONFIG_PARAMETERS",
		"GIT_CONFIG_COUNT", "GIT_OBJECT_DIRECTORY", "GIT_DIR", "GIT_WORK_TREE",
		"GIT_IMPLICIT_WORK_TREE", "GIT_GRAFT_FILE", "GIT_INDEX_FILE",
		"GIT_NO_REPLACE_OBJECTS", "GIT_REPLACE_REF_BASE", "GIT_PREFIX",
		"GIT_INTERNAL_SUPER_PREFIX", "GIT_SHALLOW_FILE", "GIT_COMMON_DIR":
		return true
	}
	return false
}

// gitEnv returns env without the repository-selecting variables, and with
// git told never to prompt or take optional locks: we are a background
// reader of somebody's working tree.
func gitEnv(env []string) []string {
	out := make([]string, 0, len(env)+2)
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if isGitLocalEnv(name) || name == "GIT_TERMINAL_PROMPT" || name == "GIT_OPTIONAL_LOCKS" {
			continue
		}
		out = append(out, kv)
	}
	return append(out, "GIT_TERMINAL_PROMPT=0", "GIT_OPTIONAL_LOCKS=0")
}
