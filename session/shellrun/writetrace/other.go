//go:build !linux || !(amd64 || arm64)

package writetrace

import (
	"context"
	"fmt"
	"os/exec"
	"runtime"
)

// unavailable says why commands are not traced on this platform.
func unavailable() string {
	return fmt.Sprintf("write tracing needs Linux on amd64 or arm64 (seccomp user notification); this is %s/%s", runtime.GOOS, runtime.GOARCH)
}

// Trace is a command started untraced: tracing is not available here.
type Trace struct{ done chan struct{} }

// Start is cmd.Start: the command runs untraced, and Stop says why.
func Start(cmd *exec.Cmd) (*Trace, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan struct{})
	close(done)
	return &Trace{done: done}, nil
}

// Stop returns a report saying tracing is unavailable here.
func (t *Trace) Stop() Report { return Report{Reason: unavailable()} }

// Done is closed: there is nothing to wait for.
func (t *Trace) Done() <-chan struct{} { return t.done }

// Ready is closed at once: there is no shim here.
func (t *Trace) Ready() <-chan struct{} { return t.done }

// Probe says commands cannot be traced here.
func Probe(context.Context) (ok bool, detail string) { return false, unavailable() }
