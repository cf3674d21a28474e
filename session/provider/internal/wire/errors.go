package wire

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sessiond/sessiond/session/provider"
)

// maxErrorBody bounds how much of an error response is kept.
const maxErrorBody = 64 << 10

// Capture is an SDK middleware that keeps the status, headers and error
// body of a request's response. The SDKs fold HTTP errors into their own
// types and drop bodies that are not JSON; the retry loop needs the status
// and Retry-After, and the user needs the provider's text.
type Capture struct {
	Status int
	Header http.Header
	Body   []byte
}

// Middleware has the signature of both SDKs' option.Middleware.
func (c *Capture) Middleware(req *http.Request, next func(*http.Request) (*http.Response, error)) (*http.Response, error) {
	res, err := next(req)
	if err != nil || res == nil {
		return res, err
	}
	c.Status = res.StatusCode
	c.Header = res.Header.Clone()
	if res.StatusCode >= 400 {
		body, _ := io.ReadAll(io.LimitReader(res.Body, maxErrorBody))
		_ = res.Body.Close()
		c.Body = body
		res.Body = io.NopCloser(bytes.NewReader(body))
	}
	return res, nil
}

// Error turns an SDK error into what provider.Stream promises: ctx.Err()
// when the context ended, else a *provider.ProviderError.
func Error(ctx context.Context, providerID, model string, c *Capture, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	var perr *provider.ProviderError
	if errors.As(err, &perr) {
		return perr
	}
	pe := &provider.ProviderError{Provider: providerID, Model: model, Err: err}
	if c != nil && c.Status >= 400 {
		pe.Status = c.Status
		pe.Message = ErrorText(c.Body)
		pe.Retryable = provider.RetryableStatus(c.Status)
		pe.RetryAfter = RetryAfter(c.Header, time.Now())
		return pe
	}
	var syntax *json.SyntaxError
	if errors.As(err, &syntax) {
		pe.Message = fmt.Sprintf("malformed stream data: %v", err)
		return pe
	}
	pe.Message = fmt.Sprintf("connection failed: %v", err)
	// A certificate, a host name that does not resolve or a port nobody
	// listens on will not heal while the turn waits; a connection reset
	// or cut short may. Refused is what a local server (Ollama, vLLM)
	// that is not running gives: five tries over 23 s only hid that.
	var certErr *tls.CertificateVerificationError
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		pe.Message = fmt.Sprintf("connection refused by %s: nothing listens there; start the model server, or correct the provider's \"baseURL\"", requestURL(err))
	case errors.As(err, &certErr):
		pe.Message += " (check the provider's base URL and certificate)"
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		pe.Message += " (check the provider's base URL)"
	default:
		pe.Retryable = true
	}
	return pe
}

// requestURL is the URL a failed request went to, as the HTTP client
// reports it, or "the provider's base URL" when it does not.
func requestURL(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) && ue.URL != "" {
		return ue.URL
	}
	return "the provider's base URL"
}

// Truncated is the error for a stream that ended without saying it was
// done.
func Truncated(providerID, model string) *provider.ProviderError {
	return &provider.ProviderError{Provider: providerID, Model: model, Retryable: true,
		Message: "the stream ended before the model finished", Err: io.ErrUnexpectedEOF}
}

// StreamError is the error for an error event inside a stream: both
// providers send {"error": {"type": ..., "message": ...}} (Anthropic with
// an outer "type": "error"), OpenAI sometimes a numeric "code".
func StreamError(providerID, model string, data []byte) *provider.ProviderError {
	var body struct {
		Error struct {
			Type    string          `json:"type"`
			Message string          `json:"message"`
			Code    json.RawMessage `json:"code"`
		} `json:"error"`
	}
	pe := &provider.ProviderError{Provider: providerID, Model: model}
	if err := json.Unmarshal(data, &body); err != nil {
		pe.Message = "error in stream: " + clip(string(data))
		pe.Retryable = true
		return pe
	}
	e := body.Error
	pe.Message = e.Message
	if pe.Message == "" {
		pe.Message = clip(string(data))
	}
	if n, err := strconv.Atoi(strings.Trim(string(e.Code), `"`)); err == nil && n >= 400 && n < 600 {
		pe.Status = n
	} else {
		pe.Status = statusOfType(e.Type + " " + strings.Trim(string(e.Code), `"`))
	}
	pe.Retryable = pe.Status == 0 || provider.RetryableStatus(pe.Status)
	return pe
}

// statusOfType maps the providers' error type names to HTTP statuses.
func statusOfType(t string) int {
	t = strings.ToLower(t)
	switch {
	case strings.Contains(t, "overloaded"):
		return 529
	case strings.Contains(t, "rate_limit"):
		return http.StatusTooManyRequests
	case strings.Contains(t, "timeout"):
		return http.StatusGatewayTimeout
	case strings.Contains(t, "invalid_request"):
		return http.StatusBadRequest
	case strings.Contains(t, "authentication"):
		return http.StatusUnauthorized
	case strings.Contains(t, "permission"):
		return http.StatusForbidden
	case strings.Contains(t, "not_found"):
		return http.StatusNotFound
	case strings.Contains(t, "server_error"), strings.Contains(t, "api_error"):
		return http.StatusInternalServerError
	}
	return 0
}

// ErrorText is the provider's message from an error body: error.message
// in both providers' JSON, else the body itself.
func ErrorText(body []byte) string {
	var v struct {
		Error   json.RawMessage `json:"error"`
		Message string          `json:"message"`
	}
	if json.Unmarshal(body, &v) == nil {
		var inner struct {
			Message string `json:"message"`
		}
		var s string
		switch {
		case json.Unmarshal(v.Error, &inner) == nil && inner.Message != "":
			return inner.Message
		case json.Unmarshal(v.Error, &s) == nil && s != "":
			return s
		case v.Message != "":
			return v.Message
		}
	}
	return clip(strings.TrimSpace(string(body)))
}

func clip(s string) string {
	const max = 2000
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}

// RetryAfter reads the wait a response asks for: retry-after-ms, or
// Retry-After in seconds or as an HTTP date. 0 means none.
func RetryAfter(h http.Header, now time.Time) time.Duration {
	if h == nil {
		return 0
	}
	if v := h.Get("Retry-After-Ms"); v != "" {
		if ms, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && ms > 0 {
			return time.Duration(ms * float64(time.Millisecond))
		}
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
