package rules

import (
	"fmt"
	"slices"
	"strings"
)

// Explain describes which rule decides METHOD PATH, for people: the rule
// index and line, its canonical text, the parameter values and what the rule
// requires; or that no rule matches (deny 403 no_route); or that the path is
// not canonical (deny 400 bad_path). path is what a client would send: the
// escaped path, optionally with a query, which is ignored as the gate ignores
// it. The method is taken as given, because the gate compares methods
// exactly.
func Explain(t *Table, method, path string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "request:  %s %s\n", method, path)
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
		fmt.Fprintf(&b, "path:     %s (the query is not part of rule matching)\n", path)
	}
	decoded, err := CheckPath(path)
	if err != nil {
		fmt.Fprintf(&b, "decision: deny 400 (bad_path): %v\n", err)
		b.WriteString("          the path is rejected before any rule is consulted\n")
		return b.String()
	}
	if decoded != path {
		fmt.Fprintf(&b, "decoded:  %s (rules match the decoded path)\n", decoded)
	}
	if !isToken(method) {
		fmt.Fprintf(&b, "note:     %q is not a valid HTTP method; the server would reject it\n", method)
	}

	m, ok := t.Match(method, decoded)
	if !ok {
		b.WriteString("decision: deny 403 (no_route): no rule matches this method and path\n")
		if up := strings.ToUpper(method); up != method {
			if _, ok := t.Match(up, decoded); ok {
				fmt.Fprintf(&b, "note:     methods are case-sensitive; %s would match\n", up)
			}
		}
		if t == nil || len(t.rules) == 0 {
			b.WriteString("note:     the table has no rules at all\n")
		}
		return b.String()
	}

	r := m.Rule
	fmt.Fprintf(&b, "rule:     %s: %s\n", ruleRef(m.Index, r), r.String())
	if method == "HEAD" && !t.compiled[m.Index].anyMethod && !slices.Contains(r.Methods, "HEAD") {
		b.WriteString("          (GET rules also cover HEAD)\n")
	}
	if len(m.params) > 0 {
		parts := make([]string, len(m.params))
		for i, p := range m.params {
			parts[i] = fmt.Sprintf("%s=%q", p.name, m.Param(p.name))
		}
		fmt.Fprintf(&b, "params:   %s\n", strings.Join(parts, " "))
	}
	if r.Public {
		b.WriteString("decision: allow (public): no token needed; client identity headers are still stripped\n")
		return b.String()
	}
	b.WriteString("requires: a valid bearer token (else 401) carrying a well-formed tenant (else 403 no_tenant)\n")
	if r.TenantParam != "" {
		fmt.Fprintf(&b, "          and the token's tenant equal to {%s}, here %q (else 403 tenant_mismatch)\n", r.TenantParam, m.Param(r.TenantParam))
	}
	if len(r.Tenants) > 0 {
		fmt.Fprintf(&b, "          and the tenant one of %s (else 403 tenant_not_allowed)\n", strings.Join(r.Tenants, ", "))
	}
	if len(r.Roles) > 0 {
		fmt.Fprintf(&b, "          and at least one role of %s (else 403 missing_role)\n", strings.Join(r.Roles, ", "))
	}
	b.WriteString("decision: allow when every requirement holds; checked in the order listed\n")
	return b.String()
}
