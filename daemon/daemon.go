// Package daemon runs sessiond: it owns the data dir, serves JSON-RPC
// connections on a Unix socket or on stdio, fans the change feed out to
// clients, exits when idle, and is what clients dial (starting it when
// none answers).
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/sessiond/sessiond/rpc"
	"github.com/sessiond/sessiond/session"
	"github.com/sessiond/sessiond/store"
	"github.com/sessiond/sessiond/workspace"
	"github.com/sessiond/sessiond/workspace/snapshot"
	"github.com/sessiond/sessiond/workspace/watch"
)

// Daemon is one open data dir and the connections it serves.
type Daemon struct {
	cfg      Config
	log      *slog.Logger
	lock     *dirLock
	db       *store.DB
	projects *workspace.Registry
	engine   *snapshot.Engine
	trackers *workspace.Trackers
	sessions *session.Service
	hub      *hub
	mux      *rpc.Mux
	started  time.Time

	mu       sync.Mutex
	active   int // connections being served, counted from accept
	conns    map[*rpc.Conn]*connState
	idle     chan struct{} // signalled when the last connection closes
	wg       sync.WaitGroup
	closed   bool
	listener net.Listener

	stop     chan struct{} // closed by daemon/shutdown
	stopOnce sync.Once
}

// connState is what the daemon keeps per connection.
type connState struct {
	// lastDir is the workspace this connection opened last: the default
	// directory of its session/create calls.
	lastDir string
}

// Open takes the data dir (refusing one another process holds), opens the
// store, finishes work a killed daemon left, and gets ready to serve.
// mode is "serve" or "standalone". A nil logger discards the logs.
func Open(ctx context.Context, cfg Config, mode string, logger *slog.Logger) (*Daemon, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	lock, err := lockDataDir(cfg, mode)
	if err != nil {
		return nil, err
	}
	db, err := store.Open(ctx, store.Options{Dir: cfg.StorePath(), Logger: logger})
	if err != nil {
		lock.release()
		return nil, err
	}
	engine, err := snapshot.New(db, snapshot.Options{MaxFileSize: cfg.MaxFileSize, Exclude: []string{cfg.DataDir}, Logger: logger})
	if err != nil {
		db.Close()
		lock.release()
		return nil, fmt.Errorf("start snapshots: %w", err)
	}
	if cfg.GCPin != 0 {
		engine.SetPinPeriod(cfg.GCPin) // negative: off
	}
	d := &Daemon{
		cfg: cfg, log: logger, lock: lock, db: db, engine: engine,
		projects: workspace.NewRegistry(db, logger),
		hub:      newHub(logger),
		started:  time.Now(),
		conns:    map[*rpc.Conn]*connState{},
		idle:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
	}
	d.trackers = workspace.NewTrackers(engine, workspace.TrackerOptions{
		Exclude:  []string{cfg.DataDir},
		OnChange: d.filesChanged,
		Logger:   logger,
	})
	opts := []session.Option{session.WithTimeMachine(engine, d.trackers)}
	if cfg.NoWriteTrace != "" {
		opts = append(opts, session.WithoutWriteTracing(cfg.NoWriteTrace))
	}
	if cfg.CrashPoint != "" {
		opts = append(opts, session.WithCrashPoint(cfg.CrashPoint, func() {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}))
	}
	d.sessions = session.New(db, d.projects, d.hub, logger, opts...)
	// Finish what a killed daemon left halfway before serving anything. A
	// revert that cannot finish is parked on its session, not fatal.
	if err := d.sessions.ResumePurges(ctx); err != nil {
		d.Close()
		return nil, err
	}
	if err := d.sessions.ResumeJournals(ctx); err != nil {
		d.Close()
		return nil, err
	}
	if err := d.sessions.ResumeTurns(ctx); err != nil {
		d.Close()
		return nil, err
	}
	d.mux = d.routes()
	return d, nil
}

// Close stops serving, closes every connection, and flushes and closes the
// store. It is safe to call twice.
func (d *Daemon) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	if d.listener != nil {
		d.listener.Close()
	}
	conns := make([]*rpc.Conn, 0, len(d.conns))
	for c := range d.conns {
		conns = append(conns, c)
	}
	d.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	d.wg.Wait()
	// Abort the turns no connection waits for (promptAsync) and let them
	// record what they did before the store closes.
	d.sessions.Close()
	terr := d.trackers.Close()
	d.engine.Close()
	err := errors.Join(terr, d.db.Close())
	d.lock.release()
	return err
}

// filesChanged turns the watchers' events into file.changed changes for
// the clients that opened the project.
func (d *Daemon) filesChanged(projectID, root string, events []watch.Event) {
	for _, ev := range events {
		d.hub.Publish(session.Change{
			Type: "file.changed",
			// root says which checkout: a project's clones and worktrees
			// share its ID. path is relative to it.
			Properties: map[string]any{"projectID": projectID, "root": root, "path": ev.Path, "kind": ev.Kind},
			ProjectID:  projectID,
		})
	}
}

// ServeConn serves one connection until it closes.
func (d *Daemon) ServeConn(ctx context.Context, rwc io.ReadWriteCloser) error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		rwc.Close()
		return errors.New("daemon is shutting down")
	}
	d.wg.Add(1)
	d.active++
	d.mu.Unlock()
	defer d.wg.Done()

	c := rpc.Serve(ctx, rwc, d.mux, rpc.ServerOptions{
		MaxMessageBytes: d.cfg.MaxMessageBytes,
		Logger:          d.log,
		Initialize:      d.initialize,
		// Register before the first request runs: a handler that finds no
		// state or watcher for its connection would drop what it records
		// (a subscription, the workspace opened).
		OnOpen: func(c *rpc.Conn) {
			d.mu.Lock()
			d.conns[c] = &connState{}
			d.mu.Unlock()
			d.hub.add(c)
		},
	})
	d.log.Debug("client connected", "conn", c.ID())

	select {
	case <-c.Done():
	case <-d.stop: // daemon/shutdown; a standalone process ends with its one connection
		c.Close()
		<-c.Done()
	}

	d.hub.remove(c)
	d.mu.Lock()
	delete(d.conns, c)
	d.active--
	n := d.active
	d.mu.Unlock()
	d.log.Debug("client disconnected", "conn", c.ID(), "remaining", n)
	if n == 0 {
		select {
		case d.idle <- struct{}{}:
		default:
		}
	}
	return nil
}

// Serve accepts connections on the daemon's socket until ctx ends or the
// daemon has had no client for the idle timeout.
func (d *Daemon) Serve(ctx context.Context) error {
	l, err := listen(d.cfg.Socket)
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.listener = l
	d.mu.Unlock()
	defer os.Remove(d.cfg.Socket)
	d.log.Info("sessiond listening", "socket", d.cfg.Socket, "dataDir", d.cfg.DataDir, "pid", os.Getpid(), "version", d.cfg.Version)

	gcCtx, stopGC := context.WithCancel(ctx)
	defer stopGC()
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		d.collectPeriodically(gcCtx)
	}()

	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go d.ServeConn(ctx, conn)
		}
	}()

	var timer *time.Timer
	var idleC <-chan time.Time
	arm := func() {
		if d.cfg.IdleTimeout <= 0 {
			return
		}
		if timer != nil {
			timer.Stop()
		}
		timer = time.NewTimer(d.cfg.IdleTimeout)
		idleC = timer.C
	}
	arm() // a daemon nobody connects to does not live forever
	check := time.NewTicker(memoryCheckEvery)
	defer check.Stop()
	trim := d.newTrimmer()
	for {
		select {
		case <-ctx.Done():
			d.log.Info("shutting down", "reason", context.Cause(ctx))
			return nil
		case <-d.stop:
			d.log.Info("shutting down", "reason", "daemon/shutdown")
			return nil
		case <-d.idle:
			if d.connections() == 0 {
				arm()
				// Nobody is using the daemon: give back the memory the
				// last client's work grew, so an idle daemon stays small.
				d.releaseMemory("no client")
				trim = d.newTrimmer()
			}
		case <-check.C:
			// Clients that stay connected after a burst (an editor) must
			// not keep the daemon at its peak either.
			d.checkMemory(trim, "clients quiet")
		case <-idleC:
			if d.connections() != 0 {
				idleC = nil
				break
			}
			// Processes a traced command left running stop at the tracer
			// whenever they change a file; without the daemon those calls
			// fail. Wait for them as for a client.
			if n := d.sessions.Lingering(); n > 0 {
				d.log.Info("no client, but processes that traced commands left running still need the daemon; staying",
					"commands", n, "idleTimeout", d.cfg.IdleTimeout)
				arm()
				break
			}
			d.log.Info("no client for the idle timeout; exiting", "idleTimeout", d.cfg.IdleTimeout)
			return nil
		}
	}
}

func (d *Daemon) connections() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.active
}

// Run is `sessiond serve`: open, serve until signalled or idle, close.
func Run(ctx context.Context, cfg Config, logger *slog.Logger) error {
	d, err := Open(ctx, cfg, "serve", logger)
	if err != nil {
		return err
	}
	serr := d.Serve(ctx)
	if cerr := d.Close(); cerr != nil && serr == nil {
		serr = fmt.Errorf("close: %w", cerr)
	}
	return serr
}
