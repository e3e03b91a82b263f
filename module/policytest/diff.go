package policytest

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/tenantgate/tenantgate/module/rules"
)

// Gate is what diff compares of one tenant_gate handler.
type Gate struct {
	// Label names the handler in a config: its site and position. Handlers
	// of two configs with the same label are compared.
	Label   string
	Mode    string
	Issuers map[string][]string // issuer -> audiences
	Table   *rules.Table
}

// Change is one difference in access.
type Change struct {
	Widens  bool
	Method  string // "" for a gate-wide change (mode, issuer, audience)
	Pattern string
	Text    string
}

// GateDiff lists the changes of one handler.
type GateDiff struct {
	Label   string
	Changes []Change
}

// Diff compares the handlers of two configs, pairing them by label. A
// handler only in the old config widens (its routes are no longer checked);
// one only in the new narrows.
func Diff(oldGates, newGates []Gate) []GateDiff {
	byLabel := map[string]*Gate{}
	for i := range newGates {
		byLabel[newGates[i].Label] = &newGates[i]
	}
	var out []GateDiff
	seen := map[string]bool{}
	for i := range oldGates {
		o := &oldGates[i]
		seen[o.Label] = true
		n := byLabel[o.Label]
		if n == nil {
			out = append(out, GateDiff{Label: o.Label, Changes: []Change{{Widens: true, Text: "tenant_gate removed: the routes it guarded are no longer checked"}}})
			continue
		}
		if ch := diffGate(o, n); len(ch) > 0 {
			out = append(out, GateDiff{Label: o.Label, Changes: ch})
		}
	}
	for i := range newGates {
		if !seen[newGates[i].Label] {
			out = append(out, GateDiff{Label: newGates[i].Label, Changes: []Change{{Text: "tenant_gate added"}}})
		}
	}
	return out
}

func diffGate(o, n *Gate) []Change {
	var out []Change
	if o.Mode != n.Mode {
		// report lets every request through: leaving enforce widens.
		out = append(out, Change{Widens: n.Mode != "enforce", Text: fmt.Sprintf("mode %s -> %s", o.Mode, n.Mode)})
	}
	for _, iss := range sortedUnion(slices.Collect(maps.Keys(o.Issuers)), slices.Collect(maps.Keys(n.Issuers))) {
		oa, inOld := o.Issuers[iss]
		na, inNew := n.Issuers[iss]
		switch {
		case !inOld:
			out = append(out, Change{Widens: true, Text: fmt.Sprintf("issuer %s added (audience %s)", iss, strings.Join(na, " "))})
		case !inNew:
			out = append(out, Change{Text: fmt.Sprintf("issuer %s removed", iss)})
		default:
			if add := minus(na, oa); len(add) > 0 {
				out = append(out, Change{Widens: true, Text: fmt.Sprintf("issuer %s: audience added: %s", iss, strings.Join(add, " "))})
			}
			if rm := minus(oa, na); len(rm) > 0 {
				out = append(out, Change{Text: fmt.Sprintf("issuer %s: audience removed: %s", iss, strings.Join(rm, " "))})
			}
		}
	}
	return append(out, diffRules(o.Table, n.Table)...)
}

// key is one method and one pattern shape ({name} segments unnamed).
type key struct {
	method, shape string
}

// diffRules compares the two tables at every method and pattern either of
// them names: the rule that decides a representative request of that
// pattern in each table, compared by its requirements. Two spellings of
// one rule (method order, GET,HEAD, parameter names, role order) compare
// equal because the requests and requirements do.
func diffRules(ot, nt *rules.Table) []Change {
	patterns := map[key]string{}
	var keys []key
	for _, t := range []*rules.Table{nt, ot} {
		for _, r := range t.Rules() {
			shape := shapeOf(r.Pattern)
			for _, m := range effectiveMethods(r.Methods) {
				k := key{m, shape}
				if _, ok := patterns[k]; !ok {
					patterns[k] = r.Pattern
					keys = append(keys, k)
				}
			}
		}
	}
	slices.SortFunc(keys, func(a, b key) int {
		return cmp.Or(cmp.Compare(patterns[a], patterns[b]), cmp.Compare(a.method, b.method))
	})
	var out []Change
	for _, k := range keys {
		method, path := sample(k)
		before, after := accessOf(ot, method, path), accessOf(nt, method, path)
		for _, c := range compare(before, after) {
			c.Method, c.Pattern = k.method, patterns[k]
			out = append(out, c)
		}
	}
	// GET brings HEAD: say it once.
	return slices.DeleteFunc(out, func(c Change) bool {
		return c.Method == "HEAD" && slices.ContainsFunc(out, func(g Change) bool {
			return g.Method == "GET" && g.Pattern == c.Pattern && g.Text == c.Text && g.Widens == c.Widens
		})
	})
}

// anyMethod stands for a method no rule names, which only * rules take.
const anyMethod = "\x00ANY"

func effectiveMethods(ms []string) []string {
	var out []string
	for _, m := range ms {
		m = strings.ToUpper(m)
		if m == "*" {
			return []string{"*"}
		}
		out = append(out, m)
		if m == "GET" && !slices.Contains(ms, "HEAD") {
			out = append(out, "HEAD")
		}
	}
	return out
}

// shapeOf is the pattern with its parameter names left out.
func shapeOf(pattern string) string {
	segs := strings.Split(pattern, "/")
	for i, s := range segs {
		if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
			segs[i] = "{}"
		}
	}
	return strings.Join(segs, "/")
}

// sample is a request that the key's pattern matches and no literal of
// another pattern does: parameters and "**" get a value no path carries.
func sample(k key) (method, path string) {
	method = k.method
	if method == "*" {
		method = anyMethod
	}
	segs := strings.Split(k.shape, "/")
	for i, s := range segs {
		switch s {
		case "{}":
			segs[i] = "\x00param"
		case "**":
			segs[i] = "\x00rest"
		}
	}
	return method, strings.Join(segs, "/")
}

// access is what a table asks of one request.
type access struct {
	reachable     bool
	public        bool
	roles         []string
	tenants       []string
	tenantParamAt int // segment index of tenant_param, -1 for none
	rule          *rules.Rule
}

func accessOf(t *rules.Table, method, path string) access {
	m, ok := t.Match(method, path)
	if !ok {
		return access{tenantParamAt: -1}
	}
	r := m.Rule
	a := access{reachable: true, public: r.Public, tenantParamAt: -1, rule: r}
	a.roles = sortedUnion(r.Roles, nil)
	a.tenants = sortedUnion(r.Tenants, nil)
	if r.TenantParam != "" {
		a.tenantParamAt = slices.Index(strings.Split(r.Pattern, "/"), "{"+r.TenantParam+"}")
	}
	return a
}

func ruleText(r *rules.Rule) string {
	s := fmt.Sprintf("%q", "rule "+r.String())
	if r.Line > 0 {
		s += fmt.Sprintf(" (line %d)", r.Line)
	}
	return s
}

// requirement describes access in the words of a rule.
func (a access) requirement() string {
	switch {
	case !a.reachable:
		return "no rule (denied)"
	case a.public:
		return "public"
	}
	var w []string
	if len(a.roles) > 0 {
		w = append(w, "roles "+strings.Join(a.roles, " "))
	}
	if a.tenantParamAt >= 0 {
		w = append(w, "tenant_param")
	}
	if len(a.tenants) > 0 {
		w = append(w, "tenants "+strings.Join(a.tenants, " "))
	}
	if len(w) == 0 {
		return "authenticated"
	}
	return strings.Join(w, " ")
}

// compare lists how access changed from o to n.
func compare(o, n access) []Change {
	widen := func(f string, a ...any) Change { return Change{Widens: true, Text: fmt.Sprintf(f, a...)} }
	narrow := func(f string, a ...any) Change { return Change{Text: fmt.Sprintf(f, a...)} }
	switch {
	case !o.reachable && !n.reachable:
		return nil
	case !o.reachable:
		return []Change{widen("newly reachable: %s, by %s", n.requirement(), ruleText(n.rule))}
	case !n.reachable:
		return []Change{narrow("no longer reachable (was %s)", o.requirement())}
	case o.public && n.public:
		return nil
	case n.public:
		return []Change{widen("public replaces %s, by %s", o.requirement(), ruleText(n.rule))}
	case o.public:
		return []Change{narrow("%s replaces public", n.requirement())}
	}
	var out []Change
	out = append(out, compareList("role", o.roles, n.roles, "authenticated")...)
	out = append(out, compareList("tenant", o.tenants, n.tenants, "any tenant")...)
	switch {
	case o.tenantParamAt >= 0 && n.tenantParamAt < 0:
		out = append(out, widen("tenant_param removed: any tenant's path is open to the caller"))
	case o.tenantParamAt < 0 && n.tenantParamAt >= 0:
		out = append(out, narrow("tenant_param added"))
	case o.tenantParamAt != n.tenantParamAt:
		out = append(out, widen("tenant_param moved from segment %d to %d", o.tenantParamAt, n.tenantParamAt))
	}
	for i := range out {
		if out[i].Widens {
			out[i].Text += ", by " + ruleText(n.rule)
		}
	}
	return out
}

// compareList compares an any-of list (roles, tenants); empty means no
// such requirement, which admits more than any list.
func compareList(what string, o, n []string, none string) []Change {
	switch {
	case len(o) == 0 && len(n) == 0:
		return nil
	case len(n) == 0:
		return []Change{{Widens: true, Text: fmt.Sprintf("%s replaces %ss %s", none, what, strings.Join(o, " "))}}
	case len(o) == 0:
		return []Change{{Text: fmt.Sprintf("%ss %s now required", what, strings.Join(n, " "))}}
	}
	var out []Change
	if add := minus(n, o); len(add) > 0 {
		out = append(out, Change{Widens: true, Text: fmt.Sprintf("%s added to the any-of list: %s", what, strings.Join(add, " "))})
	}
	if rm := minus(o, n); len(rm) > 0 {
		out = append(out, Change{Text: fmt.Sprintf("%s removed from the any-of list: %s", what, strings.Join(rm, " "))})
	}
	return out
}

func minus(a, b []string) []string {
	var out []string
	for _, s := range a {
		if !slices.Contains(b, s) && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

func sortedUnion(a, b []string) []string {
	out := slices.Concat(a, b)
	slices.Sort(out)
	return slices.Compact(out)
}

// WriteDiff prints the changes, widening first within each handler, and
// returns how many widen and narrow.
func WriteDiff(w io.Writer, diffs []GateDiff) (widens, narrows int) {
	for _, d := range diffs {
		fmt.Fprintf(w, "%s:\n", d.Label)
		for _, wide := range []bool{true, false} {
			for _, c := range d.Changes {
				if c.Widens != wide {
					continue
				}
				word := "narrows"
				if wide {
					word = "WIDENS "
					widens++
				} else {
					narrows++
				}
				if c.Method == "" {
					fmt.Fprintf(w, "  %s %s\n", word, c.Text)
				} else {
					fmt.Fprintf(w, "  %s %s %s: %s\n", word, c.Method, c.Pattern, c.Text)
				}
			}
		}
	}
	fmt.Fprintf(w, "%d widening, %d narrowing\n", widens, narrows)
	return widens, narrows
}
