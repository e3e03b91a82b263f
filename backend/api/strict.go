package api

import (
	"errors"
	"fmt"
	"math"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Input the backend refuses although a lenient parser would take it: each
// would let two readers of one request (the gate, a log, this backend)
// disagree about what it says.

// checkContentEncoding refuses a body labelled with any coding but
// identity: the backend decodes none, and storing "gzip" bytes as JSON (or
// reading a plain body labelled gzip) means reading something other than
// what was sent. 415 with Accept-Encoding: identity (RFC 7694).
func checkContentEncoding(w http.ResponseWriter, r *http.Request) bool {
	for _, v := range r.Header.Values("Content-Encoding") {
		for _, coding := range strings.Split(v, ",") {
			if c := strings.TrimSpace(coding); c != "" && !strings.EqualFold(c, "identity") {
				w.Header().Set("Accept-Encoding", "identity")
				writeProblem(w, r, http.StatusUnsupportedMediaType, "unsupported-media-type",
					fmt.Sprintf("Content-Encoding %q is not supported: send the JSON body uncompressed (identity)", c))
				return false
			}
		}
	}
	return true
}

// jsonMediaType reports whether contentType is application/json or an
// application/*+json type (RFC 6839), and refuses a charset other than
// UTF-8: JSON exchanged between systems is UTF-8 (RFC 8259 §8.1), and a
// body labelled utf-16 but read as UTF-8 is not what the sender meant.
func jsonMediaType(contentType string) error {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || !(mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")) {
		return fmt.Errorf("the request body must be JSON sent with Content-Type: application/json (or another +json type), got %q", contentType)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return fmt.Errorf("the request body must be UTF-8 JSON; Content-Type names charset %q (send charset=utf-8 or none)", cs)
	}
	return nil
}

// strictQuery refuses a query string that is malformed or names a
// parameter twice (limit=1&limit=2): which one counts would depend on the
// reader.
func strictQuery(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.RawQuery == "" {
			next.ServeHTTP(w, r)
			return
		}
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			writeProblem(w, r, http.StatusBadRequest, "validation", "the query string is malformed: "+err.Error())
			return
		}
		var twice []string
		for k, vs := range q {
			if len(vs) > 1 {
				twice = append(twice, k)
			}
		}
		if len(twice) > 0 {
			sort.Strings(twice)
			writeProblem(w, r, http.StatusBadRequest, "validation",
				fmt.Sprintf("query parameter %s is given more than once; give each parameter once", strings.Join(twice, ", ")))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// decimalSyntax is JSON's number grammar: no hex (0x1p-2), no "Inf" or
// "NaN", no leading '+', no leading zeros, no '_' separators.
var decimalSyntax = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)

// integerSyntax is an integer as JSON writes it (no '+', no leading zeros).
var integerSyntax = regexp.MustCompile(`^-?(0|[1-9][0-9]*)$`)

// smallestNormal is the smallest positive normal float64; below it a
// decimal loses precision (subnormal) or becomes 0.
const smallestNormal = 2.2250738585072014e-308

// parseDecimal parses a number written as JSON writes numbers and refuses
// one that a float64 cannot hold: too large (1e400), or so small it would
// silently become 0 or lose its precision (1e-400).
func parseDecimal(s string) (float64, error) {
	if !decimalSyntax.MatchString(s) {
		return 0, fmt.Errorf("%q is not a decimal number (digits, optional fraction and exponent; no hex, Inf or NaN)", s)
	}
	f, err := strconv.ParseFloat(s, 64)
	if errors.Is(err, strconv.ErrRange) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%s is too large for a number here", s)
	}
	if err != nil {
		return 0, fmt.Errorf("%q is not a number: %w", s, err)
	}
	if math.Abs(f) < smallestNormal && strings.ContainsAny(mantissa(s), "123456789") {
		return 0, fmt.Errorf("%s is too small to hold (it would become 0 or lose precision); use 0 or a larger value", s)
	}
	return f, nil
}

// mantissa is s without its exponent.
func mantissa(s string) string {
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		return s[:i]
	}
	return s
}
