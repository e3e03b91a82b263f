package keysource

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/tenantgate/tenantgate/module/audit"
	"github.com/tenantgate/tenantgate/module/verify/verr"
)

// How a failed fetch is judged. Only an IdP that says so (404/410 on a key
// or discovery URL, or a discovery document naming another issuer) makes a
// tenant unknown; every other failure is temporary: a client told 401
// throws its token away, one told 503 retries. A rate limit (429), a WAF's
// 403, a 5xx, a timeout or a refused connection says nothing about the
// tenant.

// Failure classes, the values of the class label of
// tenantgate_idp_temporary_failures_total: a fixed set, so the series are
// bounded by the configured issuers.
const (
	ClassRateLimited = "429"
	ClassServer      = "5xx"
	ClassTimeout     = "timeout"
	ClassClient      = "4xx"     // another 4xx: a WAF's 403, a 400
	ClassNetwork     = "network" // connection refused, reset, DNS
	ClassInvalid     = "invalid" // a 200 whose body is not a usable key set
)

// maxIdPRetryAfter bounds how long an IdP's own Retry-After keeps a
// tenant's retries away: honoured up to this, so recovery stays within
// seconds of the IdP answering again.
const maxIdPRetryAfter = 10 * time.Second

// FailureObserver is an Observer that also counts temporary IdP failures
// by issuer (as configured, {tenant} unreplaced) and class.
type FailureObserver interface {
	IdPTemporaryFailure(issuer, class string)
}

// statusError is a key or discovery URL that answered other than 200.
type statusError struct {
	url        string
	code       int
	retryAfter time.Duration // the IdP's Retry-After, bounded; 0 when absent
}

func (e *statusError) Error() string { return "GET " + e.url + ": status " + strconv.Itoa(e.code) }

// issuerMismatchError is a discovery document naming another issuer: the
// IdP serves no such tenant at this URL.
type issuerMismatchError struct{ msg string }

func (e *issuerMismatchError) Error() string { return e.msg }

// unknownTenant reports whether err says the IdP has no such tenant.
func unknownTenant(err error) bool {
	var se *statusError
	if errors.As(err, &se) {
		return se.code == http.StatusNotFound || se.code == http.StatusGone
	}
	var me *issuerMismatchError
	return errors.As(err, &me)
}

// classify names a temporary failure's class and the delay the IdP asked
// for (0 when it asked for none).
func classify(err error) (class string, retryAfter time.Duration) {
	var se *statusError
	if errors.As(err, &se) {
		switch {
		case se.code == http.StatusTooManyRequests:
			return ClassRateLimited, se.retryAfter
		case se.code >= 500:
			return ClassServer, se.retryAfter
		default:
			return ClassClient, se.retryAfter
		}
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return ClassTimeout, 0
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return ClassNetwork, 0
	}
	return ClassInvalid, 0
}

// describe is the 503 detail's account of a temporary failure.
func describe(class string) string {
	switch class {
	case ClassRateLimited:
		return "the identity provider is rate-limiting key fetches (429)"
	case ClassServer:
		return "the identity provider answered a server error (5xx)"
	case ClassTimeout:
		return "the key fetch timed out"
	case ClassClient:
		return "the identity provider refused the key fetch (4xx)"
	case ClassNetwork:
		return "the identity provider could not be reached"
	}
	return "the identity provider's answer held no usable key set"
}

// parseRetryAfter reads a Retry-After header (seconds or an HTTP date),
// bounded by maxIdPRetryAfter; 0 when absent or unreadable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.Atoi(v); err == nil {
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), maxIdPRetryAfter)
}

// retryCeil rounds d up to whole seconds, as Retry-After carries it.
func retryCeil(d time.Duration) time.Duration { return (d + time.Second - 1).Truncate(time.Second) }

// failure is a remembered failed first fetch.
type failure struct {
	err   *verr.Error
	until time.Time
	fails int // temporary failures in a row: the backoff's exponent
}

// answer is the remembered failure as a request sees it now: an unknown
// tenant as remembered, a temporary one with the time left to its retry.
func (f failure) answer(now time.Time) *verr.Error {
	if f.err.Reason != audit.ReasonKeysUnavailable {
		return f.err
	}
	e := *f.err
	e.RetryAfter = max(f.until.Sub(now), time.Second)
	return &e
}

// tenantBackoff is the wait before the next first fetch of a tenant after
// fails temporary failures in a row.
func tenantBackoff(fails int) time.Duration {
	d := time.Second
	for i := 1; i < fails && d < NegativeTTLFailed; i++ {
		d *= 2
	}
	return min(d, NegativeTTLFailed)
}
