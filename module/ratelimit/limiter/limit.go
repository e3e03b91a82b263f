// Package limiter is the pure logic of tenant_rate_limit: the `limit` line
// and its rate syntax, the set of limits a request matches (in the route
// rule pattern syntax of package rules), the per-tenant stores (a bounded
// in-process one on golang.org/x/time/rate and a shared one on Redis
// through github.com/go-redis/redis_rate), and the IETF RateLimit header
// values. It does not import Caddy.
package limiter

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tenantgate/tenantgate/module/rules"
)

// Limit is one `limit METHODS PATTERN RATE [burst N]` line; also the JSON
// config form.
type Limit struct {
	// Methods the limit counts: ["*"] or upper-case method names (GET also covers HEAD).
	Methods []string `json:"methods"`
	// Pattern in the route rule syntax: literal segments, {name}, a final **.
	Pattern string `json:"pattern"`
	// Rate is N/s, N/m, N/h or N/d: the sustained number of requests per tenant.
	Rate string `json:"rate"`
	// Burst is how many requests may come at once. Default: N of the rate.
	Burst int `json:"burst,omitempty"`
	// Line is the Caddyfile line the limit came from, for messages only.
	Line int `json:"line,omitempty"`
}

// ParseRate reads N/s, N/m, N/h or N/d (N a positive integer).
func ParseRate(s string) (n int, period time.Duration, err error) {
	num, unit, ok := strings.Cut(s, "/")
	bad := fmt.Errorf("bad rate %q: want N/s, N/m, N/h or N/d with N a positive integer, e.g. 100/s", s)
	if !ok {
		return 0, 0, bad
	}
	n, err = strconv.Atoi(num)
	if err != nil || n < 1 || num[0] == '+' {
		return 0, 0, bad
	}
	switch unit {
	case "s":
		period = time.Second
	case "m":
		period = time.Minute
	case "h":
		period = time.Hour
	case "d":
		period = 24 * time.Hour
	default:
		return 0, 0, bad
	}
	return n, period, nil
}

// ParseLimit parses the arguments after the word `limit`:
// METHODS PATTERN RATE [burst N]. It reports every problem it finds, joined,
// without a line prefix (the Caddyfile dispenser adds it).
func ParseLimit(args []string, line int) (Limit, error) {
	l := Limit{Line: line}
	if len(args) < 3 {
		return l, errors.New("limit needs METHODS PATTERN RATE [burst N], e.g. limit * /** 100/s burst 200")
	}
	l.Methods = strings.Split(args[0], ",")
	l.Pattern, l.Rate = args[1], args[2]
	var errs []error
	switch rest := args[3:]; {
	case len(rest) == 0:
	case len(rest) == 2 && rest[0] == "burst":
		b, err := strconv.Atoi(rest[1])
		if err != nil || b < 1 {
			errs = append(errs, fmt.Errorf("burst %q: want an integer of at least 1", rest[1]))
		} else {
			l.Burst = b
		}
	default:
		errs = append(errs, fmt.Errorf("unexpected %q after the rate: the only option is burst N", strings.Join(rest, " ")))
	}
	if _, err := l.compile(); err != nil {
		errs = append(errs, err)
	}
	return l, errors.Join(errs...)
}

// Policy is a Limit checked and ready for matching and counting.
type Policy struct {
	Limit
	// N requests per Period, Burst at once (Burst defaulted).
	N      int
	Period time.Duration
	Burst  int
	// ID names the limit in headers: "METHODS PATTERN".
	ID string
	// Index is the limit's position in its Set.
	Index int
	// Key identifies the limit's counters in a shared store. It is derived
	// from the limit itself, so every replica with the same line shares the
	// same counters and a changed rate starts fresh ones.
	Key   string
	table *rules.Table
	// the policy's RateLimit-Policy member and the quoted ID, made once
	policyItem, quotedID string
}

// compile checks one limit on its own.
func (l Limit) compile() (*Policy, error) {
	var errs []error
	p := &Policy{Limit: l}
	n, period, err := ParseRate(l.Rate)
	if err != nil {
		errs = append(errs, err)
	}
	p.N, p.Period = n, period
	switch {
	case l.Burst < 0:
		errs = append(errs, fmt.Errorf("burst %d: want an integer of at least 1", l.Burst))
	case l.Burst == 0:
		p.Burst = n
	default:
		p.Burst = l.Burst
	}
	// The route rule syntax and matcher, with a requirement word that only
	// makes the rule well-formed: limits do not authorize.
	rule, err := rules.ParseRule([]string{strings.Join(l.Methods, ","), l.Pattern, "authenticated"}, l.Line)
	if err != nil {
		errs = append(errs, err)
	} else if p.table, _, err = rules.Compile([]rules.Rule{rule}); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	p.ID = strings.Join(rule.Methods, ",") + " " + l.Pattern
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s %d/%s burst %d", p.ID, p.N, p.Period, p.Burst)))
	p.Key = hex.EncodeToString(sum[:6])
	p.quotedID = sfString(p.ID)
	window := time.Duration(p.Burst) * p.Period / time.Duration(p.N)
	p.policyItem = p.quotedID + ";q=" + strconv.Itoa(p.Burst) + ";w=" + strconv.FormatInt(CeilSeconds(window), 10)
	return p, nil
}

// String gives the limit in its Caddyfile form, burst included.
func (p *Policy) String() string {
	return fmt.Sprintf("%s %s burst %d", p.ID, p.Rate, p.Burst)
}

// Matches reports whether the limit counts method and path (the decoded,
// canonical path from rules.CheckPath).
func (p *Policy) Matches(method, path string) bool {
	_, ok := p.table.Match(method, path)
	return ok
}

// Set is the compiled limits of one handler, in config order.
type Set struct {
	Policies []*Policy
}

// Compile checks every limit and reports every problem, each prefixed
// `limit N (line L): `. Two limits with the same methods, pattern, rate
// and burst are refused: they would count every request twice on one counter.
func Compile(limits []Limit) (*Set, error) {
	s := &Set{}
	var errs []error
	seen := map[string]int{}
	for i, l := range limits {
		p, err := l.compile()
		prefix := limitRef(i, l.Line) + ": "
		if err != nil {
			errs = append(errs, PrefixAll(prefix, err))
			continue
		}
		if j, dup := seen[p.Key]; dup {
			errs = append(errs, fmt.Errorf("%sduplicate of %s", prefix, limitRef(j, limits[j].Line)))
			continue
		}
		seen[p.Key] = i
		p.Index = len(s.Policies)
		s.Policies = append(s.Policies, p)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

// Match appends to dst the limits that count method and path, in config
// order.
func (s *Set) Match(method, path string, dst []*Policy) []*Policy {
	for _, p := range s.Policies {
		if p.Matches(method, path) {
			dst = append(dst, p)
		}
	}
	return dst
}

func limitRef(i, line int) string {
	if line > 0 {
		return fmt.Sprintf("limit %d (line %d)", i+1, line)
	}
	return fmt.Sprintf("limit %d", i+1)
}

// PrefixAll puts prefix in front of every error joined in err.
func PrefixAll(prefix string, err error) error {
	var joined interface{ Unwrap() []error }
	if errors.As(err, &joined) {
		var out []error
		for _, e := range joined.Unwrap() {
			out = append(out, PrefixAll(prefix, e))
		}
		return errors.Join(out...)
	}
	return fmt.Errorf("%s%w", prefix, err)
}
