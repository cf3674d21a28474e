package tools

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"strings"

	"github.com/sessiond/sessiond/workspace/confine"
)

type readTool struct{}

func (readTool) Name() string   { return "read" }
func (readTool) ReadOnly() bool { return true }

func (readTool) Description() string {
	return fmt.Sprintf(`Reads a text file of the workspace and returns its lines numbered like cat -n: the line number, a tab, then the line as it is in the file.

- path is relative to the session's working directory, or absolute inside the workspace. Paths outside the workspace (via "..", an absolute path or a symbolic link) are refused, and so is anything inside a .git directory.
- By default the first %d lines are returned. For a long file, pass offset (the 1-based line number to start at) and limit (how many lines) to read the rest; the output ends with the offset to continue from when lines are left.
- Lines longer than %d characters are cut. The whole output is capped (64 KiB unless configured); the note at its end says where to continue.
- Binary files (images, archives, executables) are refused; directories are refused too: use list for those.
- Before you edit a file, read it, and copy old_string for edit from the text after the tab, without the line number.`, DefaultReadLimit, MaxLineChars)
}

func (readTool) Schema() json.RawMessage {
	return json.RawMessage(`{
  "type": "object",
  "properties": {
    "path": {"type": "string", "description": "The file to read: relative to the working directory, or absolute inside the workspace."},
    "offset": {"type": "integer", "minimum": 1, "description": "The 1-based line number to start reading at. Default 1."},
    "limit": {"type": "integer", "minimum": 1, "description": "How many lines to read. Default 2000."}
  },
  "required": ["path"],
  "additionalProperties": false
}`)
}

type readInput struct {
	Path   string `json:"path"`
	Offset int    `json:"offset"`
	Limit  int    `json:"limit"`
}

func (t readTool) Run(ctx context.Context, env *Env, input json.RawMessage) (Result, error) {
	var in readInput
	if err := decode(t, input, &in); err != nil {
		return Result{}, err
	}
	switch {
	case in.Path == "":
		return Result{}, errors.New("read: path is empty; give the file to read")
	case in.Offset < 0:
		return Result{}, fmt.Errorf("read: offset must be a line number, 1 or more (got %d)", in.Offset)
	case in.Limit < 0:
		return Result{}, fmt.Errorf("read: limit must be 1 or more (got %d)", in.Limit)
	}
	offset, limit := max(in.Offset, 1), in.Limit
	if limit == 0 {
		limit = DefaultReadLimit
	}
	w, err := env.open()
	if err != nil {
		return Result{}, err
	}
	defer w.Close()
	rel, real, err := w.check(in.Path, "read", confine.Read)
	if err != nil {
		return Result{}, err
	}
	shown := w.display(rel)
	// Stat first: opening a named pipe would block.
	fi, err := w.root.Stat(real)
	if err != nil {
		return Result{}, readError(shown, err)
	}
	if fi.IsDir() {
		return Result{}, fmt.Errorf("cannot read %s: it is a directory; use list to see what it holds", shown)
	}
	if !fi.Mode().IsRegular() {
		return Result{}, fmt.Errorf("cannot read %s: it is not a regular file (%s)", shown, fi.Mode().Type())
	}
	f, err := w.root.Open(real)
	if err != nil {
		return Result{}, readError(shown, err)
	}
	defer f.Close()

	br := bufio.NewReaderSize(f, 64<<10)
	head, _ := br.Peek(binarySample)
	if isBinary(head) {
		return Result{}, fmt.Errorf("cannot read %s: it is a binary file (%s, %d bytes); read shows text files only", shown, http.DetectContentType(head), fi.Size())
	}

	capBytes := env.outputCap()
	var out strings.Builder
	total, last := 0, 0 // lines in the file; last line shown
	capped := false
	for {
		line, err := readLine(br, MaxLineChars)
		if err == io.EOF {
			break
		}
		if err != nil {
			return Result{}, fsError("read", shown, err)
		}
		total++
		if total%4096 == 0 && ctx.Err() != nil {
			return Result{}, fmt.Errorf("read %s: %w", shown, ctx.Err())
		}
		if total < offset || total >= offset+limit || capped {
			continue
		}
		entry := fmt.Sprintf("%6d\t%s\n", total, line)
		if out.Len()+len(entry) > capBytes && last >= offset {
			capped = true
			continue
		}
		out.WriteString(entry)
		last = total
	}

	res := Result{
		Title:    "Read " + shown,
		Metadata: map[string]any{"lines": total, "truncated": false},
	}
	switch {
	case total == 0:
		res.Output = fmt.Sprintf("(%s is empty)", shown)
		return res, nil
	case offset > total:
		return Result{}, fmt.Errorf("read: offset %d is past the end of %s, which has %d lines", offset, shown, total)
	}
	res.Metadata["from"], res.Metadata["to"] = offset, last
	if last < total {
		res.Metadata["truncated"] = true
		why := ""
		if capped {
			why = fmt.Sprintf(" (the output cap of %d bytes was reached)", capBytes)
		}
		fmt.Fprintf(&out, "\n(lines %d-%d of %d shown%s; read again with offset=%d to continue)", offset, last, total, why, last+1)
	}
	res.Output = out.String()
	return res, nil
}

// readError explains why a file could not be opened for reading.
func readError(shown string, err error) error {
	if errors.Is(err, fs.ErrNotExist) && !isEscape(err) {
		return fmt.Errorf("cannot read %s: it does not exist; use glob or list to find the right path", shown)
	}
	return fsError("read", shown, err)
}

// readLine returns the next line without its line ending ("\n" or
// "\r\n"), cut to max characters; the rest of a long line is read and
// dropped. It returns io.EOF only when there is nothing left at all.
func readLine(br *bufio.Reader, max int) (string, error) {
	var b []byte
	limit := max*4 + 4 // bytes enough for max characters
	for {
		chunk, err := br.ReadSlice('\n')
		if len(b) < limit {
			b = append(b, chunk[:min(len(chunk), limit-len(b))]...)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF && len(b) > 0 {
			err = nil
		}
		if err != nil {
			return "", err
		}
		break
	}
	s := strings.TrimSuffix(string(b), "\n")
	s = strings.TrimSuffix(s, "\r")
	return cutLine(s, max), nil
}
