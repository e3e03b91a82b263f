package tenantgate

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	ruleset "github.com/tenantgate/tenantgate/module/rules"
	"github.com/tenantgate/tenantgate/module/verify"
)

// parseState is what the Caddyfile parser knows and the JSON does not:
// where each issuer, rule and option was written. It lives only while one
// tenant_gate block is adapted, so every problem, including those the
// verifier's own checks find, is reported at its file and line.
type parseState struct {
	directive caddyfile.Token            // the tenant_gate word
	options   map[string]caddyfile.Token // first line of each option
	issuers   []caddyfile.Token          // g.Issuers[i] was written at issuers[i]
	rules     []caddyfile.Token          // g.Rules[i] was written at rules[i]
	// order numbers tokens in the order they were read (imported lines
	// where they are imported), to list problems in that order.
	order     map[tokenKey]int
	unread    map[int]bool // issuers with a line the parser could not read
	ruleLines int          // rule lines seen, parsed or not
	problems  []problem
}

// problem is one error and the token it is about, to list them in the
// order of the file.
type problem struct {
	at  caddyfile.Token
	err error
}

func (p *parseState) addAt(at caddyfile.Token, err error) {
	p.problems = append(p.problems, problem{at, err})
}

// tokenKey names a token (Token itself holds a slice: no map key).
type tokenKey struct {
	file string
	line int
	text string
}

func keyOf(t caddyfile.Token) tokenKey { return tokenKey{t.File, t.Line, t.Text} }

// read notes that tok was read now.
func (p *parseState) read(tok caddyfile.Token) {
	if _, ok := p.order[keyOf(tok)]; !ok {
		p.order[keyOf(tok)] = len(p.order) + 1
	}
}

// errors returns every problem in the order its line was read, joined.
func (p *parseState) errors() error {
	sort.SliceStable(p.problems, func(i, j int) bool {
		return p.order[keyOf(p.problems[i].at)] < p.order[keyOf(p.problems[j].at)]
	})
	errs := make([]error, len(p.problems))
	for i, pr := range p.problems {
		errs[i] = pr.err
	}
	if len(errs) > 1 {
		// Caddy prints "...tokens for 'tenant_gate': " before the error:
		// a count there puts every problem on a line of its own.
		return fmt.Errorf("%d problems:\n%w", len(errs), errors.Join(errs...))
	}
	return errors.Join(errs...)
}

// rule reads one rule line; a bad rule is reported and left out.
func (p *parseState) rule(g *Gate, d *caddyfile.Dispenser, at caddyfile.Token) {
	p.ruleLines++
	r, err := ruleset.ParseRule(d.RemainingArgs(), at.Line)
	if err != nil {
		for _, e := range splitErrors(err) {
			p.addAt(at, errAt(at, fmt.Errorf("rule %d: %w", p.ruleLines, e)))
		}
		return
	}
	r.Index, r.File = p.ruleLines, at.File
	g.Rules = append(g.Rules, r)
	p.rules = append(p.rules, at)
}

// compileRules reports what Compile finds (duplicates, bad patterns) at
// each rule's own position.
func (p *parseState) compileRules(g *Gate) {
	_, _, err := ruleset.Compile(g.Rules)
	if err == nil {
		return
	}
	for _, e := range splitErrors(err) {
		at := p.directive
		var re *ruleset.RuleError
		if errors.As(e, &re) && re.Rule < len(p.rules) {
			at = p.rules[re.Rule]
			e = errAt(at, fmt.Errorf("rule %d: %w", g.Rules[re.Rule].Index, re.Err))
		}
		p.addAt(at, e)
	}
}

// checkVerify runs the verifier's checks (the same Config.Validate that
// Provision's verify.New runs on JSON configs) on the options just read,
// and places each problem at the line of its issuer or option, so `none`
// in algorithms or a short hmac_secret is named with its line together
// with every parse problem.
func (p *parseState) checkVerify(g *Gate) {
	err := g.verifySettings(adaptTimeSecret).Validate()
	if err == nil {
		return
	}
	for _, e := range splitErrors(err) {
		var ie *verify.IssuerError
		switch {
		case errors.As(e, &ie) && ie.Index < len(p.issuers):
			if p.unread[ie.Index] {
				// A line of this issuer could not be read; it may be the
				// one meant to set what is missing: no knock-on errors.
				continue
			}
			p.addAt(p.issuers[ie.Index], errAt(p.issuers[ie.Index], e))
		case strings.HasPrefix(e.Error(), "issuers:"):
			// No issuer at all has no line to name; Provision reports it
			// (a block may be a fragment, e.g. in an imported snippet).
			continue
		default:
			opt, _, _ := strings.Cut(e.Error(), ":")
			at, ok := p.options[opt]
			if !ok {
				at = p.directive
			}
			p.addAt(at, errAt(at, e))
		}
	}
}

// adaptTimeSecret stands in for an HMAC secret while adapting: a
// placeholder ({env.NAME}, {file.PATH}) is resolved only where the config
// runs, so it counts as a secret of full length here and Provision checks
// what it resolves to.
func adaptTimeSecret(s string) string {
	if strings.Contains(s, "{") {
		return strings.Repeat("x", 64)
	}
	return s
}

// skipLine passes over the rest of a line the parser could not use, and
// over its block if it opens one, so the next line is read as a new option.
func skipLine(d *caddyfile.Dispenser) {
	d.RemainingArgs()
	for nesting := d.Nesting(); d.NextBlock(nesting); {
	}
}

// splitErrors undoes errors.Join, so each problem gets its own position.
func splitErrors(err error) []error {
	var joined interface{ Unwrap() []error }
	if errors.As(err, &joined) {
		return joined.Unwrap()
	}
	return []error{err}
}

// errAt adds the file and line of tok to err exactly as the dispenser's own
// errors do (with the import chain when tok came from an imported file),
// for problems found after the dispenser moved on.
func errAt(tok caddyfile.Token, err error) error {
	d := caddyfile.NewDispenser([]caddyfile.Token{tok})
	d.Next()
	return d.WrapErr(err)
}
