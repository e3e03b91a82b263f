package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tenantgate/tenantgate/backend/hedging"
	"github.com/tenantgate/tenantgate/backend/store"
)

// spotFlag collects repeated --spot ASSET=QTY values.
type spotFlag map[string]float64

func (s spotFlag) String() string {
	parts := make([]string, 0, len(s))
	for a, q := range s {
		parts = append(parts, a+"="+strconv.FormatFloat(q, 'g', -1, 64))
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func (s spotFlag) Set(v string) error {
	for _, item := range strings.Split(v, ",") {
		asset, qty, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok {
			return fmt.Errorf("want ASSET=QUANTITY (e.g. BTC=2.5), got %q", item)
		}
		if !hedging.ValidAsset(asset) {
			return fmt.Errorf("asset %q: names are 1-16 characters of A-Z 0-9", asset)
		}
		if _, dup := s[asset]; dup {
			return fmt.Errorf("asset %s given twice", asset)
		}
		q, err := strconv.ParseFloat(qty, 64)
		if err != nil || math.IsNaN(q) || math.IsInf(q, 0) || q < 0 {
			return fmt.Errorf("quantity of %s must be a finite number >= 0, got %q", asset, qty)
		}
		s[asset] = q
	}
	return nil
}

// runAccounts is `backend accounts set|show`: the operator's way to give any
// tenant a paper exchange account (the demo seed only knows acme and globex).
func runAccounts(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) int {
	usage := "usage: backend accounts set --tenant T [--spot ASSET=QTY ...] [--cash USD] [--db PATH] [--prices FILE] [--risk-limits FILE]\n" +
		"       backend accounts show --tenant T [--db PATH]\n"
	if len(args) == 0 || args[0] != "set" && args[0] != "show" {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	sub := args[0]
	fs := flag.NewFlagSet("backend accounts "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := fs.String("db", envOr(lookupEnv, "DB", ".data/backend.db"), "SQLite database file, or a postgres:// URL")
	var pg store.PostgresOptions
	addPostgresFlags(fs, &pg)
	pg.Role = envOr(lookupEnv, "DB_ROLE", pg.Role)
	pg.MigrateURL = envOr(lookupEnv, "DB_MIGRATE_URL", pg.MigrateURL)
	tenant := fs.String("tenant", "", "the tenant (required)")
	spot := spotFlag{}
	cash := fs.String("cash", "", "cash balance in USD (set only; default: keep, 0 for a new account)")
	prices := fs.String("prices", envOr(lookupEnv, "PRICES", ""), "JSON price file; spot assets must be priced (default: the demo table)")
	limitsFile := fs.String("risk-limits", envOr(lookupEnv, "RISK_LIMITS", ""), "JSON risk limits file (bounds cash and spot)")
	if sub == "set" {
		fs.Var(spot, "spot", "ASSET=QUANTITY, repeatable or comma-separated; 0 removes the balance")
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	t, err := store.ParseTenantID(*tenant)
	if err != nil {
		fmt.Fprintf(stderr, "backend accounts %s: --tenant: %v\n", sub, err)
		return exitUsage
	}
	set, err := accountSet(t, spot, *cash, *prices, *limitsFile)
	if err != nil {
		fmt.Fprintf(stderr, "backend accounts %s: %v\n", sub, err)
		return exitUsage
	}
	st, err := openStore(ctx, options{db: *db, pg: pg})
	if err != nil {
		fmt.Fprintf(stderr, "backend accounts %s: --db: %v\n", sub, err)
		return exitFailure
	}
	defer func() { _ = st.Close() }()
	var acct hedging.Account
	if sub == "set" {
		acct, err = st.SetAccount(ctx, t, set, time.Now())
	} else {
		acct, err = st.Account(ctx, t)
	}
	if err != nil {
		fmt.Fprintf(stderr, "backend accounts %s: %v\n", sub, err)
		return exitFailure
	}
	out, _ := json.MarshalIndent(struct {
		TenantID    string             `json:"tenant_id"`
		CashUSD     float64            `json:"cash_usd"`
		FeesPaidUSD float64            `json:"fees_paid_usd"`
		Spot        map[string]float64 `json:"spot"`
		Perp        map[string]float64 `json:"perp"`
	}{t.String(), acct.CashUSD, acct.FeesPaidUSD, acct.Spot, acct.Perp}, "", "  ")
	fmt.Fprintln(stdout, string(out))
	return exitOK
}

// accountSet checks the operator's values against the price table and the
// tenant's risk limits, so a provisioned account is one analysis can answer for.
func accountSet(t store.TenantID, spot spotFlag, cash, pricesFile, limitsFile string) (store.AccountSet, error) {
	prices := hedging.DemoPrices
	if pricesFile != "" {
		fp, err := hedging.NewFilePrices(pricesFile)
		if err != nil {
			return store.AccountSet{}, fmt.Errorf("--prices: %w", err)
		}
		prices, _ = fp.Prices()
	}
	limits := hedging.DefaultLimitsTable()
	if limitsFile != "" {
		var err error
		if limits, err = hedging.LoadLimitsFile(limitsFile); err != nil {
			return store.AccountSet{}, fmt.Errorf("--risk-limits: %w", err)
		}
	}
	lim := limits.For(t.String())
	set := store.AccountSet{Spot: map[string]float64(spot)}
	for asset, q := range spot {
		if _, ok := prices[asset]; !ok {
			return set, fmt.Errorf("--spot %s: the exchange has no price for %s (priced: %v)", asset, asset, prices.Assets())
		}
		if q > lim.MaxSpotQty {
			return set, fmt.Errorf("--spot %s=%v: over the limit of %v units", asset, q, lim.MaxSpotQty)
		}
	}
	if cash != "" {
		c, err := strconv.ParseFloat(cash, 64)
		if err != nil || math.IsNaN(c) || c < 0 || c > lim.MaxCashUSD {
			return set, fmt.Errorf("--cash must be a number in [0, %g], got %q", lim.MaxCashUSD, cash)
		}
		set.CashUSD = &c
	}
	return set, nil
}

func envOr(lookupEnv func(string) (string, bool), name, def string) string {
	if v, ok := lookupEnv(envPrefix + name); ok {
		return v
	}
	return def
}
