package rpc

import (
	"context"
	"encoding/json"
	"net"
	"testing"
	"time"
)

func benchMux() *Mux {
	m := NewMux()
	Handle(m, "echo", func(_ context.Context, _ *Conn, p json.RawMessage) (json.RawMessage, error) { return p, nil })
	Handle(m, "session/get", func(_ context.Context, _ *Conn, p getParams) (session, error) {
		return session{ID: p.SessionID, Title: "hello"}, nil
	})
	return m
}

func benchPair(b *testing.B, pipe bool, framing Framing) *Client {
	var a, s net.Conn
	if pipe {
		a, s = net.Pipe()
		b.Cleanup(func() { a.Close(); s.Close() })
	} else {
		a, s = socketPair(b)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	Serve(ctx, s, benchMux(), ServerOptions{Logger: quietLogger()})
	return Dial(ctx, a, ClientOptions{Framing: framing, Logger: quietLogger()})
}

// BenchmarkRoundTrip measures one request/response through the whole stack
// (client encode, framing, dispatch, params decode, handler, reply).
func BenchmarkRoundTrip(b *testing.B) {
	cases := []struct {
		name    string
		pipe    bool
		framing Framing
		method  string
	}{
		{"socketpair/ndjson/session.get", false, FramingNDJSON, "session/get"},
		{"socketpair/lsp/session.get", false, FramingLSP, "session/get"},
		{"pipe/ndjson/echo", true, FramingNDJSON, "echo"},
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			cl := benchPair(b, bc.pipe, bc.framing)
			ctx := context.Background()
			params := getParams{SessionID: "ses_01JABCDEFGHJKMNPQRSTVWXYZ"}
			var out session
			b.ReportAllocs()
			start := time.Now()
			for b.Loop() {
				if err := cl.Call(ctx, bc.method, params, &out); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(time.Since(start).Microseconds())/float64(b.N), "µs/call")
		})
	}
}

// BenchmarkPipelined measures throughput with many calls in flight on one
// connection, different sessions so they run concurrently.
func BenchmarkPipelined(b *testing.B) {
	cl := benchPair(b, false, FramingNDJSON)
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism(16)
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		params := getParams{SessionID: "ses_" + time.Now().Format(time.RFC3339Nano)}
		var out session
		for pb.Next() {
			if err := cl.Call(ctx, "session/get", params, &out); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}
