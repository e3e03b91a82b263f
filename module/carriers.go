package tenantgate

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/tenantgate/tenantgate/module/audit"
	"github.com/tenantgate/tenantgate/module/verify"
)

// The token carriers: where the gate finds the end user's token
// (Authorization header, else the configured cookie or query parameter),
// and how it makes sure that token never travels on to an upstream, on any
// route, public ones included.

// carrier says where a request's token came from.
type carrier uint8

const (
	fromHeader carrier = iota + 1 // Authorization
	fromCookie                    // token_cookie
	fromQuery                     // token_query
)

// credential is what a request carried to prove who it is, taken off the
// request by the exchange's begin: the token and how it came, the DPoP
// proofs, the client certificate a trusted proxy forwarded. When the
// carriers were unusable (no token, two Authorization headers, another
// scheme), reason and detail say why; decide reports them only on routes
// that need a token.
type credential struct {
	token  string
	scheme string // the Authorization scheme, "Bearer" or "DPoP"; "" for cookie and query
	from   carrier
	// dpop holds the request's DPoP header as verify reads it (the proofs).
	dpop http.Header
	// clientCert is the DER a client_cert_from peer put in Client-Cert (an
	// empty, non-nil slice when such a peer sent none or a broken one: the
	// peer's own TLS certificate never stands in); nil for other peers.
	clientCert []byte

	reason audit.Reason
	detail string

	// req and url are what the verifier is handed (verifyRequest): kept
	// here, inside the exchange's one allocation, not made per request.
	req verify.Request
	url url.URL
}

// tokenScheme reports whether an Authorization value carries an end-user
// token (scheme Bearer or DPoP, any case), and the scheme's canonical name.
func tokenScheme(value string) (scheme, token string, ok bool) {
	scheme, token, _ = strings.Cut(strings.TrimSpace(value), " ")
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		return "Bearer", strings.TrimSpace(token), true
	case strings.EqualFold(scheme, "DPoP"):
		// RFC 9449: the token with a proof in the DPoP header.
		return "DPoP", strings.TrimSpace(token), true
	}
	return "", "", false
}

// takeCredential takes every end-user token off r (Authorization values of
// scheme Bearer or DPoP, the token cookie, the token query parameter) and
// returns the one the request authenticates with. Authorization values of
// other schemes (Basic, ...) stay on the request as sent.
func (g *Gate) takeCredential(r *http.Request) credential {
	cookieTok, queryTok := g.takeTokenCookie(r), g.takeTokenQuery(r)
	var c credential
	values := r.Header["Authorization"]
	switch len(values) {
	case 0:
	case 1:
		scheme, tok, ok := tokenScheme(values[0])
		if !ok {
			c.reason, c.detail = audit.ReasonMissingToken, "send the token as Authorization: Bearer <token> (or Authorization: DPoP <token> with a DPoP proof header)"
			return c
		}
		delete(r.Header, "Authorization")
		if tok == "" {
			c.reason, c.detail = audit.ReasonMissingToken, "the Authorization header holds no token"
			return c
		}
		c.token, c.scheme, c.from = tok, scheme, fromHeader
		return c
	default:
		var kept []string
		for _, v := range values {
			if _, _, ok := tokenScheme(v); !ok {
				kept = append(kept, v)
			}
		}
		if len(kept) == 0 {
			delete(r.Header, "Authorization")
		} else {
			r.Header["Authorization"] = kept
		}
		c.reason, c.detail = audit.ReasonMalformedToken, "send exactly one Authorization header"
		return c
	}
	switch {
	case cookieTok != "":
		c.token, c.from = cookieTok, fromCookie
	case queryTok != "":
		c.token, c.from = queryTok, fromQuery
	default:
		c.reason, c.detail = audit.ReasonMissingToken, "send a bearer token in the Authorization header"
	}
	return c
}

// takeTokenCookie returns the value of the configured token cookie and
// removes every cookie of that name from the request; the other cookies are
// kept as sent.
func (g *Gate) takeTokenCookie(r *http.Request) string {
	if g.TokenCookie == "" || len(r.Header.Values("Cookie")) == 0 {
		return ""
	}
	var tok string
	if c, err := r.Cookie(g.TokenCookie); err == nil {
		tok = c.Value
	}
	var kept []string
	for _, line := range r.Header.Values("Cookie") {
		for _, part := range strings.Split(line, ";") {
			part = strings.TrimSpace(part)
			if name, _, _ := strings.Cut(part, "="); part == "" || strings.TrimSpace(name) == g.TokenCookie {
				continue
			}
			kept = append(kept, part)
		}
	}
	r.Header.Del("Cookie")
	if len(kept) > 0 {
		r.Header.Set("Cookie", strings.Join(kept, "; "))
	}
	return tok
}

// takeTokenQuery returns the configured token query parameter and removes
// every copy of it from the request's query.
func (g *Gate) takeTokenQuery(r *http.Request) string {
	if g.TokenQuery == "" || r.URL.RawQuery == "" {
		return ""
	}
	q := r.URL.Query()
	if _, ok := q[g.TokenQuery]; !ok {
		return ""
	}
	tok := q.Get(g.TokenQuery)
	q.Del(g.TokenQuery)
	r.URL.RawQuery = q.Encode()
	return tok
}
