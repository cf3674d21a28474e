package tools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	// doublestar (v4.10.4) is the usual Go library for "**" globs: kept
	// up, no dependencies, and it walks an fs.FS, so the walk goes through
	// the os.Root that confines it. path.Match and filepath.Glob have no
	// "**" and no {a,b} alternatives.
	"github.com/bmatcuk/doublestar/v4"
)

// maxGlobScan bounds how many matches glob collects before sorting; past
// it the walk stops and the output says the results are partial.
const maxGlobScan = 100_000

type globTool struct{}

func (globTool) Name() string   { return "glob" }
func (globTool) ReadOnly() bool { return true }

func (globTool) Description() string {
	return fmt.Sprintf(`Finds files of the workspace by name with a glob pattern, such as "**/*.go", "src/**/*.{ts,tsx}" or "cmd/*/main.go". Returns the matching files' paths, one a line, most recently modified first.

- Pattern syntax: * matches any run of characters but "/", ** matches any number of directories, ? one character, [abc] and [a-z] a class, {a,b} alternatives. Patterns are matched against paths relative to path, and must not be absolute or contain "..".
- path is the directory to search, relative to the session's working directory or absolute inside the workspace; default: the working directory. The paths returned are relative to the working directory, ready for read.
- Only files are returned. .git directories are skipped, symbolic links to directories are not followed, and links that lead outside the workspace are left out.
- At most %d paths are returned; narrow the pattern or the path for the rest. To search file contents use grep.`, MaxGlobResults)
}

func (globTool) Schema() json.RawMessage {
	return json.RawMessage(`{
  "type": "object",
  "properties": {
    "pattern": {"type": "string", "description": "The glob pattern, such as \"**/*.go\", relative to path."},
    "path": {"type": "string", "description": "The directory to search: relative to the working directory, or absolute inside the workspace. Default: the working directory."}
  },
  "required": ["pattern"],
  "additionalProperties": false
}`)
}

type globInput struct {
	Pattern string `json:"pattern"`
	Path    string `json:"path"`
}

func (t globTool) Run(ctx context.Context, env *Env, input json.RawMessage) (Result, error) {
	var in globInput
	if err := decode(t, input, &in); err != nil {
		return Result{}, err
	}
	pattern, err := cleanPattern("glob", "pattern", in.Pattern)
	if err != nil {
		return Result{}, err
	}
	w, err := env.open()
	if err != nil {
		return Result{}, err
	}
	defer w.Close()
	rel, shown, err := w.searchBase(in.Path, "search")
	if err != nil {
		return Result{}, err
	}
	fi, err := w.root.Stat(rel)
	if err != nil {
		return Result{}, fsError("search", shown, err)
	}
	if !fi.IsDir() {
		return Result{}, fmt.Errorf("cannot search %s: it is a file, not a directory; give a directory as path", shown)
	}

	type match struct {
		rel   string // relative to the root
		mtime time.Time
	}
	tree := w.tree(rel)
	var found []match
	partial := false
	errStop := errors.New("stop")
	err = doublestar.GlobWalk(tree, pattern, func(p string, d fs.DirEntry) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 {
			// Keep a link only if it leads to a file inside the workspace.
			if info, err = tree.Stat(p); err != nil || info.IsDir() {
				return nil
			}
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		found = append(found, match{path.Join(tree.base, p), info.ModTime()})
		if len(found) == maxGlobScan {
			partial = true
			return errStop
		}
		return nil
	}, doublestar.WithFilesOnly(), doublestar.WithNoFollow())
	switch {
	case errors.Is(err, errStop):
	case ctx.Err() != nil:
		return Result{}, fmt.Errorf("glob %s: %w", pattern, ctx.Err())
	case errors.Is(err, doublestar.ErrBadPattern):
		return Result{}, fmt.Errorf("glob: pattern %q is not a valid glob (check its brackets and braces)", in.Pattern)
	case err != nil:
		return Result{}, fmt.Errorf("glob %s in %s: %v", pattern, shown, err)
	}

	slices.SortFunc(found, func(a, b match) int {
		if c := b.mtime.Compare(a.mtime); c != 0 {
			return c
		}
		return strings.Compare(a.rel, b.rel)
	})
	res := Result{
		Title:    "Glob " + pattern,
		Metadata: map[string]any{"count": len(found), "truncated": partial || len(found) > MaxGlobResults},
	}
	if len(found) == 0 {
		res.Output = fmt.Sprintf("No files match %s in %s.", pattern, place(shown))
		return res, nil
	}
	var b strings.Builder
	capBytes := env.outputCap()
	shownN := 0
	for _, m := range found[:min(len(found), MaxGlobResults)] {
		line := w.display(filepath.FromSlash(m.rel)) + "\n"
		if b.Len()+len(line) > capBytes {
			break
		}
		b.WriteString(line)
		shownN++
	}
	switch {
	case partial:
		fmt.Fprintf(&b, "\n(over %d files match; the %d shown are the newest of those found; narrow the pattern or the path)", maxGlobScan, shownN)
	case shownN < len(found):
		fmt.Fprintf(&b, "\n(%d files match; the %d most recently modified are shown; narrow the pattern or the path for the rest)", len(found), shownN)
	}
	res.Output = strings.TrimSuffix(b.String(), "\n")
	return res, nil
}

// cleanPattern checks a glob pattern from the model: relative, no "..",
// valid; a leading "./" is dropped.
func cleanPattern(tool, field, p string) (string, error) {
	if p == "" {
		return "", fmt.Errorf("%s: %s is empty; give a glob such as \"**/*.go\"", tool, field)
	}
	for strings.HasPrefix(p, "./") {
		p = p[2:]
	}
	switch {
	case strings.HasPrefix(p, "/"):
		return "", fmt.Errorf("%s: %s %q is absolute; give a pattern relative to path (and set path to the directory to search)", tool, field, p)
	case slices.Contains(strings.Split(p, "/"), ".."):
		return "", fmt.Errorf("%s: %s %q contains \"..\"; set path to the directory to search instead", tool, field, p)
	case !doublestar.ValidatePattern(p):
		return "", fmt.Errorf("%s: %s %q is not a valid glob (check its brackets and braces)", tool, field, p)
	}
	return p, nil
}
