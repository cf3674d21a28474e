package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/sourcegraph/jsonrpc2"
)

// Error codes of the sessiond protocol (docs: DESIGN §2). The JSON-RPC
// reserved codes come first, then the sessiond-specific ones.
const (
	CodeParseError       int64 = -32700
	CodeInvalidRequest   int64 = -32600
	CodeMethodNotFound   int64 = -32601
	CodeInvalidParams    int64 = -32602
	CodeInternalError    int64 = -32603
	CodeNotFound         int64 = -32002
	CodeBusy             int64 = -32010
	CodeConflict         int64 = -32011
	CodeAborted          int64 = -32012
	CodeClosed           int64 = -32013
	CodeNoProvider       int64 = -32014
	CodeProviderError    int64 = -32015
	CodeRequestCancelled int64 = -32800
	CodeUnauthorized     int64 = -32000
)

// Kind names sent as error.data.kind, so clients can switch on a string
// instead of remembering numbers.
const (
	KindParseError       = "ParseError"
	KindInvalidRequest   = "InvalidRequest"
	KindMethodNotFound   = "MethodNotFound"
	KindInvalidParams    = "InvalidParams"
	KindInternalError    = "InternalError"
	KindNotFound         = "NotFound"
	KindBusy             = "Busy"
	KindConflict         = "Conflict"
	KindAborted          = "Aborted"
	KindClosed           = "Closed"
	KindNoProvider       = "NoProvider"
	KindProviderError    = "ProviderError"
	KindRequestCancelled = "RequestCancelled"
	KindUnauthorized     = "Unauthorized"
	// KindUnknown is reported for codes outside the protocol's vocabulary
	// (e.g. from a foreign server) that carry no data.kind of their own.
	KindUnknown = "Unknown"
)

// KindOf returns the kind name of a protocol error code, or "" for a code
// that is not part of the protocol.
func KindOf(code int64) string {
	switch code {
	case CodeParseError:
		return KindParseError
	case CodeInvalidRequest:
		return KindInvalidRequest
	case CodeMethodNotFound:
		return KindMethodNotFound
	case CodeInvalidParams:
		return KindInvalidParams
	case CodeInternalError:
		return KindInternalError
	case CodeNotFound:
		return KindNotFound
	case CodeBusy:
		return KindBusy
	case CodeConflict:
		return KindConflict
	case CodeAborted:
		return KindAborted
	case CodeClosed:
		return KindClosed
	case CodeNoProvider:
		return KindNoProvider
	case CodeProviderError:
		return KindProviderError
	case CodeRequestCancelled:
		return KindRequestCancelled
	case CodeUnauthorized:
		return KindUnauthorized
	}
	return ""
}

// ErrClosed is returned (wrapped) by Call and Notify when the connection is
// gone, so callers can tell "the peer went away" from a protocol error.
var ErrClosed = errors.New("rpc: connection closed")

// Error is a JSON-RPC error as sessiond sends and receives it. It is the one
// error type handlers return for expected failures and that clients get
// back from Call, so both sides switch on the same Code and Kind.
type Error struct {
	Code    int64
	Message string
	// Data is sent as error.data; "kind" is always set on the wire from Code.
	Data map[string]any
}

// NewError builds an *Error with a formatted message.
func NewError(code int64, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// InvalidParams builds an InvalidParams error naming the offending field in
// data.field, so editors can point at it.
func InvalidParams(field, format string, args ...any) *Error {
	return NewError(CodeInvalidParams, format, args...).With("field", field)
}

// With sets data[key] = value on e and returns e, for chaining.
func (e *Error) With(key string, value any) *Error {
	if e.Data == nil {
		e.Data = make(map[string]any, 2)
	}
	e.Data[key] = value
	return e
}

// Kind returns the kind name: the protocol's name for Code, else the
// data.kind the peer sent, else KindUnknown.
func (e *Error) Kind() string {
	if k := KindOf(e.Code); k != "" {
		return k
	}
	if k, ok := e.Data["kind"].(string); ok && k != "" {
		return k
	}
	return KindUnknown
}

// Error returns the message alone: it is written for the person reading it.
func (e *Error) Error() string {
	if e.Message == "" {
		return e.Kind()
	}
	return e.Message
}

// MarshalJSON writes the JSON-RPC error object with data.kind filled in.
func (e *Error) MarshalJSON() ([]byte, error) {
	data := make(map[string]any, len(e.Data)+1)
	for k, v := range e.Data {
		data[k] = v
	}
	data["kind"] = e.Kind()
	return json.Marshal(struct {
		Code    int64          `json:"code"`
		Message string         `json:"message"`
		Data    map[string]any `json:"data"`
	}{e.Code, e.Message, data})
}

// UnmarshalJSON reads a JSON-RPC error object. Data that is not a JSON
// object is kept under Data["value"].
func (e *Error) UnmarshalJSON(b []byte) error {
	var w struct {
		Code    int64           `json:"code"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return fmt.Errorf("decode JSON-RPC error object: %w", err)
	}
	*e = Error{Code: w.Code, Message: w.Message, Data: decodeErrorData(w.Data)}
	return nil
}

func decodeErrorData(raw []byte) map[string]any {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err == nil {
		return m
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil
	}
	return map[string]any{"value": v}
}

// fromJSONRPC converts the error type of the jsonrpc2 library into ours, so
// callers never see library types.
func fromJSONRPC(je *jsonrpc2.Error) *Error {
	e := &Error{Code: je.Code, Message: je.Message}
	if je.Data != nil {
		e.Data = decodeErrorData(*je.Data)
	}
	return e
}

// AsError turns any handler error into the *Error sent on the wire: an
// *Error inside err is returned as is, context.Canceled becomes
// RequestCancelled, and anything else is an InternalError with a generic
// message (the caller logs err itself, so internals don't leak to clients).
func AsError(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var je *jsonrpc2.Error
	if errors.As(err, &je) {
		return fromJSONRPC(je)
	}
	if errors.Is(err, context.Canceled) {
		return errCancelled()
	}
	return NewError(CodeInternalError, "internal error in sessiond; the daemon log has the details, please report it if it persists")
}

func errCancelled() *Error {
	return NewError(CodeRequestCancelled, "request cancelled")
}
