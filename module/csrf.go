package tenantgate

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// A token in a cookie travels with every request the browser makes to the
// gate's site, also with a form another site posts. So a request that came
// with the cookie token and an unsafe method must show that the page which
// sent it is ours: Sec-Fetch-Site same-origin (or none: typed by the user),
// or an Origin listed in allowed_origins. Bearer tokens in the Authorization
// header need no such check: a browser never adds them by itself.

// safeMethod is a method that must not change state (RFC 9110 §9.2.1).
func safeMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// crossSiteCookieRequest reports why a cookie-token request may have been
// forged by another site; "" when it may pass.
func (g *Gate) crossSiteCookieRequest(r *http.Request) string {
	if safeMethod(r.Method) {
		return ""
	}
	switch strings.ToLower(r.Header.Get("Sec-Fetch-Site")) {
	case "same-origin", "none":
		return ""
	}
	origin := r.Header.Get("Origin")
	if _, ok := g.origins[strings.ToLower(origin)]; ok && origin != "" {
		return ""
	}
	what := "without Sec-Fetch-Site or Origin"
	if origin != "" || r.Header.Get("Sec-Fetch-Site") != "" {
		what = "from another site"
	}
	return "a " + r.Method + " request with the token cookie came " + what +
		"; send the token in the Authorization header, or list the page's origin in allowed_origins"
}

// checkOrigin accepts an origin as browsers send it: scheme://host[:port],
// with no path, query or trailing slash.
func checkOrigin(o string) error {
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" ||
		u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("%q is not an origin; write scheme://host[:port], e.g. https://app.example.com", o)
	}
	return nil
}
