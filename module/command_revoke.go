package tenantgate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

// revokeCommand is `caddy tenant-gate revoke`: a POST to the running
// Caddy's /tenant-gate/revocations, so the revocation takes the same path
// (validation, shared store, audit line) as any other.
func revokeCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "revoke --jti ID | --sub S | --tenant T | --sid SID [--iss I] [--before RFC3339] [--reason TEXT] [--address ADMIN]",
		Short: "Revokes tokens at a running gate (by jti, subject, tenant or session)",
		Long: `
revoke asks the running Caddy (its admin endpoint) to revoke tokens:
  --jti ID      the one token with that jti
  --sub S       the subject's tokens issued before --before (default: now)
  --tenant T    every token of the tenant issued before --before (default: now)
  --sid SID     the tokens whose sid claim (an OpenID Provider session) is SID,
                issued before --before (default: now)
--iss narrows any of them to one issuer. With shared_store, every replica
refuses the tokens within a second. Exit status 0 when the revocation was
stored; the entry is printed as JSON.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SilenceUsage = true
			body, err := revokeBody(cmd)
			if err != nil {
				return err
			}
			address, _ := cmd.Flags().GetString("address")
			addr, err := caddycmd.DetermineAdminAPIAddress(address, nil, "", "")
			if err != nil {
				return fmt.Errorf("admin address: %w", err)
			}
			resp, err := caddycmd.AdminAPIRequest(addr, http.MethodPost, "/tenant-gate/revocations",
				http.Header{"Content-Type": {"application/json"}}, bytes.NewReader(body))
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			out, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
	f := c.Flags()
	f.String("jti", "", "revoke the token with this jti")
	f.String("sub", "", "revoke the tokens of this subject issued before --before")
	f.String("tenant", "", "revoke every token of this tenant issued before --before")
	f.String("sid", "", "revoke the tokens of this session (sid claim) issued before --before")
	f.String("iss", "", "only tokens of this issuer")
	f.String("before", "", "RFC 3339 time; tokens issued after it stay valid (default: now)")
	f.String("reason", "", "why, for the audit trail")
	f.String("address", "", "the admin API address (default: Caddy's, localhost:2019)")
	return c
}

// revokeBody builds the JSON body from the flags; the gate checks it again.
func revokeBody(cmd *cobra.Command) ([]byte, error) {
	req := map[string]string{}
	selectors := 0
	for _, name := range []string{"jti", "sub", "tenant", "sid", "iss", "before", "reason"} {
		v, _ := cmd.Flags().GetString(name)
		if !cmd.Flags().Changed(name) {
			continue
		}
		if strings.TrimSpace(v) == "" {
			return nil, fmt.Errorf("--%s is empty", name)
		}
		req[name] = v
		if name == "jti" || name == "sub" || name == "tenant" || name == "sid" {
			selectors++
		}
	}
	if selectors != 1 {
		return nil, errors.New("name exactly one of --jti, --sub, --tenant or --sid")
	}
	return json.Marshal(req)
}
