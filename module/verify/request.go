package verify

import (
	"crypto/tls"
	"net/http"
	"net/url"
)

// Request is what Verify needs to know of the HTTP request that carried a
// token. Only Token is required; the rest lets checks that bind a token to
// its request (proofs of possession, client certificates) see it.
type Request struct {
	// Token is the compact JWS, as the carrier (header, cookie, query) held it.
	Token string
	// Scheme is the Authorization scheme the token came with ("Bearer",
	// "DPoP"), or "" when it came from a cookie or query parameter.
	Scheme string
	// Method and URL are the request as the gate sees it; URL is absolute
	// (scheme and host included) and carries no query or fragment.
	Method string
	URL    *url.URL
	// Header holds the request's headers (after the gate stripped identity
	// headers).
	Header http.Header
	// TLS is the connection state when the request came over TLS.
	TLS *tls.ConnectionState
	// ClientAddr is the client's IP address as the server resolved it
	// (behind trusted proxies, the forwarded one). A token naming a tenant
	// of a multi-tenant issuer whose keys the process does not hold spends
	// this address's share of the new-tenant budget, so one client cannot
	// spend everyone's. Empty: every such request shares one share.
	ClientAddr string
	// ClientCert is the DER client certificate a trusted proxy in front
	// forwarded (RFC 9440 Client-Cert), nil otherwise. When set it is the
	// client's certificate for certificate-bound tokens, in place of TLS's.
	ClientCert []byte
}

// Bearer is a Request holding only a token sent as Authorization: Bearer.
func Bearer(token string) *Request { return &Request{Token: token, Scheme: "Bearer"} }
