package tenantgate

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/tenantgate/tenantgate/module/audit"
	"github.com/tenantgate/tenantgate/module/revocation"
	"github.com/tenantgate/tenantgate/module/verify"
	"github.com/tenantgate/tenantgate/module/verify/dpop"
)

// SharedState configures revocation and the state that gate replicas
// share. Gate embeds it, so its fields sit in the tenant_gate JSON object.
type SharedState struct {
	// Redis shared by every gate replica (redis://, rediss://, unix://):
	// revocations are written there and broadcast to every replica.
	// Default: none, revocations are held per process.
	SharedStore string `json:"shared_store,omitempty"`

	// Prefix of the shared store's keys and pub/sub channel, so several
	// fleets (or tests) can share one Redis. Default: tenantgate:
	SharedStorePrefix string `json:"shared_store_prefix,omitempty"`

	// Longest a revocation is kept: entries go once no token they match
	// can still be valid, judged by the longest token lifetime seen per
	// issuer, but never later than this. Default: 24h
	RevocationRetention caddy.Duration `json:"revocation_retention,omitempty"`

	// Most revocation entries held; beyond it new ones are refused (507),
	// live ones are never dropped. Default: 100000
	RevocationMaxEntries int `json:"revocation_max_entries,omitempty"`

	// Path at which the gate itself serves the OpenID Connect Back-Channel
	// Logout 1.0 receiver: POST logout_token=..., verified with its issuer's
	// keys, revokes the subject and session (backchannel.go). No rule is
	// needed. Default: none
	BackchannelLogoutPath string `json:"backchannel_logout_path,omitempty"`

	// Path at which the gate itself receives Security Event Tokens pushed
	// by a configured issuer (RFC 8935): CAEP session-revoked and
	// credential-change revoke their subject (ssf.go). Default: none
	SSFReceiverPath string `json:"ssf_receiver_path,omitempty"`

	// Require server-provided DPoP nonces (RFC 9449 §9): a DPoP proof
	// without a nonce the gate handed out recently is 401 use_dpop_nonce
	// with a fresh DPoP-Nonce. Nonces are derived from a secret kept in
	// shared_store when there is one, so every replica accepts them. Default: off
	DPoPNonce bool `json:"dpop_nonce,omitempty"`

	// Length of a nonce window with dpop_nonce: a nonce is accepted in the
	// window it was handed out in and the next (1s..24h). Default: 5m
	DPoPNonceWindow caddy.Duration `json:"dpop_nonce_window,omitempty"`

	// revocations is the process state of this config's shared store
	// (processstate.go): the revocation store, and the verify store and
	// nonce secret beside it.
	revocations *processState
	storeKey    string
	nonces      *dpop.Nonces  // with dpop_nonce (dpop_nonce.go)
	receivers   receiverState // receivers.go
}

// unmarshalSharedState parses the tenant_gate options of SharedState;
// handled is false for any other option.
func (s *SharedState) unmarshalSharedState(d *caddyfile.Dispenser) (handled bool, err error) {
	switch d.Val() {
	case "shared_store":
		return true, oneArg(d, &s.SharedStore)
	case "shared_store_prefix":
		return true, oneArg(d, &s.SharedStorePrefix)
	case "revocation_retention":
		var v string
		if err := oneArg(d, &v); err != nil {
			return true, err
		}
		dur, err := caddy.ParseDuration(v)
		if err != nil || dur <= 0 {
			return true, d.Errf("revocation_retention %q: want a positive duration such as 24h", v)
		}
		s.RevocationRetention = caddy.Duration(dur)
	case "revocation_max_entries":
		return true, intArg(d, &s.RevocationMaxEntries)
	case "backchannel_logout_path", "ssf_receiver_path":
		return true, receiverPathArg(d, s)
	case "dpop_nonce":
		// dpop_nonce [window]: the window is our extension of the contract.
		var window string
		if d.NextArg() {
			window = d.Val()
		}
		if d.NextArg() {
			return true, d.ArgErr()
		}
		s.DPoPNonce = true
		if window != "" {
			dur, err := caddy.ParseDuration(window)
			if err != nil || dur <= 0 {
				return true, d.Errf("dpop_nonce %q: want a window such as 5m", window)
			}
			s.DPoPNonceWindow = caddy.Duration(dur)
		}
	default:
		return false, nil
	}
	return true, nil
}

// provisionRevocations takes this config's reference on the process state
// of its shared_store (opening the revocation store, and loading the shared
// entries, the first time) before the config serves.
// cleanupRevocations gives it back.
func (s *SharedState) provisionRevocations(ctx caddy.Context, leeway time.Duration) error {
	if err := registerRevocationMetrics(ctx); err != nil {
		return err
	}
	// {env.NAME} and {file./path} keep a password out of the Caddyfile.
	url := caddy.NewReplacer().ReplaceKnown(s.SharedStore, "")
	if url != "" {
		if _, err := revocation.ParseURL(url); err != nil {
			return err
		}
	}
	s.storeKey = url + "\x00" + s.SharedStorePrefix
	p, err := acquireProcessState(s.storeKey, func() (*revocation.Store, error) {
		return revocation.Open(revocation.StoreConfig{
			URL:       url,
			KeyPrefix: s.SharedStorePrefix,
			Set: revocation.Options{
				MaxEntries: s.RevocationMaxEntries,
				Retention:  time.Duration(s.RevocationRetention),
				Leeway:     leeway,
			},
			// The store outlives this config: log on Caddy's process logger.
			Logger:   caddy.Log().Named("http.handlers.tenant_gate.revocation"),
			Observer: revocationObserver{},
		})
	})
	if err != nil {
		return fmt.Errorf("tenant_gate revocations: %w", err)
	}
	s.revocations = p
	// The newest config's retention applies to the shared set.
	s.revocations.Set().SetRetention(time.Duration(s.RevocationRetention))
	return nil
}

// validateSharedState checks the shared-state options: a bad one refused
// here never becomes a silent security gap at run time.
func (s *SharedState) validateSharedState() error {
	var errs []error
	if err := s.validateDPoPNonce(); err != nil {
		errs = append(errs, err)
	}
	if err := s.validateReceivers(); err != nil {
		errs = append(errs, err)
	}
	if s.RevocationMaxEntries < 0 {
		errs = append(errs, fmt.Errorf("revocation_max_entries %d: must be positive", s.RevocationMaxEntries))
	}
	if s.SharedStorePrefix != "" && strings.ContainsAny(s.SharedStorePrefix, " \t\r\n") {
		errs = append(errs, fmt.Errorf("shared_store_prefix %q: no whitespace", s.SharedStorePrefix))
	}
	return errors.Join(errs...)
}

// cleanupRevocations lets go of this config's reference on the process
// state; the last one's Delete destructs it. Gate.Cleanup calls it last,
// once the verifier no longer uses the verify store.
func (s *SharedState) cleanupRevocations() {
	if s.revocations != nil {
		_, _ = processStates.Delete(s.storeKey)
		s.revocations = nil
		s.nonces = nil
	}
}

// revoked is the revocation check of a verified token: in memory, no
// network. It names the reason and a detail when the token is revoked.
func (s *SharedState) revoked(id *verify.Identity) (audit.Reason, string) {
	if s.revocations == nil || id == nil {
		return "", ""
	}
	t := revocation.Token{Issuer: id.Issuer, ID: id.TokenID, Subject: id.Subject, Tenant: id.Tenant, Sid: id.Sid, IssuedAt: id.IssuedAt, Expiry: id.Expiry}
	kind, ok := s.revocations.Revoked(&t)
	if !ok {
		return "", ""
	}
	switch kind {
	case revocation.KindJTI:
		return audit.ReasonTokenRevoked, "this token has been revoked"
	case revocation.KindSub:
		return audit.ReasonTokenRevoked, "the tokens of this user issued before a revocation are revoked; get a new token"
	case revocation.KindSid:
		return audit.ReasonTokenRevoked, "the session this token belongs to has ended (logout); sign in again"
	}
	return audit.ReasonTokenRevoked, "the tokens of this tenant issued before a revocation are revoked; get a new token"
}
