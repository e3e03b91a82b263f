package hedging

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
)

// Limits are a tenant's risk limits on the paper exchange. Every number an
// execute can produce is finite and inside them, so no write leaves an
// account that a later analysis cannot answer for.
type Limits struct {
	// Largest quantity of one order, in units of the asset. Default 1,000,000.
	MaxOrderQty float64 `json:"max_order_qty"`
	// Largest notional of one order, USD. Default 50,000,000: a fat-finger guard.
	MaxOrderNotionalUSD float64 `json:"max_order_notional_usd"`
	// Largest perpetual position of one asset, |quantity| × price, USD.
	// Default 500,000,000.
	MaxPositionNotionalUSD float64 `json:"max_position_notional_usd"`
	// Largest cash balance an operator may set, USD. Default 1e12.
	MaxCashUSD float64 `json:"max_cash_usd"`
	// Largest spot quantity an operator may set, units. Default 1e9.
	MaxSpotQty float64 `json:"max_spot_qty"`
}

// DefaultLimits apply to every tenant the limits file does not name.
var DefaultLimits = Limits{
	MaxOrderQty:            1e6,
	MaxOrderNotionalUSD:    5e7,
	MaxPositionNotionalUSD: 5e8,
	MaxCashUSD:             1e12,
	MaxSpotQty:             1e9,
}

// Validate checks that every limit is a positive finite number.
func (l Limits) Validate() error {
	for name, v := range map[string]float64{
		"max_order_qty": l.MaxOrderQty, "max_order_notional_usd": l.MaxOrderNotionalUSD,
		"max_position_notional_usd": l.MaxPositionNotionalUSD, "max_cash_usd": l.MaxCashUSD, "max_spot_qty": l.MaxSpotQty,
	} {
		if !(v > 0) || math.IsInf(v, 0) {
			return fmt.Errorf("%s must be a positive finite number, got %v", name, v)
		}
	}
	return nil
}

// LimitsTable holds the default limits and per-tenant overrides.
type LimitsTable struct {
	Default Limits
	Tenants map[string]Limits
}

// For returns the limits of tenant.
func (t LimitsTable) For(tenant string) Limits {
	if l, ok := t.Tenants[tenant]; ok {
		return l
	}
	return t.Default
}

// DefaultLimitsTable is the table without a limits file.
func DefaultLimitsTable() LimitsTable { return LimitsTable{Default: DefaultLimits} }

// LoadLimitsFile reads a JSON limits file:
//
//	{"default": {"max_order_notional_usd": 1e7},
//	 "tenants": {"acme": {"max_position_notional_usd": 2e8}}}
//
// Fields left out keep DefaultLimits (for "default") or the file's default
// (for a tenant). Unknown fields, duplicate keys and non-positive limits are
// errors.
func LoadLimitsFile(path string) (LimitsTable, error) {
	raw, err := os.ReadFile(path) // #nosec G304 -- a path the operator names
	if err != nil {
		return LimitsTable{}, fmt.Errorf("limits file: %w", err)
	}
	var doc struct {
		Default json.RawMessage            `json:"default"`
		Tenants map[string]json.RawMessage `json:"tenants"`
	}
	if err := strictDecode(raw, &doc); err != nil {
		return LimitsTable{}, fmt.Errorf("limits file %s: %w", path, err)
	}
	t := LimitsTable{Default: DefaultLimits, Tenants: map[string]Limits{}}
	if doc.Default != nil {
		if err := strictDecode(doc.Default, &t.Default); err != nil {
			return LimitsTable{}, fmt.Errorf("limits file %s: default: %w", path, err)
		}
	}
	if err := t.Default.Validate(); err != nil {
		return LimitsTable{}, fmt.Errorf("limits file %s: default: %w", path, err)
	}
	for tenant, body := range doc.Tenants {
		l := t.Default
		if err := strictDecode(body, &l); err != nil {
			return LimitsTable{}, fmt.Errorf("limits file %s: tenants.%s: %w", path, tenant, err)
		}
		if err := l.Validate(); err != nil {
			return LimitsTable{}, fmt.Errorf("limits file %s: tenants.%s: %w", path, tenant, err)
		}
		t.Tenants[tenant] = l
	}
	return t, nil
}

func strictDecode(raw []byte, dst any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("data after the JSON document")
	}
	return nil
}

// ErrRiskLimit marks an order refused by a risk limit; the API answers 422.
var ErrRiskLimit = errors.New("risk limit")

// Execute fills client or recommended orders like Apply, and refuses (with
// ErrInvalidOrder or ErrRiskLimit, changing nothing) any order that passes a
// limit, sells into a naked short, or takes a hedge past the spot by more
// than the policy's tolerance; it also refuses fees the cash cannot pay.
// Buys that reduce a short are always within the hedge rule.
func Execute(acct Account, prices Prices, orders []Order, lim Limits, p Policy) ([]Fill, Account, error) {
	after := acct.Clone()
	fills := make([]Fill, 0, len(orders))
	for i, o := range orders {
		if !finite(o.Quantity) || !(o.Quantity > 0) {
			return nil, acct, fmt.Errorf("%w: orders[%d].quantity must be a finite number > 0, got %v", ErrInvalidOrder, i, o.Quantity)
		}
		// A buy only reduces a short (fillOne refuses a long), so it is
		// bounded by the short and takes no order limit.
		if o.Side != Buy && o.Quantity > lim.MaxOrderQty {
			return nil, acct, fmt.Errorf("%w: orders[%d].quantity %v exceeds the limit of %v units per order", ErrRiskLimit, i, o.Quantity, lim.MaxOrderQty)
		}
		if price, ok := prices[o.Asset]; ok && o.Side != Buy && o.Quantity*price > lim.MaxOrderNotionalUSD {
			return nil, acct, fmt.Errorf("%w: orders[%d] notional %.2f USD exceeds the limit of %.2f USD per order", ErrRiskLimit, i, o.Quantity*price, lim.MaxOrderNotionalUSD)
		}
		before := after.Perp[o.Asset]
		cash := after.CashUSD
		f, err := fillOne(&after, prices, o, i)
		if err != nil {
			return nil, acct, err
		}
		pos, spot := after.Perp[o.Asset], after.Spot[o.Asset]
		if o.Side == Sell {
			if spot <= 0 {
				return nil, acct, fmt.Errorf("%w: orders[%d]: selling %v %s would open a naked short: the account holds no %s spot to hedge", ErrRiskLimit, i, f.Quantity, o.Asset, o.Asset)
			}
			if maxShort := RoundQty(spot * (1 + p.Tolerance)); -pos > maxShort {
				return nil, acct, fmt.Errorf("%w: orders[%d]: a short of %v %s would exceed the spot of %v by more than the tolerance %v; sell at most %v",
					ErrRiskLimit, i, -pos, o.Asset, spot, p.Tolerance, math.Max(0, RoundQty(maxShort+before)))
			}
		}
		if notional := math.Abs(pos) * f.Price; notional > lim.MaxPositionNotionalUSD {
			return nil, acct, fmt.Errorf("%w: orders[%d]: the %s position would be %.2f USD, over the limit of %.2f USD", ErrRiskLimit, i, o.Asset, notional, lim.MaxPositionNotionalUSD)
		}
		if after.CashUSD < 0 {
			return nil, acct, fmt.Errorf("%w: orders[%d]: the fee of %.2f USD exceeds the cash left (%.2f USD)", ErrRiskLimit, i, f.FeeUSD, cash)
		}
		fills = append(fills, f)
	}
	if err := after.CheckFinite(); err != nil {
		return nil, acct, err
	}
	return fills, after, nil
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// maxAbs bounds every stored amount: far above any limit, far below the
// range where float64 arithmetic on it could overflow.
const maxAbs = 1e15

// CheckFinite reports an account holding a number that is not finite or
// beyond 1e15 in magnitude: such an account could not be analysed later.
func (a Account) CheckFinite() error {
	check := func(what string, v float64) error {
		if !finite(v) || math.Abs(v) > maxAbs {
			return fmt.Errorf("%w: %s would be %v, outside ±%g", ErrRiskLimit, what, v, maxAbs)
		}
		return nil
	}
	if err := check("cash_usd", a.CashUSD); err != nil {
		return err
	}
	if err := check("fees_paid_usd", a.FeesPaidUSD); err != nil {
		return err
	}
	for k, v := range a.Spot {
		if err := check("spot "+k, v); err != nil {
			return err
		}
	}
	for k, v := range a.Perp {
		if err := check("perp "+k, v); err != nil {
			return err
		}
	}
	return nil
}
