package verify

import (
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
//	jti present and not seen in its window               §4.3 (10), §11.1

// Defaults and bounds of DPoP checks.
const (
	DefaultDPoPMaxAge = 60 * time.Second
	// MaxProofBytes caps a DPoP header: a proof with an RSA-16384 jwk is
	// under 7 KB.
	MaxProofBytes = 8192
	maxJTIBytes   = 256
	maxDPoPMaxAge = time.Hour
)

// privateJWKMembers are JWK members that only private or secret keys carry
// (RFC 7518 §6.2.2, §6.3.2, §6.4.1).
var privateJWKMembers = [...]string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// DPoPConfig configures DPoP proof checks.
type DPoPConfig struct {
	// A proof's iat must be within MaxAge of now. Default: 60s.
	MaxAge time.Duration
	// PublicURL, when set (https://api.example.com), gives the scheme and
	// host htu is compared with, for a gate behind a proxy that changes them.
	PublicURL string
	// Proof algorithms; asymmetric only. Default: the asymmetric members of
	// Config.Algorithms, or DefaultAlgorithms when it has none.
	Algorithms []string
	// Proofs remembered for replay detection, per process. Default: 100000.
	ReplayCacheSize int
}

func (c *DPoPConfig) setDefaults(tokenAlgs []string) {
	if c.MaxAge == 0 {
		c.MaxAge = DefaultDPoPMaxAge
	}
	if len(c.Algorithms) == 0 {
		for _, a := range tokenAlgs {
			if info := algorithms[a]; info != nil && info.kind != kindHMAC {
				c.Algorithms = append(c.Algorithms, a)
			}
		}
		if len(c.Algorithms) == 0 {
			c.Algorithms = append([]string(nil), DefaultAlgorithms...)
		}
	}
	if c.ReplayCacheSize == 0 {
		c.ReplayCacheSize = DefaultReplayCacheSize
	}
}

func (c DPoPConfig) validate() []error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c.MaxAge < 0 || c.MaxAge > maxDPoPMaxAge {
		add("dpop_max_age: %s is outside 1s..%s", c.MaxAge, maxDPoPMaxAge)
	}
	for _, a := range c.Algorithms {
		switch info := algorithms[a]; {
		case strings.EqualFold(a, "none"):
			add(`dpop_algorithms: "none" is never allowed`)
		case info == nil:
			add("dpop_algorithms: unknown algorithm %q (allowed: %s)", a, strings.Join(AlgorithmNames(), " "))
		case info.kind == kindHMAC:
			add("dpop_algorithms: %s is symmetric; a DPoP proof needs an asymmetric algorithm", a)
		}
	}
	if c.ReplayCacheSize < 0 || c.ReplayCacheSize > maxReplayCacheSize {
		add("dpop_replay_cache: %d is outside 1..%d", c.ReplayCacheSize, maxReplayCacheSize)
	}
	if c.PublicURL != "" {
		if _, _, err := parsePublicURL(c.PublicURL); err != nil {
			add("dpop_public_url: %v", err)
		}
	}
	return errs
}

// parsePublicURL accepts scheme://host[:port] with an empty or "/" path.
func parsePublicURL(raw string) (scheme, host string, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", fmt.Errorf("%q is not a URL: %w", raw, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", "", fmt.Errorf("%q: scheme must be https (or http)", raw)
	case u.Host == "":
		return "", "", fmt.Errorf("%q has no host", raw)
	case u.User != nil, u.RawQuery != "", u.Fragment != "", u.Path != "" && u.Path != "/":
		return "", "", fmt.Errorf("%q: give only scheme and host, e.g. https://api.example.com", raw)
	}
	return u.Scheme, normHost(u.Scheme, u.Host), nil
}

// dpopState is a verifier's DPoP configuration, ready for requests.
type dpopState struct {
	maxAge                   time.Duration
	publicScheme, publicHost string
	allowed                  map[string]bool
	algs                     string
	replay                   *replayCache
	release                  func() // gives the replay cache size back (Close)
}

func newDPoPState(c DPoPConfig) *dpopState {
	d := &dpopState{maxAge: c.MaxAge, allowed: map[string]bool{}, algs: strings.Join(c.Algorithms, " ")}
	d.replay, d.release = acquireReplayCache(c.ReplayCacheSize)
	for _, a := range c.Algorithms {
		d.allowed[a] = true
	}
	if c.PublicURL != "" {
		d.publicScheme, d.publicHost, _ = parsePublicURL(c.PublicURL) // validated
	}
	return d
}

// DPoPAlgorithms lists the proof algorithms accepted, space-separated, as
// the algs parameter of a DPoP challenge wants them (RFC 9449 §7.1).
func (v *Verifier) DPoPAlgorithms() string { return v.dpop.algs }

func badProof(detail string, err error) *Error {
	return fail(audit.ReasonBadDPoPProof, detail, err)
}

// proofParts is a proof split and its header checked, before any crypto.
type proofParts struct {
	compactParts
	alg string
	jwk json.RawMessage
}

// PreCheckProof runs the checks of a DPoP proof that need no key, clock or
// request: size, compact form, canonical base64url, JSON without duplicate
// members, typ dpop+jwt, an asymmetric alg, a jwk header that holds no
// private member and no key named by reference. Every failure is
// ReasonBadDPoPProof.
func PreCheckProof(raw string) *Error {
	_, e := precheckProof(raw)
	return e
}

func precheckProof(raw string) (proofParts, *Error) {
	var pp proofParts
	p, e := precheck(raw, MaxProofBytes)
	if e != nil {
		return pp, badProof("DPoP proof: "+e.Detail, e.Err)
	}
	pp.compactParts = p
	m := p.headerMembers
	var typ string
	if raw, ok := m["typ"]; !ok || json.Unmarshal(raw, &typ) != nil || !strings.EqualFold(typ, "dpop+jwt") {
		return pp, badProof(`DPoP proof header typ must be "dpop+jwt"`, nil)
	}
	if raw, ok := m["alg"]; !ok || json.Unmarshal(raw, &pp.alg) != nil {
		return pp, badProof("DPoP proof header has no alg string", nil)
	}
	if info := algorithms[pp.alg]; info == nil || info.kind == kindHMAC {
		return pp, badProof("DPoP proof alg must be an asymmetric signature algorithm (never none or HS*)", nil)
	}
	for _, name := range [...]string{"jku", "x5u", "x5c", "crit", "b64"} {
		if _, ok := m[name]; ok {
			return pp, badProof(fmt.Sprintf("DPoP proof header carries %q, which is not supported; put the public key in jwk", name), nil)
		}
	}
	pp.jwk = m["jwk"]
	if firstByte(pp.jwk) != '{' {
		return pp, badProof("DPoP proof header needs jwk, the public key as a JSON object", nil)
	}
	key, err := parseObject(pp.jwk)
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

// check verifies the request's DPoP proof for a token bound to jkt.
func (d *dpopState) check(req *Request, jkt string, now time.Time) *Error {
	values := req.Header.Values("DPoP")
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
	if !d.allowed[pp.alg] {
		return badProof(fmt.Sprintf("DPoP proof is signed with %s; allowed: %s", pp.alg, d.algs), nil)
	}
	key, vk, e := proofKey(pp)
	if e != nil {
		return e
	}
	sig, e := decodeSignature(&pp.compactParts)
	if e != nil {
		return badProof("DPoP proof signature is not canonical base64url", e.Err)
	}
	if err := verifySig(&pp.compactParts, sig, pp.alg, vk); err != nil {
		return badProof("DPoP proof signature does not verify with its jwk", err)
	}
	payload, err := strictB64.DecodeString(pp.payload)
	if err != nil {
		return badProof("DPoP proof payload is not canonical base64url", err)
	}
	claims, err := parseObject(payload)
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
		return fail(audit.ReasonBindingMismatch, "the DPoP proof is signed by another key than the one the token is bound to (cnf.jkt)", nil)
	}
	// Last: only a proof that passed everything else takes a cache entry.
	var jti string
	if json.Unmarshal(claims["jti"], &jti) != nil || jti == "" || len(jti) > maxJTIBytes {
		return badProof(fmt.Sprintf("DPoP proof needs a jti: a unique string of at most %d bytes", maxJTIBytes), nil)
	}
	if !d.replay.firstUse(replayKey(jkt, jti), until, now) {
		return badProof("DPoP proof was used before (jti replayed); make a fresh proof for every request", nil)
	}
	return nil
}

// proofKey parses the proof's jwk with jwx and checks it as the gate checks
// issuer keys: public, a supported type, strong enough, fit for alg.
func proofKey(pp proofParts) (jwk.Key, *verifyKey, *Error) {
	key, err := jwk.ParseKey(pp.jwk)
	if err != nil {
		return nil, nil, badProof("DPoP proof jwk is not a valid JWK", err)
	}
	vk, err := convertJWK(key, setPolicy{remote: true})
	if err != nil {
		return nil, nil, badProof("DPoP proof jwk cannot verify signatures", err)
	}
	if err := vk.fits(pp.alg); err != nil {
		return nil, nil, badProof(fmt.Sprintf("DPoP proof jwk does not fit alg %s", pp.alg), err)
	}
	return key, vk, nil
}

// checkRequest compares htm and htu with the request.
func (d *dpopState) checkRequest(claims map[string]json.RawMessage, req *Request) *Error {
	var htm, htu string
	if json.Unmarshal(claims["htm"], &htm) != nil || htm != req.Method {
		return badProof(fmt.Sprintf("DPoP proof htm must be the request method (%s)", truncate(req.Method, 16)), nil)
	}
	if json.Unmarshal(claims["htu"], &htu) != nil || !d.sameHTU(htu, req.URL) {
		return badProof("DPoP proof htu must be the request URL without query and fragment ("+d.expectedHTU(req.URL)+")", nil)
	}
	return nil
}

// checkTime accepts an iat within maxAge of now, and returns the end of
// the proof's window, until which its jti is remembered.
func (d *dpopState) checkTime(claims map[string]json.RawMessage, now time.Time) (time.Time, *Error) {
	raw := claims["iat"]
	if !isJSONNumber(raw) {
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
func (d *dpopState) sameHTU(htu string, reqURL *url.URL) bool {
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

func (d *dpopState) requestParts(u *url.URL) (scheme, host, path string) {
	scheme, host = strings.ToLower(u.Scheme), normHost(strings.ToLower(u.Scheme), u.Host)
	if d.publicScheme != "" {
		scheme, host = d.publicScheme, d.publicHost
	}
	return scheme, host, pathOrRoot(u.Path)
}

// expectedHTU is the htu the gate wants, for error details.
func (d *dpopState) expectedHTU(u *url.URL) string {
	if u == nil {
		return "unknown"
	}
	scheme, host, path := d.requestParts(u)
	return truncate((&url.URL{Scheme: scheme, Host: host, Path: path}).String(), 256)
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
