package tenantgate

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/tenantgate/tenantgate/internal/tick"
	"github.com/tenantgate/tenantgate/module/audit"
	"github.com/tenantgate/tenantgate/module/revocation"
	"github.com/tenantgate/tenantgate/module/verify/dpop"
)

// DPoP server nonces (dpop_nonce, RFC 9449 §9). The nonces themselves are
// verify/dpop's (derived from a secret per time window); this file keeps
// the secret, shared by the replicas through the shared store, and puts
// DPoP-Nonce on the gate's answers.

// keyDPoPNonce is the response header carrying a nonce.
var keyDPoPNonce = http.CanonicalHeaderKey("DPoP-Nonce")

const (
	// nonceSecretKey holds the replicas' nonce secret (base64url) under
	// shared_store_prefix. It never expires: nonces rotate with the window
	// index they are derived from, not with the secret.
	nonceSecretKey = "dpop:nonce-secret" // #nosec G101 -- the name of a Redis key, not a credential
	// nonceResync is how often a replica reads the shared secret again: a
	// replica that started while Redis was down adopts it, and one whose
	// key was lost (a Redis restart without persistence) writes it back.
	nonceResync = 5 * time.Second
)

// nonceState is the nonce secret of one pooled store (processState): one
// per process without shared_store, the replicas' one with it. It is made
// on the first config that sets dpop_nonce, and the shared-store sync runs
// from then until the store's Destruct.
type nonceState struct {
	mu     sync.Mutex
	secret *dpop.NonceSecret
	cancel context.CancelFunc
	done   chan struct{}
	down   time.Time // when syncing started failing; zero when healthy
	log    *zap.Logger
}

// nonceSecret returns the store's secret, made (and, with a shared store,
// read or created there, bounded by revocation.DefaultTimeout) on first use.
func (h *processState) nonceSecret() *dpop.NonceSecret {
	n := &h.nonces
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.secret != nil {
		return n.secret
	}
	n.secret = dpop.NewNonceSecret()
	if !h.Shared() {
		return n.secret
	}
	n.log = caddy.Log().Named("http.handlers.tenant_gate.dpop_nonce")
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel, n.done = cancel, make(chan struct{})
	h.syncNonceSecret(ctx)
	go h.nonceSyncLoop(ctx)
	return n.secret
}

// syncNonceSecret adopts the shared secret, storing ours when there is
// none (the first replica's wins). On failure the replica goes on with the
// secret it has, its nonces then good at this replica only; the error is
// counted (tenantgate_shared_store_errors_total{op="nonce"}).
func (h *processState) syncNonceSecret(parent context.Context) {
	n := &h.nonces
	ctx, cancel := context.WithTimeout(parent, revocation.DefaultTimeout)
	defer cancel()
	ours := base64.RawURLEncoding.EncodeToString(n.secret.Get())
	got, err := h.GetOrSet(ctx, nonceSecretKey, ours)
	var key []byte
	if err == nil {
		key, err = base64.RawURLEncoding.DecodeString(got)
		if err == nil && len(key) < dpop.NonceSecretBytes {
			err = fmt.Errorf("the shared nonce secret is %d bytes, want %d", len(key), dpop.NonceSecretBytes)
		}
	}
	if err != nil {
		if parent.Err() != nil {
			return // stopping
		}
		revocationObserver{}.StoreError("nonce")
		if n.down.IsZero() {
			n.down = time.Now()
			n.log.Warn("shared store unavailable for the DPoP nonce secret: this replica's nonces are accepted here only until it is back", zap.Error(err))
		}
		return
	}
	if got != ours {
		n.secret.Set(key)
	}
	if !n.down.IsZero() {
		n.log.Info("DPoP nonce secret shared again", zap.Duration("unavailable_for", time.Since(n.down)))
		n.down = time.Time{}
	}
}

func (h *processState) nonceSyncLoop(ctx context.Context) {
	defer close(h.nonces.done)
	tick.Every(ctx, nonceResync, h.syncNonceSecret)
}

// stop ends the sync loop (Destruct).
func (n *nonceState) stop() {
	n.mu.Lock()
	cancel, done := n.cancel, n.done
	n.cancel = nil
	n.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// provisionNonces makes this config's nonce source over the store's secret
// (dpop_nonce set), for the verifier and for the headers.
func (s *SharedState) provisionNonces() {
	if s.DPoPNonce && s.revocations != nil {
		s.nonces = dpop.NewNonces(s.revocations.nonceSecret(), time.Duration(s.DPoPNonceWindow))
	}
}

// nonceSource is verify.Config's DPoPNonces: nil without dpop_nonce (a nil
// *dpop.Nonces must not become a non-nil interface).
func (s *SharedState) nonceSource() dpop.NonceSource {
	if s.nonces == nil {
		return nil
	}
	return s.nonces
}

// validateDPoPNonce checks dpop_nonce's window.
func (s *SharedState) validateDPoPNonce() error {
	w := time.Duration(s.DPoPNonceWindow)
	switch {
	case w != 0 && !s.DPoPNonce:
		return fmt.Errorf("dpop_nonce_window %s: set only with dpop_nonce", w)
	case w != 0 && (w < dpop.MinNonceWindow || w > dpop.MaxNonceWindow):
		return fmt.Errorf("dpop_nonce %s: the window must be within %s..%s", w, dpop.MinNonceWindow, dpop.MaxNonceWindow)
	}
	return nil
}

// challengeNonce puts a fresh nonce on a 401 of a DPoP request (RFC 9449
// §9), whatever the reason: the client's next proof can carry it.
func (g *Gate) challengeNonce(h http.Header, dpopRequest bool) {
	if g.nonces != nil && dpopRequest {
		h[keyDPoPNonce] = []string{g.nonces.Nonce(time.Now())}
	}
}

// offerNonce, for a DPoP request the gate lets through, hands the client
// the current nonce in the last fifth of its window, before the nonce the
// client holds may stop being accepted (RFC 9449 §8.2), and always in
// report mode when the nonce was what failed.
func (x *exchange) offerNonce(reason audit.Reason) {
	n := x.g.nonces
	if n == nil || !x.dpop {
		return
	}
	now := time.Now()
	if n.RotatesSoon(now) || reason == audit.ReasonDPoPNonceRequired {
		x.nonce = n.Nonce(now)
		x.w.Header()[keyDPoPNonce] = []string{x.nonce}
	}
}

// keepNonce makes the response's DPoP-Nonce the gate's alone when the gate
// requires nonces: an upstream's value would be one the gate never
// accepts, and RFC 9449 §8 allows one DPoP-Nonce header only.
func (x *exchange) keepNonce(h http.Header) {
	if x.g.nonces == nil || !x.dpop {
		return
	}
	if x.nonce == "" {
		delete(h, keyDPoPNonce)
		return
	}
	h[keyDPoPNonce] = []string{x.nonce}
}
