package tenantgate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/tenantgate/tenantgate/module/audit"
)

// writeChainedLog writes n chained records and the closing record with key.
func writeChainedLog(t *testing.T, path string, key []byte, n int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	l := fileAuditLogger(f)
	c, err := audit.NewChain(key)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		c.Write(l, "request", &audit.Record{RequestID: "r", Method: "GET", Path: "/x", Decision: audit.DecisionDeny, Reason: audit.ReasonNoRoute, Status: 403})
	}
	c.Close(audit.ChainEndShutdown)
	l.Info("another logger's line", zap.String("x", "y"))
}

func TestAuditVerifyCommand(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "audit.key")
	writeFile(t, key, []byte(testChainKey+"\n"))
	log := filepath.Join(dir, "audit.log")
	writeChainedLog(t, log, []byte(testChainKey), 3)

	out, err := runCommand(t, auditCommand(), "verify", "--key-file", key, log)
	if err != nil || !strings.Contains(out, "OK: 4 chained records in 1 chain(s); 1 other lines skipped") ||
		!strings.Contains(out, "seq 1..4, closed (shutdown), key "+key) {
		t.Fatalf("%v\n%s", err, out)
	}

	raw, _ := os.ReadFile(log)
	lines := strings.Split(string(raw), "\n")
	lines[1] = strings.Replace(lines[1], `"status":403`, `"status":200`, 1)
	writeFile(t, log, []byte(strings.Join(lines, "\n")))
	out, err = runCommand(t, auditCommand(), "verify", "--key-file", key, log)
	if err == nil || !strings.Contains(out, "BROKEN chain") || !strings.Contains(err.Error(), log+":2: changed record") {
		t.Fatalf("%v\n%s", err, out)
	}

	short := filepath.Join(dir, "short.key")
	writeFile(t, short, []byte("short\n"))
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"verify", log}, "--key-file PATH is required"},
		{[]string{"verify", "--key-file", short, log}, "5 bytes, an audit_chain_key has at least 32"},
		{[]string{"verify", "--key-file", filepath.Join(dir, "none"), log}, "no such file"},
		{[]string{"verify", "--key-file", key, key}, "not a JSON log"},
	} {
		if out, err := runCommand(t, auditCommand(), c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: got %v (%s), want %q", c.args, err, out, c.want)
		}
	}
}
