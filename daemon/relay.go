package daemon

import (
	"context"
	"errors"
	"io"
	"net"
)

// Relay copies bytes between an editor's stdio and the daemon's socket,
// unchanged: framing is the daemon's business. It returns when the daemon
// closes the connection, or when stdin ends and the daemon has answered
// what it had.
func Relay(ctx context.Context, conn net.Conn, stdin io.Reader, stdout io.Writer) error {
	down := make(chan error, 1)
	go func() {
		_, err := io.Copy(stdout, conn)
		down <- err
	}()
	up := make(chan error, 1)
	go func() {
		_, err := io.Copy(conn, stdin)
		// Half-close: the daemon sees EOF, finishes, and closes its side.
		if uc, ok := conn.(*net.UnixConn); ok {
			uc.CloseWrite()
		}
		up <- err
	}()
	select {
	case err := <-down:
		conn.Close()
		return ignoreClosed(err)
	case <-ctx.Done():
		conn.Close()
		return ctx.Err()
	case err := <-up:
		if err != nil {
			conn.Close()
			return ignoreClosed(err)
		}
		select {
		case err := <-down:
			conn.Close()
			return ignoreClosed(err)
		case <-ctx.Done():
			conn.Close()
			return ctx.Err()
		}
	}
}

func ignoreClosed(err error) error {
	if err == nil || errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) {
		return nil
	}
	return err
}
