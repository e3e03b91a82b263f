package tenantgate

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/tenantgate/tenantgate/module/policytest"
	"github.com/tenantgate/tenantgate/module/rules"
)

func policyDiffCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "diff [--adapter NAME] OLD NEW",
		Short: "Lists the access that widens and narrows from one config to another",
		Long: `
diff compiles the rules of every tenant_gate handler of both configs (paired
by site and position) and prints, per method and route pattern, access that
widens (a route newly reachable; public or authenticated where roles were
required; a role or tenant added to an any-of list; tenant_param removed) and
access that narrows, plus changed mode, issuers and audiences. Two spellings of
the same rule are no change. Exit 0: nothing widens; 1: something widens;
2: a config is broken.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			code, err := runPolicyDiff(cmd.OutOrStdout(), flagString(cmd, "adapter"), args[0], args[1])
			return exitStatus(cmd, code, err)
		},
	}
	c.Flags().String("adapter", "", "config adapter, e.g. caddyfile")
	return c
}

func runPolicyDiff(out io.Writer, adapter, oldFile, newFile string) (int, error) {
	oldGates, err := diffGates(oldFile, adapter)
	if err != nil {
		return exitBroken, err
	}
	newGates, err := diffGates(newFile, adapter)
	if err != nil {
		return exitBroken, err
	}
	widens, _ := policytest.WriteDiff(out, policytest.Diff(oldGates, newGates))
	if widens > 0 {
		return exitFailed, fmt.Errorf("%s widens access in %d place(s) compared with %s (see above)", newFile, widens, oldFile)
	}
	return exitOK, nil
}

// diffConfig is what diff reads of a tenant_gate's JSON config: the
// contract's field names, independent of how Gate is laid out inside.
type diffConfig struct {
	Mode    string       `json:"mode"`
	Rules   []rules.Rule `json:"rules"`
	Issuers []struct {
		Issuer    string   `json:"issuer"`
		Audiences []string `json:"audiences"`
	} `json:"issuers"`
}

// diffGates adapts a config and compiles the rules of each handler.
func diffGates(file, adapter string) ([]policytest.Gate, error) {
	doc, err := adaptConfig(file, adapter)
	if err != nil {
		return nil, err
	}
	found, err := gatesOf(file, doc)
	if err != nil {
		return nil, err
	}
	out := make([]policytest.Gate, 0, len(found))
	for _, f := range found {
		raw, _ := json.Marshal(f.JSON)
		var g diffConfig
		if err := json.Unmarshal(raw, &g); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", file, f.Label, err)
		}
		t, _, err := rules.Compile(g.Rules)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", file, f.Label, err)
		}
		mode := g.Mode
		if mode == "" {
			mode = "enforce" // the default (DESIGN.md)
		}
		issuers := map[string][]string{}
		for _, is := range g.Issuers {
			issuers[is.Issuer] = is.Audiences
		}
		out = append(out, policytest.Gate{Label: f.Label, Mode: mode, Issuers: issuers, Table: t})
	}
	return out, nil
}
