package rules

import (
	"net/url"
	"path"
	"slices"
	"strings"
	"testing"
)

func FuzzCheckPath(f *testing.F) {
	for _, s := range []string{
		"/", "/a", "/a/", "/a//b", "/a/../b", "/a/%2e%2e/b", "/a/.%2E/", "/a%2Fb", "/a%5cb", "/a%00",
		"/a;b", "/%41%20b", "/caf%C3%A9", "/a%ff", "/a%", "/a%25/b", "a", "", "/a\\b", "/a/./",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		d, err := CheckPath(p)
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("CheckPath(%q): empty error text", p)
			}
			return
		}
		if !strings.HasPrefix(d, "/") {
			t.Fatalf("CheckPath(%q) = %q: no leading slash", p, d)
		}
		// Canonical: cleaning changes nothing but the one allowed trailing slash.
		if d != "/" && path.Clean(d) != strings.TrimSuffix(d, "/") {
			t.Fatalf("CheckPath(%q) = %q, but path.Clean gives %q", p, d, path.Clean(d))
		}
		if strings.ContainsAny(d, ";\\\x00") || strings.ContainsFunc(d, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Fatalf("CheckPath(%q) = %q holds a forbidden character", p, d)
		}
		// Escaping the decoded path again and re-checking is stable.
		esc := (&url.URL{Path: d}).EscapedPath()
		d2, err := CheckPath(esc)
		if err != nil || d2 != d {
			t.Fatalf("re-check of %q (from %q, escaped %q) = %q, %v", d, p, esc, d2, err)
		}
		// Without escapes the path is returned as is.
		if !strings.Contains(p, "%") && d != p {
			t.Fatalf("CheckPath(%q) = %q, want it unchanged", p, d)
		}
	})
}

// naiveMatch is the reference matcher: a linear scan in config order.
func naiveMatch(rules []Rule, method, p string) (int, map[string]string) {
	if !strings.HasPrefix(p, "/") {
		return -1, nil
	}
	segs := strings.Split(p[1:], "/")
	for i, r := range rules {
		if !slices.Contains(r.Methods, "*") && !slices.Contains(r.Methods, method) &&
			!(method == "HEAD" && slices.Contains(r.Methods, "GET")) {
			continue
		}
		params := map[string]string{}
		if naiveSegs(strings.Split(r.Pattern[1:], "/"), segs, params) {
			return i, params
		}
	}
	return -1, nil
}

func naiveSegs(pat, segs []string, params map[string]string) bool {
	for k, ps := range pat {
		if ps == "**" {
			return true
		}
		if k >= len(segs) {
			return false
		}
		if strings.HasPrefix(ps, "{") {
			if segs[k] == "" {
				return false
			}
			params[ps[1:len(ps)-1]] = segs[k]
		} else if ps != segs[k] {
			return false
		}
	}
	return len(pat) == len(segs)
}

func FuzzMatch(f *testing.F) {
	design := strings.Join(designRules, "\n")
	f.Add(design, "POST", "/api/v1/ensemble/e1/predict")
	f.Add(design, "HEAD", "/api/v1/hedging")
	f.Add(design, "GET", "/api/v1/ensemble/")
	f.Add("GET /a/{x}/b authenticated\nGET /a/** public\nGET /a/c/{y} roles r", "GET", "/a/c/b")
	f.Add("* /** public", "X", "/")
	f.Add("GET / public\nGET /{a}/ roles r\nPOST /{a}/{b} authenticated", "POST", "/x/")
	f.Fuzz(func(t *testing.T, rulesText, method, p string) {
		var rules []Rule
		for i, line := range strings.Split(rulesText, "\n") {
			if len(rules) == 32 {
				break
			}
			if r, err := ParseRule(strings.Fields(line), i+1); err == nil {
				rules = append(rules, r)
			}
		}
		tab, _, err := Compile(rules)
		if err != nil {
			return // e.g. duplicates; Compile must not panic on them
		}
		check := func(p string) {
			m, ok := tab.Match(method, p)
			want, params := naiveMatch(tab.Rules(), method, p)
			if !ok {
				if want != -1 {
					t.Fatalf("%s %q: tree matched nothing, reference matched rule %d %q", method, p, want+1, rules[want].String())
				}
				return
			}
			if m.Index != want {
				t.Fatalf("%s %q: tree matched rule %d, reference %d", method, p, m.Index+1, want+1)
			}
			for k, v := range params {
				if got := m.Param(k); got != v {
					t.Fatalf("%s %q: Param(%q) = %q, want %q", method, p, k, got, v)
				}
			}
			_ = m.Authorize("acme", []string{"r"})
		}
		check(p) // raw input: both matchers see the same segments
		if d, err := CheckPath(p); err == nil {
			check(d)
		}
		_ = Explain(tab, method, p)
	})
}
