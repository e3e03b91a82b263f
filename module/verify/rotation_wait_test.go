package verify

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/module/audit"
)

// A key published right after a fetch passes on the first request (it
// waits for the next allowed refetch, within keysource.MaxKidWait), with a
// kid and without one; a forged kid-less token still gets bad_signature.
func TestRotationPassesOnTheFirstTry(t *testing.T) {
	k := keys(t)
	srv := newJWKSServer(t, jwksJSON(t, publicJWK(t, &k.ec256.PublicKey, "k1", "ES256")))
	v := heldKeys(t, srv, 300*time.Millisecond)

	srv.set(jwksJSON(t, publicJWK(t, &k.ec256.PublicKey, "k1", "ES256"), publicJWK(t, &k.rsa.PublicKey, "k2", "RS256")), false)
	hits := srv.jwksHits.Load()
	if _, e := identityOf(v.Verify(t0ctx, Bearer(mint(t, "RS256", k.rsa, "k2", nil, claimsFor(srv.URL, nil))))); e != nil {
		t.Fatalf("new kid, first try: %v", e)
	}
	if got := srv.jwksHits.Load() - hits; got != 1 {
		t.Fatalf("new kid cost %d fetches, want 1", got)
	}

	srv.set(jwksJSON(t, publicJWK(t, &k.ec256.PublicKey, "k1", "ES256"), publicJWK(t, &k.rsa.PublicKey, "k2", "RS256"),
		publicJWK(t, &k.rsa2.PublicKey, "k3", "RS256")), false)
	if _, e := identityOf(v.Verify(t0ctx, Bearer(mint(t, "RS256", k.rsa2, "", nil, claimsFor(srv.URL, nil))))); e != nil {
		t.Fatalf("kid-less token of a new key, first try: %v", e)
	}
	// A kid-less token no key verifies: refetched once, then refused.
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, e := identityOf(v.Verify(t0ctx, Bearer(mint(t, "ES256", other, "", nil, claimsFor(srv.URL, nil)))))
	if e == nil || e.Reason != audit.ReasonBadSignature {
		t.Fatalf("forged kid-less token: %v", e)
	}
}

// Past the wait bound a kid-less token gets the held keys' verdict at once
// (bad_signature), with no fetch; a token with a new kid gets 503.
func TestKidlessPastTheBoundIsJudgedByHeldKeys(t *testing.T) {
	k := keys(t)
	srv := newJWKSServer(t, jwksJSON(t, publicJWK(t, &k.ec256.PublicKey, "k1", "ES256")))
	v := heldKeys(t, srv, 5*time.Second)
	hits := srv.jwksHits.Load()
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, e := identityOf(v.Verify(t0ctx, Bearer(mint(t, "ES256", other, "", nil, claimsFor(srv.URL, nil))))); e == nil || e.Reason != audit.ReasonBadSignature {
		t.Fatalf("kid-less past the bound: %v", e)
	}
	if _, e := identityOf(v.Verify(t0ctx, Bearer(mint(t, "ES256", other, "new", nil, claimsFor(srv.URL, nil))))); e == nil || e.Reason != audit.ReasonKeysUnavailable || e.RetryAfter <= 0 {
		t.Fatalf("new kid past the bound: %v", e)
	}
	if got := srv.jwksHits.Load() - hits; got != 0 {
		t.Fatalf("%d fetches past the bound", got)
	}
}
