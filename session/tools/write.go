package tools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	udiff "github.com/aymanbagabas/go-udiff"

	"github.com/sessiond/sessiond/workspace/confine"
)

// Modes of files and directories the tools create (before the umask).
// An existing file keeps its mode.
const (
	fileMode = 0o644
	dirMode  = 0o755
)

type writeTool struct{}

func (writeTool) Name() string   { return "write" }
func (writeTool) ReadOnly() bool { return false }

func (writeTool) Description() string {
	return `Writes a file of the workspace: creates it, or replaces all of its content. Missing parent directories are created.

- path is relative to the session's working directory, or absolute inside the workspace. Paths outside the workspace (via "..", an absolute path or a symbolic link) are refused, and so is anything inside a .git directory.
- To change part of an existing file, prefer edit: it sends only the change. Read a file before you replace it.
- An existing file keeps its permissions; a new one gets rw-r--r--.`
}

func (writeTool) Schema() json.RawMessage {
	return json.RawMessage(`{
  "type": "object",
  "properties": {
    "path": {"type": "string", "description": "The file to write: relative to the working directory, or absolute inside the workspace."},
    "content": {"type": "string", "description": "The file's whole new content."}
  },
  "required": ["path", "content"],
  "additionalProperties": false
}`)
}

type writeInput struct {
	Path    string `json:"path"`
	Content string `json:"content"`
}

func (t writeTool) Run(ctx context.Context, env *Env, input json.RawMessage) (Result, error) {
	var in writeInput
	if err := decode(t, input, &in); err != nil {
		return Result{}, err
	}
	if in.Path == "" {
		return Result{}, errors.New("write: path is empty; give the file to write")
	}
	w, err := env.open()
	if err != nil {
		return Result{}, err
	}
	defer w.Close()
	rel, real, err := w.check(in.Path, "write", confine.Write)
	if err != nil {
		return Result{}, err
	}
	shown := w.display(rel)
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("write %s: %w", shown, err)
	}
	created, err := w.writeFile(real, shown, []byte(in.Content))
	if err != nil {
		return Result{}, err
	}
	verb := "Wrote"
	if created {
		verb = "Created"
	}
	lines := countLines(in.Content)
	return Result{
		Title:    "Write " + shown,
		Output:   fmt.Sprintf("%s %s (%d lines, %d bytes).", verb, shown, lines, len(in.Content)),
		Metadata: map[string]any{"created": created, "lines": lines, "bytes": len(in.Content)},
		Changed:  []string{filepath.ToSlash(real)},
	}, nil
}

// writeFile writes data to real (a path whose links are resolved, checked
// by check), creating parent directories, and says whether the file is
// new.
func (w *workspace) writeFile(real, shown string, data []byte) (created bool, err error) {
	fi, err := w.root.Stat(real)
	switch {
	case err == nil && fi.IsDir():
		return false, fmt.Errorf("cannot write %s: it is a directory", shown)
	case err == nil && !fi.Mode().IsRegular():
		return false, fmt.Errorf("cannot write %s: it is not a regular file (%s)", shown, fi.Mode().Type())
	case errors.Is(err, fs.ErrNotExist):
		created = true
		if dir := filepath.Dir(real); dir != "." {
			if err := w.root.MkdirAll(dir, dirMode); err != nil {
				return false, fsError("create the directory for", shown, err)
			}
		}
	case err != nil:
		return false, fsError("write", shown, err)
	}
	if err := w.root.WriteFile(real, data, fileMode); err != nil {
		return false, fsError("write", shown, err)
	}
	return created, nil
}

type editTool struct{}

func (editTool) Name() string   { return "edit" }
func (editTool) ReadOnly() bool { return false }

func (editTool) Description() string {
	return `Edits a file of the workspace by exact string replacement: old_string is replaced by new_string.

- old_string must match the file's text exactly, whitespace and indentation included. Copy it from read's output: the text after the line number and its tab, never the line number itself.
- old_string must occur exactly once, or the edit fails: include enough surrounding lines to make it unique, or set replace_all to replace every occurrence (for renaming, say).
- When old_string is not found, read the file again: it may have changed.
- new_string must differ from old_string. To create a new file, leave old_string empty and give the content as new_string (write does the same).
- path is relative to the session's working directory, or absolute inside the workspace. Paths outside the workspace (via "..", an absolute path or a symbolic link) are refused, and so is anything inside a .git directory.`
}

func (editTool) Schema() json.RawMessage {
	return json.RawMessage(`{
  "type": "object",
  "properties": {
    "path": {"type": "string", "description": "The file to edit: relative to the working directory, or absolute inside the workspace."},
    "old_string": {"type": "string", "description": "The exact text to replace; empty only to create a file that does not exist."},
    "new_string": {"type": "string", "description": "The text to put in its place; must differ from old_string."},
    "replace_all": {"type": "boolean", "description": "Replace every occurrence of old_string instead of exactly one. Default false."}
  },
  "required": ["path", "old_string", "new_string"],
  "additionalProperties": false
}`)
}

type editInput struct {
	Path       string `json:"path"`
	OldString  string `json:"old_string"`
	NewString  string `json:"new_string"`
	ReplaceAll bool   `json:"replace_all"`
}

// maxEditLines caps the lines of the snippet edit shows.
const maxEditLines = 40

func (t editTool) Run(ctx context.Context, env *Env, input json.RawMessage) (Result, error) {
	var in editInput
	if err := decode(t, input, &in); err != nil {
		return Result{}, err
	}
	if in.Path == "" {
		return Result{}, errors.New("edit: path is empty; give the file to edit")
	}
	if in.OldString == in.NewString {
		return Result{}, errors.New("edit: old_string and new_string are the same, so the edit would change nothing; give the new text as new_string")
	}
	w, err := env.open()
	if err != nil {
		return Result{}, err
	}
	defer w.Close()
	rel, real, err := w.check(in.Path, "edit", confine.Write)
	if err != nil {
		return Result{}, err
	}
	shown := w.display(rel)

	var data []byte
	fi, err := w.root.Stat(real) // before reading: a named pipe would block
	switch {
	case err == nil && fi.IsDir():
		return Result{}, fmt.Errorf("cannot edit %s: it is a directory", shown)
	case err == nil && !fi.Mode().IsRegular():
		return Result{}, fmt.Errorf("cannot edit %s: it is not a regular file (%s)", shown, fi.Mode().Type())
	case err == nil:
		data, err = w.root.ReadFile(real)
	}
	exists := err == nil
	switch {
	case errors.Is(err, fs.ErrNotExist) && !isEscape(err):
		if in.OldString != "" {
			return Result{}, fmt.Errorf("cannot edit %s: it does not exist; to create it, give an empty old_string (or use write), or use glob to find the file you meant", shown)
		}
	case err != nil:
		return Result{}, fsError("edit", shown, err)
	}
	before := string(data)
	if exists && isBinary(data) {
		return Result{}, fmt.Errorf("cannot edit %s: it is a binary file; edit changes text files only", shown)
	}

	var after string
	n := 0
	switch {
	case in.OldString == "" && exists && before != "":
		return Result{}, fmt.Errorf("cannot edit %s: old_string is empty, but the file exists and is not empty; give the exact text to replace, or use write to replace the whole file", shown)
	case in.OldString == "":
		after, n = in.NewString, 1
	default:
		oldS, newS := in.OldString, in.NewString
		n = strings.Count(before, oldS)
		if n == 0 && strings.Contains(before, "\r\n") && strings.Contains(oldS, "\n") && !strings.Contains(oldS, "\r\n") {
			// A CRLF file, and the model's text has bare newlines.
			oldS = strings.ReplaceAll(oldS, "\n", "\r\n")
			newS = strings.ReplaceAll(strings.ReplaceAll(newS, "\r\n", "\n"), "\n", "\r\n")
			n = strings.Count(before, oldS)
		}
		switch {
		case n == 0:
			return Result{}, fmt.Errorf("old_string not found in %s; read the file again and copy the text exactly, whitespace and indentation included, without read's line numbers", shown)
		case n > 1 && !in.ReplaceAll:
			return Result{}, fmt.Errorf("old_string occurs %d times in %s (at lines %s); include more surrounding lines to make it unique, or set replace_all to replace every occurrence", n, shown, occurrenceLines(before, oldS, 10))
		}
		if in.ReplaceAll {
			after = strings.ReplaceAll(before, oldS, newS)
		} else {
			after = strings.Replace(before, oldS, newS, 1)
		}
		in.OldString, in.NewString = oldS, newS
	}
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("edit %s: %w", shown, err)
	}
	created, err := w.writeFile(real, shown, []byte(after))
	if err != nil {
		return Result{}, err
	}

	meta := map[string]any{"replacements": n, "created": created}
	edits := udiff.Lines(before, after)
	if u, err := udiff.ToUnifiedDiff("a/"+filepath.ToSlash(real), "b/"+filepath.ToSlash(real), before, edits, udiff.DefaultContextLines); err == nil {
		adds, dels := 0, 0
		for _, h := range u.Hunks {
			for _, l := range h.Lines {
				switch l.Kind {
				case udiff.Insert:
					adds++
				case udiff.Delete:
					dels++
				}
			}
		}
		meta["additions"], meta["deletions"] = adds, dels
		meta["diff"] = u.String()
	}

	var out strings.Builder
	switch {
	case created:
		fmt.Fprintf(&out, "Created %s (%d lines).", shown, countLines(after))
	case in.OldString == "":
		fmt.Fprintf(&out, "Wrote %s, which was empty (%d lines).", shown, countLines(after))
	case n == 1:
		fmt.Fprintf(&out, "Edited %s: replaced 1 occurrence.", shown)
	default:
		fmt.Fprintf(&out, "Edited %s: replaced %d occurrences.", shown, n)
	}
	if !created && in.OldString != "" {
		// Show the first replacement in place, numbered like read: the
		// text before it is unchanged, so it starts where old_string did.
		if after == "" {
			out.WriteString(" The file is now empty.")
		} else if i := strings.Index(before, in.OldString); i >= 0 {
			out.WriteString(" The result:\n")
			out.WriteString(snippet(after, i, len(in.NewString)))
		}
	}
	return Result{
		Title:    "Edit " + shown,
		Output:   strings.TrimSuffix(out.String(), "\n"),
		Metadata: meta,
		Changed:  []string{filepath.ToSlash(real)},
	}, nil
}

// occurrenceLines lists the line numbers where sub starts in s, at most
// max of them.
func occurrenceLines(s, sub string, max int) string {
	var nums []string
	line, from := 1, 0
	for len(nums) < max {
		i := strings.Index(s[from:], sub)
		if i < 0 {
			break
		}
		line += strings.Count(s[from:from+i], "\n")
		nums = append(nums, fmt.Sprint(line))
		line += strings.Count(sub, "\n")
		from += i + len(sub)
	}
	list := strings.Join(nums, ", ")
	if strings.Count(s, sub) > max {
		list += ", …"
	}
	return list
}

// snippet returns the lines of s around s[i:i+n] (a few lines of context
// each side), numbered like read, at most maxEditLines of them.
func snippet(s string, i, n int) string {
	const context = 3
	first := strings.Count(s[:i], "\n") + 1
	last := first + strings.Count(s[i:i+n], "\n")
	if n > 0 && strings.HasSuffix(s[i:i+n], "\n") {
		last--
	}
	lines := strings.SplitAfter(s, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	from := max(first-context, 1)
	to := min(last+context, len(lines), from+maxEditLines-1)
	var b strings.Builder
	for k := from; k <= to; k++ {
		l := strings.TrimSuffix(strings.TrimSuffix(lines[k-1], "\n"), "\r")
		fmt.Fprintf(&b, "%6d\t%s\n", k, cutLine(l, MaxLineChars))
	}
	if to < last {
		fmt.Fprintf(&b, "(%d more changed lines not shown)\n", last-to)
	}
	return b.String()
}
