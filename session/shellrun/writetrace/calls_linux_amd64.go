//go:build linux

package writetrace

import "golang.org/x/sys/unix"

// nativeArch is the audit architecture of this build; the table does not
// cover the system calls of any other (32-bit programs).
const nativeArch = unix.AUDIT_ARCH_X86_64

// x32Bit is set in the numbers of x32 system calls, which share the
// x86-64 audit architecture but not its numbers.
const x32Bit = 0x40000000

// legacyCalls are the path-only calls amd64 keeps beside the *at ones.
func legacyCalls(atOrFD []pathArg) map[uintptr]call {
	return map[uintptr]call{
		unix.SYS_OPEN:    {name: "open", paths: cwdPath(0), flagsArg: 1},
		unix.SYS_CREAT:   {name: "creat", paths: cwdPath(0)},
		unix.SYS_RENAME:  {name: "rename", paths: []pathArg{{dirfd: noArg, path: 0, tree: true}, {dirfd: noArg, path: 1, tree: true}}},
		unix.SYS_UNLINK:  {name: "unlink", paths: cwdPath(0)},
		unix.SYS_MKDIR:   {name: "mkdir", paths: cwdPath(0)},
		unix.SYS_RMDIR:   {name: "rmdir", paths: cwdPath(0)},
		unix.SYS_LINK:    {name: "link", paths: cwdPath(1)},
		unix.SYS_SYMLINK: {name: "symlink", paths: cwdPath(1)},
		unix.SYS_MKNOD:   {name: "mknod", paths: cwdPath(0)},
		unix.SYS_CHMOD:   {name: "chmod", paths: cwdPath(0)},
	}
}
