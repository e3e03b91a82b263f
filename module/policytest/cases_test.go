package policytest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseGoodFile(t *testing.T) {
	cases, err := Parse("c.yaml", []byte(`cases:
  - name: trader executes a hedge
    method: post
    path: /api/v1/hedging/execute
    claims: {tenant_id: acme, roles: ["hedging:trade"], org: {id: 7}}
    headers: {X-Custom: v}
    expect: allow
    reason: ok
    status: 200
  - method: GET
    path: /healthz
    expect: public
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) != 2 {
		t.Fatalf("%d cases", len(cases))
	}
	c := cases[0]
	if c.Method != "POST" || c.Line != 2 || c.Where() != "c.yaml:2" || c.Headers["X-Custom"] != "v" || c.Status != 200 {
		t.Fatalf("case 0: %+v", c)
	}
	if org, ok := c.Claims["org"].(map[string]any); !ok || org["id"] != 7 {
		t.Fatalf("nested claims: %#v", c.Claims)
	}
	if cases[1].Name != "GET /healthz" || cases[1].Claims != nil || cases[1].Line != 10 {
		t.Fatalf("case 1: %+v", cases[1])
	}
}

func TestParseBadInput(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"not yaml", "cases: [\n  {method: GET\n", "c.yaml:"},
		{"not a mapping", "- a\n- b\n", "c.yaml:1: not a mapping"},
		{"empty", "", "c.yaml:1: empty file"},
		{"no cases", "tests:\n  - method: GET\n", "c.yaml:1: no `cases` key"},
		{"cases not a list", "cases: 3\n", "c.yaml:1: `cases` must be a non-empty list"},
		{"cases empty", "cases: []\n", "must be a non-empty list"},
		{"case not a mapping", "cases:\n  - GET /x\n", "c.yaml:2: a case must be a mapping"},
		{"no method", "cases:\n  - path: /x\n    expect: deny\n", "c.yaml:2: case \" /x\": missing `method`"},
		{"no path", "cases:\n  - name: n\n    method: GET\n    expect: deny\n", "c.yaml:2: case \"n\": missing `path`"},
		{"relative path", "cases:\n  - name: n\n    method: GET\n    path: x\n    expect: deny\n", "c.yaml:4: case \"n\": `path` \"x\" must start with /"},
		{"no expect", "cases:\n  - name: n\n    method: GET\n    path: /x\n", "c.yaml:2: case \"n\": missing `expect`"},
		{"unknown expect", "cases:\n  - name: n\n    method: GET\n    path: /x\n    expect: allowed\n", "c.yaml:5: case \"n\": unknown `expect` \"allowed\""},
		{"claims a string", "cases:\n  - name: n\n    method: GET\n    path: /x\n    claims: acme\n    expect: deny\n", "c.yaml:5: `claims` must be an object"},
		{"claims a list", "cases:\n  - name: n\n    method: GET\n    path: /x\n    claims: [a]\n    expect: deny\n", "c.yaml:5: `claims` must be an object"},
		{"unknown key", "cases:\n  - name: n\n    method: GET\n    path: /x\n    expect: deny\n    reasn: x\n", "c.yaml:6: field reasn not found"},
		{"bad status", "cases:\n  - name: n\n    method: GET\n    path: /x\n    expect: deny\n    status: 42\n", "c.yaml:6: case \"n\": `status` 42"},
		{"status not a number", "cases:\n  - name: n\n    method: GET\n    path: /x\n    expect: deny\n    status: forbidden\n", "c.yaml:6:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("c.yaml", []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Fatalf("err %T is not an *InputError", err)
			}
		})
	}
}

func TestReadFile(t *testing.T) {
	if _, err := ReadFile(filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Fatalf("err = %v", err)
	}
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte("cases:\n  - {method: GET, path: /, expect: deny}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases, err := ReadFile(p)
	if err != nil || len(cases) != 1 || cases[0].File != p {
		t.Fatalf("%v %+v", err, cases)
	}
	if (&InputError{File: "f", Msg: "m"}).Error() != "f: m" {
		t.Fatal("InputError without a line")
	}
}
