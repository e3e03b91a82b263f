package rules

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// Route is one line of a backend route list (what `backend routes`
// prints): `METHOD PATTERN`, optionally followed by `public`,
// `authenticated` or `roles R...`. PATTERN uses the rule syntax ({name}, a
// final **, a significant trailing slash). For copy-paste from Go's
// net/http patterns, ParseRoutes also takes a final {name...} (stored as
// **) and a final {$} (stored as a trailing slash). PublicByIntent marks a
// route meant to be reachable without a token; Roles are the roles the
// backend itself requires (any of), so coverage can refuse a gate rule
// that would let through a caller the backend refuses.
type Route struct {
	Method, Pattern string
	PublicByIntent  bool
	Roles           []string
	Line            int
}

func (r Route) String() string {
	s := r.Method + " " + r.Pattern
	if r.PublicByIntent {
		s += " public"
	}
	if len(r.Roles) > 0 {
		s += " roles " + strings.Join(r.Roles, " ")
	}
	return s
}

// ParseRoutes reads a route list: one `METHOD PATTERN [public |
// authenticated | roles R...]` per line;
// blank lines and comments (from a "#" at the start of a line or after
// whitespace) are skipped. METHOD is an HTTP method (upper-cased) or "*".
// Every bad line is reported, prefixed `line N: `.
func ParseRoutes(r io.Reader) ([]Route, error) {
	var routes []Route
	var errs []error
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		text := sc.Text()
		if i := strings.Index(text, "#"); i == 0 || i > 0 && (text[i-1] == ' ' || text[i-1] == '\t') {
			text = text[:i]
		}
		f := strings.Fields(text)
		if len(f) == 0 {
			continue
		}
		if len(f) < 2 {
			errs = append(errs, fmt.Errorf("line %d: want METHOD PATTERN [public | authenticated | roles R...], got %q", n, strings.TrimSpace(text)))
			continue
		}
		rt := Route{Method: strings.ToUpper(f[0]), Pattern: fromGoPattern(f[1]), Line: n}
		if err := parseRouteRequirement(&rt, f[2:]); err != nil {
			errs = append(errs, fmt.Errorf("line %d: %w", n, err))
			continue
		}
		if rt.Method != "*" && !isToken(rt.Method) {
			errs = append(errs, fmt.Errorf("line %d: bad method %q: not an HTTP token", n, f[0]))
			continue
		}
		if _, perrs := parsePattern(rt.Pattern); perrs != nil {
			for _, e := range perrs {
				errs = append(errs, fmt.Errorf("line %d: %w", n, e))
			}
			continue
		}
		routes = append(routes, rt)
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("reading routes: %w", err))
	}
	return routes, errors.Join(errs...)
}

// parseRouteRequirement reads what follows the pattern of a route line.
func parseRouteRequirement(rt *Route, words []string) error {
	if len(words) == 0 {
		return nil
	}
	switch words[0] {
	case kwPublic, kwAuthenticated:
		if len(words) > 1 {
			return fmt.Errorf("%q stands alone, found %q after it", words[0], words[1:])
		}
		rt.PublicByIntent = words[0] == kwPublic
	case kwRoles:
		if len(words) == 1 {
			return errors.New(`"roles" needs at least one role`)
		}
		rt.Roles = append([]string(nil), words[1:]...)
	default:
		return fmt.Errorf("unknown word %q after the pattern (want public, authenticated or roles R...)", words[0])
	}
	return nil
}

// fromGoPattern turns net/http's final {name...} into ** and a final {$}
// into a trailing slash; anything else is left for parsePattern to judge.
func fromGoPattern(p string) string {
	if strings.HasSuffix(p, "/{$}") {
		return strings.TrimSuffix(p, "{$}")
	}
	i := strings.LastIndexByte(p, '/')
	if last := p[i+1:]; strings.HasPrefix(last, "{") && strings.HasSuffix(last, "...}") && isParamName(last[1:len(last)-4]) {
		return p[:i+1] + "**"
	}
	return p
}

// CoverageLine reports, for one route, the first rule that decides every
// request to it. RuleIndex is -1 and Rule nil when there is none. Problem is
// empty when the line is fine.
type CoverageLine struct {
	Route     Route
	RuleIndex int
	Rule      *Rule
	Problem   string
}

// Coverage reports, for each route, the first rule (in config order) whose
// methods and pattern take every request to the route, i.e. the rule that
// decides it. A {x} segment of a route is covered only by a rule segment that
// takes any value ({name} or **), not by a literal that matches one value.
// ok=false when any route is covered by no rule, or is covered by a public
// rule without being listed as public.
func Coverage(t *Table, routes []Route) (lines []CoverageLine, ok bool) {
	ok = true
	for _, rt := range routes {
		line := coverOne(t, rt)
		if line.Problem != "" {
			ok = false
		}
		lines = append(lines, line)
	}
	return lines, ok
}

func coverOne(t *Table, rt Route) CoverageLine {
	line := CoverageLine{Route: rt, RuleIndex: -1}
	segs, perrs := parsePattern(rt.Pattern)
	if perrs != nil {
		line.Problem = errors.Join(perrs...).Error()
		return line
	}
	if t == nil {
		line.Problem = "not covered: no rules (deny no_route)"
		return line
	}
	allows := func(i int) bool {
		c := &t.compiled[i]
		if rt.Method == "*" {
			return c.anyMethod
		}
		return c.allows(rt.Method)
	}
	for _, i := range t.covering(segs) {
		if !allows(i) {
			continue
		}
		line.RuleIndex, line.Rule = i, &t.rules[i]
		if line.Rule.Public && !rt.PublicByIntent {
			line.Problem = fmt.Sprintf("covered only by public %s, but the route is not listed as public", ruleRef(i, line.Rule))
			return line
		}
		line.Problem = looserThanBackend(line.Rule, i, rt.Roles)
		return line
	}
	line.Problem = "not covered: no rule takes every request to this route (deny no_route)"
	for i, c := range t.compiled {
		if allows(i) && intersects(c.segs, segs) {
			line.Problem += fmt.Sprintf("; %s matches only some of them (a literal where the route has a {param}?)", ruleRef(i, &t.rules[i]))
			break
		}
	}
	return line
}

// looserThanBackend says how rule r would admit a caller whom the backend,
// needing one of backendRoles, refuses: a rule that asks for no role, or
// for a role the backend does not accept. "" when the rule is at least as
// strict (every role it admits is one the backend accepts).
func looserThanBackend(r *Rule, i int, backendRoles []string) string {
	if len(backendRoles) == 0 {
		return ""
	}
	need := strings.Join(backendRoles, " ")
	if len(r.Roles) == 0 {
		return fmt.Sprintf("%s admits callers without a role, but the backend needs one of [%s]: the rule should say roles %s", ruleRef(i, r), need, need)
	}
	var extra []string
	for _, role := range r.Roles {
		if !slices.Contains(backendRoles, role) {
			extra = append(extra, role)
		}
	}
	if len(extra) > 0 {
		return fmt.Sprintf("%s admits role(s) %s that the backend refuses (it needs one of [%s])", ruleRef(i, r), strings.Join(extra, " "), need)
	}
	return ""
}

// intersects reports whether some path matches both patterns.
func intersects(a, b []segment) bool {
	for ; len(a) > 0 && len(b) > 0; a, b = a[1:], b[1:] {
		x, y := a[0], b[0]
		switch {
		case x.kind == segRest || y.kind == segRest:
			return true
		case x.kind == segLiteral && y.kind == segLiteral:
			if x.text != y.text {
				return false
			}
		case x.kind == segLiteral && x.text == "", y.kind == segLiteral && y.text == "":
			return false // {param} never matches the empty trailing segment
		}
	}
	return len(a) == len(b) || len(a) > 0 && a[0].kind == segRest || len(b) > 0 && b[0].kind == segRest
}

// FormatCoverage writes lines as an aligned table followed by a summary.
func FormatCoverage(w io.Writer, lines []CoverageLine) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROUTE\tRULE\tREQUIRES\tRESULT")
	problems := 0
	for _, l := range lines {
		rule, requires := "-", "-"
		if l.Rule != nil {
			rule = ruleRef(l.RuleIndex, l.Rule)
			requires = strings.Join(l.Rule.requirementWords(), " ")
		}
		result := "ok"
		switch {
		case l.Problem != "":
			problems++
			result = "PROBLEM: " + l.Problem
		case l.Rule != nil && l.Rule.Public:
			result = "ok (public by intent)"
		case l.Route.PublicByIntent:
			result = "ok (listed as public, but the rule asks for a token)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", l.Route.String(), rule, requires, result)
	}
	_ = tw.Flush() // errors of w surface on the next write, which the caller sees
	fmt.Fprintf(w, "\n%d routes, %d covered without problems, %d with problems\n", len(lines), len(lines)-problems, problems)
}
