// Package rules holds tenantgate's route rules: parsing the Caddyfile `rule`
// line, compiling rules into a segment tree that keeps config order and denies
// by default, checking that a request path is canonical before any rule sees
// it, and the pure logic behind the `explain` and `coverage` commands.
//
// It does not import Caddy.
package rules

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/tenantgate/tenantgate/module/tenantid"
)

// Rule is one `rule METHODS PATTERN REQUIREMENT...` line; also the JSON config form.
type Rule struct {
	// Methods the rule applies to: ["*"] for every method, or upper-case
	// method names. GET also covers HEAD.
	Methods []string `json:"methods"`
	// Pattern is matched against the decoded, canonical path: literal
	// segments, {name} for exactly one non-empty segment, and a final **
	// for the rest (zero or more segments). A trailing slash is significant.
	Pattern string `json:"pattern"`
	// Public rules pass with no identity. Public stands alone.
	Public bool `json:"public,omitempty"`
	// Authenticated asks for any valid token that carries a tenant.
	Authenticated bool `json:"authenticated,omitempty"`
	// Roles: the token must hold at least one of them.
	Roles []string `json:"roles,omitempty"`
	// TenantParam names a {name} segment of Pattern that must equal the
	// token's tenant.
	TenantParam string `json:"tenant_param,omitempty"`
	// Tenants is an allow-list of tenants.
	Tenants []string `json:"tenants,omitempty"`
	// Line is the Caddyfile line the rule came from, for messages only.
	Line int `json:"line,omitempty"`

	// Set by the Caddyfile parser, for its messages only: the rule's
	// 1-based position among every rule line of the block (also lines that
	// failed to parse) and the file it came from (an imported file, maybe).
	Index int    `json:"-"`
	File  string `json:"-"`
}

// Requirement keywords of the Caddyfile form.
const (
	kwPublic        = "public"
	kwAuthenticated = "authenticated"
	kwRoles         = "roles"
	kwTenantParam   = "tenant_param"
	kwTenants       = "tenants"
)

func isKeyword(s string) bool {
	switch s {
	case kwPublic, kwAuthenticated, kwRoles, kwTenantParam, kwTenants:
		return true
	}
	return false
}

// ParseRule parses the arguments after the word `rule` (METHODS PATTERN
// REQUIREMENT...). It returns every problem it finds, joined; the Rule it
// returns alongside an error holds what could be parsed and must not be used.
//
// Requirement words: public | authenticated | roles R... | tenant_param NAME |
// tenants T... ; roles and tenants take every following argument up to the
// next requirement keyword. The errors carry no line prefix: the caller
// (the Caddyfile dispenser) knows the file and line.
func ParseRule(args []string, line int) (Rule, error) {
	r := Rule{Line: line}
	switch len(args) {
	case 0:
		return r, errors.New("rule needs METHODS PATTERN and at least one requirement")
	case 1:
		return r, fmt.Errorf("rule %q needs a PATTERN and at least one requirement", args[0])
	}

	var errs []error
	r.Methods = splitMethods(args[0])
	r.Pattern = args[1]

	seen := map[string]bool{}
	reqArgs := args[2:]
	for i := 0; i < len(reqArgs); {
		word := reqArgs[i]
		i++
		if !isKeyword(word) {
			errs = append(errs, fmt.Errorf("unknown requirement %q (want public, authenticated, roles, tenant_param or tenants)", word))
			// The words after it are its values (`rolez admin`): one
			// mistake, one error.
			for i < len(reqArgs) && !isKeyword(reqArgs[i]) {
				i++
			}
			continue
		}
		if seen[word] {
			errs = append(errs, fmt.Errorf("requirement %q given twice", word))
		}
		seen[word] = true
		// Values run to the next keyword.
		j := i
		for j < len(reqArgs) && !isKeyword(reqArgs[j]) {
			j++
		}
		switch word {
		case kwPublic:
			r.Public = true
		case kwAuthenticated:
			r.Authenticated = true
		case kwRoles:
			if j == i {
				errs = append(errs, errors.New("roles needs at least one role"))
			}
			r.Roles = append(r.Roles, reqArgs[i:j]...)
			i = j
		case kwTenants:
			if j == i {
				errs = append(errs, errors.New("tenants needs at least one tenant"))
			}
			r.Tenants = append(r.Tenants, reqArgs[i:j]...)
			i = j
		case kwTenantParam:
			if j == i {
				errs = append(errs, errors.New("tenant_param needs the name of a {name} segment"))
			} else {
				r.TenantParam = reqArgs[i]
				i++
			}
		}
	}

	// When requirement words were given but none took effect, the errors
	// above already say why; "missing requirement" would only add noise.
	_, checkErrs := checkRule(&r, len(reqArgs) == 0)
	errs = append(errs, checkErrs...)
	return r, errors.Join(errs...)
}

// splitMethods splits the METHODS argument ("GET,POST" or "*") and
// upper-cases each name. Empty names are kept so checkMethods reports them.
func splitMethods(s string) []string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		parts[i] = strings.ToUpper(p)
	}
	return parts
}

// String gives the canonical Caddyfile form, e.g.
// `GET /api/v1/x roles a b tenant_param t`: methods joined by commas, then
// requirements in the order public, authenticated, roles, tenant_param,
// tenants. ParseRule(strings.Fields(r.String()), r.Line) gives r back.
func (r Rule) String() string {
	var b strings.Builder
	b.WriteString(strings.Join(r.Methods, ","))
	b.WriteByte(' ')
	b.WriteString(r.Pattern)
	for _, req := range r.requirementWords() {
		b.WriteByte(' ')
		b.WriteString(req)
	}
	return b.String()
}

func (r Rule) requirementWords() []string {
	var w []string
	if r.Public {
		w = append(w, kwPublic)
	}
	if r.Authenticated {
		w = append(w, kwAuthenticated)
	}
	if len(r.Roles) > 0 {
		w = append(w, kwRoles)
		w = append(w, r.Roles...)
	}
	if r.TenantParam != "" {
		w = append(w, kwTenantParam, r.TenantParam)
	}
	if len(r.Tenants) > 0 {
		w = append(w, kwTenants)
		w = append(w, r.Tenants...)
	}
	return w
}

// hasRequirement reports whether the rule states any requirement at all.
func (r *Rule) hasRequirement() bool {
	return r.Public || r.Authenticated || len(r.Roles) > 0 || r.TenantParam != "" || len(r.Tenants) > 0
}

// compiledRule is a Rule checked and prepared for matching.
type compiledRule struct {
	segs      []segment
	params    []paramRef
	anyMethod bool
	methods   []string // effective set, sorted; GET brings HEAD
}

// paramRef locates a {name} segment: seg is its 0-based position among the
// path's segments.
type paramRef struct {
	name string
	seg  int
}

func (c *compiledRule) allows(method string) bool {
	if c.anyMethod {
		return true
	}
	for _, m := range c.methods {
		if m == method {
			return true
		}
	}
	return false
}

// checkRule validates one rule on its own (no cross-rule checks) and
// returns its compiled form. wantRequirement controls whether a rule with no
// requirement at all is reported.
func checkRule(r *Rule, wantRequirement bool) (compiledRule, []error) {
	var c compiledRule
	var errs []error

	var merrs []error
	c.anyMethod, c.methods, merrs = checkMethods(r.Methods)
	errs = append(errs, merrs...)

	segs, perrs := parsePattern(r.Pattern)
	c.segs = segs
	errs = append(errs, perrs...)
	for i, s := range segs {
		if s.kind == segParam {
			c.params = append(c.params, paramRef{name: s.text, seg: i})
		}
	}

	if !r.hasRequirement() {
		if wantRequirement {
			errs = append(errs, errors.New("missing requirement (public, authenticated, roles, tenant_param or tenants)"))
		}
	} else if r.Public && (r.Authenticated || len(r.Roles) > 0 || r.TenantParam != "" || len(r.Tenants) > 0) {
		errs = append(errs, errors.New("public cannot be combined with another requirement"))
	}
	for _, role := range r.Roles {
		switch {
		case role == "":
			errs = append(errs, errors.New("empty role name"))
		case strings.ContainsFunc(role, isSpaceOrControl):
			errs = append(errs, fmt.Errorf("role %q contains whitespace or a control character", role))
		}
	}
	for _, t := range r.Tenants {
		if !ValidTenant(t) {
			errs = append(errs, fmt.Errorf("tenant %q is not a valid tenant id ([A-Za-z0-9._-]{1,64})", t))
		}
	}
	if r.TenantParam != "" && perrs == nil {
		if !slices.ContainsFunc(c.params, func(p paramRef) bool { return p.name == r.TenantParam }) {
			errs = append(errs, fmt.Errorf("tenant_param %q names no {%s} segment of pattern %q", r.TenantParam, r.TenantParam, r.Pattern))
		}
	}
	return c, errs
}

func isSpaceOrControl(r rune) bool {
	return r <= ' ' || r == 0x7f || r == 0x85 || r == 0xa0 || r == 0x2028 || r == 0x2029
}

// ValidTenant reports whether s is a well-formed tenant id (the one grammar
// of package tenantid, shared with the verifier and the backend).
func ValidTenant(s string) bool { return tenantid.Valid(s) }

// checkMethods validates a method list and returns the effective set.
func checkMethods(methods []string) (anyMethod bool, effective []string, errs []error) {
	if len(methods) == 0 {
		return false, nil, []error{errors.New("no methods (want * or a comma list such as GET,POST)")}
	}
	seen := map[string]bool{}
	for _, m := range methods {
		switch {
		case m == "*":
			anyMethod = true
			if len(methods) > 1 {
				errs = append(errs, errors.New(`method "*" cannot be combined with other methods`))
			}
		case m == "":
			errs = append(errs, errors.New("empty method name in the method list"))
		case !isToken(m):
			errs = append(errs, fmt.Errorf("bad method %q: not an HTTP token", m))
		case seen[m]:
			errs = append(errs, fmt.Errorf("method %q listed twice", m))
		default:
			seen[m] = true
			effective = append(effective, m)
		}
	}
	if anyMethod {
		return true, nil, errs
	}
	if seen["GET"] && !seen["HEAD"] {
		effective = append(effective, "HEAD")
	}
	slices.Sort(effective)
	return false, effective, errs
}

// isToken reports whether s is an RFC 9110 token (the grammar of a method).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}
