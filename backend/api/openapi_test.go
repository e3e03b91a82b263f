package api_test

import (
	"bufio"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/tenantgate/tenantgate/backend/api"
)

// openAPIOperations reads "METHOD /path" pairs from the paths section of
// openapi.yaml with a line-based scan: paths sit at two spaces of indent,
// operations at four. That is all this test needs, and it keeps a YAML
// library out of go.mod.
func openAPIOperations(t *testing.T) map[string]bool {
	t.Helper()
	f, err := os.Open("../openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	ops := map[string]bool{}
	inPaths, path := false, ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "openapi: ") && !strings.HasPrefix(line, "openapi: 3.1") {
			t.Errorf("want OpenAPI 3.1, found %q", line)
		}
		if line == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if !strings.HasPrefix(line, " ") {
			inPaths = line == "paths:"
			continue
		}
		if !inPaths {
			continue
		}
		if strings.HasPrefix(line, "  /") && strings.HasSuffix(line, ":") {
			path = strings.TrimSuffix(strings.TrimSpace(line), ":")
			continue
		}
		if strings.HasPrefix(line, "    ") && !strings.HasPrefix(line, "     ") {
			key := strings.TrimSuffix(strings.TrimSpace(line), ":")
			switch key {
			case "get", "post", "put", "patch", "delete", "head", "options":
				ops[strings.ToUpper(key)+" "+path] = true
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return ops
}

// Every route of the mux's table is documented, and nothing else is.
func TestOpenAPICoversRouteTable(t *testing.T) {
	ops := openAPIOperations(t)
	routes := map[string]bool{}
	for _, r := range api.Routes() {
		key := r.Method + " " + api.DisplayPattern(r.Pattern)
		routes[key] = true
		if !ops[key] {
			t.Errorf("route %s is missing from backend/openapi.yaml", key)
		}
	}
	var stale []string
	for op := range ops {
		if !routes[op] {
			stale = append(stale, op)
		}
	}
	sort.Strings(stale)
	for _, op := range stale {
		t.Errorf("backend/openapi.yaml documents %s, which the route table does not serve", op)
	}
	if len(ops) < 14 {
		t.Errorf("found only %d operations; is the scan broken?", len(ops))
	}
}
