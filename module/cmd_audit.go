package tenantgate

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/tenantgate/tenantgate/module/audit"
)

// auditCommand is `caddy tenant-gate audit verify`.
func auditCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "audit verify --key-file PATH [--key-file PATH...] LOG...",
		Short: "Checks the keyed chain of audit logs (audit_chain_key)",
	}
	v := &cobra.Command{
		Use:   "verify --key-file PATH [--key-file PATH...] [--allow-open] LOG...",
		Short: "Checks that no audit record was edited, deleted, reordered or inserted",
		Long: `
verify reads audit logs (several files in any order, e.g. a log and its rolled
files) and checks every chain of records written with audit_chain_key. It exits
0 with a summary when every chain is whole, and 1 naming the first broken record
of each broken chain (seq, file:line, what broke: a changed record, a gap, a
repeated or out-of-order seq, an inserted record, a chain without its closing
record). Lines of other loggers are skipped and counted. Give one --key-file
per key in use (after a key rotation, the old and the new); --allow-open
accepts a chain without a closing record (the live log of a running gate).`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, logs []string) error {
			cmd.SilenceUsage = true
			keyFiles, _ := cmd.Flags().GetStringArray("key-file")
			allowOpen, _ := cmd.Flags().GetBool("allow-open")
			keys, err := readChainKeys(keyFiles)
			if err != nil {
				return err
			}
			start := time.Now()
			rep, err := audit.VerifyFiles(keys, logs, allowOpen)
			if err != nil {
				return err
			}
			printAuditReport(cmd.OutOrStdout(), rep, keyFiles, time.Since(start))
			if !rep.OK() {
				return fmt.Errorf("audit log tampered with or incomplete: %s", rep.Breaks[0])
			}
			return nil
		},
	}
	v.Flags().StringArray("key-file", nil, "file holding an audit_chain_key (repeat for rotated keys)")
	v.Flags().Bool("allow-open", false, "accept chains without a closing record (a gate still running)")
	c.AddCommand(v)
	return c
}

// readChainKeys reads key files the way Caddy's {file.…} placeholder does
// (one trailing newline dropped), so the key is the same bytes.
func readChainKeys(paths []string) ([][]byte, error) {
	if len(paths) == 0 {
		return nil, errors.New("--key-file PATH is required: the file that holds the audit_chain_key")
	}
	keys := make([][]byte, 0, len(paths))
	for _, p := range paths {
		b, err := os.ReadFile(p) // #nosec G304 -- a key file the operator names
		if err != nil {
			return nil, fmt.Errorf("--key-file: %w", err)
		}
		b = bytes.TrimSuffix(bytes.TrimSuffix(b, []byte("\n")), []byte("\r"))
		if len(b) < audit.MinChainKeyBytes {
			return nil, fmt.Errorf("--key-file %s: %d bytes, an audit_chain_key has at least %d", p, len(b), audit.MinChainKeyBytes)
		}
		keys = append(keys, b)
	}
	return keys, nil
}

func printAuditReport(w io.Writer, rep *audit.Report, keyFiles []string, took time.Duration) {
	state := "OK"
	if !rep.OK() {
		state = "BROKEN"
	}
	fmt.Fprintf(w, "%s: %d chained records in %d chain(s); %d other lines skipped", state, rep.Records, len(rep.Chains), rep.Skipped)
	if rep.Unchained > 0 {
		fmt.Fprintf(w, " (%d of them audit records without a chain)", rep.Unchained)
	}
	fmt.Fprintf(w, "; %.0f records/s\n", float64(rep.Records)/max(took.Seconds(), 1e-9))
	for _, c := range rep.Chains {
		end := "no closing record"
		if c.End != "" {
			end = "closed (" + c.End + ")"
		}
		key := "no key verifies it"
		if c.Key >= 0 {
			key = "key " + keyFiles[c.Key]
		}
		fmt.Fprintf(w, "chain %s: %d records, seq %d..%d, %s, %s\n", c.ID, c.Records, c.First, c.Last, end, key)
	}
	for _, b := range rep.Breaks {
		fmt.Fprintf(w, "BROKEN %s\n", b)
	}
}
