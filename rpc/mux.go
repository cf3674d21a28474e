package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync/atomic"
)

// Mux maps method names to handlers. Register every method before the
// first Serve: lookups are not locked.
type Mux struct {
	methods map[string]*method
	// connIDs numbers the connections served with this Mux; it lives here,
	// not in a package variable, so independent servers (and tests) do not
	// share state.
	connIDs atomic.Uint64
	// messages counts the messages its connections read, bad ones too.
	messages atomic.Uint64
}

// MessagesRead returns how many messages the connections served with m
// have read, well-formed or not. It only grows; a server compares two
// readings to tell whether its clients were busy in between.
func (m *Mux) MessagesRead() uint64 { return m.messages.Load() }

// method is one registered handler with its params decoding baked in.
type method struct {
	name       string
	unordered  bool
	call       func(ctx context.Context, c *Conn, params json.RawMessage) (any, error)
	afterReply func(c *Conn)
}

// MethodOption tunes how a method is dispatched.
type MethodOption func(*method)

// Unordered lets a method skip the per-session queue, so it runs at once
// even while earlier requests for the same session are still running. Use
// it for methods that must not wait behind a turn, such as session/abort and
// session/status.
func Unordered() MethodOption {
	return func(m *method) { m.unordered = true }
}

// AfterReply runs fn once a successful reply of the method was written to
// the connection (or failed to be): for a method whose effect must not
// overtake its answer, such as daemon/shutdown closing the connection.
func AfterReply(fn func(c *Conn)) MethodOption {
	return func(m *method) { m.afterReply = fn }
}

// NewMux returns an empty Mux.
func NewMux() *Mux {
	return &Mux{methods: make(map[string]*method)}
}

// reserved names are handled by Conn itself (LSP lifecycle, cancellation).
func reserved(name string) bool {
	switch name {
	case "initialize", "initialized", "shutdown", "exit", "$/cancelRequest":
		return true
	}
	return false
}

func (m *Mux) register(name string, call func(context.Context, *Conn, json.RawMessage) (any, error), opts []MethodOption) {
	switch {
	case name == "":
		panic("rpc: method name must not be empty")
	case reserved(name):
		panic(fmt.Sprintf("rpc: method %q is handled by rpc.Conn itself and cannot be registered", name))
	case m.methods[name] != nil:
		panic(fmt.Sprintf("rpc: method %q registered twice", name))
	}
	md := &method{name: name, call: call}
	for _, o := range opts {
		o(md)
	}
	m.methods[name] = md
}

func (m *Mux) lookup(name string) *method { return m.methods[name] }

// Methods returns the registered method names, sorted, so the daemon can
// advertise them (e.g. in the initialize result).
func (m *Mux) Methods() []string {
	names := make([]string, 0, len(m.methods))
	for name := range m.methods {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Handle registers a request handler. Params are decoded into P: missing or
// null params give the zero P, unknown fields are ignored so older daemons
// accept newer clients, wrong types are answered with InvalidParams naming
// the field, and if P (or *P) has a Validate() error method it runs before
// fn. It panics if method is empty, reserved or already registered.
func Handle[P, R any](m *Mux, method string, fn func(ctx context.Context, c *Conn, p P) (R, error), opts ...MethodOption) {
	m.register(method, func(ctx context.Context, c *Conn, raw json.RawMessage) (any, error) {
		p, err := decodeParams[P](raw)
		if err != nil {
			return nil, err
		}
		return fn(ctx, c, p)
	}, opts)
}

// HandleNotification registers a notification handler; params are decoded
// as for Handle, and a decoding error is logged since there is no one to
// answer. If a peer sends it as a request, it is answered with null.
func HandleNotification[P any](m *Mux, method string, fn func(ctx context.Context, c *Conn, p P)) {
	m.register(method, func(ctx context.Context, c *Conn, raw json.RawMessage) (any, error) {
		p, err := decodeParams[P](raw)
		if err != nil {
			return nil, err
		}
		fn(ctx, c, p)
		return nil, nil
	}, nil)
}

type validator interface{ Validate() error }

// decodeParams decodes raw into a P and validates it.
func decodeParams[P any](raw json.RawMessage) (P, error) {
	var p P
	if len(raw) > 0 && string(raw) != "null" {
		if err := json.Unmarshal(raw, &p); err != nil {
			return p, paramsError(err)
		}
	}
	var err error
	if v, ok := any(&p).(validator); ok {
		err = v.Validate()
	} else if v, ok := any(p).(validator); ok && !isNilPointer(p) {
		err = v.Validate()
	}
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			return p, e
		}
		return p, InvalidParams("params", "invalid params: %v", err)
	}
	return p, nil
}

func isNilPointer(v any) bool {
	rv := reflect.ValueOf(v)
	return rv.Kind() == reflect.Pointer && rv.IsNil()
}

// paramsError turns a json decoding error into InvalidParams naming the
// field, e.g. `"title": expected string, got number`.
func paramsError(err error) *Error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		got := te.Value
		if got == "bool" {
			got = "boolean"
		}
		want := jsonTypeName(te.Type)
		if te.Field == "" {
			return InvalidParams("params", "params must be %s %s, got %s", article(want), want, got)
		}
		return InvalidParams(te.Field, "%q: expected %s, got %s", te.Field, want, got)
	}
	return InvalidParams("params", "invalid params: %v", err)
}

// jsonTypeName names the JSON type a Go type decodes from.
func jsonTypeName(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return "base64 string"
		}
		return "array"
	case reflect.Array:
		return "array"
	case reflect.Map, reflect.Struct:
		return "object"
	}
	return t.String()
}
