package tenantgate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/tenantgate/tenantgate/module/revocation"
	"github.com/tenantgate/tenantgate/module/verify"
	"github.com/tenantgate/tenantgate/module/verify/dpop"
)

// The receivers are the two paths at which an issuer tells the gate to
// revoke: back-channel logout (backchannel.go) and SSF push (ssf.go). The
// gate answers them itself, before any rule, so they need no rule and no
// access token: the logout token or SET is the credential, verified with
// its issuer's own keys and rules. Each request is audited (who, what,
// from where) on the gate's audit logger and chain, and revokes nothing
// unless everything about it is right.

// receiverState is what a gate's receivers hold: where they audit.
type receiverState struct {
	sink *revocationSink // revocation_audit.go
}

// minReceiverBody is the least body a receiver reads; a longer one is
// refused. A logout token form-encoded grows by up to three times, so the
// bound is also at least three times max_token_bytes.
const minReceiverBody = 64 << 10

// eventClaimTimeout bounds the shared store's claim of a logout token's or
// SET's jti; past it the process's own memory decides.
const eventClaimTimeout = time.Second

// eventJTIs remembers the logout tokens and SETs accepted by this process
// (their issuer and jti), so a replay is refused. It belongs to the
// process, like the revocations, so a reload does not forget; with a
// shared_store each jti is also claimed in Redis, so a token accepted at
// one replica is refused at every other. It holds the last 100,000: only
// validly signed tokens enter it, and each is refused once older than its
// profile's MaxAge, so a flood that pushed one out would have to come from
// the issuer itself.
var eventJTIs = dpop.NewMemoryReplay(nil)

// serveReceiver answers a request to a receiver path and reports whether
// it did; every other request goes on to the exchange.
func (g *Gate) serveReceiver(w http.ResponseWriter, r *http.Request) bool {
	if g.BackchannelLogoutPath == "" && g.SSFReceiverPath == "" {
		return false
	}
	switch r.URL.Path {
	case g.BackchannelLogoutPath:
		if g.BackchannelLogoutPath == "" {
			return false
		}
		g.serveBackchannelLogout(w, r)
	case g.SSFReceiverPath:
		if g.SSFReceiverPath == "" {
			return false
		}
		g.serveSSF(w, r)
	default:
		return false
	}
	return true
}

// checkReceiverPath checks one receiver path (the Caddyfile parser calls
// it too, to name the line).
func checkReceiverPath(name, path string) error {
	if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \t\r\n?#*{}") {
		return fmt.Errorf("%s %q: want an absolute path such as /oidc/backchannel-logout (no query, wildcard or whitespace)", name, path)
	}
	return nil
}

// receiverPathArg parses backchannel_logout_path or ssf_receiver_path.
func receiverPathArg(d *caddyfile.Dispenser, s *SharedState) error {
	dst := &s.BackchannelLogoutPath
	if d.Val() == "ssf_receiver_path" {
		dst = &s.SSFReceiverPath
	}
	name := d.Val()
	if err := oneArg(d, dst); err != nil {
		return err
	}
	if err := checkReceiverPath(name, *dst); err != nil {
		return d.Err(err.Error())
	}
	return nil
}

// validateReceivers checks the receiver paths.
func (s *SharedState) validateReceivers() error {
	var errs []error
	for _, p := range []struct{ name, path string }{{"backchannel_logout_path", s.BackchannelLogoutPath}, {"ssf_receiver_path", s.SSFReceiverPath}} {
		if p.path == "" {
			continue
		}
		if err := checkReceiverPath(p.name, p.path); err != nil {
			errs = append(errs, err)
		}
	}
	if s.BackchannelLogoutPath != "" && s.BackchannelLogoutPath == s.SSFReceiverPath {
		errs = append(errs, fmt.Errorf("backchannel_logout_path and ssf_receiver_path are both %q: give each its own path", s.SSFReceiverPath))
	}
	return errors.Join(errs...)
}

// eventVerifier is the verifier the receivers check tokens with: the one
// requests use (the real one once remote keys have started).
func (g *Gate) eventVerifier() *verify.Verifier {
	if g.keys != nil {
		return g.keys
	}
	if g.starting != nil {
		return g.starting.current()
	}
	return nil
}

// current is the verifier in force, starting the real one if it is not yet.
func (s *startingVerifier) current() *verify.Verifier {
	if v := s.real.Load(); v != nil {
		return v
	}
	s.start()
	if v := s.real.Load(); v != nil {
		return v
	}
	return s.check
}

// receiverBody reads a receiver's body, at most the bound; a longer one is
// an error.
func (g *Gate) receiverBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	limit := int64(max(minReceiverBody, 3*g.MaxTokenBytes))
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, fmt.Errorf("body larger than %d bytes", limit)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the body: %w", err)
	}
	return raw, nil
}

// mediaTypeIs reports whether a Content-Type header names want (parameters
// such as charset allowed).
func mediaTypeIs(header, want string) bool {
	mt, _, err := mime.ParseMediaType(header)
	return err == nil && mt == want
}

// claimEventJTI records an accepted logout token's or SET's jti until
// until, and reports whether it is new at this process and, with a shared
// store, at every replica. A shared store that does not answer leaves the
// decision to this process (the error is counted).
func (g *Gate) claimEventJTI(ctx context.Context, kind, iss, jti string, until time.Time) bool {
	ttl := time.Until(until)
	id := dpop.ProofIDOf(kind+"\x00"+iss, jti)
	fresh, _ := eventJTIs.Claim(id, ttl)
	if g.revocations == nil || !g.revocations.Shared() {
		return fresh
	}
	ctx, cancel := context.WithTimeout(ctx, eventClaimTimeout)
	defer cancel()
	sharedFresh, err := g.revocations.ClaimOnce(ctx, "event:"+id.String(), ttl)
	if err != nil {
		return fresh
	}
	return fresh && sharedFresh
}

// revokeEntries applies entries at the gate's store (and, with a shared
// store, at every replica) and audits each. shared is false when any
// entry could not reach the shared store (it then applies here and is
// retried in the background).
func (g *Gate) revokeEntries(ctx context.Context, entries []revocation.Entry, remote, tokenID string) error {
	if g.revocations == nil {
		return errors.New("no revocation store")
	}
	for _, e := range entries {
		stored, shared, err := g.revocations.Revoke(ctx, e)
		if err != nil {
			return err
		}
		g.auditSink().write("revocation", &revocationRecord{e: stored, shared: shared, remote: remote, tokenID: tokenID})
	}
	return nil
}

// auditSink is the gate's own revocation sink.
func (g *Gate) auditSink() *revocationSink {
	if g.receivers.sink != nil {
		return g.receivers.sink
	}
	return processRevocationSink()
}

// remoteIP is the client address as Caddy judged it (trusted_proxies
// included), else the peer's.
func remoteIP(r *http.Request) string {
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && ip != "" {
		return ip
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// revokeBefore is the cut-off of a receiver's revocation: tokens issued up
// to now, or up to the event token's iat when the sender's clock is ahead,
// so that both clocks agree that tokens issued before the event are covered.
func revokeBefore(now, iat time.Time) time.Time {
	if iat.After(now) {
		return iat
	}
	return now
}
