package tenantgate

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
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
	// issuerOpts[i] is where each option of g.Issuers[i] was written.
	issuerOpts []map[string]caddyfile.Token
	// valueAt is where a value of a list option (client_cert_from) was
	// written, by option and value, when lines of that option repeat.
	valueAt map[string]caddyfile.Token
	rules   []caddyfile.Token // g.Rules[i] was written at rules[i]
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

// values notes the line each value of a list option was written on.
func (p *parseState) values(at caddyfile.Token, vals []string) {
	if p.valueAt == nil {
		p.valueAt = map[string]caddyfile.Token{}
	}
	for _, v := range vals {
		if _, seen := p.valueAt[at.Text+"\x00"+v]; !seen {
			p.valueAt[at.Text+"\x00"+v] = at
		}
	}
}

// checkConfig runs the config's checks on the options just read: the
// gate's (checkOptions, which Validate runs) and the verifier's
// (Config.Validate, which Provision's verify.New runs). The parser itself
// checks no value; it places each problem these find at the line of its
// issuer or option, so `none` in algorithms, a short hmac_secret or `mode
// shadow` is named with its line together with every parse problem.
func (p *parseState) checkConfig(g *Gate) {
	errs := g.checkOptions()
	if err := g.verifySettings(adaptTimeSecret).Validate(); err != nil {
		errs = append(errs, splitErrors(err)...)
	}
	for _, e := range errs {
		var ie *verify.IssuerError
		switch {
		case errors.As(e, &ie) && ie.Index < len(p.issuers):
			if p.unread[ie.Index] && ie.Option == "" {
				// A line of this issuer could not be read; it may be the
				// one meant to set what is missing: no knock-on errors.
				// A bad value of a line that was read is no knock-on.
				continue
			}
			at := p.issuers[ie.Index]
			if opt, ok := p.issuerOpts[ie.Index][ie.Option]; ok && ie.Option != "" {
				at = opt
			}
			p.addAt(at, errAt(at, e))
		case strings.HasPrefix(e.Error(), "issuers:"):
			// No issuer at all has no line to name; Provision reports it
			// (a block may be a fragment, e.g. in an imported snippet).
			continue
		default:
			at := p.optionAt(e.Error())
			p.addAt(at, errAt(at, e))
		}
	}
}

// optionAt is the line of the option a problem's message starts with
// (`algorithms: ...`, `mode "shadow": ...`): the line holding the value
// it quotes when the option was written on several lines, else its first
// line, else the directive's.
func (p *parseState) optionAt(msg string) caddyfile.Token {
	opt := msg
	if i := strings.IndexAny(msg, " :"); i >= 0 {
		opt = msg[:i]
	}
	if rest, ok := strings.CutPrefix(msg, opt+" "); ok && strings.HasPrefix(rest, `"`) {
		if v, err := strconv.QuotedPrefix(rest); err == nil {
			if uq, err := strconv.Unquote(v); err == nil {
				if at, ok := p.valueAt[opt+"\x00"+uq]; ok {
					return at
				}
			}
		}
	}
	if at, ok := p.options[opt]; ok {
		return at
	}
	return p.directive
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
