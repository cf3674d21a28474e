package tools

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
)

type grepTool struct{}

func (grepTool) Name() string   { return "grep" }
func (grepTool) ReadOnly() bool { return true }

func (grepTool) Description() string {
	return fmt.Sprintf(`Searches the content of the workspace's files with a regular expression and returns the matching lines as path:line: text, files in path order.

- pattern is a Go (RE2) regular expression, matched against each line: "func \w+\(", "TODO|FIXME", "(?i)error" for case-insensitive. There are no lookarounds or backreferences. Escape regex characters to search for them literally ("\.Run\(").
- path is the directory (or single file) to search, relative to the session's working directory or absolute inside the workspace; default: the working directory. The paths returned are relative to the working directory.
- include is a glob to limit the files searched: "*.go" or "*.{ts,tsx}" match file names, a pattern with "/" such as "src/**/*.ts" matches paths below path.
- Binary files, files over %d MiB, .git directories and symbolic links to directories are skipped.
- At most %d matching lines are returned, each cut at %d characters; narrow the pattern, path or include for the rest. To find files by name use glob.`, MaxGrepFileSize>>20, MaxGrepMatches, MaxGrepLineChars)
}

func (grepTool) Schema() json.RawMessage {
	return json.RawMessage(`{
  "type": "object",
  "properties": {
    "pattern": {"type": "string", "description": "The regular expression (Go RE2 syntax) to search for."},
    "path": {"type": "string", "description": "The directory or file to search: relative to the working directory, or absolute inside the workspace. Default: the working directory."},
    "include": {"type": "string", "description": "A glob of the files to search, such as \"*.go\" or \"src/**/*.{ts,tsx}\"."}
  },
  "required": ["pattern"],
  "additionalProperties": false
}`)
}

type grepInput struct {
	Pattern string `json:"pattern"`
	Path    string `json:"path"`
	Include string `json:"include"`
}

// grepState is one search in progress.
type grepState struct {
	w        *workspace
	re       *regexp.Regexp
	out      strings.Builder
	capBytes int
	matches  int
	files    int // files with a match
	skipped  int // files too big to search
	full     bool
}

func (t grepTool) Run(ctx context.Context, env *Env, input json.RawMessage) (Result, error) {
	var in grepInput
	if err := decode(t, input, &in); err != nil {
		return Result{}, err
	}
	if in.Pattern == "" {
		return Result{}, errors.New("grep: pattern is empty; give a regular expression")
	}
	re, err := regexp.Compile(in.Pattern)
	if err != nil {
		return Result{}, fmt.Errorf("grep: pattern %q is not a valid Go (RE2) regular expression: %v", in.Pattern, strings.TrimPrefix(err.Error(), "error parsing regexp: "))
	}
	include := ""
	if in.Include != "" {
		if include, err = cleanPattern("grep", "include", in.Include); err != nil {
			return Result{}, err
		}
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

	g := &grepState{w: w, re: re, capBytes: env.outputCap()}
	if !fi.IsDir() && !fi.Mode().IsRegular() {
		return Result{}, fmt.Errorf("cannot search %s: it is not a regular file (%s)", shown, fi.Mode().Type())
	}
	if !fi.IsDir() {
		// One file: search it whatever include says.
		tree := w.tree(".")
		g.file(tree, filepath.ToSlash(rel), fi)
	} else {
		tree := w.tree(rel)
		err = fs.WalkDir(tree, ".", func(p string, d fs.DirEntry, err error) error {
			if cerr := ctx.Err(); cerr != nil {
				return cerr
			}
			if err != nil || d.IsDir() {
				return nil // an unreadable directory is skipped
			}
			if include != "" {
				subject := d.Name()
				if strings.Contains(include, "/") {
					subject = p
				}
				if !doublestar.MatchUnvalidated(include, subject) {
					return nil
				}
			}
			info, err := d.Info()
			if err != nil {
				return nil
			}
			if d.Type()&fs.ModeSymlink != 0 {
				// Follow a link to a file inside the workspace only.
				if info, err = tree.Stat(p); err != nil || info.IsDir() {
					return nil
				}
			}
			if !info.Mode().IsRegular() {
				return nil
			}
			if !g.file(tree, p, info) {
				return fs.SkipAll
			}
			return nil
		})
		if ctx.Err() != nil {
			return Result{}, fmt.Errorf("grep %s: %w", in.Pattern, ctx.Err())
		}
	}

	res := Result{
		Title:    "Grep " + in.Pattern,
		Metadata: map[string]any{"matches": g.matches, "files": g.files, "truncated": g.full},
	}
	if g.matches == 0 {
		res.Output = fmt.Sprintf("No matches for %s in %s.", in.Pattern, place(shown))
	} else {
		res.Output = strings.TrimSuffix(g.out.String(), "\n")
	}
	if g.full {
		res.Output += fmt.Sprintf("\n\n(stopped after %d matches; there may be more: narrow the pattern, path or include)", g.matches)
	}
	if g.skipped > 0 {
		res.Metadata["skippedLarge"] = g.skipped
		res.Output += fmt.Sprintf("\n(%d files over %d MiB were not searched)", g.skipped, MaxGrepFileSize>>20)
	}
	return res, nil
}

// file searches one file, p in tree; it returns false when the output is
// full and the search should stop.
func (g *grepState) file(tree treeFS, p string, info fs.FileInfo) bool {
	if info.Size() > MaxGrepFileSize {
		g.skipped++
		return true
	}
	data, err := tree.ReadFile(p)
	// No shortcut of matching the whole file first: ^ and $ would mean
	// the file's start and end there, not a line's.
	if err != nil || isBinary(data) {
		return true
	}
	shown := g.w.display(filepath.FromSlash(path.Join(tree.base, p)))
	found := false
	for n := 1; len(data) > 0; n++ {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if !g.re.Match(line) {
			continue
		}
		entry := fmt.Sprintf("%s:%d: %s\n", shown, n, cutLine(string(line), MaxGrepLineChars))
		if g.matches == MaxGrepMatches || (g.out.Len()+len(entry) > g.capBytes && g.matches > 0) {
			g.full = true
			return false
		}
		g.out.WriteString(entry)
		g.matches++
		if !found {
			found = true
			g.files++
		}
	}
	return true
}
