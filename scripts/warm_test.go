package scripts_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A failing `go get` (here: a Caddy version that does not exist, with the
// proxy off) is shown with its own message, not swallowed.
func TestWarmModcacheShowsWhatFailed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(repoRoot(t), "scripts", "warm-modcache.sh"), "v2.99.99", "github.com/tenantgate/tenantgate")
	cmd.Env = append(os.Environ(), "GOPROXY=off", "GOFLAGS=-mod=mod")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("warm-modcache.sh with Caddy v2.99.99 and GOPROXY=off succeeded:\n%s", out)
	}
	for _, want := range []string{"failed", "GOPROXY=off", "fix the error above"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output does not say %q:\n%s", want, out)
		}
	}
}
