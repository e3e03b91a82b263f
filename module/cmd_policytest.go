package tenantgate

import (
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/tenantgate/tenantgate/module/policytest"
)

func policyTestCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "test --config FILE [--adapter NAME] [--junit FILE] [--run REGEXP] [--gate N] CASES.yaml...",
		Short: "Runs decision cases through the gate's real decision code, offline",
		Long: `
test signs each case's claims with a key it makes and trusts for every issuer
of the config, sends the request through the tenant_gate handler's own
ServeHTTP (no JWKS fetch, no upstream), and compares the audit record's
decision, reason and status with the case. It prints each failure, then
"N passed, M failed". Exit 0: all passed; 1: a case failed; 2: a broken case
file or config (the message names file:line).`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			code, err := runPolicyTest(cmd.OutOrStdout(), policyTestOptions{
				config:  flagString(cmd, "config"),
				adapter: flagString(cmd, "adapter"),
				junit:   flagString(cmd, "junit"),
				run:     flagString(cmd, "run"),
				gate:    flagInt(cmd, "gate"),
				files:   args,
			})
			return exitStatus(cmd, code, err)
		},
	}
	addConfigFlags(c)
	c.Flags().String("junit", "", "also write the results as JUnit XML to this file")
	c.Flags().String("run", "", "run only the cases whose name matches this regular expression")
	c.Flags().Int("gate", 1, "which tenant_gate handler of the config to test, counted from 1 in config order")
	return c
}

type policyTestOptions struct {
	config, adapter, junit, run string
	gate                        int
	files                       []string
}

// runPolicyTest is the test command without cobra: it returns the exit
// code, and an error to print for codes 1 and 2.
func runPolicyTest(out io.Writer, o policyTestOptions) (int, error) {
	var filter *regexp.Regexp
	if o.run != "" {
		var err error
		if filter, err = regexp.Compile(o.run); err != nil {
			return exitBroken, fmt.Errorf("--run: %w", err)
		}
	}
	var cases []policytest.Case
	var errs []error
	for _, f := range o.files {
		cs, err := policytest.ReadFile(f)
		errs = append(errs, err)
		for _, c := range cs {
			if filter == nil || filter.MatchString(c.Name) {
				cases = append(cases, c)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return exitBroken, err
	}

	doc, err := adaptConfig(o.config, o.adapter)
	if err != nil {
		return exitBroken, err
	}
	gates, err := gatesOf(o.config, doc)
	if err != nil {
		return exitBroken, err
	}
	if o.gate < 1 || o.gate > len(gates) {
		return exitBroken, fmt.Errorf("--gate %d: the config has %d tenant_gate handler(s)", o.gate, len(gates))
	}
	if len(gates) > 1 {
		fmt.Fprintf(out, "testing %s (--gate %d of %d)\n", gates[o.gate-1].Label, o.gate, len(gates))
	}
	runner, err := newPolicyRunner(gates[o.gate-1].JSON)
	if err != nil {
		return exitBroken, fmt.Errorf("%s: %w", o.config, err)
	}
	defer runner.close()

	start := time.Now()
	results := make([]policytest.Result, 0, len(cases))
	for _, c := range cases {
		t0 := time.Now()
		got, err := runner.run(&c)
		if err != nil {
			return exitBroken, fmt.Errorf("%s: case %q: %w", c.Where(), c.Name, err)
		}
		results = append(results, policytest.Judge(c, got, time.Since(t0)))
	}
	_, failed := policytest.WriteText(out, results)
	if len(cases) == 0 {
		fmt.Fprintf(out, "no case matches --run %q\n", o.run)
	}
	fmt.Fprintf(out, "(%d cases in %s)\n", len(cases), time.Since(start).Round(time.Millisecond))
	if o.junit != "" {
		if err := writeJUnitFile(o.junit, results); err != nil {
			return exitBroken, err
		}
	}
	if failed > 0 {
		return exitFailed, fmt.Errorf("%d of %d cases failed", failed, len(results))
	}
	return exitOK, nil
}

func writeJUnitFile(path string, results []policytest.Result) error {
	f, err := os.Create(path) // #nosec G304 -- a path the operator names
	if err != nil {
		return fmt.Errorf("--junit: %w", err)
	}
	if err := policytest.WriteJUnit(f, results); err != nil {
		_ = f.Close()
		return fmt.Errorf("--junit %s: %w", path, err)
	}
	return f.Close()
}

func flagString(cmd *cobra.Command, name string) string {
	v, _ := cmd.Flags().GetString(name)
	return v
}

func flagInt(cmd *cobra.Command, name string) int {
	v, _ := cmd.Flags().GetInt(name)
	return v
}

// exitStatus prints err and turns code into the process's exit status:
// Caddy's main exits with a code above 1 only for its own exit error,
// which WrapCommandFuncForCobra makes.
func exitStatus(cmd *cobra.Command, code int, err error) error {
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	if err != nil {
		fmt.Fprintln(cmd.ErrOrStderr(), "error:", err)
	}
	switch code {
	case exitOK:
		return nil
	case exitFailed:
		if err == nil {
			err = errors.New("failed")
		}
		return err
	}
	return caddycmd.WrapCommandFuncForCobra(func(caddycmd.Flags) (int, error) { return code, nil })(cmd, nil)
}
