package dpop

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/tenantgate/tenantgate/module/verify/duration"
	"github.com/tenantgate/tenantgate/module/verify/jose"
)

// Defaults and bounds of DPoP checks.
const (
	DefaultMaxAge = 60 * time.Second
	// MaxProofBytes caps a DPoP header: a proof with an RSA-16384 jwk is
	// under 7 KB.
	MaxProofBytes = 8192
	maxJTIBytes   = 256
	// maxNonceBytes: a longer nonce is refused without a compare (ours
	// are 43 bytes).
	maxNonceBytes = 256
	maxDPoPMaxAge = time.Hour
)

// privateJWKMembers are JWK members that only private or secret keys carry
// (RFC 7518 §6.2.2, §6.3.2, §6.4.1).
var privateJWKMembers = [...]string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// Config configures DPoP proof checks. It is the gate's dpop_* options as
// its JSON holds them, in their JSON order: the gate embeds it (as
// verify.DPoPConfig) at their place and verify.Config holds it as DPoP,
// so the checker reads what the operator wrote. (dpop_nonce is the
// gate's: a NonceSource, see nonce.go.)
type Config struct {
	// Scheme and host a DPoP proof's htu is compared with, when a proxy in
	// front changes them (https://api.example.com). Default: as the gate sees the request
	PublicURL string `json:"dpop_public_url,omitempty"`

	// A DPoP proof's iat must be within this of now. Default: 60s
	MaxAge duration.Duration `json:"dpop_max_age,omitempty"`

	// DPoP proof algorithms, asymmetric only. Default: the asymmetric members of algorithms
	// (or jose.DefaultAlgorithms when it has none)
	ProofAlgorithms []string `json:"dpop_algorithms,omitempty"`

	// DPoP proofs remembered per process for replay detection (the
	// in-memory ReplayStore). Default: 100000
	ReplayCacheSize int `json:"dpop_replay_cache,omitempty"`
}

// SetDefaults fills zero fields; tokenAlgs is the token allow-list.
func (c *Config) SetDefaults(tokenAlgs []string) {
	if c.MaxAge == 0 {
		c.MaxAge = duration.Duration(DefaultMaxAge)
	}
	if len(c.ProofAlgorithms) == 0 {
		for _, a := range tokenAlgs {
			if info := jose.Algorithm(a); info != nil && info.Kind != jose.KindHMAC {
				c.ProofAlgorithms = append(c.ProofAlgorithms, a)
			}
		}
		if len(c.ProofAlgorithms) == 0 {
			c.ProofAlgorithms = append([]string(nil), jose.DefaultAlgorithms...)
		}
	}
	if c.ReplayCacheSize == 0 {
		c.ReplayCacheSize = DefaultReplaySize
	}
}

// Validate reports every problem, each prefixed with its option.
func (c Config) Validate() []error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if maxAge := time.Duration(c.MaxAge); maxAge < 0 || maxAge > maxDPoPMaxAge {
		add("dpop_max_age: %s is outside 1s..%s", maxAge, maxDPoPMaxAge)
	}
	for _, a := range c.ProofAlgorithms {
		switch info := jose.Algorithm(a); {
		case strings.EqualFold(a, "none"):
			add(`dpop_algorithms: "none" is never allowed`)
		case info == nil:
			add("dpop_algorithms: unknown algorithm %q (allowed: %s)", a, strings.Join(jose.AlgorithmNames(), " "))
		case info.Kind == jose.KindHMAC:
			add("dpop_algorithms: %s is symmetric; a DPoP proof needs an asymmetric algorithm", a)
		}
	}
	if c.ReplayCacheSize < 0 || c.ReplayCacheSize > maxReplaySize {
		add("dpop_replay_cache: %d is outside 1..%d", c.ReplayCacheSize, maxReplaySize)
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
