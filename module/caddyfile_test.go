package tenantgate

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestCaddyfileGolden adapts every testdata/caddyfile/*.caddyfile (the
// tenant_gate block alone) and compares the JSON, or the error, with the
// .json or .err file beside it. Run with -update to rewrite them.
func TestCaddyfileGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/caddyfile/*.caddyfile")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".caddyfile")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			var g Gate
			err = g.UnmarshalCaddyfile(caddyfile.NewTestDispenser(string(src)))
			var got []byte
			ext := ".json"
			if err != nil {
				got, ext = []byte(err.Error()+"\n"), ".err"
			} else {
				got, _ = json.MarshalIndent(g, "", "  ")
				got = append(got, '\n')
			}
			golden := strings.TrimSuffix(in, ".caddyfile") + ext
			if *update {
				_ = os.Remove(strings.TrimSuffix(in, ".caddyfile") + ".json")
				_ = os.Remove(strings.TrimSuffix(in, ".caddyfile") + ".err")
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, rerr := os.ReadFile(golden)
			if rerr != nil {
				t.Fatalf("want %s (adapting gave %s): %v\n%s", golden, ext, rerr, got)
			}
			if string(got) != string(want) {
				t.Errorf("%s:\n got: %s\nwant: %s", golden, got, want)
			}
		})
	}
}

// TestDirectiveOrder checks that tenant_gate runs before reverse_proxy and
// handle without an order line.
func TestDirectiveOrder(t *testing.T) {
	src := `:8080 {
	reverse_proxy 127.0.0.1:9001
	tenant_gate {
		issuer https://idp { 
			jwks_file /dev/null
			audience a
		}
		assertion_key /k.pem
		rule GET /x public
	}
}`
	adapter := caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}
	out, warnings, err := adapter.Adapt([]byte(src), nil)
	if err != nil {
		t.Fatalf("adapt: %v (warnings %v)", err, warnings)
	}
	s := string(out)
	gate, proxy := strings.Index(s, `"handler":"tenant_gate"`), strings.Index(s, `"handler":"reverse_proxy"`)
	if gate < 0 || proxy < 0 || gate > proxy {
		t.Fatalf("tenant_gate does not come before reverse_proxy:\n%s", s)
	}
}

// TestCaddyfileErrorsInImportedFiles adapts a Caddyfile that imports part
// of its tenant_gate block from another file, with problems at the same
// line numbers in both: each problem names its own file, line and rule.
func TestCaddyfileErrorsInImportedFiles(t *testing.T) {
	dir := t.TempDir()
	main := filepath.Join(dir, "Caddyfile")
	imported := filepath.Join(dir, "rules.caddy")
	write := func(path, body string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(imported, `# shared rules
rule GET /x public
rule GET /dup authenticated
rule GET /y rolez
`)
	write(main, `:8080 {
	tenant_gate {
		rule GET /dup authenticated
		rule GET /bad rolez
		import rules.caddy
		assertion_key /k.pem
		issuer https://kc.example.com/realms/{tenant}/{tenant} {
			jwks_url https://kc.example.com/realms/{tenant}/certs
			audience alphapulse-api
			tenants *
		}
	}
}
`)
	src, _ := os.ReadFile(main)
	adapter := caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}
	_, _, err := adapter.Adapt(src, map[string]any{"filename": main})
	if err == nil {
		t.Fatal("adapting succeeded")
	}
	msg := err.Error()
	for _, want := range []string{
		`rule 2: unknown requirement "rolez" (want public, authenticated, roles, tenant_param or tenants), at ` + main + `:4`,
		`rule 4: duplicate of rule 1 (` + main + `:3): same methods and pattern, at ` + imported + `:3 import chain`,
		`rule 5: unknown requirement "rolez" (want public, authenticated, roles, tenant_param or tenants), at ` + imported + `:4 import chain`,
		`issuer "https://kc.example.com/realms/{tenant}/{tenant}": issuer: {tenant} must stand exactly once in "https://kc.example.com/realms/{tenant}/{tenant}" (found 2), at ` + main + `:7`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in:\n%s", want, msg)
		}
	}
	if !strings.Contains(msg, "4 problems:\n") {
		t.Errorf("no count of problems in:\n%s", msg)
	}
	if n := strings.Count(msg, "\n"); n != 4 {
		t.Errorf("want 4 problems, got %d:\n%s", n, msg)
	}
}
