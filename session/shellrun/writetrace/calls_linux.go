//go:build linux && (amd64 || arm64)

package writetrace

import "golang.org/x/sys/unix"

// writeOpenFlags are the open flags that may change the file tree. Opens
// without any of them are allowed by the filter without a stop, so reads
// run at full speed. (O_TMPFILE needs O_WRONLY or O_RDWR.)
const writeOpenFlags = unix.O_WRONLY | unix.O_RDWR | unix.O_CREAT | unix.O_TRUNC | unix.O_APPEND

// noArg marks an argument a call does not have.
const noArg = -1

// pathArg says where one path a call modifies is in its arguments.
type pathArg struct {
	dirfd int  // index of the directory fd argument; noArg: relative to the cwd
	path  int  // index of the path pointer; noArg: the file open at dirfd itself
	tree  bool // everything under the path may change (renames)
	// emptyIsFD: a NULL or empty path means the file open at dirfd
	// (utimensat, futimesat, fchmodat2 with AT_EMPTY_PATH).
	emptyIsFD bool
}

// call describes one system call the filter stops.
type call struct {
	name  string
	paths []pathArg
	// flagsArg is the index of the open flags the filter checks, for
	// open and openat; 0 for the others (no call has its flags first).
	flagsArg int
	// howArg is the index of openat2's struct open_how; 0 otherwise.
	howArg int
	// bypass: the call opens a way to change files the filter cannot see
	// (io_uring); its use makes the trace incomplete.
	bypass bool
}

// cwdPath is a path argument relative to the cwd; atPath one relative to
// a directory fd.
func cwdPath(path int) []pathArg       { return []pathArg{{dirfd: noArg, path: path}} }
func atPath(dirfd, path int) []pathArg { return []pathArg{{dirfd: dirfd, path: path}} }

// tracedCalls is every call the filter stops on this architecture, by
// number: the *at calls both architectures have, and the old path-only
// ones amd64 still has (legacyCalls). The utimes family is not among
// them: snapshots hold content and permission bits, not times, so a
// call that only sets times changes nothing a turn records, and `touch`
// of many files would stop twice per file.
func tracedCalls() map[uintptr]call {
	atOrFD := []pathArg{{dirfd: 0, path: 1, emptyIsFD: true}}
	renames := []pathArg{{dirfd: 0, path: 1, tree: true}, {dirfd: 2, path: 3, tree: true}}
	calls := map[uintptr]call{
		unix.SYS_OPENAT:         {name: "openat", paths: atPath(0, 1), flagsArg: 2},
		unix.SYS_OPENAT2:        {name: "openat2", paths: atPath(0, 1), howArg: 2},
		unix.SYS_TRUNCATE:       {name: "truncate", paths: cwdPath(0)},
		unix.SYS_RENAMEAT:       {name: "renameat", paths: renames},
		unix.SYS_RENAMEAT2:      {name: "renameat2", paths: renames},
		unix.SYS_UNLINKAT:       {name: "unlinkat", paths: atPath(0, 1)},
		unix.SYS_MKDIRAT:        {name: "mkdirat", paths: atPath(0, 1)},
		unix.SYS_LINKAT:         {name: "linkat", paths: atPath(2, 3)},
		unix.SYS_SYMLINKAT:      {name: "symlinkat", paths: atPath(1, 2)},
		unix.SYS_MKNODAT:        {name: "mknodat", paths: atPath(0, 1)},
		unix.SYS_FCHMODAT:       {name: "fchmodat", paths: atPath(0, 1)},
		unix.SYS_FCHMODAT2:      {name: "fchmodat2", paths: atOrFD},
		unix.SYS_FCHMOD:         {name: "fchmod", paths: atPath(0, noArg)},
		unix.SYS_IO_URING_SETUP: {name: "io_uring_setup", bypass: true},
	}
	for nr, c := range legacyCalls(atOrFD) {
		calls[nr] = c
	}
	return calls
}
