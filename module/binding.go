package tenantgate

import (
	"crypto/x509"
	"net/http"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
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

// fromTrustedProxy reports whether the immediate peer is one of the
// server's trusted_proxies (Caddy decided that when it prepared the request).
func fromTrustedProxy(r *http.Request) bool {
	trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool)
	return trusted
}

// stripUntrustedClientCert deletes Client-Cert and Client-Cert-Chain unless
// a trusted proxy sent them: anyone else could name any certificate, and
// neither the gate nor the upstream may believe it.
func stripUntrustedClientCert(r *http.Request) {
	if !fromTrustedProxy(r) {
		r.Header.Del(headerClientCert)
		r.Header.Del(headerClientCertChain)
	}
}

// forwardedClientCert returns the DER of the certificate a trusted proxy put
// in Client-Cert (an RFC 8941 byte sequence, :base64:), nil when there is
// none. A header that is present but not one certificate yields an empty,
// non-nil slice: it then matches no binding, and the TLS connection's own
// certificate (the proxy's) is not used in its place.
func forwardedClientCert(r *http.Request) []byte {
	values := r.Header.Values(headerClientCert)
	if len(values) == 0 || !fromTrustedProxy(r) {
		return nil
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
