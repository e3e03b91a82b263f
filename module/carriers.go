package tenantgate

import (
	"net/http"
	"strings"

	"github.com/tenantgate/tenantgate/module/audit"
)

// The token carriers: where the gate finds the end user's token
// (Authorization header, else the configured cookie or query parameter),
// and how it makes sure that token never travels on to the upstream.

// carrier says where a request's token came from.
type carrier uint8

const (
	fromHeader carrier = iota + 1 // Authorization
	fromCookie                    // token_cookie
	fromQuery                     // token_query
)

// credential is the token a request carried, and how.
type credential struct {
	token  string
	scheme string // the Authorization scheme, "Bearer" or "DPoP"; "" for cookie and query
	from   carrier
}

// bearerToken finds the token: the Authorization header, else the
// configured cookie or query parameter (already taken off the request by
// decide). It removes the header it used, so the end user's token never
// travels on to the upstream.
func (g *Gate) bearerToken(r *http.Request, cookieTok, queryTok string) (credential, audit.Reason, string) {
	switch values := r.Header.Values("Authorization"); len(values) {
	case 0:
	case 1:
		scheme, tok, _ := strings.Cut(strings.TrimSpace(values[0]), " ")
		switch {
		case strings.EqualFold(scheme, "Bearer"):
			scheme = "Bearer"
		case strings.EqualFold(scheme, "DPoP"):
			// RFC 9449: the token with a proof in the DPoP header.
			scheme = "DPoP"
		default:
			return credential{}, audit.ReasonMissingToken, "send the token as Authorization: Bearer <token> (or Authorization: DPoP <token> with a DPoP proof header)"
		}
		tok = strings.TrimSpace(tok)
		if tok == "" {
			return credential{}, audit.ReasonMissingToken, "the Authorization header holds no token"
		}
		r.Header.Del("Authorization")
		return credential{token: tok, scheme: scheme, from: fromHeader}, "", ""
	default:
		return credential{}, audit.ReasonMalformedToken, "send exactly one Authorization header"
	}
	if cookieTok != "" {
		return credential{token: cookieTok, from: fromCookie}, "", ""
	}
	if queryTok != "" {
		return credential{token: queryTok, from: fromQuery}, "", ""
	}
	return credential{}, audit.ReasonMissingToken, "send a bearer token in the Authorization header"
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
