// Command sessiond is the session daemon for AI coding in editors, and its
// command line client. See the README for a tour.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/sessiond/sessiond/rpc"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := newRoot(os.Stdin, os.Stdout, os.Stderr).ExecuteContext(ctx)
	var code exitCode
	if errors.As(err, &code) {
		os.Exit(int(code)) // the status of the command `shell` ran
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sessiond:", err)
		var re *rpc.Error
		if errors.As(err, &re) {
			os.Exit(3)
		}
		os.Exit(1)
	}
}
