package dpop

import (
	"fmt"
	"net/url"
	"strings"
	"time"

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

// Config configures DPoP proof checks.
type Config struct {
	// A proof's iat must be within MaxAge of now. Default: 60s.
	MaxAge time.Duration
	// PublicURL, when set (https://api.example.com), gives the scheme and
	// host htu is compared with, for a gate behind a proxy that changes them.
	PublicURL string
	// Proof algorithms; asymmetric only. Default: the asymmetric members of
	// token allow-list, or jose.DefaultAlgorithms when it has none.
	Algorithms []string
	// Proofs remembered for replay detection, per process (the in-memory
	// ReplayStore). Default: 100000.
	ReplayCacheSize int
}

// SetDefaults fills zero fields; tokenAlgs is the token allow-list.
func (c *Config) SetDefaults(tokenAlgs []string) {
	if c.MaxAge == 0 {
		c.MaxAge = DefaultMaxAge
	}
	if len(c.Algorithms) == 0 {
		for _, a := range tokenAlgs {
			if info := jose.Algorithm(a); info != nil && info.Kind != jose.KindHMAC {
				c.Algorithms = append(c.Algorithms, a)
			}
		}
		if len(c.Algorithms) == 0 {
			c.Algorithms = append([]string(nil), jose.DefaultAlgorithms...)
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
	if c.MaxAge < 0 || c.MaxAge > maxDPoPMaxAge {
		add("dpop_max_age: %s is outside 1s..%s", c.MaxAge, maxDPoPMaxAge)
	}
	for _, a := range c.Algorithms {
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
