package tools

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/bmatcuk/doublestar/v4"

	"github.com/sessiond/sessiond/workspace/confine"
)

type listTool struct{}

func (listTool) Name() string   { return "list" }
func (listTool) ReadOnly() bool { return true }

func (listTool) Description() string {
	return fmt.Sprintf(`Lists a directory of the workspace as a tree: every file and directory below it, directories marked with a trailing "/", symbolic links shown as "name -> target" and not followed.

- path is relative to the session's working directory, or absolute inside the workspace; default: the working directory. Paths outside the workspace are refused.
- .git directories are skipped. ignore takes glob patterns (such as "node_modules", "*.log", "build/**") for more to skip; a pattern matches an entry's name or its path below the listed directory.
- At most %d entries are listed, breadth first, so the top levels are always complete; list a subdirectory, or use glob, to see the rest. To find files by name use glob; to search their content use grep.`, MaxListEntries)
}

func (listTool) Schema() json.RawMessage {
	return json.RawMessage(`{
  "type": "object",
  "properties": {
    "path": {"type": "string", "description": "The directory to list: relative to the working directory, or absolute inside the workspace. Default: the working directory."},
    "ignore": {"type": "array", "items": {"type": "string"}, "description": "Glob patterns of entries to skip, matched against the entry's name and its path below the listed directory."}
  },
  "required": [],
  "additionalProperties": false
}`)
}

type listInput struct {
	Path   string   `json:"path"`
	Ignore []string `json:"ignore"`
}

type listNode struct {
	name     string
	dir      bool
	link     string // a link's target
	problem  string // why a directory could not be read
	children []*listNode
}

func (t listTool) Run(ctx context.Context, env *Env, input json.RawMessage) (Result, error) {
	var in listInput
	if err := decode(t, input, &in); err != nil {
		return Result{}, err
	}
	var ignore []string
	for _, p := range in.Ignore {
		p = strings.TrimSuffix(strings.TrimPrefix(p, "./"), "/")
		if p == "" {
			continue
		}
		if !doublestar.ValidatePattern(p) {
			return Result{}, fmt.Errorf("list: ignore pattern %q is not a valid glob", p)
		}
		ignore = append(ignore, p)
	}
	w, err := env.open()
	if err != nil {
		return Result{}, err
	}
	defer w.Close()
	rel, shown, err := w.searchBase(in.Path, "list")
	if err != nil {
		return Result{}, err
	}
	fi, err := w.root.Stat(rel)
	if err != nil {
		return Result{}, fsError("list", shown, err)
	}
	if !fi.IsDir() {
		return Result{}, fmt.Errorf("cannot list %s: it is a file, not a directory; use read to see its content", shown)
	}

	tree := w.tree(rel)
	top := &listNode{name: shown, dir: true}
	type item struct {
		n   *listNode
		rel string // slash path below the listed directory
	}
	queue := []item{{top, "."}}
	count, truncated := 0, false
walk:
	for len(queue) > 0 {
		it := queue[0]
		queue = queue[1:]
		if err := ctx.Err(); err != nil {
			return Result{}, fmt.Errorf("list %s: %w", shown, err)
		}
		ents, err := tree.ReadDir(it.rel)
		if err != nil {
			it.n.problem = fsError("read", it.rel, err).Error()
		}
		for _, e := range ents {
			p := path.Join(it.rel, e.Name())
			if ignored(ignore, e.Name(), p) {
				continue
			}
			if count == MaxListEntries {
				truncated = true
				break walk
			}
			count++
			c := &listNode{name: e.Name(), dir: e.IsDir()}
			if e.Type()&fs.ModeSymlink != 0 {
				c.link, _ = fs.ReadLink(tree.fsys, path.Join(tree.base, p))
				if c.link == "" {
					c.link = "?"
				}
			}
			it.n.children = append(it.n.children, c)
			if c.dir {
				queue = append(queue, item{c, p})
			}
		}
	}

	var b strings.Builder
	capBytes := env.outputCap()
	cut := !renderTree(&b, top, 0, capBytes)
	switch {
	case count == 0:
		b.WriteString("(empty directory)\n")
	case truncated || cut:
		fmt.Fprintf(&b, "\n(the listing was cut at %d entries; list a subdirectory, add ignore patterns, or use glob to see the rest)\n", count)
	}
	return Result{
		Title:    "List " + shown,
		Output:   strings.TrimSuffix(b.String(), "\n"),
		Metadata: map[string]any{"count": count, "truncated": truncated || cut},
	}, nil
}

// renderTree writes n and what is below it, indented by depth; it returns
// false if it stopped at capBytes.
func renderTree(b *strings.Builder, n *listNode, depth, capBytes int) bool {
	if b.Len() > capBytes {
		return false
	}
	b.WriteString(strings.Repeat("  ", depth))
	b.WriteString(n.name)
	switch {
	case n.link != "":
		b.WriteString(" -> " + n.link)
	case n.dir && !strings.HasSuffix(n.name, "/"):
		b.WriteString("/")
	}
	if n.problem != "" {
		b.WriteString("  (" + n.problem + ")")
	}
	b.WriteString("\n")
	for _, c := range n.children {
		if !renderTree(b, c, depth+1, capBytes) {
			return false
		}
	}
	return true
}

// ignored says an entry matches one of the patterns, by its name or by its
// path below the listed directory.
func ignored(patterns []string, name, rel string) bool {
	for _, p := range patterns {
		if doublestar.MatchUnvalidated(p, name) || doublestar.MatchUnvalidated(p, rel) {
			return true
		}
	}
	return false
}

// place names a directory in a sentence.
func place(shown string) string {
	if shown == "." {
		return "the working directory"
	}
	return shown
}

// searchBase resolves the directory (or file) a search tool starts at:
// the working directory when p is empty. verb names the tool's action in
// messages.
func (w *workspace) searchBase(p, verb string) (rel, shown string, err error) {
	if p == "" {
		p = "."
	}
	rel, _, err = w.check(p, verb, confine.Read)
	if err != nil {
		return "", "", err
	}
	return rel, w.display(rel), nil
}
