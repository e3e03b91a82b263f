package tenantgate

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/tenantgate/tenantgate/module/rules"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "tenant-gate",
		Usage: "explain|coverage|test|diff|audit verify|revoke ...",
		Short: "Inspects the rules of the tenant_gate handlers in a config",
		Long: `
explain prints which rule decides a request and what it requires:
  caddy tenant-gate explain --config Caddyfile [--adapter caddyfile] METHOD PATH

coverage checks that every route of a backend is covered by a rule:
  caddy tenant-gate coverage --config Caddyfile --routes routes.txt
The routes file holds one "METHOD PATTERN" a line, as ` + "`backend routes`" + ` prints
it: "public" after it marks a route that is public by intent, "roles R..." the
roles the backend itself requires (any of). coverage exits 1 when a route is
covered by no rule, only by a public rule without being marked public, or by a
rule that would admit a caller the backend's roles refuse (a rule asking for no
role, or for a role outside the route's list).

test runs decision cases through the real handler, offline; diff lists the
access that widens or narrows between two configs (see their own --help):
  caddy tenant-gate test --config Caddyfile CASES.yaml...
  caddy tenant-gate diff --adapter caddyfile OLD NEW

revoke revokes tokens at a running gate (its admin endpoint):
  caddy tenant-gate revoke --jti ID | --sub S | --tenant T [--iss I] [--before T] [--address ADMIN]`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.AddCommand(explainCommand(), coverageCommand(), auditCommand(), policyTestCommand(), policyDiffCommand(), revokeCommand())
		},
	})
}

func explainCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "explain --config FILE [--adapter NAME] METHOD PATH",
		Short: "Prints the rule that decides METHOD PATH",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			tables, err := loadRuleTables(cmd)
			if err != nil {
				return err
			}
			for i, t := range tables {
				if len(tables) > 1 {
					fmt.Fprintf(cmd.OutOrStdout(), "tenant_gate #%d:\n", i+1)
				}
				fmt.Fprintln(cmd.OutOrStdout(), rules.Explain(t, strings.ToUpper(args[0]), args[1]))
			}
			return nil
		},
	}
	addConfigFlags(c)
	return c
}

func coverageCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "coverage --config FILE [--adapter NAME] --routes FILE",
		Short: "Checks that every backend route is covered by a rule",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tables, err := loadRuleTables(cmd)
			if err != nil {
				return err
			}
			routesFile, _ := cmd.Flags().GetString("routes")
			if routesFile == "" {
				return errors.New("--routes FILE is required (e.g. the output of `bin/backend routes`)")
			}
			f, err := os.Open(routesFile) // #nosec G304 -- a path the operator names
			if err != nil {
				return err
			}
			defer f.Close()
			routes, err := rules.ParseRoutes(f)
			if err != nil {
				return fmt.Errorf("%s: %w", routesFile, err)
			}
			allOK := true
			for i, t := range tables {
				if len(tables) > 1 {
					fmt.Fprintf(cmd.OutOrStdout(), "tenant_gate #%d:\n", i+1)
				}
				lines, ok := rules.Coverage(t, routes)
				rules.FormatCoverage(cmd.OutOrStdout(), lines)
				allOK = allOK && ok
			}
			if !allOK {
				cmd.SilenceUsage = true
				return errors.New("some routes are not covered by a rule, or by a rule looser than the backend's roles (see above)")
			}
			return nil
		},
	}
	addConfigFlags(c)
	c.Flags().String("routes", "", "file with one METHOD PATTERN [public | authenticated | roles R...] a line")
	return c
}

func addConfigFlags(c *cobra.Command) {
	c.Flags().String("config", "", "configuration file (Caddyfile or JSON)")
	c.Flags().String("adapter", "", "config adapter, e.g. caddyfile")
}

// loadRuleTables adapts the config the way `caddy run` would and compiles
// the rules of every tenant_gate handler in it.
func loadRuleTables(cmd *cobra.Command) ([]*rules.Table, error) {
	cmd.SilenceUsage = true
	file, _ := cmd.Flags().GetString("config")
	adapter, _ := cmd.Flags().GetString("adapter")
	if file == "" {
		return nil, errors.New("--config FILE is required")
	}
	cfg, _, _, err := caddycmd.LoadConfig(file, adapter)
	if err != nil {
		return nil, err
	}
	var doc any
	if err := json.Unmarshal(cfg, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	var tables []*rules.Table
	var errs []error
	for _, raw := range findGates(doc) {
		var g Gate
		if err := json.Unmarshal(raw, &g); err != nil {
			errs = append(errs, err)
			continue
		}
		t, _, err := rules.Compile(g.Rules)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		tables = append(tables, t)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(tables) == 0 {
		return nil, fmt.Errorf("%s: no tenant_gate handler found", file)
	}
	return tables, nil
}

// findGates returns the JSON of every {"handler":"tenant_gate"} object.
func findGates(v any) []json.RawMessage {
	var out []json.RawMessage
	switch t := v.(type) {
	case map[string]any:
		if t["handler"] == "tenant_gate" {
			raw, _ := json.Marshal(t)
			return append(out, raw)
		}
		// Sorted keys: the same config always lists its gates in one order.
		for _, k := range slices.Sorted(maps.Keys(t)) {
			out = append(out, findGates(t[k])...)
		}
	case []any:
		for _, child := range t {
			out = append(out, findGates(child)...)
		}
	}
	return out
}
