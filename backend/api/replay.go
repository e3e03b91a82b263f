package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/tenantgate/tenantgate/backend/store"
)

// spendMargin keeps a jti past its assertion's exp (and leeway) a little
// longer, for clock differences between backend replicas and the database
// that sweeps it.
const spendMargin = time.Minute

// spendOnce makes every assertion good for one request. It runs after
// RequireAssertion. On a store that records the spend in the request's own
// transaction (PostgreSQL), the first transaction the request runs records
// it, atomically with its writes, and a replay fails there with
// store.ErrReplayed (answered 401 by internalError); a request that ran no
// transaction spends it when it starts its answer, before any byte leaves.
// Other stores spend it before the handler runs.
func (s *Server) spendOnce(next http.Handler) http.Handler {
	_, inTx := s.store.(store.SpendsInTransaction)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := mustPrincipal(r)
		sp := &store.Spend{JTI: p.RequestID, Until: p.Expires.Add(spendMargin)}
		if !inTx {
			if err := s.store.SpendAssertion(r.Context(), sp); err != nil {
				s.refuseSpend(w, r, err)
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		sw := &spendWriter{ResponseWriter: w, s: s, r: r, sp: sp}
		next.ServeHTTP(sw, r.WithContext(store.WithSpend(r.Context(), sp)))
		if !sw.checked {
			sw.WriteHeader(http.StatusOK)
		}
	})
}

// refuseSpend answers a request whose assertion could not be spent.
func (s *Server) refuseSpend(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, store.ErrReplayed) {
		writeProblem(w, r, http.StatusUnauthorized, "assertion_replayed",
			"this X-Tenant-Assertion was already used; every request needs its own assertion from the gate (send it again through the gate)")
		return
	}
	if errors.Is(err, store.ErrLedgerFull) {
		w.Header().Set("Retry-After", "1")
		writeProblem(w, r, http.StatusServiceUnavailable, "overloaded",
			"the backend holds as many recent assertions as it may remember; retry in a second")
		return
	}
	s.internalError(w, r, err)
}

// spendWriter spends the assertion, if no transaction has, when the handler
// starts its answer; a replay then gets 401 instead of that answer.
type spendWriter struct {
	http.ResponseWriter
	s         *Server
	r         *http.Request
	sp        *store.Spend
	checked   bool
	swallowed bool // the handler's answer is dropped: the request was refused
}

func (sw *spendWriter) WriteHeader(status int) {
	if !sw.checked {
		sw.checked = true
		if !sw.sp.Done() {
			if err := sw.s.store.SpendAssertion(sw.r.Context(), sw.sp); err != nil {
				sw.swallowed = true
				h := sw.ResponseWriter.Header()
				for k := range h {
					if k != "X-Request-Id" {
						delete(h, k)
					}
				}
				sw.s.refuseSpend(sw.ResponseWriter, sw.r, err)
				return
			}
		}
	}
	if !sw.swallowed {
		sw.ResponseWriter.WriteHeader(status)
	}
}

func (sw *spendWriter) Write(b []byte) (int, error) {
	if !sw.checked {
		sw.WriteHeader(http.StatusOK)
	}
	if sw.swallowed {
		return len(b), nil
	}
	return sw.ResponseWriter.Write(b)
}

func (sw *spendWriter) Unwrap() http.ResponseWriter { return sw.ResponseWriter }
