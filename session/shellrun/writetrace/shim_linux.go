//go:build linux && (amd64 || arm64)

package writetrace

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// markerEnv marks a process started by Start as the shim. Its value is
// "1:<fd>:<parent pid>:<mode>:<path>": the socket to report on, the
// daemon's pid (a marker that reaches any other process is ignored), what
// to do after reporting, and the program to exec.
const markerEnv = "SESSIOND_WRITETRACE_SHIM"

// What the shim does after it has reported.
const (
	modeExec  = "exec"  // exec the command
	modeProbe = "probe" // exit 0: Probe only wants to know the filter installs
	modeDie   = "die"   // exit at once without reporting (tests: a shim that dies)
)

// The first Linux release whose seccomp listener reports POLLHUP once no
// process uses the filter (5.8; CONTINUE came in 5.5): without it the
// supervisor could not tell when to stop answering.
const minKernelMajor, minKernelMinor = 5, 8

// The messages the shim sends the daemon, one datagram.
const (
	msgOK = "ok"  // with the listener fd attached (SCM_RIGHTS)
	msgNo = "no:" // followed by why the filter could not be installed
)

type marker struct {
	fd   int
	ppid int
	mode string
	path string
}

func (m marker) String() string {
	return fmt.Sprintf("1:%d:%d:%s:%s", m.fd, m.ppid, m.mode, m.path)
}

func parseMarker(v string) (marker, bool) {
	f := strings.SplitN(v, ":", 5)
	if len(f) != 5 || f[0] != "1" {
		return marker{}, false
	}
	fd, err1 := strconv.Atoi(f[1])
	ppid, err2 := strconv.Atoi(f[2])
	if err1 != nil || err2 != nil || fd < 3 || f[4] == "" {
		return marker{}, false
	}
	return marker{fd: fd, ppid: ppid, mode: f[3], path: f[4]}, true
}

// init turns the process into the shim when Start launched it: this is
// why the package has an init function. Go cannot run code between fork
// and exec, so the filter is installed here, before the program's own
// main, and the process then becomes the command. Any other start of the
// binary only pays one environment lookup.
func init() {
	v, ok := syscall.Getenv(markerEnv)
	if !ok {
		return
	}
	m, ok := parseMarker(v)
	if !ok || m.ppid != os.Getppid() {
		// Not from our parent: a stray marker. Run as usual without it.
		_ = os.Unsetenv(markerEnv)
		return
	}
	runShim(m)
}

// runShim installs the filter, hands the listener to the daemon and execs
// the command. It never returns.
func runShim(m marker) {
	// The filter and no_new_privs apply to the calling thread, and exec
	// keeps only that thread: all of it must happen on one.
	runtime.LockOSThread()
	if m.mode == modeDie {
		os.Exit(3)
	}
	env := withoutMarker(os.Environ())
	listener, why := installFilter()
	var err error
	if why == "" {
		_, err = unix.SendmsgN(m.fd, []byte(msgOK), unix.UnixRights(listener), nil, 0)
		// The daemon holds the listener now. Were it lost, every stopped
		// call would fail with ENOSYS, so a failed send ends the shim.
		unix.Close(listener)
	} else {
		_, err = unix.SendmsgN(m.fd, []byte(msgNo+why), nil, nil, 0)
	}
	unix.Close(m.fd)
	if err != nil {
		fmt.Fprintf(os.Stderr, "sessiond: the write tracer cannot reach the daemon (%v); not running %s\n", err, m.path)
		os.Exit(126)
	}
	if m.mode == modeProbe {
		os.Exit(0)
	}
	err = unix.Exec(m.path, os.Args, env)
	fmt.Fprintf(os.Stderr, "sessiond: cannot run %s: %v\n", m.path, err)
	if errors.Is(err, unix.ENOENT) {
		os.Exit(127)
	}
	os.Exit(126)
}

// installFilter sets no_new_privs and installs the filter with a new
// listener. It returns the listener, or why it could not.
func installFilter() (listener int, why string) {
	if rel, ok := kernelAtLeast(minKernelMajor, minKernelMinor); !ok {
		return -1, fmt.Sprintf("Linux %s is older than %d.%d, the first whose seccomp user notification can end a trace", rel, minKernelMajor, minKernelMinor)
	}
	prog, err := filterProgram(tracedCalls())
	if err != nil {
		return -1, "building the seccomp filter: " + err.Error()
	}
	// Unprivileged processes may install a filter only under
	// no_new_privs: set-user-ID programs (sudo) then run without their
	// privileges.
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return -1, fmt.Sprintf("setting no_new_privs: %v", err)
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	fd, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER,
		unix.SECCOMP_FILTER_FLAG_NEW_LISTENER, uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(prog)
	switch errno {
	case 0:
		return int(fd), ""
	case unix.EBUSY:
		return -1, "the process is already traced by another seccomp listener (is sessiond itself running inside a traced command?)"
	case unix.EINVAL:
		return -1, "the kernel refused the seccomp filter with a listener (EINVAL): seccomp user notification is not supported here"
	case unix.ENOSYS:
		return -1, "the kernel has no seccomp (ENOSYS)"
	default:
		return -1, fmt.Sprintf("installing the seccomp filter: %v", errno)
	}
}

// withoutMarker returns env without markerEnv.
func withoutMarker(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !strings.HasPrefix(kv, markerEnv+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// kernelAtLeast says whether the running kernel is at least
// wantMajor.wantMinor, and gives its release ("6.18").
func kernelAtLeast(wantMajor, wantMinor int) (release string, ok bool) {
	major, minor, ok := kernelVersion()
	if !ok {
		return "(unknown version)", false
	}
	return fmt.Sprintf("%d.%d", major, minor), major > wantMajor || major == wantMajor && minor >= wantMinor
}

func kernelVersion() (major, minor int, ok bool) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return 0, 0, false
	}
	rel := unix.ByteSliceToString(u.Release[:])
	f := strings.FieldsFunc(rel, func(r rune) bool { return r < '0' || r > '9' })
	if len(f) < 2 {
		return 0, 0, false
	}
	major, err1 := strconv.Atoi(f[0])
	minor, err2 := strconv.Atoi(f[1])
	return major, minor, err1 == nil && err2 == nil
}
