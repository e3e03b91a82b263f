// Package verify checks bearer tokens for the gate: a strict pre-check of the
// compact form, per-issuer key sources (remote JWKS or OIDC discovery, local
// JWKS, PEM public key, HMAC secret), signature verification and claim
// validation with lestrrat-go/jwx v2, and extraction of the caller's tenant,
// user and roles. It does not import Caddy.
//
// Order of checks in Verify, each with the reason it fails with:
//
//	size, parts, base64url, header JSON, JWE/JSON form   malformed_token
//	jku/x5u/jwk/x5c, crit, b64, non-string kid            bad_header
//	alg missing, none, not allow-listed                   bad_algorithm
//	payload not a JSON object, duplicate members          malformed_token
//	iss missing, not a string, not configured             unknown_issuer
//	issuer's remote keys not fetched yet                  keys_unavailable (RetryAfter set)
//	kid not yet seen, and a fetch ended within the gap    keys_unavailable (RetryAfter set)
//	kid unknown after a refetch made for it, or dropped   unknown_key
//	  by the last fetch
//	no key of the issuer fits alg (type, curve, alg, size) bad_algorithm
//	signature does not verify                             bad_signature
//	typ is not the issuer's TokenType                     wrong_token_type
//	exp/nbf/iat not a number; sub, jti, user or roles     missing_claim
//	  claim of the wrong type; exp missing
//	aud missing, empty, [""], not a string/array, or      wrong_audience
//	  without a configured audience
//	exp + leeway passed                                   token_expired
//	nbf or iat later than now + leeway                    token_not_yet_valid
//	tenant claim missing or malformed                     no_tenant (Identity returned too)
//	cnf not an object, jkt / x5t#S256 not a string        missing_claim
//
// Then, for every request (binding.go, dpop.go; Identity returned too):
//
//	cnf with an unsupported confirmation method           binding_mismatch
//	issuer requires dpop / mtls_binding, token unbound    binding_mismatch
//	cnf.jkt token sent as Bearer (or cookie, query)       binding_mismatch
//	DPoP scheme with a token that has no cnf.jkt          binding_mismatch
//	DPoP proof missing, two, malformed, wrong typ/alg/    bad_dpop_proof
//	  jwk, bad signature, htm, htu, iat, ath, jti
//	proof key thumbprint differs from cnf.jkt             binding_mismatch
//	proof jti seen before within dpop_max_age             bad_dpop_proof
//	cnf x5t#S256 without a matching client certificate    binding_mismatch
//
// Claims are only judged after the signature verified, so an unsigned token
// learns nothing about which claim would have failed. Every failure after
// the signature verified returns the partial Identity (Issuer, TokenID and
// what was read so far, never a Tenant) with the Error, for the audit record.
//
// Choices where the contract left room:
//   - exp, nbf or iat that is not a non-negative JSON number (a string, null,
//     -5) is missing_claim, as is a sub/jti/user claim that is not a string.
//   - exp is accepted up to and including exp+leeway, nbf/iat down to and
//     including now+leeway; times are compared in whole seconds.
//   - roles that are neither an array of strings nor a string are refused with
//     missing_claim (not read as "no roles"); absent or null means no roles.
//   - A kid no key has triggers a refetch of a remote set, shared by all
//     concurrent callers, unless one ended within the refetch gap (see
//     keystore.go); keys without a kid (PEM, hmac_secret, kid-less JWKs)
//     match any token kid (when none verifies, the refetch still runs), and
//     a token without kid tries every key of the issuer that fits its alg.
//     An empty kid counts as no kid.
//   - Remote key sets belong to the process (keystore.go), shared by every
//     Verifier naming the same issuer and URL, so a new config starts with
//     the last good keys.
//   - Key sets: a key with use other than "sig", key_ops without "verify", an
//     alg that is not a supported JWS name (e.g. "ES521"), an alg that does not
//     fit the key, or an X25519 key is skipped. A set fails as a whole (for a
//     remote set: the refresh fails and the last good keys stay) on private key
//     material ("d"), any oct key in a remote set, oct mixed with public keys
//     in a local file, RSA under 2048 bits / over 16384 bits / exponent < 3 or
//     even / ROCA fingerprint, an EC point off its curve, an HMAC key under 32
//     bytes (or under 48/64 when it pins HS384/HS512), duplicate kids among
//     usable keys, duplicate JSON members, or no usable key at all.
//   - HS384 and HS512 need a secret of at least 48 and 64 bytes (RFC 7518
//     §3.2); a shorter hmac_secret is a config error when they are allowed.
//   - PS256/384/512 are verified with the salt length fixed to the hash size
//     (RFC 7518 §3.5); see pss.go.
//   - Rate limits and refresh timers use the wall clock, not Config.Now, which
//     only drives claim validation.
//   - jwks_url, oidc_discovery and a discovered jwks_uri must be https, or http
//     to a loopback host.
package verify

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/tenantgate/tenantgate/module/audit"
)

// Identity is what a verified token says about its bearer.
type Identity struct {
	Issuer, Subject, Tenant, TokenID string // Subject comes from UserClaim, TokenID from jti
	Roles                            []string
	Expiry                           time.Time
	// IssuedAt is the token's iat (zero when it had none): revocations of
	// a subject or tenant cover tokens issued before them.
	IssuedAt time.Time
	// Cnf is the token's confirmation claim (RFC 7800): the key or client
	// certificate the token is bound to. A property of the token, so a
	// cache may keep it; the request is checked against it every time.
	Cnf Confirmation
}

// Error is a verification failure. Detail is safe to show to the caller: it
// never contains the token, a signature or key material.
type Error struct {
	Reason audit.Reason // from module/audit
	Detail string       // what is wrong and what to fix
	Err    error        // underlying cause, for logs
	// RetryAfter, with ReasonKeysUnavailable, is when a retry may succeed
	// (the next fetch of the issuer's keys); 0 when unknown.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Reason, e.Detail, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Reason, e.Detail)
}

func (e *Error) Unwrap() error { return e.Err }

func fail(r audit.Reason, detail string, err error) *Error {
	return &Error{Reason: r, Detail: detail, Err: err}
}

// Verifier verifies tokens. It is safe for concurrent use.
type Verifier struct {
	cfg         Config
	allowed     map[string]bool
	allowedList string
	issuers     map[string]*issuerState
	templates   []*templateIssuer // multi-tenant issuers, in config order
	clock       jwt.Clock
	dpop        *dpopState
	cache       *tokenCache // nil when the verified-token cache is off

	tenantPath, userPath, rolesPath claimPath

	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// New loads file, PEM and secret keys (their errors are returned) and joins
// the process's store of remote key sets, until ctx ends or Close. Keys an
// earlier Verifier loaded for the same issuer and URL serve at once. An
// unreachable JWKS or discovery document does not fail New: the issuer has
// no keys yet, is retried with a backoff (1s doubling up to 5s), and Verify
// answers ReasonKeysUnavailable for it until the first successful fetch.
func New(ctx context.Context, cfg Config) (*Verifier, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	v := &Verifier{
		cfg:         cfg,
		allowed:     map[string]bool{},
		allowedList: strings.Join(cfg.Algorithms, " "),
		issuers:     map[string]*issuerState{},
		clock:       jwt.ClockFunc(cfg.Now),
		dpop:        newDPoPState(cfg.DPoP),
	}
	for _, a := range cfg.Algorithms {
		v.allowed[a] = true
	}
	// Validate checked the claim names.
	v.tenantPath, _ = parseClaimPath(cfg.TenantClaim)
	v.userPath, _ = parseClaimPath(cfg.UserClaim)
	v.rolesPath, _ = parseClaimPath(cfg.RolesClaim)
	// Remote sources join the process's key store at once; their context
	// (and so their part in it) ends with the verifier's.
	v.ctx, v.cancel = context.WithCancel(ctx)
	var errs []error
	for _, ic := range cfg.Issuers {
		if ic.IsTemplate() {
			t, err := v.newTemplate(ic)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			v.templates = append(v.templates, t)
			continue
		}
		is := v.newIssuerState(ic)
		v.issuers[ic.Issuer] = is
		src, err := v.newSource(ic, nil)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		is.src = src
	}
	if len(errs) > 0 {
		for _, is := range v.issuers {
			if is.src != nil {
				is.src.close()
			}
		}
		v.cancel()
		return nil, errors.Join(errs...)
	}
	if cfg.TokenCacheSize > 0 {
		v.cache = newTokenCache(cfg.TokenCacheSize, cfg.Leeway, cfg.Now, cfg.CacheObserver)
	}
	now := time.Now()
	for _, is := range v.issuers {
		ks := is.src.keys()
		switch src := is.src.(type) {
		case *remoteSource:
			// The live config's keys: those kept from an earlier config, or none.
			keys := 0
			if ks != nil {
				keys = len(ks.all)
			}
			v.inUse(is.cfg.Issuer, keys, src.lastSuccess())
		default:
			if ks != nil {
				v.observe(is.cfg.Issuer, true, len(ks.all), now)
			}
		}
		is.src.start()
	}
	for _, t := range v.templates {
		t.start()
	}
	return v, nil
}

// track registers a background goroutine; false once the verifier is closed.
func (v *Verifier) track() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed || v.ctx.Err() != nil {
		return false
	}
	v.wg.Add(1)
	return true
}

// Close stops background work and waits for it. It is idempotent.
func (v *Verifier) Close() {
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		return
	}
	v.closed = true
	v.mu.Unlock()
	v.cancel()
	v.wg.Wait()
	v.dpop.release()
	if v.cache != nil {
		v.cache.close()
	}
}

// Verify returns what the token says about its bearer, or why it is
// refused. A token verified before (same exact bytes, verified-token cache)
// skips parsing and the signature, provided the key that verified it is
// still in its issuer's set; every request, hit or not, then runs the
// per-request checks (times with leeway). When the token is valid but its
// tenant claim is missing or malformed, it returns the Identity (Tenant
// empty) together with an *Error of ReasonNoTenant.
//
// The returned Identity may be shared with other requests: callers must
// not modify it.
func (v *Verifier) Verify(ctx context.Context, req *Request) (*Identity, *Error) {
	if ctx == nil {
		ctx = context.Background()
	}
	t, e := v.verified(ctx, req.Token)
	if e != nil {
		if t != nil {
			return t.id, e
		}
		return nil, e
	}
	if e := v.perRequest(t, req); e != nil {
		// The signature verified (maybe for an earlier request): name the
		// issuer and token, never the tenant, as an uncached failure would.
		return &Identity{Issuer: t.id.Issuer, TokenID: t.id.TokenID}, e
	}
	// Sender constraints (DPoP, mTLS) judge this request, not the token:
	// a cache hit never skips them.
	if e := v.checkBinding(req, t.is, t.id); e != nil {
		// As above; cnf kept, so the caller can name the binding checked.
		return &Identity{Issuer: t.id.Issuer, TokenID: t.id.TokenID, Cnf: t.id.Cnf}, e
	}
	return t.id, nil
}

// verified is the cache lookup or, on a miss, the full verification whose
// success it stores. Failures, no_tenant included, are never stored.
func (v *Verifier) verified(ctx context.Context, token string) (*verifiedToken, *Error) {
	if v.cache == nil || len(token) > MaxCachedTokenBytes {
		return v.verifyFull(ctx, token)
	}
	sum := tokenSum(token)
	if t := v.cache.get(sum); t != nil {
		return t, nil
	}
	t, e := v.verifyFull(ctx, token)
	if e == nil {
		v.cache.put(sum, t)
	}
	return t, e
}

// verifyFull runs PreCheck, the header rules, jwx signature verification
// with the keys of the token's issuer, then claim validation.
//
// The token is split, and its header and payload decoded and parsed, exactly
// once; the signature is checked over the parts already split.
func (v *Verifier) verifyFull(ctx context.Context, token string) (*verifiedToken, *Error) {
	p, e := precheck(token, v.cfg.MaxTokenBytes)
	if e != nil {
		return nil, e
	}
	h, e := checkHeader(p.headerMembers)
	if e != nil {
		return nil, e
	}
	if !v.allowed[h.alg] {
		what := "an unknown algorithm"
		if algorithms[h.alg] != nil {
			what = h.alg
		}
		return nil, fail(audit.ReasonBadAlgorithm, fmt.Sprintf("token is signed with %s; allowed: %s", what, v.allowedList), nil)
	}
	payload, err := strictB64.DecodeString(p.payload)
	if err != nil {
		return nil, malformed("token payload is not canonical unpadded base64url", err)
	}
	claims, err := parseObject(payload)
	if err != nil {
		return nil, malformed("token payload is not a valid JSON object", err)
	}

	// iss is read before verifying, only to choose whose keys to use.
	var iss string
	if rawIss, ok := claims["iss"]; !ok {
		return nil, fail(audit.ReasonUnknownIssuer, "token has no iss claim", nil)
	} else if err := unmarshalString(rawIss, &iss); err != nil {
		return nil, fail(audit.ReasonUnknownIssuer, "token iss claim is not a string", err)
	}
	is, e := v.lookupIssuer(ctx, iss)
	if e != nil {
		return nil, e
	}
	ks := is.src.keys()
	if ks == nil {
		e := fail(audit.ReasonKeysUnavailable, fmt.Sprintf("signing keys of issuer %q are not loaded yet (JWKS unreachable); retry shortly", iss), nil)
		e.RetryAfter = is.src.unavailable()
		return nil, e
	}
	sig, e := decodeSignature(&p)
	if e != nil {
		return nil, e
	}
	set, signer, e := v.checkSignature(ctx, is, ks, h, &p, sig)
	if e != nil {
		return nil, e
	}
	// The signature verified: from here on every failure still names the
	// issuer and the token, so the audit record says whose token failed.
	// token_type is a property of the token, so it is judged here, before
	// the result may be cached.
	t := &verifiedToken{is: is, hdr: h, set: set, key: signer, id: &Identity{Issuer: is.cfg.Issuer}}
	if raw, ok := claims["jti"]; ok && isJSONString(raw) {
		_ = unmarshalString(raw, &t.id.TokenID)
	}
	if e := is.checkTokenType(h.typ); e != nil {
		return t, e
	}
	t.id, e = v.checkClaims(is, claims, t, t.id)
	return t, e
}

// checkSignature verifies the signature with the issuer's keys: the key
// with the token's kid, or the keys without a kid. A kid the set lacks
// (also when kid-less keys exist but none verified) goes through the
// source's unknown-kid refetch once; when no fetch may start yet the answer
// is 503 with a Retry-After, since the key may have been published since.
// It returns the set in force and the key that verified.
func (v *Verifier) checkSignature(ctx context.Context, is *issuerState, ks *keySet, h tokenHeader, p *compactParts, sig []byte) (*keySet, *verifyKey, *Error) {
	k, e, known := tryKeys(is, ks, h, p, sig)
	if e == nil || known {
		return ks, k, e
	}
	next, retry := is.src.unknownKid(ctx, h.kid)
	if next == nil || next == ks && retry == 0 {
		return ks, nil, e
	}
	if next.byKid[h.kid] == nil && retry > 0 {
		u := fail(audit.ReasonKeysUnavailable, fmt.Sprintf("no key of issuer %q has the token's kid yet; the issuer's keys are fetched again within %s, retry then", is.cfg.Issuer, retryCeil(retry)), nil)
		u.RetryAfter = retry
		return ks, nil, u
	}
	k, e, _ = tryKeys(is, next, h, p, sig)
	return next, k, e
}

func retryCeil(d time.Duration) time.Duration { return (d + time.Second - 1).Truncate(time.Second) }

// tryKeys checks the signature against the keys of ks that may have signed
// it and returns the one that verified; known is false when the token's kid
// is not in ks.
func tryKeys(is *issuerState, ks *keySet, h tokenHeader, p *compactParts, sig []byte) (signer *verifyKey, e *Error, known bool) {
	list, known := candidates(ks, h)
	if len(list) == 0 {
		return nil, fail(audit.ReasonUnknownKey, fmt.Sprintf("no key of issuer %q has the token's kid", is.cfg.Issuer), nil), known
	}
	var why, sigErr error
	fitting := 0
	for _, k := range list {
		if err := k.fits(h.alg); err != nil {
			why = err
			continue
		}
		fitting++
		if err := verifySig(p, sig, h.alg, k); err != nil {
			sigErr = err
			continue
		}
		return k, nil, known
	}
	if fitting == 0 {
		return nil, fail(audit.ReasonBadAlgorithm, fmt.Sprintf("token algorithm %s does not fit the issuer's key", h.alg), why), known
	}
	return nil, fail(audit.ReasonBadSignature, "token signature does not verify with the issuer's keys", sigErr), known
}

// candidates are the keys of ks that may have signed a token with header h:
// every key for a token without kid; the key with its kid; else the keys
// without a kid (PEM, secret, kid-less JWK), which match any kid.
func candidates(ks *keySet, h tokenHeader) ([]*verifyKey, bool) {
	if h.kid == "" {
		return ks.all, true
	}
	if k := ks.byKid[h.kid]; k != nil {
		return []*verifyKey{k}, true
	}
	return ks.noKid, false
}
