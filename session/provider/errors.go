package provider

import (
	"fmt"
	"net/http"
	"time"
)

// ProviderError reports a failed call to a model provider. The daemon
// answers it with the ProviderError code (-32015), Status and Message in
// the error's data.
type ProviderError struct {
	Provider string // provider ID
	Model    string
	// Status is the HTTP status, or 0 when there was none (connection
	// failed, stream broke or sent garbage).
	Status int
	// Message is the provider's own text, or what went wrong on the wire.
	Message string
	// Retryable says whether trying again may help: 429, 5xx, overloaded,
	// connections reset or cut short; not a refused connection.
	Retryable bool
	// RetryAfter is the wait the provider asked for (Retry-After), 0 if
	// none.
	RetryAfter time.Duration
	// Attempts is how many calls were made, set by the retry loop.
	Attempts int
	// Err is the underlying error, if any.
	Err error
}

func (e *ProviderError) Error() string {
	s := e.Provider
	if s == "" {
		s = "provider"
	}
	if e.Model != "" {
		s += "/" + e.Model
	}
	switch {
	case e.Status != 0 && http.StatusText(e.Status) != "":
		s += fmt.Sprintf(": %d %s", e.Status, http.StatusText(e.Status))
	case e.Status != 0:
		s += fmt.Sprintf(": status %d", e.Status)
	}
	if e.Message != "" {
		s += ": " + e.Message
	} else if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	switch e.Status {
	case http.StatusUnauthorized, http.StatusForbidden:
		s += " (check the provider's API key)"
	case http.StatusNotFound:
		s += " (check the model ID and the provider's base URL)"
	}
	if e.Attempts > 1 {
		s += fmt.Sprintf(" (gave up after %d attempts)", e.Attempts)
	}
	return s
}

func (e *ProviderError) Unwrap() error { return e.Err }

// RetryableStatus says which HTTP statuses are worth another try: rate
// limits, timeouts and server errors (Anthropic's 529 overloaded included).
func RetryableStatus(status int) bool {
	return status == http.StatusTooManyRequests || status == http.StatusRequestTimeout ||
		status == http.StatusConflict || status >= 500
}

// NoProviderError reports that a model is needed and none is usable. The
// daemon answers it with the NoProvider code (-32014). Its message says
// exactly what to set.
type NoProviderError struct {
	// Ref is the model that was asked for; zero when the default was.
	Ref ModelRef
	// Msg says what is missing and what to set.
	Msg string
	// Env names the environment variables that would have made a provider
	// usable and that the daemon's environment lacks. The daemon's
	// environment is fixed when it starts, so a client that has one of
	// them can tell the user to restart the daemon.
	Env []string
}

func (e *NoProviderError) Error() string { return e.Msg }
