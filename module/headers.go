package tenantgate

import (
	"io"
	"net/http"
	"strings"
)

// Identity headers the gate owns toward the upstream. Whatever a client sends
// under these names (in any spelling) is removed before the gate sets them.
const (
	HeaderTenantID  = "X-Tenant-ID"
	HeaderUserID    = "X-User-ID"
	HeaderUserRoles = "X-User-Roles"
	HeaderRequestID = "X-Request-ID"
)

// The same names in net/http's canonical form: Header.Get/Set/Del with a
// canonical name skip canonicalising it, an allocation per call otherwise.
var (
	keyTenantID  = http.CanonicalHeaderKey(HeaderTenantID)
	keyUserID    = http.CanonicalHeaderKey(HeaderUserID)
	keyUserRoles = http.CanonicalHeaderKey(HeaderUserRoles)
	keyRequestID = http.CanonicalHeaderKey(HeaderRequestID)
	keyAssertion = http.CanonicalHeaderKey("X-Tenant-Assertion")
)

var identityHeaders = []string{HeaderTenantID, HeaderUserID, HeaderUserRoles, "X-Tenant-Assertion"}

// ownedHeaders are the other headers only the gate (or a client_cert_from
// proxy) may set: the request id, the DPoP proof, and the client
// certificate of RFC 9440. They fold like the identity headers, so a
// Client_Cert or X_Request_ID cannot slip past to an upstream that folds
// '_' into '-'.
var ownedHeaders = []string{HeaderRequestID, headerDPoP, headerClientCert, headerClientCertChain}

// headerSet is the list of header names to strip: the identity and owned
// headers, then the configured extras. It stays a short slice:
// a linear scan of a handful of names beats hashing a normalised copy of
// every request header name, and allocates nothing.
type headerSet []string

func newHeaderSet(extra []string) headerSet {
	s := append(append(headerSet(nil), identityHeaders...), ownedHeaders...)
	for _, e := range extra {
		if e = strings.TrimSpace(e); e != "" && !s.has(e) {
			s = append(s, e)
		}
	}
	return s
}

// has reports whether name is one of the set's names in any spelling: any
// case, and '_' or '.' standing for '-'. Some servers and CGI-style
// frameworks fold those together, so X_Tenant_ID can reach an upstream as
// X-Tenant-ID.
func (s headerSet) has(name string) bool {
	for _, n := range s {
		if sameHeaderName(n, name) {
			return true
		}
	}
	return false
}

func sameHeaderName(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if foldHeaderByte(a[i]) != foldHeaderByte(b[i]) {
			return false
		}
	}
	return true
}

func foldHeaderByte(c byte) byte {
	switch {
	case 'A' <= c && c <= 'Z':
		return c + ('a' - 'A')
	case c == '_' || c == '.':
		return '-'
	}
	return c
}

// strip deletes every copy of every header in the set from h, and every
// Connection token naming one of them: Caddy's reverse_proxy deletes the
// headers a Connection header names after middleware ran, which would let
// a client remove the identity the gate sets.
func (s headerSet) strip(h http.Header) {
	for name := range h {
		if s.has(name) {
			delete(h, name)
		}
	}
	conn, ok := h["Connection"]
	if !ok {
		return
	}
	var kept []string
	changed := false
	for _, v := range conn {
		for _, tok := range strings.Split(v, ",") {
			tok = strings.TrimSpace(tok)
			if tok == "" {
				continue
			}
			if s.has(tok) {
				changed = true
				continue
			}
			kept = append(kept, tok)
		}
	}
	if !changed {
		return
	}
	if len(kept) == 0 {
		delete(h, "Connection")
		return
	}
	h["Connection"] = []string{strings.Join(kept, ", ")}
}

// trailerStripper strips identity headers from a request's trailers once its
// body has been read. net/http fills a declared trailer's values into the
// request's Trailer map only at the end of a chunked body, and reverse_proxy
// forwards that map after copying the body, so a strip before the body is
// read sees only empty names.
type trailerStripper struct {
	io.ReadCloser
	trailer http.Header
	set     headerSet
}

func (t *trailerStripper) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	if err != nil { // io.EOF, or a failure after which the trailers are not final either
		t.set.strip(t.trailer)
	}
	return n, err
}
