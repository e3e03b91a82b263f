package verify

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/tenantgate/tenantgate/module/audit"
	"github.com/tenantgate/tenantgate/module/verify/dpop"
	"github.com/tenantgate/tenantgate/module/verify/jose"
	"github.com/tenantgate/tenantgate/module/verify/keysource"
	"github.com/tenantgate/tenantgate/module/verify/verr"
)

// Identity is what a verified token says about its bearer.
type Identity struct {
	Issuer, Subject, Tenant, TokenID string // Subject comes from UserClaim, TokenID from jti
	Roles                            []string
	Expiry                           time.Time
	// IssuedAt is the token's iat (zero when it had none): revocations of
	// a subject or tenant cover tokens issued before them.
	IssuedAt time.Time
	// Sid is the token's sid claim (the OpenID Provider's session, "" when
	// absent or not a string): a back-channel logout revokes by it.
	Sid string
	// Cnf is the token's confirmation claim (RFC 7800): the key or client
	// certificate the token is bound to. A property of the token, so a
	// cache may keep it; the request is checked against it every time.
	Cnf Confirmation
}

// Result is what Verify established about one request's token: who the
// bearer is, and how the request proved it holds the token.
type Result struct {
	// Identity is the bearer; on a failure after the signature verified,
	// the partial identity (Issuer, TokenID, maybe Cnf) for the audit
	// record; nil when the token did not verify. Shared between requests:
	// callers must not modify it.
	Identity *Identity
	// Binding is the proof of possession checked (BindingDPoP,
	// BindingMTLS, BindingBearer), named also when the check failed.
	Binding string
}

// Error is a verification failure (module verify/verr). Detail is safe to
// show to the caller: it never contains the token, a signature or key
// material.
type Error = verr.Error

func fail(r audit.Reason, detail string, err error) *Error { return verr.New(r, detail, err) }

// Verifier verifies tokens. It is safe for concurrent use.
type Verifier struct {
	cfg         Config
	allowed     map[string]bool
	allowedList string
	issuers     map[string]*issuerState
	templates   []*tenantIssuer // multi-tenant issuers, in config order
	clock       jwt.Clock
	leeway      time.Duration // cfg.EffectiveLeeway()
	dpop        *dpop.Checker
	cache       *tokenCache // nil when the verified-token cache is off

	tenantPath, userPath, rolesPath claimPath

	store     *Store
	ownStore  bool     // made by New (no Config.Store): ended by Close
	release   []func() // what Close gives back to the store
	stopWatch func() bool
	closeOnce sync.Once
}

// New loads file, PEM and secret keys (their errors are returned) and joins
// the process's Store of remote key sets, until ctx ends or Close. Keys an
// earlier Verifier loaded for the same issuer and URL in the same Store
// serve at once. An unreachable JWKS or discovery document does not fail
// New: the issuer has no keys yet, is retried with a backoff (1s doubling
// up to 5s), and Verify answers ReasonKeysUnavailable for it until the
// first successful fetch.
func New(ctx context.Context, cfg Config) (*Verifier, error) {
	// Issuer states point into this copy: a caller reusing its Config
	// cannot change a live verifier.
	cfg.Issuers = slices.Clone(cfg.Issuers)
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
		leeway:      cfg.EffectiveLeeway(),
		store:       cfg.Store,
	}
	if v.store == nil {
		v.store, v.ownStore = NewStore(), true
	}
	v.release = append(v.release, v.store.replay.Reserve(cfg.DPoP.ReplayCacheSize))
	var replay dpop.ReplayStore = v.store.replay
	if cfg.SharedReplay != nil {
		replay = cfg.SharedReplay(replay)
	}
	v.dpop = dpop.NewChecker(cfg.DPoP, replay).WithNonces(cfg.DPoPNonces)
	for _, a := range cfg.Algorithms {
		v.allowed[a] = true
	}
	// Validate checked the claim names.
	v.tenantPath, _ = parseClaimPath(cfg.TenantClaim)
	v.userPath, _ = parseClaimPath(cfg.UserClaim)
	v.rolesPath, _ = parseClaimPath(cfg.RolesClaim)
	env := keysource.Env{Feeds: v.store.feeds, Client: cfg.HTTPClient, Logger: cfg.Logger,
		Observer: cfg.Observer, RefetchGap: cfg.RefetchInterval}
	var errs []error
	for i := range v.cfg.Issuers {
		ic := &v.cfg.Issuers[i]
		if ic.IsTemplate() {
			t, err := keysource.NewTemplate(keysource.TemplateSpec{Spec: v.keySpec(ic), Tenants: ic.Tenants,
				TenantsFile: ic.TenantsFile, MaxTenants: ic.MaxTenants}, env)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			v.templates = append(v.templates, &tenantIssuer{keys: t, base: newIssuerState(ic)})
			continue
		}
		is := newIssuerState(ic)
		v.issuers[ic.Issuer] = is
		src, err := keysource.New(v.keySpec(ic), env)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		is.src = src
	}
	if len(errs) > 0 {
		v.Close()
		return nil, errors.Join(errs...)
	}
	if n := cfg.TokenCacheSize(); n > 0 {
		v.cache = newTokenCache(n, v.leeway, cfg.Now, cfg.CacheObserver)
	}
	if v.cache != nil {
		v.release = append(v.release, v.store.track(v.cache))
	}
	for _, is := range v.issuers {
		is.src.Announce()
	}
	for _, t := range v.templates {
		t.keys.Start()
	}
	// The config's context ends the verifier's part in the store's work.
	v.stopWatch = context.AfterFunc(ctx, v.Close)
	return v, nil
}

// Close leaves the store (remote sets whose last user this was stop
// refreshing; their keys stay for the next config), stops background work
// and waits for it. It is idempotent.
func (v *Verifier) Close() {
	v.closeOnce.Do(func() {
		if v.stopWatch != nil {
			v.stopWatch()
		}
		for _, is := range v.issuers {
			if is.src != nil {
				is.src.Close()
			}
		}
		for _, t := range v.templates {
			t.keys.Close()
		}
		for _, release := range v.release {
			release()
		}
		if v.cache != nil {
			v.cache.close()
		}
		if v.ownStore {
			_ = v.store.Destruct()
		}
	})
}

// DPoPAlgorithms lists the proof algorithms accepted, space-separated, as
// the algs parameter of a DPoP challenge wants them (RFC 9449 §7.1).
func (v *Verifier) DPoPAlgorithms() string { return v.dpop.Algorithms() }

// Verify returns what the token says about its bearer and how the request
// proved it holds the token, or why it is refused. A token verified before
// (same exact bytes, verified-token cache) skips parsing and the
// signature, provided the key that verified it is still in its issuer's
// set; every request, hit or not, then runs the per-request checks (times
// with leeway, then the binding: DPoP proof, client certificate). When the
// token is valid but its tenant claim is missing or malformed, the Result
// holds the Identity (Tenant empty) together with an *Error of
// ReasonNoTenant.
func (v *Verifier) Verify(ctx context.Context, req *Request) (Result, *Error) {
	if ctx == nil {
		ctx = context.Background()
	}
	id, e := v.verify(ctx, req)
	return Result{Identity: id, Binding: bindingOf(req, id)}, e
}

func (v *Verifier) verify(ctx context.Context, req *Request) (*Identity, *Error) {
	t, e := v.verified(ctx, req)
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
func (v *Verifier) verified(ctx context.Context, req *Request) (*verifiedToken, *Error) {
	token := req.Token
	if v.cache == nil || len(token) > MaxCachedTokenBytes {
		return v.verifyFull(ctx, token, req.ClientAddr)
	}
	sum := tokenSum(token)
	if t := v.cache.get(sum); t != nil {
		return t, nil
	}
	t, e := v.verifyFull(ctx, token, req.ClientAddr)
	if e == nil {
		v.cache.put(sum, t)
	}
	return t, e
}

// verifyFull runs PreCheck, the header rules, jwx signature verification
// with the keys of the token's issuer, then claim validation.
//
// The token is split, and its header and payload decoded and parsed, exactly
// once; the signature is checked over the parts already split. client is
// the request's address (Request.ClientAddr), for the new-tenant budget.
func (v *Verifier) verifyFull(ctx context.Context, token, client string) (*verifiedToken, *Error) {
	p, e := jose.Split(token, v.cfg.MaxTokenBytes)
	if e != nil {
		return nil, e
	}
	h, e := jose.CheckHeader(p.HeaderMembers)
	if e != nil {
		return nil, e
	}
	if !v.allowed[h.Alg] {
		what := "an unknown algorithm"
		if jose.Algorithm(h.Alg) != nil {
			what = h.Alg
		}
		return nil, fail(audit.ReasonBadAlgorithm, fmt.Sprintf("token is signed with %s; allowed: %s", what, v.allowedList), nil)
	}
	payload, err := jose.StrictB64.DecodeString(p.Payload)
	if err != nil {
		return nil, jose.Malformed("token payload is not canonical unpadded base64url", err)
	}
	claims, err := jose.ParseObject(payload)
	if err != nil {
		return nil, jose.Malformed("token payload is not a valid JSON object", err)
	}

	// iss is read before verifying, only to choose whose keys to use.
	var iss string
	if rawIss, ok := claims["iss"]; !ok {
		return nil, fail(audit.ReasonUnknownIssuer, "token has no iss claim", nil)
	} else if err := jose.UnmarshalString(rawIss, &iss); err != nil {
		return nil, fail(audit.ReasonUnknownIssuer, "token iss claim is not a string", err)
	}
	is, e := v.lookupIssuer(ctx, iss, client)
	if e != nil {
		return nil, e
	}
	ks := is.src.Keys()
	if ks == nil {
		why := "JWKS unreachable"
		if lf, ok := is.src.(interface{ LastFailure() string }); ok && lf.LastFailure() != "" {
			why = lf.LastFailure()
		}
		e := fail(audit.ReasonKeysUnavailable, fmt.Sprintf("signing keys of issuer %q are not loaded yet (%s); retry shortly", iss, why), nil)
		e.RetryAfter = is.src.Unavailable()
		return nil, e
	}
	sig, e := jose.DecodeSignature(&p)
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
	t := &verifiedToken{is: is, hdr: h, set: set, key: signer, id: &Identity{Issuer: is.iss}}
	if raw, ok := claims["jti"]; ok && jose.IsJSONString(raw) {
		_ = jose.UnmarshalString(raw, &t.id.TokenID)
	}
	if e := is.checkTokenType(h.Typ); e != nil {
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
func (v *Verifier) checkSignature(ctx context.Context, is *issuerState, ks *jose.KeySet, h jose.Header, p *jose.Parts, sig []byte) (*jose.KeySet, *jose.Key, *Error) {
	k, e, known := tryKeys(is, ks, h, p, sig)
	// A kid-less token no held key verifies may be signed by a key
	// published since the last fetch: it refetches like a new kid.
	kidless := h.Kid == "" && e != nil && e.Reason == audit.ReasonBadSignature
	if e == nil || known && !kidless {
		return ks, k, e
	}
	next, retry := is.src.UnknownKid(ctx, h.Kid)
	if next == nil || next == ks && retry == 0 {
		return ks, nil, e
	}
	if kidless && retry > 0 {
		// Past the wait bound a kid-less token is judged by the keys held:
		// a forged one is no reason to tell the client to come back.
		return ks, nil, e
	}
	if next.ByKid[h.Kid] == nil && retry > 0 {
		u := fail(audit.ReasonKeysUnavailable, fmt.Sprintf("no key of issuer %q has the token's kid yet; the issuer's keys are fetched again within %s, retry then", is.iss, retryCeil(retry)), nil)
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
func tryKeys(is *issuerState, ks *jose.KeySet, h jose.Header, p *jose.Parts, sig []byte) (signer *jose.Key, e *Error, known bool) {
	list, known := candidates(ks, h)
	if len(list) == 0 {
		return nil, fail(audit.ReasonUnknownKey, fmt.Sprintf("no key of issuer %q has the token's kid", is.iss), nil), known
	}
	var why, sigErr error
	fitting := 0
	for _, k := range list {
		if err := k.Fits(h.Alg); err != nil {
			why = err
			continue
		}
		fitting++
		if err := jose.VerifySig(p, sig, h.Alg, k); err != nil {
			sigErr = err
			continue
		}
		return k, nil, known
	}
	if fitting == 0 {
		return nil, fail(audit.ReasonBadAlgorithm, fmt.Sprintf("token algorithm %s does not fit the issuer's key", h.Alg), why), known
	}
	return nil, fail(audit.ReasonBadSignature, "token signature does not verify with the issuer's keys", sigErr), known
}

// candidates are the keys of ks that may have signed a token with header h:
// every key for a token without kid; the key with its kid; else the keys
// without a kid (PEM, secret, kid-less JWK), which match any kid.
func candidates(ks *jose.KeySet, h jose.Header) ([]*jose.Key, bool) {
	if h.Kid == "" {
		return ks.All, true
	}
	if k := ks.ByKid[h.Kid]; k != nil {
		return []*jose.Key{k}, true
	}
	return ks.NoKid, false
}
