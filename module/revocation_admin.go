package tenantgate

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/tenantgate/tenantgate/module/revocation"
)

func init() {
	caddy.RegisterModule(adminRevocations{})
}

// adminLeeway is how far in the future an admin revocation's before may
// lie (clock skew between the operator's machine and the gate).
const adminLeeway = 30 * time.Second

// adminRevocations serves /tenant-gate/revocations on Caddy's admin
// endpoint, shaped like Caddy's admin.api.reverse_proxy: POST revokes, GET
// lists. It works on every live revocation store of the process (one per
// shared_store; normally one), so it needs no config of its own.
type adminRevocations struct{}

// CaddyModule returns the Caddy module information.
func (adminRevocations) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.tenant_gate",
		New: func() caddy.Module { return new(adminRevocations) },
	}
}

// Routes returns the route of /tenant-gate/revocations.
func (a adminRevocations) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{
		Pattern: "/tenant-gate/revocations",
		Handler: caddy.AdminHandlerFunc(a.handle),
	}}
}

// revocationResponse is an entry as the admin API answers it.
type revocationResponse struct {
	revocation.Entry
	// Shared: the entry reached the shared store (and so every replica);
	// false without a shared_store, or when it was down (the entry then
	// applies here and is retried in the background).
	Shared bool `json:"shared"`
}

func (a adminRevocations) handle(w http.ResponseWriter, r *http.Request) error {
	switch r.Method {
	case http.MethodGet:
		return a.list(w)
	case http.MethodPost:
		return a.revoke(w, r)
	}
	return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method %s not allowed: GET lists revocations, POST adds one", r.Method)}
}

func (adminRevocations) revoke(w http.ResponseWriter, r *http.Request) error {
	stores := liveStates()
	if len(stores) == 0 {
		return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: errors.New("no tenant_gate is loaded: there is nothing to revoke tokens at")}
	}
	e, err := revocation.ParseRequest(http.MaxBytesReader(w, r.Body, revocation.MaxBodyBytes+1), time.Now(), adminLeeway)
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("revocation: %w", err)}
	}
	remote, _, splitErr := net.SplitHostPort(r.RemoteAddr)
	if splitErr != nil {
		remote = r.RemoteAddr
	}
	e.Source = "admin_api"
	out := revocationResponse{Entry: e}
	for i, st := range stores {
		stored, shared, err := st.Revoke(r.Context(), e)
		if err != nil {
			status := http.StatusInternalServerError
			if errors.Is(err, revocation.ErrFull) {
				status = http.StatusInsufficientStorage
			}
			return caddy.APIError{HTTPStatus: status, Err: fmt.Errorf("revocation not stored: %w", err)}
		}
		if i == 0 {
			out.Entry = stored
		}
		out.Shared = out.Shared || shared
	}
	logRevocation(out.Entry, out.Shared, remote)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Location", "/tenant-gate/revocations")
	w.WriteHeader(http.StatusCreated)
	return json.NewEncoder(w).Encode(out)
}

func (adminRevocations) list(w http.ResponseWriter) error {
	byID := map[string]revocation.Entry{}
	for _, st := range liveStates() {
		for _, e := range st.Set().List() {
			if old, ok := byID[e.ID]; !ok || e.Before.After(old.Before) {
				byID[e.ID] = e
			}
		}
	}
	out := make([]revocation.Entry, 0, len(byID))
	for _, e := range byID {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b revocation.Entry) int { return b.Created.Compare(a.Created) })
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(out)
}

// Interface guards
var _ caddy.AdminRouter = (*adminRevocations)(nil)
