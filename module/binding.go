package tenantgate

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/dunglas/httpsfv"
)

// Sender-constrained tokens, the Caddy side: the DPoP proof header and the
// client certificate a TLS-terminating proxy in front forwards (RFC 9440).
// The checks themselves live in module/verify (binding.go, dpop.go).

const (
	headerDPoP            = "DPoP"
	headerClientCert      = "Client-Cert"
	headerClientCertChain = "Client-Cert-Chain"
)

var (
	keyDPoP            = http.CanonicalHeaderKey(headerDPoP)
	keyClientCert      = http.CanonicalHeaderKey(headerClientCert)
	keyClientCertChain = http.CanonicalHeaderKey(headerClientCertChain)
)

// certPeers are the client_cert_from networks: the only immediate peers
// whose Client-Cert header is believed. Caddy's trusted_proxies is not
// enough: operators set it to get client IPs right, often to a whole load
// balancer range that passes any header a client sends.
type certPeers []netip.Prefix

// parseCertPeers reads client_cert_from values: CIDRs or single addresses;
// the error names every value it could not read.
func parseCertPeers(values []string) (certPeers, error) {
	var out certPeers
	var errs []error
	for _, v := range values {
		p, err := parsePrefix(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("client_cert_from %q: want a CIDR such as 10.0.0.0/8 or an IP address", v))
			continue
		}
		out = append(out, p)
	}
	return out, errors.Join(errs...)
}

func parsePrefix(v string) (netip.Prefix, error) {
	if strings.Contains(v, "/") {
		p, err := netip.ParsePrefix(v)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// trusts reports whether r's immediate peer (RemoteAddr, never
// X-Forwarded-For) is in one of the networks.
func (c certPeers) trusts(r *http.Request) bool {
	if len(c) == 0 {
		return false
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	a := ap.Addr().Unmap()
	for _, p := range c {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseClientCert reads an RFC 9440 Client-Cert value (an RFC 8941 byte
// sequence, :base64:). Anything but one certificate yields an empty,
// non-nil slice: it then matches no binding, and the TLS connection's own
// certificate (the proxy's) is never used in its place.
func parseClientCert(values []string) []byte {
	if len(values) == 0 {
		return []byte{}
	}
	item, err := httpsfv.UnmarshalItem(values)
	if err != nil {
		return []byte{}
	}
	der, ok := item.Value.([]byte)
	if !ok {
		return []byte{}
	}
	if _, err := x509.ParseCertificate(der); err != nil {
		return []byte{}
	}
	return der
}
