// Package policytest holds the pure parts of `caddy tenant-gate test` and
// `caddy tenant-gate diff`: reading case files, judging an outcome against a
// case, the text and JUnit reports, and comparing two compiled rule tables.
//
// It does not import Caddy: the commands in package tenantgate drive the
// real gate and hand the outcomes here.
package policytest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Expected decisions, the words of the audit record's decision field.
const (
	ExpectAllow     = "allow"
	ExpectDeny      = "deny"
	ExpectPublic    = "public"
	ExpectWouldDeny = "would_deny"
)

// Case is one decision case of a case file.
type Case struct {
	// Name shows in the report; default "METHOD PATH".
	Name string `yaml:"name"`
	// Method and Path of the request; Path may carry a query.
	Method string `yaml:"method"`
	Path   string `yaml:"path"`
	// Headers sent with the request. An Authorization given here replaces the
	// token made from Claims.
	Headers map[string]string `yaml:"headers"`
	// Claims of the token the command signs; nil: no token. iss, aud, iat and
	// exp default to a valid token of the first issuer; a claim set to null
	// is left out.
	Claims map[string]any `yaml:"claims"`
	// Expect is the decision: allow, deny, public or would_deny.
	Expect string `yaml:"expect"`
	// Reason (the audit reason word) and Status are checked when given.
	Reason string `yaml:"reason"`
	Status int    `yaml:"status"`

	// Where the case stands, for messages.
	File string `yaml:"-"`
	Line int    `yaml:"-"`
}

// Where names the case's file and line.
func (c *Case) Where() string { return fmt.Sprintf("%s:%d", c.File, c.Line) }

// caseFile is the document's shape; decoding it with KnownFields rejects
// unknown keys at every level that has a type.
type caseFile struct {
	Cases []Case `yaml:"cases"`
}

// InputError is a broken case file: the commands exit 2 on it.
type InputError struct {
	File string
	Line int
	Msg  string
}

func (e *InputError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// ReadFile reads and checks one case file.
func ReadFile(path string) ([]Case, error) {
	data, err := os.ReadFile(path) // #nosec G304 -- a file the operator names
	if err != nil {
		return nil, &InputError{File: path, Msg: err.Error()}
	}
	return Parse(path, data)
}

// yamlLine finds yaml.v3's "line N: " prefixes to turn them into FILE:N.
var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// Parse reads the cases of one file; name is used in messages. Every
// problem is an *InputError (several are joined) naming file:line.
func Parse(name string, data []byte) ([]Case, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, yamlError(name, err)
	}
	if root.Kind != yaml.DocumentNode || len(root.Content) == 0 {
		return nil, &InputError{File: name, Line: 1, Msg: "empty file: want a mapping with a `cases` list"}
	}
	doc := root.Content[0]
	if doc.Kind != yaml.MappingNode {
		return nil, &InputError{File: name, Line: doc.Line, Msg: "not a mapping: want `cases:` with a list of cases"}
	}
	var list *yaml.Node
	for i := 0; i+1 < len(doc.Content); i += 2 {
		if doc.Content[i].Value == "cases" {
			list = doc.Content[i+1]
		}
	}
	if list == nil {
		return nil, &InputError{File: name, Line: doc.Line, Msg: "no `cases` key: want `cases:` with a list of cases"}
	}
	if list.Kind != yaml.SequenceNode || len(list.Content) == 0 {
		return nil, &InputError{File: name, Line: list.Line, Msg: "`cases` must be a non-empty list"}
	}

	// Shapes first: yaml's own message for a claims string is about Go types.
	var errs []error
	for _, item := range list.Content {
		switch {
		case item.Kind != yaml.MappingNode:
			errs = append(errs, &InputError{File: name, Line: item.Line, Msg: "a case must be a mapping (name, method, path, claims, headers, expect, reason, status)"})
		case valueNode(item, "claims") != nil:
			if v := valueNode(item, "claims"); v.Kind != yaml.MappingNode && v.Tag != "!!null" {
				errs = append(errs, &InputError{File: name, Line: v.Line, Msg: "`claims` must be an object (a mapping of claim names to values), or left out for no token"})
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	var f caseFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, yamlError(name, err)
	}
	for i := range f.Cases {
		c := &f.Cases[i]
		c.File, c.Line = name, list.Content[i].Line
		errs = append(errs, check(c, list.Content[i])...)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return f.Cases, nil
}

// yamlError turns yaml.v3's errors into file:line messages.
func yamlError(name string, err error) error {
	var te *yaml.TypeError
	msgs := []string{err.Error()}
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	var errs []error
	for _, m := range msgs {
		e := &InputError{File: name, Msg: strings.TrimPrefix(m, "yaml: ")}
		if sub := yamlLine.FindStringSubmatch(m); sub != nil {
			e.Line, _ = strconv.Atoi(sub[1])
			e.Msg = sub[2]
		}
		errs = append(errs, e)
	}
	return errors.Join(errs...)
}

// check validates one decoded case; n is its node, for the lines of its keys.
func check(c *Case, n *yaml.Node) []error {
	var errs []error
	bad := func(key, format string, a ...any) {
		line := c.Line
		if v := valueNode(n, key); v != nil {
			line = v.Line
		}
		label := c.Name
		if label == "" {
			label = fmt.Sprintf("%s %s", c.Method, c.Path)
		}
		errs = append(errs, &InputError{File: c.File, Line: line, Msg: fmt.Sprintf("case %q: %s", label, fmt.Sprintf(format, a...))})
	}
	c.Method = strings.ToUpper(strings.TrimSpace(c.Method))
	if c.Method == "" {
		bad("method", "missing `method`")
	}
	switch {
	case c.Path == "":
		bad("path", "missing `path`")
	case !strings.HasPrefix(c.Path, "/"):
		bad("path", "`path` %q must start with /", c.Path)
	}
	switch c.Expect {
	case ExpectAllow, ExpectDeny, ExpectPublic, ExpectWouldDeny:
	case "":
		bad("expect", "missing `expect` (allow, deny, public or would_deny)")
	default:
		bad("expect", "unknown `expect` %q (want allow, deny, public or would_deny)", c.Expect)
	}
	if c.Status != 0 && (c.Status < 100 || c.Status > 599) {
		bad("status", "`status` %d is not an HTTP status", c.Status)
	}
	if c.Name == "" {
		c.Name = c.Method + " " + c.Path
	}
	return errs
}

// valueNode is the value of key in mapping n, or nil.
func valueNode(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}
