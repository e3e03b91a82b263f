package tenantgate

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
)

// Exit codes of `caddy tenant-gate test` and `diff`.
const (
	exitOK      = 0
	exitFailed  = 1 // a case failed; the diff widens access
	exitBroken  = 2 // a broken case file or config
	handlerName = "tenant_gate"
)

// foundGate is one tenant_gate handler of an adapted config: its JSON
// and where it stands.
type foundGate struct {
	Label string         // site and position, e.g. "site :8080, tenant_gate #1"
	JSON  map[string]any // the handler object, "handler" key included
}

// adaptConfig adapts a config file the way `caddy run` would; an error
// carries Caddy's own message.
func adaptConfig(file, adapter string) (map[string]any, error) {
	if file == "" {
		return nil, errors.New("--config FILE is required")
	}
	cfg, _, _, err := caddycmd.LoadConfig(file, adapter)
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := json.Unmarshal(cfg, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return doc, nil
}

// gatesOf finds every tenant_gate handler of an adapted config, labelled
// with the listen addresses of its server and the host matchers of the
// routes around it, so the same handler of two configs gets one label.
func gatesOf(file string, doc map[string]any) ([]foundGate, error) {
	var out []foundGate
	walkGates(doc, siteOf{}, &out)
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no tenant_gate handler found", file)
	}
	seen := map[string]int{}
	for i := range out {
		seen[out[i].Label]++
		out[i].Label = fmt.Sprintf("%s, tenant_gate #%d", out[i].Label, seen[out[i].Label])
	}
	return out, nil
}

type siteOf struct {
	listen, hosts []string
}

func (s siteOf) String() string {
	where := "site " + strings.Join(s.hosts, ",")
	if len(s.hosts) == 0 {
		where = "site *"
	}
	if len(s.listen) > 0 {
		where += " on " + strings.Join(s.listen, ",")
	}
	return where
}

func walkGates(v any, site siteOf, out *[]foundGate) {
	switch t := v.(type) {
	case map[string]any:
		if t["handler"] == handlerName {
			*out = append(*out, foundGate{Label: site.String(), JSON: t})
			return
		}
		if l := jsonStrings(t["listen"]); l != nil {
			site.listen = l
		}
		if ms, ok := t["match"].([]any); ok {
			var hosts []string
			for _, m := range ms {
				if mm, ok := m.(map[string]any); ok {
					hosts = append(hosts, jsonStrings(mm["host"])...)
				}
			}
			if len(hosts) > 0 {
				site.hosts = hosts
			}
		}
		// Sorted keys: the same config always lists its gates in one order.
		for _, k := range slices.Sorted(maps.Keys(t)) {
			walkGates(t[k], site, out)
		}
	case []any:
		for _, child := range t {
			walkGates(child, site, out)
		}
	}
}

// jsonStrings returns a JSON array of strings, or nil.
func jsonStrings(v any) []string {
	arr, ok := v.([]any)
	if !ok {
		return nil
	}
	var out []string
	for _, x := range arr {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}
