package dpop

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/tenantgate/tenantgate/module/audit"
	"github.com/tenantgate/tenantgate/module/verify/jose"
	"github.com/tenantgate/tenantgate/module/verify/verr"
)

// DPoP proof checks (RFC 9449 §4.3), in the order they run; every failure
// is bad_dpop_proof except a key that is not the token's (binding_mismatch):
//
//	exactly one DPoP header                              §4.3 (1)
//	at most MaxProofBytes, compact JWS, canonical        §4.3 (2)(3)
//	  base64url, JSON objects without duplicate members
//	typ "dpop+jwt"                                       §4.3 (4)
//	alg asymmetric and in dpop_algorithms (never none,   §4.3 (5)
//	  never HS*)
//	jwk present, public (no "d", "p", "k", ...), a key   §4.3 (7)
//	  fit for alg, no jku/x5u/x5c, no crit, no b64
//	signature verifies with that jwk (jwx jws)           §4.3 (6)
//	htm = the request method                             §4.3 (8)
//	htu = the request URL, query and fragment ignored    §4.3 (9)
//	iat within dpop_max_age of now, both ways            §4.3 (11)
//	ath = base64url(SHA-256(access token))               §4.3 (12)
//	RFC 7638 SHA-256 thumbprint of jwk = cnf.jkt         §4.3 (12), §6.1 (binding_mismatch)
//	jti present (a string of at most 256 bytes)          §4.3 (10)
//	nonce, when a NonceSource is set: one it handed out   §4.3 (10), §8, §9
//	  recently (dpop_nonce_required, DPoP-Nonce sent)
//	jti not seen in its window (claimed last, so a        §11.1
//	  refused proof spends no replay entry)

// Checker checks DPoP proofs against one config (defaults set, validated).
// It holds no state of its own: proofs already used are the ReplayStore's.
type Checker struct {
	maxAge                   time.Duration
	publicScheme, publicHost string
	allowed                  map[string]bool
	algs                     string
	replay                   ReplayStore
	nonces                   NonceSource // nil: no server nonces (the default)
}

// NewChecker makes the checker of c, remembering proofs in replay.
func NewChecker(c Config, replay ReplayStore) *Checker {
	d := &Checker{maxAge: time.Duration(c.MaxAge), allowed: map[string]bool{}, algs: strings.Join(c.ProofAlgorithms, " "), replay: replay}
	for _, a := range c.ProofAlgorithms {
		d.allowed[a] = true
	}
	if c.PublicURL != "" {
		d.publicScheme, d.publicHost, _ = parsePublicURL(c.PublicURL) // validated
	}
	return d
}

// WithNonces makes d require server-provided nonces from ns (RFC 9449 §9);
// nil requires none. Call it before the checker is used.
func (d *Checker) WithNonces(ns NonceSource) *Checker {
	d.nonces = ns
	return d
}

// Algorithms lists the proof algorithms accepted, space-separated, as
// the algs parameter of a DPoP challenge wants them (RFC 9449 §7.1).
func (d *Checker) Algorithms() string { return d.algs }

// Request is what a proof is checked against: the DPoP header values, the
// request as the gate sees it, and the access token it came with.
type Request struct {
	Proofs []string // every DPoP header value
	Method string
	URL    *url.URL // absolute, without query or fragment
	Token  string
}

func badProof(detail string, err error) *verr.Error {
	return verr.New(audit.ReasonBadDPoPProof, detail, err)
}

// proofParts is a proof split and its header checked, before any crypto.
type proofParts struct {
	jose.Parts
	Alg string
	jwk json.RawMessage
}

// PreCheckProof runs the checks of a DPoP proof that need no key, clock or
// request: size, compact form, canonical base64url, JSON without duplicate
// members, typ dpop+jwt, an asymmetric alg, a jwk header that holds no
// private member and no key named by reference. Every failure is
// ReasonBadDPoPProof.
func PreCheckProof(raw string) *verr.Error {
	_, e := precheckProof(raw)
	return e
}

func precheckProof(raw string) (proofParts, *verr.Error) {
	var pp proofParts
	p, e := jose.Split(raw, MaxProofBytes)
	if e != nil {
		return pp, badProof("DPoP proof: "+e.Detail, e.Err)
	}
	pp.Parts = p
	m := p.HeaderMembers
	var typ string
	if raw, ok := m["typ"]; !ok || json.Unmarshal(raw, &typ) != nil || !strings.EqualFold(typ, "dpop+jwt") {
		return pp, badProof(`DPoP proof header typ must be "dpop+jwt"`, nil)
	}
	if raw, ok := m["alg"]; !ok || json.Unmarshal(raw, &pp.Alg) != nil {
		return pp, badProof("DPoP proof header has no alg string", nil)
	}
	if info := jose.Algorithm(pp.Alg); info == nil || info.Kind == jose.KindHMAC {
		return pp, badProof("DPoP proof alg must be an asymmetric signature algorithm (never none or HS*)", nil)
	}
	for _, name := range [...]string{"jku", "x5u", "x5c", "crit", "b64"} {
		if _, ok := m[name]; ok {
			return pp, badProof(fmt.Sprintf("DPoP proof header carries %q, which is not supported; put the public key in jwk", name), nil)
		}
	}
	pp.jwk = m["jwk"]
	if jose.FirstByte(pp.jwk) != '{' {
		return pp, badProof("DPoP proof header needs jwk, the public key as a JSON object", nil)
	}
	key, err := jose.ParseObject(pp.jwk)
	if err != nil {
		return pp, badProof("DPoP proof jwk is not a valid JSON object", err)
	}
	for _, name := range privateJWKMembers {
		if _, ok := key[name]; ok {
			return pp, badProof(fmt.Sprintf("DPoP proof jwk holds private or secret key material (%q); send the public key only", name), nil)
		}
	}
	return pp, nil
}

// Check verifies the request's DPoP proof for a token bound to jkt, at now
// (the verifier's clock). A proof that passes is claimed in the replay
// store, so it passes once.
func (d *Checker) Check(req Request, jkt string, now time.Time) *verr.Error {
	values := req.Proofs
	switch len(values) {
	case 0:
		return badProof("send a DPoP header with a proof for this request (RFC 9449)", nil)
	case 1:
	default:
		return badProof("send exactly one DPoP header", nil)
	}
	pp, e := precheckProof(strings.TrimSpace(values[0]))
	if e != nil {
		return e
	}
	if !d.allowed[pp.Alg] {
		return badProof(fmt.Sprintf("DPoP proof is signed with %s; allowed: %s", pp.Alg, d.algs), nil)
	}
	key, vk, e := proofKey(pp)
	if e != nil {
		return e
	}
	sig, e := jose.DecodeSignature(&pp.Parts)
	if e != nil {
		return badProof("DPoP proof signature is not canonical base64url", e.Err)
	}
	if err := jose.VerifySig(&pp.Parts, sig, pp.Alg, vk); err != nil {
		return badProof("DPoP proof signature does not verify with its jwk", err)
	}
	payload, err := jose.StrictB64.DecodeString(pp.Payload)
	if err != nil {
		return badProof("DPoP proof payload is not canonical base64url", err)
	}
	claims, err := jose.ParseObject(payload)
	if err != nil {
		return badProof("DPoP proof payload is not a valid JSON object", err)
	}
	if e := d.checkRequest(claims, req); e != nil {
		return e
	}
	until, e := d.checkTime(claims, now)
	if e != nil {
		return e
	}
	var ath string
	if json.Unmarshal(claims["ath"], &ath) != nil || ath == "" {
		return badProof("DPoP proof has no ath; set it to base64url(SHA-256(access token))", nil)
	}
	sum := sha256.Sum256([]byte(req.Token))
	if subtle.ConstantTimeCompare([]byte(ath), []byte(base64.RawURLEncoding.EncodeToString(sum[:]))) != 1 {
		return badProof("DPoP proof ath is not the hash of this access token", nil)
	}
	tp, err := key.Thumbprint(crypto.SHA256)
	if err != nil {
		return badProof("DPoP proof jwk has no thumbprint", err)
	}
	if base64.RawURLEncoding.EncodeToString(tp) != jkt {
		return verr.New(audit.ReasonBindingMismatch, "the DPoP proof is signed by another key than the one the token is bound to (cnf.jkt)", nil)
	}
	// Last: only a proof that passed everything else takes a cache entry.
	var jti string
	if json.Unmarshal(claims["jti"], &jti) != nil || jti == "" || len(jti) > maxJTIBytes {
		return badProof(fmt.Sprintf("DPoP proof needs a jti: a unique string of at most %d bytes", maxJTIBytes), nil)
	}
	if e := d.checkNonce(claims, now); e != nil {
		return e
	}
	fresh, err := d.replay.Claim(ProofIDOf(jkt, jti), until.Sub(now))
	if err != nil {
		// Fail closed: a proof that cannot be recorded could be replayed.
		return badProof("DPoP proof could not be checked for replay; retry with a fresh proof", err)
	}
	if !fresh {
		return badProof("DPoP proof was used before (jti replayed); make a fresh proof for every request", nil)
	}
	return nil
}

// checkNonce refuses a proof without a nonce the source accepts, with
// dpop_nonce_required: the gate then answers use_dpop_nonce with a fresh
// DPoP-Nonce. It runs after every check of the proof itself (so only a
// proof that is otherwise good is told to retry) and before the replay
// claim (so the refused proof takes no replay entry).
func (d *Checker) checkNonce(claims map[string]json.RawMessage, now time.Time) *verr.Error {
	if d.nonces == nil {
		return nil
	}
	raw, ok := claims["nonce"]
	if !ok {
		return verr.New(audit.ReasonDPoPNonceRequired, "this server requires a nonce in DPoP proofs: make a new proof whose nonce claim is the DPoP-Nonce header of this response (RFC 9449 §9)", nil)
	}
	nonce, ok := jsonString(raw)
	if !ok {
		return badProof("DPoP proof nonce must be a string", nil)
	}
	if len(nonce) > maxNonceBytes || !d.nonces.Accepts(nonce, now) {
		return verr.New(audit.ReasonDPoPNonceRequired, "the DPoP proof's nonce is stale or was not issued by this server: make a new proof with the DPoP-Nonce header of this response", nil)
	}
	return nil
}

// jsonString reads a JSON string. It returns rather than fills a string so
// that, on the common path (no escapes), the string does not escape to the
// heap: one allocation, for its bytes.
func jsonString(raw json.RawMessage) (string, bool) {
	if len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"' && bytes.IndexByte(raw[1:len(raw)-1], '\\') < 0 {
		return string(raw[1 : len(raw)-1]), true // ParseObject accepted it: valid JSON, so no bare '"' inside
	}
	var s string
	err := json.Unmarshal(raw, &s)
	return s, err == nil && jose.IsJSONString(raw) // null unmarshals without error
}

// proofKey parses the proof's jwk with jwx and checks it as the gate checks
// issuer keys: public, a supported type, strong enough, fit for alg.
func proofKey(pp proofParts) (jwk.Key, *jose.Key, *verr.Error) {
	key, err := jwk.ParseKey(pp.jwk)
	if err != nil {
		return nil, nil, badProof("DPoP proof jwk is not a valid JWK", err)
	}
	vk, err := jose.ConvertJWK(key, jose.SetPolicy{Remote: true})
	if err != nil {
		return nil, nil, badProof("DPoP proof jwk cannot verify signatures", err)
	}
	if err := vk.Fits(pp.Alg); err != nil {
		return nil, nil, badProof(fmt.Sprintf("DPoP proof jwk does not fit alg %s", pp.Alg), err)
	}
	return key, vk, nil
}

// checkRequest compares htm and htu with the request.
func (d *Checker) checkRequest(claims map[string]json.RawMessage, req Request) *verr.Error {
	var htm, htu string
	if json.Unmarshal(claims["htm"], &htm) != nil || htm != req.Method {
		return badProof(fmt.Sprintf("DPoP proof htm must be the request method (%s)", jose.Truncate(req.Method, 16)), nil)
	}
	if json.Unmarshal(claims["htu"], &htu) != nil || !d.sameHTU(htu, req.URL) {
		return badProof("DPoP proof htu must be the request URL without query and fragment ("+d.expectedHTU(req.URL)+")", nil)
	}
	return nil
}

// checkTime accepts an iat within maxAge of now, and returns the end of
// the proof's window, until which its jti is remembered.
func (d *Checker) checkTime(claims map[string]json.RawMessage, now time.Time) (time.Time, *verr.Error) {
	raw := claims["iat"]
	if !jose.IsJSONNumber(raw) {
		return time.Time{}, badProof("DPoP proof needs iat, a NumericDate", nil)
	}
	f, err := json.Number(raw).Float64()
	if err != nil || math.IsInf(f, 0) || f > float64(math.MaxInt32)*4 {
		return time.Time{}, badProof("DPoP proof iat is not a valid NumericDate", err)
	}
	iat := time.Unix(0, 0).Add(time.Duration(f * float64(time.Second)))
	switch age := now.Sub(iat); {
	case age > d.maxAge:
		return time.Time{}, badProof(fmt.Sprintf("DPoP proof is too old (iat %s ago, dpop_max_age %s); make a fresh proof for every request", age.Truncate(time.Second), d.maxAge), nil)
	case -age > d.maxAge:
		return time.Time{}, badProof(fmt.Sprintf("DPoP proof iat is %s in the future (more than dpop_max_age %s); check the client's clock", (-age).Truncate(time.Second), d.maxAge), nil)
	}
	return iat.Add(d.maxAge), nil
}

// sameHTU compares a proof's htu with the request URL the gate sees (its
// scheme and host replaced by dpop_public_url when set), after RFC 3986
// syntax- and scheme-based normalisation: case of scheme and host, default
// ports, an empty path as "/", percent-encoding; query and fragment ignored.
func (d *Checker) sameHTU(htu string, reqURL *url.URL) bool {
	if reqURL == nil {
		return false
	}
	u, err := url.Parse(htu)
	if err != nil || u.User != nil || u.Host == "" {
		return false
	}
	scheme, host, path := d.requestParts(reqURL)
	return strings.ToLower(u.Scheme) == scheme && normHost(strings.ToLower(u.Scheme), u.Host) == host && pathOrRoot(u.Path) == path
}

func (d *Checker) requestParts(u *url.URL) (scheme, host, path string) {
	scheme, host = strings.ToLower(u.Scheme), normHost(strings.ToLower(u.Scheme), u.Host)
	if d.publicScheme != "" {
		scheme, host = d.publicScheme, d.publicHost
	}
	return scheme, host, pathOrRoot(u.Path)
}

// expectedHTU is the htu the gate wants, for error details.
func (d *Checker) expectedHTU(u *url.URL) string {
	if u == nil {
		return "unknown"
	}
	scheme, host, path := d.requestParts(u)
	return jose.Truncate((&url.URL{Scheme: scheme, Host: host, Path: path}).String(), 256)
}

func normHost(scheme, host string) string {
	host = strings.ToLower(host)
	switch {
	case scheme == "http" && strings.HasSuffix(host, ":80"):
		return strings.TrimSuffix(host, ":80")
	case scheme == "https" && strings.HasSuffix(host, ":443"):
		return strings.TrimSuffix(host, ":443")
	}
	return host
}

func pathOrRoot(p string) string {
	if p == "" {
		return "/"
	}
	return p
}
