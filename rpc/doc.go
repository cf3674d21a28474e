// Package rpc is sessiond's JSON-RPC 2.0 layer: framing (LSP headers or
// NDJSON, detected per connection), dispatch with per-session ordering and
// $/cancelRequest, the LSP lifecycle, and the protocol's error vocabulary.
// The daemon serves connections with Serve and a Mux; the CLI and tests
// talk to it with Dial.
//
// It sits on github.com/sourcegraph/jsonrpc2, which drops a connection on
// any read error, so Stream answers bad input itself and only reports I/O
// failures. Bad input never ends a connection.
//
// The package imports no other sessiond package.
package rpc
