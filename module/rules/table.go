package rules

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/tenantgate/tenantgate/module/audit"
)

// Table is a compiled, immutable rule set. It is safe for concurrent use.
//
// Rules live in a segment tree: each node has a map of literal children, at
// most one {param} child, the rules whose pattern ends there and the rules
// whose final "**" starts there. Matching walks the tree once along the path
// and keeps the lowest rule index that matches, so the first rule in config
// order wins while the cost depends on the path's depth, not on the number of
// rules. Every tree node sits at a fixed depth and the path has one segment
// per depth, so a walk visits each node at most once.
type Table struct {
	rules    []Rule
	compiled []compiledRule
	root     *node
}

type node struct {
	literals map[string]*node
	param    *node
	end      []int // rules whose pattern ends at this node, ascending
	rest     []int // rules with a final "**" at this node, ascending
	min      int   // lowest rule index anywhere in this subtree, for pruning
}

func newNode() *node { return &node{min: math.MaxInt} }

// Compile checks all rules and builds the matcher. err joins every problem,
// each prefixed `rule N (line L): ` (N is the 1-based index; "(line L)" is
// left out when Line is 0). warnings name rules that can never match because
// earlier rules match every request they would, in the same prefix style.
// On error the Table is nil.
//
// Two rules are duplicates when their effective methods (GET brings HEAD)
// are equal and their patterns match the same paths, which ignores parameter
// names: `GET /a/{x}` and `GET /a/{y}` are duplicates.
//
// Methods are upper-cased; the rules Table.Rules returns are these
// normalized copies.
func Compile(rules []Rule) (t *Table, warnings []string, err error) {
	t = &Table{
		rules:    make([]Rule, len(rules)),
		compiled: make([]compiledRule, len(rules)),
		root:     newNode(),
	}
	var errs []error
	for i, r := range rules {
		r.Methods = slices.Clone(r.Methods)
		for k, m := range r.Methods {
			r.Methods[k] = strings.ToUpper(m)
		}
		r.Roles = slices.Clone(r.Roles)
		r.Tenants = slices.Clone(r.Tenants)
		t.rules[i] = r

		c, cerrs := checkRule(&t.rules[i], true)
		for _, e := range cerrs {
			errs = append(errs, &RuleError{Rule: i, Ref: ruleRef(i, &t.rules[i]), Err: e})
		}
		if len(cerrs) > 0 {
			continue
		}
		t.compiled[i] = c
		if dup, ok := t.insert(i); !ok {
			errs = append(errs, &RuleError{Rule: i, Ref: ruleRef(i, &t.rules[i]), Err: fmt.Errorf("duplicate of %s: same methods and pattern", ruleRef(dup, &t.rules[dup]))})
		}
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	if len(rules) == 0 {
		warnings = append(warnings, "no rules: every request is denied (no_route)")
	}
	for j := range t.rules {
		if by := t.shadowedBy(j); len(by) > 0 {
			refs := make([]string, len(by))
			for k, i := range by {
				refs[k] = fmt.Sprintf("%s %q", ruleRef(i, &t.rules[i]), t.rules[i].String())
			}
			verb := "comes first and matches"
			if len(by) > 1 {
				verb = "come first and match"
			}
			warnings = append(warnings, fmt.Sprintf("%s%q can never match: %s %s every request it would",
				ruleRef(j, &t.rules[j])+": ", t.rules[j].String(), strings.Join(refs, " and "), verb))
		}
	}
	return t, warnings, nil
}

// RuleError is a problem Compile found with one rule: Rule is its index in
// the slice given to Compile, Ref how messages name it.
type RuleError struct {
	Rule int
	Ref  string
	Err  error
}

func (e *RuleError) Error() string { return e.Ref + ": " + e.Err.Error() }
func (e *RuleError) Unwrap() error { return e.Err }

// ruleRef names rule r, at index i of the table: "rule N (line L)", or
// "rule N (FILE:L)" when the Caddyfile parser recorded the file, with N
// the rule's own position in the Caddyfile when it recorded that.
func ruleRef(i int, r *Rule) string {
	n := i + 1
	if r.Index > 0 {
		n = r.Index
	}
	switch {
	case r.File != "" && r.Line > 0:
		return fmt.Sprintf("rule %d (%s:%d)", n, r.File, r.Line)
	case r.Line > 0:
		return fmt.Sprintf("rule %d (line %d)", n, r.Line)
	}
	return fmt.Sprintf("rule %d", n)
}

// insert adds rule idx to the tree. It fails, naming the earlier rule, when
// a rule with the same methods and the same pattern shape is already there.
func (t *Table) insert(idx int) (dup int, ok bool) {
	c := &t.compiled[idx]
	n := t.root
	n.min = min(n.min, idx)
	for _, s := range c.segs {
		switch s.kind {
		case segRest:
			// "**" is always last: handled below.
		case segParam:
			if n.param == nil {
				n.param = newNode()
			}
			n = n.param
		case segLiteral:
			if n.literals == nil {
				n.literals = map[string]*node{}
			}
			child := n.literals[s.text]
			if child == nil {
				child = newNode()
				n.literals[s.text] = child
			}
			n = child
		}
		n.min = min(n.min, idx)
	}
	list := &n.end
	if len(c.segs) > 0 && c.segs[len(c.segs)-1].kind == segRest {
		list = &n.rest
	}
	for _, other := range *list {
		o := &t.compiled[other]
		if o.anyMethod == c.anyMethod && slices.Equal(o.methods, c.methods) {
			return other, false
		}
	}
	*list = append(*list, idx)
	return 0, true
}

// Rules returns the compiled rules in config order (a copy of the slice).
func (t *Table) Rules() []Rule {
	if t == nil {
		return nil
	}
	return slices.Clone(t.rules)
}

// Match is the rule that decides a request, with access to the values of its
// {name} segments.
type Match struct {
	Index int   // 0-based index into Table.Rules; -1 when nothing matched
	Rule  *Rule // the deciding rule; nil when nothing matched

	path   string     // the matched path; parameters are read from it lazily
	params []paramRef // shared with the compiled rule, read-only
}

// Match returns the first rule (in config order) whose methods and pattern
// match. path is the decoded, canonical path from CheckPath. ok=false means
// no rule matches: deny (no_route). Match does not allocate.
func (t *Table) Match(method, path string) (m Match, ok bool) {
	if t == nil || path == "" || path[0] != '/' {
		return Match{Index: -1}, false
	}
	best := t.walk(t.root, method, path, 1, math.MaxInt)
	if best == math.MaxInt {
		return Match{Index: -1}, false
	}
	return Match{Index: best, Rule: &t.rules[best], path: path, params: t.compiled[best].params}, true
}

// walk explores the subtree n for the path segments starting at byte i
// (i > len(path) once every segment is consumed) and returns the lowest
// matching rule index below best, or best.
func (t *Table) walk(n *node, method, path string, i, best int) int {
	if n.min >= best {
		return best
	}
	best = t.firstAllowing(n.rest, method, best)
	if i > len(path) {
		return t.firstAllowing(n.end, method, best)
	}
	j := strings.IndexByte(path[i:], '/')
	if j < 0 {
		j = len(path)
	} else {
		j += i
	}
	seg := path[i:j]
	if child := n.literals[seg]; child != nil {
		best = t.walk(child, method, path, j+1, best)
	}
	if n.param != nil && seg != "" {
		best = t.walk(n.param, method, path, j+1, best)
	}
	return best
}

// firstAllowing returns the first index in the ascending list that is below
// best and allows method, or best.
func (t *Table) firstAllowing(list []int, method string, best int) int {
	for _, idx := range list {
		if idx >= best {
			break
		}
		if t.compiled[idx].allows(method) {
			return idx
		}
	}
	return best
}

// Param returns the value of the {name} segment in the matched path, or ""
// when the rule has no such segment. It does not allocate.
func (m Match) Param(name string) string {
	for _, p := range m.params {
		if p.name == name {
			v, _ := nthSegment(m.path, p.seg)
			return v
		}
	}
	return ""
}

// Authorize checks the rule's requirements for an authenticated caller whose
// tenant the gate has already validated. When several requirements fail it
// reports, in this order: tenant_mismatch (a cross-tenant attempt is the most
// telling signal for the audit trail), tenant_not_allowed, missing_role.
//
// Defensive answers outside the usual four: a zero Match (no rule) gives
// no_route, and an empty tenant on a non-public rule gives no_tenant, so a
// caller bug can only deny. A public rule requires nothing and gives ok.
func (m Match) Authorize(tenant string, roles []string) audit.Reason {
	r := m.Rule
	switch {
	case r == nil:
		return audit.ReasonNoRoute
	case r.Public:
		return audit.ReasonOK
	case tenant == "":
		return audit.ReasonNoTenant
	}
	if r.TenantParam != "" && m.Param(r.TenantParam) != tenant {
		return audit.ReasonTenantMismatch
	}
	if len(r.Tenants) > 0 && !slices.Contains(r.Tenants, tenant) {
		return audit.ReasonTenantNotAllow
	}
	if len(r.Roles) > 0 && !slices.ContainsFunc(roles, func(have string) bool { return slices.Contains(r.Roles, have) }) {
		return audit.ReasonMissingRole
	}
	return audit.ReasonOK
}

// covering returns, ascending, the rules whose pattern matches every path
// that q matches (methods aside). A {name} in q is covered only by {name} or
// "**", never by a literal.
func (t *Table) covering(q []segment) []int {
	var out []int
	var walk func(n *node, q []segment)
	walk = func(n *node, q []segment) {
		out = append(out, n.rest...)
		if len(q) == 0 {
			out = append(out, n.end...)
			return
		}
		switch s := q[0]; s.kind {
		case segRest:
			// Only a "**" covers a "**"; collected above.
		case segParam:
			if n.param != nil {
				walk(n.param, q[1:])
			}
		case segLiteral:
			if child := n.literals[s.text]; child != nil {
				walk(child, q[1:])
			}
			if s.text != "" && n.param != nil {
				walk(n.param, q[1:])
			}
		}
	}
	walk(t.root, q)
	slices.Sort(out)
	return out
}

// shadowedBy returns the earlier rules that together take every request rule
// j would match, or nil when j can match something. It reasons per method
// over rules whose pattern alone covers j's; a pattern covered only by a union
// of narrower patterns is not detected.
func (t *Table) shadowedBy(j int) []int {
	cj := &t.compiled[j]
	var earlier []int
	for _, i := range t.covering(cj.segs) {
		if i < j {
			earlier = append(earlier, i)
		}
	}
	if len(earlier) == 0 {
		return nil
	}
	if cj.anyMethod {
		for _, i := range earlier {
			if t.compiled[i].anyMethod {
				return []int{i}
			}
		}
		return nil
	}
	var by []int
	for _, m := range cj.methods {
		k := slices.IndexFunc(earlier, func(i int) bool { return t.compiled[i].allows(m) })
		if k < 0 {
			return nil
		}
		if !slices.Contains(by, earlier[k]) {
			by = append(by, earlier[k])
		}
	}
	slices.Sort(by)
	return by
}
