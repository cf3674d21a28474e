package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/sourcegraph/jsonrpc2"
)

func TestKindOf(t *testing.T) {
	tests := []struct {
		code int64
		kind string
	}{
		{CodeParseError, "ParseError"},
		{CodeInvalidRequest, "InvalidRequest"},
		{CodeMethodNotFound, "MethodNotFound"},
		{CodeInvalidParams, "InvalidParams"},
		{CodeInternalError, "InternalError"},
		{CodeNotFound, "NotFound"},
		{CodeBusy, "Busy"},
		{CodeConflict, "Conflict"},
		{CodeAborted, "Aborted"},
		{CodeClosed, "Closed"},
		{CodeNoProvider, "NoProvider"},
		{CodeProviderError, "ProviderError"},
		{CodeRequestCancelled, "RequestCancelled"},
		{CodeUnauthorized, "Unauthorized"},
		{-1, ""},
	}
	for _, tt := range tests {
		if got := KindOf(tt.code); got != tt.kind {
			t.Errorf("KindOf(%d) = %q, want %q", tt.code, got, tt.kind)
		}
	}
}

func TestErrorJSON(t *testing.T) {
	tests := []struct {
		name string
		err  *Error
		want string
	}{
		{"plain", NewError(CodeBusy, "session %s is running a turn; wait or call session/abort", "ses_1"),
			`{"code":-32010,"message":"session ses_1 is running a turn; wait or call session/abort","data":{"kind":"Busy"}}`},
		{"escaped %", NewError(CodeNotFound, "100%% gone"),
			`{"code":-32002,"message":"100% gone","data":{"kind":"NotFound"}}`},
		{"field", InvalidParams("title", "title must be a string"),
			`{"code":-32602,"message":"title must be a string","data":{"field":"title","kind":"InvalidParams"}}`},
		{"with", NewError(CodeConflict, "changed outside").With("paths", []string{"a.go"}).With("kind", "ignored"),
			`{"code":-32011,"message":"changed outside","data":{"kind":"Conflict","paths":["a.go"]}}`},
		{"unknown code", &Error{Code: -1, Message: "x"},
			`{"code":-1,"message":"x","data":{"kind":"Unknown"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.err)
			if err != nil || string(b) != tt.want {
				t.Fatalf("Marshal = %s, %v\nwant %s", b, err, tt.want)
			}
			var back Error
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			if back.Code != tt.err.Code || back.Message != tt.err.Message || back.Kind() != tt.err.Kind() {
				t.Errorf("round trip = %+v", back)
			}
		})
	}
}

func TestAsError(t *testing.T) {
	nf := NewError(CodeNotFound, "session not found")
	raw := json.RawMessage(`{"kind":"Custom","x":1}`)
	tests := []struct {
		name string
		err  error
		code int64
		kind string
	}{
		{"rpc error", nf, CodeNotFound, KindNotFound},
		{"wrapped rpc error", fmt.Errorf("get: %w", nf), CodeNotFound, KindNotFound},
		{"cancelled", context.Canceled, CodeRequestCancelled, KindRequestCancelled},
		{"wrapped cancelled", fmt.Errorf("turn: %w", context.Canceled), CodeRequestCancelled, KindRequestCancelled},
		{"other", errors.New("disk on fire"), CodeInternalError, KindInternalError},
		{"jsonrpc2 error", &jsonrpc2.Error{Code: -32099, Message: "foreign", Data: &raw}, -32099, "Custom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := AsError(tt.err)
			if e.Code != tt.code || e.Kind() != tt.kind {
				t.Errorf("AsError = %d %q, want %d %q", e.Code, e.Kind(), tt.code, tt.kind)
			}
			if tt.code == CodeInternalError && e.Message == tt.err.Error() {
				t.Errorf("internal detail leaked: %q", e.Message)
			}
		})
	}
	if AsError(nil) != nil {
		t.Error("AsError(nil) != nil")
	}
}

func TestErrorDataNotObject(t *testing.T) {
	var e Error
	if err := json.Unmarshal([]byte(`{"code":-32015,"message":"upstream","data":"429 Too Many Requests"}`), &e); err != nil {
		t.Fatal(err)
	}
	if e.Data["value"] != "429 Too Many Requests" || e.Kind() != KindProviderError {
		t.Errorf("got %+v", e)
	}
}
