// Package writetrace tells which files a command's process tree modified.
//
// A turn must claim only the files it provably wrote: an edit a person
// makes in an editor while a long command runs is theirs, not the turn's.
// Watching the file system cannot tell who wrote (fanotify reports pids
// only to privileged callers), so the tracer watches the command instead.
// On Linux the command starts under a seccomp filter whose user
// notifications stop each process of the tree on the few system calls
// that change the file tree (a write open, rename, unlink, mkdir, chmod,
// ...); a supervisor goroutine in the daemon reads the path, records it
// and lets the call continue. It needs no privilege and no ptrace.
//
// Go cannot run code between fork and exec, so the filter is installed by
// a shim: Start runs the current executable (/proc/self/exe) with a marker
// in its environment, and this package's init function, seeing the marker,
// installs the filter, hands the listener to the daemon and execs the real
// command. Any binary that links the package can therefore be the shim.
//
// Elsewhere (other systems, other architectures, kernels before 5.8, a
// process that is already traced) the command runs untraced and the
// report says why.
package writetrace

import (
	"path/filepath"
	"slices"
	"strings"
)

// Report is what a trace found.
type Report struct {
	// Available is false when the trace cannot be trusted: tracing is
	// unavailable here, or something escaped it (io_uring, a path that
	// could not be read). Nothing is known then, and Writes is empty.
	Available bool
	// Reason says why tracing was unavailable or incomplete, for logs and
	// `sessiond doctor`.
	Reason string
	// Writes are the paths the command's processes modified, sorted.
	Writes []Write
}

// Write is one path a traced command modified (or tried to: a call that
// then failed is still listed).
type Write struct {
	// Path is absolute and cleaned, as the process named it: the last
	// component is not resolved, so a symlink written through is the
	// link, and a directory component may be a symlink.
	Path string
	// Tree says everything under Path may have changed too: Path was the
	// source or target of a rename.
	Tree bool
}

// writeSet collects writes, deduplicated; a path recorded as a tree stays
// one.
type writeSet map[string]bool

func (s writeSet) add(path string, tree bool) {
	s[path] = s[path] || tree
}

// sorted returns the set as sorted Writes.
func (s writeSet) sorted() []Write {
	out := make([]Write, 0, len(s))
	for p, tree := range s {
		out = append(out, Write{Path: p, Tree: tree})
	}
	slices.SortFunc(out, func(a, b Write) int { return strings.Compare(a.Path, b.Path) })
	return out
}

// joinPath makes path absolute against base (an absolute directory that
// names no symlink, as the kernel's /proc links do) and cleans it. The
// result is what the kernel resolved as long as no ".." follows a
// component of path that is a symlink; resolveDotDot handles that case.
func joinPath(base, path string) string {
	if !filepath.IsAbs(path) {
		path = base + "/" + path
	}
	return filepath.Clean(path)
}

// hasInnerDotDot says path has a ".." after a component that could be a
// symlink, where lexical cleaning may name another file than the kernel
// resolved.
func hasInnerDotDot(path string) bool {
	seenName := false
	for part := range strings.SplitSeq(path, "/") {
		switch part {
		case "", ".":
		case "..":
			if seenName {
				return true
			}
		default:
			seenName = true
		}
	}
	return false
}
