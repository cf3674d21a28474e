//go:build linux && (amd64 || arm64)

package writetrace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The kernel's structures for a notification and its answer
// (linux/seccomp.h).
type seccompData struct {
	Nr   int32
	Arch uint32
	IP   uint64
	Args [6]uint64
}

type seccompNotif struct {
	ID    uint64
	Pid   uint32
	Flags uint32
	Data  seccompData
}

type seccompNotifResp struct {
	ID    uint64
	Val   int64
	Error int32
	Flags uint32
}

// shimReportTimeout bounds how long Stop waits for a shim that neither
// reported nor exited, so a caller never hangs on it.
const shimReportTimeout = 10 * time.Second

// Trace is the tracing of one command's process tree.
type Trace struct {
	conn  *net.UnixConn      // the daemon's end of the shim's socket
	ready chan struct{}      // closed once the shim reported, or could not
	done  chan struct{}      // closed once no traced process is left
	calls map[uintptr]call   // what the filter stops
	mnt   string             // the daemon's mount namespace (/proc/self/ns/mnt)
	buf   [unix.PathMax]byte // a path read from a tracee (serving goroutine only)
	link  [unix.PathMax]byte // a /proc link read (serving goroutine only)

	mu         sync.Mutex
	stopped    bool     // Stop was called: answer, record nothing
	setupWhy   string   // why there is no trace; "" once the filter is on
	incomplete string   // why the trace cannot be trusted, if it cannot
	writes     writeSet // what the tree modified
}

// Start starts cmd with its file modifications traced. It is cmd.Start
// for a command whose Path is absolute; cmd runs through the shim, so
// Start rewrites cmd.Path (to /proc/self/exe), cmd.Env (adding the
// marker; nil means os.Environ()) and cmd.ExtraFiles (adding the socket
// the shim reports on). The error is cmd.Start's.
//
// When tracing is unavailable the command still runs, untraced, and
// Stop's report says why.
func Start(cmd *exec.Cmd) (*Trace, error) {
	return start(cmd, modeExec)
}

func start(cmd *exec.Cmd, mode string) (*Trace, error) {
	if cmd.Process != nil {
		return nil, errors.New("writetrace: command already started")
	}
	if !filepath.IsAbs(cmd.Path) {
		return nil, fmt.Errorf("writetrace: command path %q is not absolute; resolve it with exec.LookPath first", cmd.Path)
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("writetrace: creating the shim's socket: %w", err)
	}
	parent := os.NewFile(uintptr(fds[0]), "writetrace-daemon")
	child := os.NewFile(uintptr(fds[1]), "writetrace-shim")
	defer child.Close()
	fc, err := net.FileConn(parent)
	parent.Close()
	if err != nil {
		return nil, fmt.Errorf("writetrace: using the shim's socket: %w", err)
	}
	mnt, _ := os.Readlink("/proc/self/ns/mnt")
	t := &Trace{
		conn:   fc.(*net.UnixConn),
		ready:  make(chan struct{}),
		done:   make(chan struct{}),
		calls:  tracedCalls(),
		mnt:    mnt,
		writes: writeSet{},
	}

	env := cmd.Env
	if env == nil {
		env = os.Environ()
	}
	if len(cmd.Args) == 0 {
		cmd.Args = []string{cmd.Path} // what exec.Cmd would use; it is the command's argv[0], not the shim's path
	}
	m := marker{fd: 3 + len(cmd.ExtraFiles), ppid: os.Getpid(), mode: mode, path: cmd.Path}
	cmd.Env = append(withoutMarker(env), markerEnv+"="+m.String())
	cmd.ExtraFiles = append(slices.Clip(cmd.ExtraFiles), child)
	cmd.Path = "/proc/self/exe"
	if err := cmd.Start(); err != nil {
		t.conn.Close()
		return nil, err
	}
	go t.run()
	return t, nil
}

// Stop ends the recording and returns the report. Call it once the
// command has exited. Processes the command left behind keep running:
// their calls are still answered, but no longer recorded, until the last
// of them exits (Done).
func (t *Trace) Stop() Report {
	select {
	case <-t.ready:
	case <-time.After(shimReportTimeout):
		_ = t.conn.SetReadDeadline(time.Now())
		<-t.ready
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped = true
	switch {
	case t.setupWhy != "":
		return Report{Reason: t.setupWhy}
	case t.incomplete != "":
		return Report{Reason: t.incomplete}
	}
	return Report{Available: true, Writes: t.writes.sorted()}
}

// Done is closed once no process of the tree is left (or tracing never
// started) and the supervisor has ended.
func (t *Trace) Done() <-chan struct{} { return t.done }

// Ready is closed once the shim has handed over the filter (or said why
// it could not, or died): from then on the command itself runs.
func (t *Trace) Ready() <-chan struct{} { return t.ready }

// run receives the shim's report, then answers the tree's calls until no
// process uses the filter.
func (t *Trace) run() {
	defer close(t.done)
	listener, why := t.receive()
	t.conn.Close()
	t.mu.Lock()
	t.setupWhy = why
	t.mu.Unlock()
	close(t.ready)
	if listener < 0 {
		return
	}
	t.serve(listener)
}

// receive reads the shim's one message: the listener, or why there is
// none.
func (t *Trace) receive() (listener int, why string) {
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4*4))
	n, oobn, _, _, err := t.conn.ReadMsgUnix(buf, oob)
	var fds []int
	if err == nil && oobn > 0 {
		if msgs, perr := unix.ParseSocketControlMessage(oob[:oobn]); perr == nil {
			for _, msg := range msgs {
				if rights, rerr := unix.ParseUnixRights(&msg); rerr == nil {
					fds = append(fds, rights...)
				}
			}
		}
	}
	msg := string(buf[:n])
	if msg == msgOK && len(fds) == 1 {
		return fds[0], ""
	}
	for _, fd := range fds {
		unix.Close(fd)
	}
	switch {
	case n == 0 && (err == nil || errors.Is(err, io.EOF)):
		return -1, "the write tracer shim exited before reporting"
	case errors.Is(err, os.ErrDeadlineExceeded):
		return -1, fmt.Sprintf("the write tracer shim did not report within %v", shimReportTimeout)
	case err != nil:
		return -1, fmt.Sprintf("reading the write tracer shim's report: %v", err)
	case strings.HasPrefix(msg, msgNo):
		return -1, strings.TrimPrefix(msg, msgNo)
	}
	return -1, fmt.Sprintf("the write tracer shim sent an unexpected report %q", msg)
}

// serve answers notifications until the listener reports POLLHUP: no
// process uses the filter any more. Every stopped call is answered
// CONTINUE, recorded or not, so no process of the tree is ever left
// blocked.
func (t *Trace) serve(listener int) {
	if err := unix.SetNonblock(listener, true); err != nil {
		t.fail(fmt.Sprintf("preparing the seccomp listener: %v", err))
	}
	f := os.NewFile(uintptr(listener), "seccomp-listener")
	defer f.Close() // were any process left, its stopped calls would fail with ENOSYS
	rc, err := f.SyscallConn()
	if err != nil {
		t.fail(fmt.Sprintf("polling the seccomp listener: %v", err))
		return
	}
	err = rc.Read(func(fd uintptr) bool {
		for {
			pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			if _, err := unix.Poll(pfd, 0); err != nil {
				if err == unix.EINTR {
					continue
				}
				t.fail(fmt.Sprintf("polling the seccomp listener: %v", err))
				return true
			}
			switch ev := pfd[0].Revents; {
			case ev&unix.POLLIN != 0:
				if err := t.answer(fd); err != nil {
					t.fail(err.Error())
					return true
				}
			case ev&(unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0:
				return true
			default:
				return false // wait for the next notification
			}
		}
	})
	if err != nil {
		t.fail(fmt.Sprintf("waiting on the seccomp listener: %v", err))
	}
}

// answer receives one notification, records what it modifies and lets
// the call continue. An error means the listener cannot be used.
func (t *Trace) answer(fd uintptr) error {
	var req seccompNotif // zeroed, as the kernel requires
	if err := ioctl(fd, unix.SECCOMP_IOCTL_NOTIF_RECV, unsafe.Pointer(&req)); err != nil {
		if err == unix.ENOENT || err == unix.EINTR {
			return nil // the process was killed meanwhile, or try again
		}
		return fmt.Errorf("receiving a seccomp notification: %w", err)
	}
	t.inspect(fd, &req)
	resp := seccompNotifResp{ID: req.ID, Flags: unix.SECCOMP_USER_NOTIF_FLAG_CONTINUE}
	if err := ioctl(fd, unix.SECCOMP_IOCTL_NOTIF_SEND, unsafe.Pointer(&resp)); err != nil && err != unix.ENOENT {
		return fmt.Errorf("answering a seccomp notification: %w", err)
	}
	return nil
}

func ioctl(fd, req uintptr, arg unsafe.Pointer) error {
	for {
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, fd, req, uintptr(arg))
		if errno != unix.EINTR {
			if errno == 0 {
				return nil
			}
			return errno
		}
	}
}

// fail marks the trace incomplete, keeping the first reason.
func (t *Trace) fail(why string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.incomplete == "" && !t.stopped {
		t.incomplete = why
	}
}

func (t *Trace) isStopped() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stopped
}

// errSkip says a call will fail on its own (a bad pointer, a path too
// long, a directory fd that is not one), so it modifies nothing.
var errSkip = errors.New("the call cannot succeed")

// inspect records the paths the stopped call req would modify.
func (t *Trace) inspect(fd uintptr, req *seccompNotif) {
	if t.isStopped() {
		return
	}
	pid := int(req.Pid)
	if req.Data.Arch != nativeArch || x32Bit != 0 && uint32(req.Data.Nr)&x32Bit != 0 {
		t.fail(fmt.Sprintf("process %d made system calls of another architecture (a 32-bit program?), whose writes are not traced", pid))
		return
	}
	c, ok := t.calls[uintptr(req.Data.Nr)]
	if !ok {
		return
	}
	if c.bypass {
		t.fail(fmt.Sprintf("process %d set up io_uring, whose file operations the tracer cannot see", pid))
		return
	}
	type found struct {
		path string
		tree bool
	}
	var got [2]found
	n := 0
	err := t.sameView(pid)
	if err == nil && c.howArg > 0 {
		err = t.checkHow(pid, req.Data.Args[c.howArg])
	}
	for _, a := range c.paths {
		if err != nil {
			break
		}
		var p string
		if p, err = t.resolve(pid, &req.Data, a); err == nil {
			got[n] = found{p, a.tree}
			n++
		}
	}
	// The process may have been killed, and its pid reused, while its
	// memory and links were read; then its call never ran.
	if ioctl(fd, unix.SECCOMP_IOCTL_NOTIF_ID_VALID, unsafe.Pointer(&req.ID)) != nil {
		return
	}
	switch {
	case errors.Is(err, errSkip):
		return // the call cannot succeed (a rename moves both paths or neither)
	case err != nil:
		t.fail(fmt.Sprintf("%s by process %d: %v", c.name, pid, err))
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	for _, f := range got[:n] {
		t.writes.add(f.path, f.tree)
	}
}

// sameView checks the process sees the file tree as the daemon does: the
// same root and mount namespace. Otherwise its paths mean other files.
func (t *Trace) sameView(pid int) error {
	root, err := t.readlink(pid, "root")
	if err != nil {
		return err
	}
	if root != "/" {
		return fmt.Errorf("the process runs under another root directory (%s), so its paths cannot be resolved", root)
	}
	mnt, err := t.readlink(pid, "ns/mnt")
	if err != nil {
		return err
	}
	if mnt != t.mnt {
		return errors.New("the process runs in another mount namespace, so its paths cannot be resolved")
	}
	return nil
}

// checkHow reads openat2's struct open_how and returns errSkip for an
// open that cannot modify the file.
func (t *Trace) checkHow(pid int, addr uint64) error {
	var how unix.OpenHow
	b := unsafe.Slice((*byte)(unsafe.Pointer(&how)), unsafe.Sizeof(how))
	n, err := readMem(pid, addr, b)
	switch {
	case errors.Is(err, unix.EFAULT) || err == nil && n < len(b):
		return errSkip
	case err != nil:
		return fmt.Errorf("reading its open_how: %w", err)
	case how.Flags&writeOpenFlags == 0:
		return errSkip
	}
	return nil
}

// resolve returns the absolute, cleaned path that argument a of the call
// names.
func (t *Trace) resolve(pid int, d *seccompData, a pathArg) (string, error) {
	var raw string
	named := a.path != noArg
	if named {
		addr := d.Args[a.path]
		if addr == 0 && !a.emptyIsFD {
			return "", errSkip
		}
		if addr != 0 {
			var err error
			if raw, err = t.readString(pid, addr); err != nil {
				return "", err
			}
		}
		if raw == "" {
			if !a.emptyIsFD {
				return "", errSkip
			}
			named = false
		}
	}
	if named && raw[0] == '/' {
		return cleanPath("/", raw), nil
	}
	var base string
	var err error
	if dirfd := int32(d.Args[max(a.dirfd, 0)]); a.dirfd == noArg || dirfd == unix.AT_FDCWD {
		base, err = t.readlink(pid, "cwd")
	} else {
		base, err = t.readlink(pid, "fd/"+strconv.Itoa(int(dirfd)))
		if errors.Is(err, unix.ENOENT) {
			return "", errSkip // not an open fd: EBADF
		}
	}
	if err != nil {
		return "", err
	}
	if base == "" || base[0] != '/' {
		return "", errSkip // a pipe, socket or anonymous inode: not in the tree
	}
	if strings.HasSuffix(base, " (deleted)") {
		if _, err := os.Lstat(base); err != nil {
			return "", errSkip // a removed file or directory: nothing there to change
		}
	}
	if !named {
		return base, nil
	}
	return cleanPath(base, raw), nil
}

// cleanPath joins and cleans like joinPath, but where a ".." follows a
// component that may be a symlink it resolves the directory before the
// last "..", as the kernel does, so the name stays true.
func cleanPath(base, raw string) string {
	p := joinPath(base, raw)
	if !hasInnerDotDot(raw) {
		return p
	}
	full := raw
	if full[0] != '/' {
		full = base + "/" + raw
	}
	parts := strings.Split(full, "/")
	last := 0
	for i, part := range parts {
		if part == ".." {
			last = i
		}
	}
	dir, err := filepath.EvalSymlinks("/" + strings.Join(parts[:last+1], "/"))
	if err != nil {
		return p // the directory does not exist: the call fails anyway
	}
	return filepath.Join(append([]string{dir}, parts[last+1:]...)...)
}

// readlink reads /proc/<pid>/<name>.
func (t *Trace) readlink(pid int, name string) (string, error) {
	n, err := unix.Readlink("/proc/"+strconv.Itoa(pid)+"/"+name, t.link[:])
	if err != nil {
		return "", fmt.Errorf("reading /proc/%d/%s: %w", pid, name, err)
	}
	if n >= len(t.link) {
		return "", fmt.Errorf("reading /proc/%d/%s: the path is too long", pid, name)
	}
	return string(t.link[:n]), nil
}

// readString reads the NUL-terminated path at addr in the process. It
// returns errSkip when the kernel would refuse the path itself (a bad
// pointer, over PATH_MAX).
func (t *Trace) readString(pid int, addr uint64) (string, error) {
	n, err := readMem(pid, addr, t.buf[:])
	if errors.Is(err, unix.EFAULT) {
		return "", errSkip
	}
	if err != nil {
		return "", fmt.Errorf("reading its path argument: %w", err)
	}
	if i := bytes.IndexByte(t.buf[:n], 0); i >= 0 {
		return string(t.buf[:i]), nil
	}
	return "", errSkip
}

// readMem reads len(b) bytes at addr in the process, or as many as are
// mapped: the read is split at the first page boundary, so a string at
// the end of the last mapped page still reads.
func readMem(pid int, addr uint64, b []byte) (int, error) {
	page := uint64(os.Getpagesize())
	first := min(page-addr%page, uint64(len(b)))
	local := []unix.Iovec{{Base: &b[0]}}
	local[0].SetLen(len(b))
	remote := []unix.RemoteIovec{
		{Base: uintptr(addr), Len: int(first)},
		{Base: uintptr(addr + first), Len: len(b) - int(first)},
	}
	for {
		n, err := unix.ProcessVMReadv(pid, local, remote, 0)
		if err != unix.EINTR {
			return n, err
		}
	}
}

// Probe says whether commands can be traced here: it starts the shim,
// which installs the filter and exits. Detail is one line for `sessiond
// doctor`.
func Probe(ctx context.Context) (ok bool, detail string) {
	cmd := exec.CommandContext(ctx, "/bin/true")
	t, err := start(cmd, modeProbe)
	if err != nil {
		return false, fmt.Sprintf("cannot start the tracer shim: %v", err)
	}
	_ = cmd.Wait()
	rep := t.Stop()
	if !rep.Available {
		return false, rep.Reason
	}
	rel, _ := kernelAtLeast(minKernelMajor, minKernelMinor)
	return true, fmt.Sprintf("seccomp user notification (kernel %s)", rel)
}
