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
				t.Fatalf("want %s (adapting gave %s): %v", golden, ext, rerr)
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
