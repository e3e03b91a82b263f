package api

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"time"

	"go.uber.org/zap"

	"github.com/tenantgate/tenantgate/backend/hedging"
	"github.com/tenantgate/tenantgate/backend/store"
)

// IdempotencyKeyHeader names the header POST /api/v1/hedging/execute requires.
const IdempotencyKeyHeader = "Idempotency-Key"

type policyJSON struct {
	TargetRatio float64 `json:"target_ratio"`
	Tolerance   float64 `json:"tolerance"`
}

type exposureJSON struct {
	Asset          string  `json:"asset"`
	Price          float64 `json:"price"`
	SpotQty        float64 `json:"spot_qty"`
	SpotUSD        float64 `json:"spot_usd"`
	HedgeQty       float64 `json:"hedge_qty"`
	HedgeUSD       float64 `json:"hedge_usd"`
	NetDeltaQty    float64 `json:"net_delta_qty"`
	NetDeltaUSD    float64 `json:"net_delta_usd"`
	HedgeRatio     float64 `json:"hedge_ratio"`
	TargetHedgeQty float64 `json:"target_hedge_qty"`
	InBand         bool    `json:"in_band"`
}

type adjustmentJSON struct {
	Asset          string  `json:"asset"`
	Instrument     string  `json:"instrument"`
	Side           string  `json:"side"`
	Quantity       float64 `json:"quantity"`
	Price          float64 `json:"price"`
	NotionalUSD    float64 `json:"notional_usd"`
	EstFeeUSD      float64 `json:"est_fee_usd"`
	ResultingRatio float64 `json:"resulting_ratio"`
}

type totalsJSON struct {
	SpotUSD       float64 `json:"spot_usd"`
	HedgeUSD      float64 `json:"hedge_usd"`
	NetDeltaUSD   float64 `json:"net_delta_usd"`
	HedgeRatio    float64 `json:"hedge_ratio"`     // over hedgeable assets (with spot) only
	NakedShortUSD float64 `json:"naked_short_usd"` // shorts on assets without spot
}

type positionJSON struct {
	Asset    string  `json:"asset"`
	Quantity float64 `json:"quantity"`
}

type accountJSON struct {
	CashUSD     float64        `json:"cash_usd"`
	FeesPaidUSD float64        `json:"fees_paid_usd"`
	Spot        []positionJSON `json:"spot"`
	Perp        []positionJSON `json:"perp"`
}

func positions(m map[string]float64) []positionJSON {
	out := make([]positionJSON, 0, len(m))
	for a, q := range m {
		if hedging.RoundQty(q) != 0 {
			out = append(out, positionJSON{Asset: a, Quantity: hedging.RoundQty(q)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Asset < out[j].Asset })
	return out
}

func toAccountJSON(a hedging.Account) accountJSON {
	return accountJSON{CashUSD: hedging.RoundUSD(a.CashUSD), FeesPaidUSD: hedging.RoundUSD(a.FeesPaidUSD), Spot: positions(a.Spot), Perp: positions(a.Perp)}
}

type analysisJSON struct {
	Policy      policyJSON         `json:"policy"`
	FeeBps      float64            `json:"fee_bps"`
	Prices      map[string]float64 `json:"prices"`
	Assets      []exposureJSON     `json:"assets"`
	Totals      totalsJSON         `json:"totals"`
	Adjustments []adjustmentJSON   `json:"adjustments"`
	Account     accountJSON        `json:"account"`
}

func toAnalysisJSON(an hedging.Analysis, acct hedging.Account, prices hedging.Prices) analysisJSON {
	out := analysisJSON{
		Policy: policyJSON{TargetRatio: an.Policy.TargetRatio, Tolerance: an.Policy.Tolerance},
		FeeBps: hedging.TakerFeeBps, Prices: prices,
		Assets: make([]exposureJSON, len(an.Assets)),
		Totals: totalsJSON{SpotUSD: an.SpotUSD, HedgeUSD: an.HedgeUSD, NetDeltaUSD: an.NetDeltaUSD, HedgeRatio: an.HedgeRatio,
			NakedShortUSD: an.NakedShortUSD},
		Adjustments: make([]adjustmentJSON, len(an.Adjustments)),
		Account:     toAccountJSON(acct),
	}
	for i, e := range an.Assets {
		out.Assets[i] = exposureJSON(e)
	}
	for i, a := range an.Adjustments {
		out.Adjustments[i] = adjustmentJSON{Asset: a.Asset, Instrument: "perp", Side: string(a.Side), Quantity: a.Quantity, Price: a.Price,
			NotionalUSD: a.NotionalUSD, EstFeeUSD: a.EstFeeUSD, ResultingRatio: a.ResultingRatio}
	}
	return out
}

func policyFromQuery(r *http.Request) (hedging.Policy, error) {
	p := hedging.DefaultPolicy
	q := r.URL.Query()
	for name, dst := range map[string]*float64{"target_ratio": &p.TargetRatio, "tolerance": &p.Tolerance} {
		if v := q.Get(name); v != "" {
			f, err := parseDecimal(v)
			if err != nil {
				return p, fmt.Errorf("query parameter %s: %w", name, err)
			}
			*dst = f
		}
	}
	return p, p.Validate()
}

// currentPrices asks the price source; on failure it answers 503.
func (s *Server) currentPrices(w http.ResponseWriter, r *http.Request) (hedging.Prices, bool) {
	prices, err := s.prices.Prices()
	if err != nil {
		s.log.Error("price source", zap.Error(err))
		writeProblem(w, r, http.StatusServiceUnavailable, "prices-unavailable",
			"the backend has no current prices (the price source failed); retry later, and tell the operator if it persists")
		return nil, false
	}
	return prices, true
}

// hedgingError answers the errors every hedging handler shares; it returns
// false when err is none of them.
func (s *Server) hedgingError(w http.ResponseWriter, r *http.Request, err error) bool {
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeProblem(w, r, http.StatusNotFound, "account-not-found",
			"your tenant has no paper exchange account yet; an operator provisions one with `backend accounts set --tenant YOUR_TENANT --spot BTC=1 ...`")
	case errors.Is(err, hedging.ErrNoPrice):
		s.log.Error("price missing", zap.Error(err))
		writeProblem(w, r, http.StatusServiceUnavailable, "prices-unavailable",
			"the price source has no price for an asset your account holds; retry later, and tell the operator if it persists")
	case errors.Is(err, hedging.ErrInvalidOrder):
		writeProblem(w, r, http.StatusUnprocessableEntity, "invalid-order", err.Error())
	case errors.Is(err, hedging.ErrRiskLimit):
		writeProblem(w, r, http.StatusUnprocessableEntity, "risk-limit", err.Error()+"; nothing was traded")
	default:
		return false
	}
	return true
}

func (s *Server) hedgeAnalysis(w http.ResponseWriter, r *http.Request) {
	p := mustPrincipal(r)
	pol, err := policyFromQuery(r)
	if err != nil {
		writeProblem(w, r, http.StatusBadRequest, "validation", err.Error())
		return
	}
	prices, ok := s.currentPrices(w, r)
	if !ok {
		return
	}
	acct, err := s.store.Account(r.Context(), p.Tenant)
	if err == nil {
		var an hedging.Analysis
		if an, err = hedging.Analyze(acct, prices, pol); err == nil {
			writeJSON(w, http.StatusOK, toAnalysisJSON(an, acct, prices))
			return
		}
	}
	if !s.hedgingError(w, r, err) {
		s.internalError(w, r, err)
	}
}

type orderRequest struct {
	Asset    string  `json:"asset"`
	Side     string  `json:"side"`
	Quantity float64 `json:"quantity"`
}

type executeRequest struct {
	TargetRatio *float64       `json:"target_ratio"`
	Tolerance   *float64       `json:"tolerance"`
	Orders      []orderRequest `json:"orders"`
}

type fillJSON struct {
	OrderID     string  `json:"order_id"`
	Asset       string  `json:"asset"`
	Instrument  string  `json:"instrument"`
	Side        string  `json:"side"`
	Quantity    float64 `json:"quantity"`
	Price       float64 `json:"price"`
	NotionalUSD float64 `json:"notional_usd"`
	FeeUSD      float64 `json:"fee_usd"`
}

type executionJSON struct {
	ExecutionID    string      `json:"execution_id,omitempty"` // absent when nothing was traded
	IdempotencyKey string      `json:"idempotency_key,omitempty"`
	Source         string      `json:"source,omitempty"` // "recommended" or "request"
	Policy         *policyJSON `json:"policy,omitempty"`
	Orders         []fillJSON  `json:"orders"`
	AccountAfter   accountJSON `json:"account_after"`
	ExecutedAt     time.Time   `json:"executed_at"`
}

func toExecutionJSON(ex store.Execution) executionJSON {
	out := executionJSON{ExecutionID: ex.ID, Orders: make([]fillJSON, len(ex.Fills)), AccountAfter: toAccountJSON(ex.After), ExecutedAt: ex.At}
	for i, f := range ex.Fills {
		out.Orders[i] = fillJSON{OrderID: f.OrderID, Asset: f.Asset, Instrument: "perp", Side: string(f.Side), Quantity: f.Quantity,
			Price: f.Price, NotionalUSD: f.NotionalUSD, FeeUSD: f.FeeUSD}
	}
	return out
}

func validIdempotencyKey(k string) bool {
	if len(k) == 0 || len(k) > 255 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// requestHash fingerprints what a retry must repeat exactly: method, path and body.
func requestHash(r *http.Request, body []byte) string {
	h := sha256.New()
	h.Write([]byte(r.Method + "\n" + r.URL.Path + "\n"))
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

func (s *Server) hedgeExecute(w http.ResponseWriter, r *http.Request) {
	p := mustPrincipal(r)
	keys := r.Header.Values(IdempotencyKeyHeader)
	if len(keys) != 1 || !validIdempotencyKey(keys[0]) {
		writeProblem(w, r, http.StatusBadRequest, "idempotency-key-required",
			"POST /api/v1/hedging/execute needs exactly one Idempotency-Key header (1-255 printable ASCII characters, e.g. a UUID); reuse the same key when you retry")
		return
	}
	key := keys[0]
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	var req executeRequest
	if !decodeJSON(w, r, body, &req, true) {
		return
	}
	pol := hedging.DefaultPolicy
	if req.TargetRatio != nil {
		pol.TargetRatio = *req.TargetRatio
	}
	if req.Tolerance != nil {
		pol.Tolerance = *req.Tolerance
	}
	if err := pol.Validate(); err != nil {
		writeProblem(w, r, http.StatusBadRequest, "validation", err.Error())
		return
	}
	explicit := req.Orders != nil
	if explicit && (req.TargetRatio != nil || req.Tolerance != nil) {
		writeProblem(w, r, http.StatusBadRequest, "validation", "send either orders or target_ratio/tolerance, not both: orders are executed as given")
		return
	}
	if explicit && (len(req.Orders) == 0 || len(req.Orders) > 100) {
		writeProblem(w, r, http.StatusBadRequest, "validation", "orders must hold 1 to 100 entries of {asset, side, quantity}; omit it to execute the recommended adjustments")
		return
	}
	prices, ok := s.currentPrices(w, r)
	if !ok {
		return
	}
	limits := s.limits.For(p.Tenant.String())
	plan := func(before hedging.Account) ([]hedging.Fill, hedging.Account, error) {
		var orders []hedging.Order
		if explicit {
			for _, o := range req.Orders {
				orders = append(orders, hedging.Order{Asset: o.Asset, Side: hedging.Side(o.Side), Quantity: o.Quantity})
			}
		} else {
			an, err := hedging.Analyze(before, prices, pol)
			if err != nil {
				return nil, before, err
			}
			orders = an.Orders()
		}
		return hedging.Execute(before, prices, orders, limits, pol)
	}
	render := func(ex store.Execution) (store.Response, error) {
		out := toExecutionJSON(ex)
		out.IdempotencyKey = key
		out.Source = "request"
		if !explicit {
			out.Source = "recommended"
			out.Policy = &policyJSON{TargetRatio: pol.TargetRatio, Tolerance: pol.Tolerance}
		}
		return store.Response{Status: http.StatusOK, ContentType: "application/json", Body: marshalJSON(out)}, nil
	}
	now := s.now().UTC()
	resp, replayed, err := s.store.ExecuteOnce(r.Context(), p.Tenant, key, requestHash(r, body), now, now.Add(-s.idempotencyRetention), plan, render)
	switch {
	case errors.Is(err, store.ErrIdempotencyMismatch):
		writeProblem(w, r, http.StatusUnprocessableEntity, "idempotency-key-reused",
			"this Idempotency-Key was already used with a different request body; use a new key for a new request, or resend the original body to get its result")
		return
	case err != nil:
		if !s.hedgingError(w, r, err) {
			s.internalError(w, r, err)
		}
		return
	}
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	writeRaw(w, resp.Status, resp.ContentType, resp.Body)
}

func (s *Server) hedgeClose(w http.ResponseWriter, r *http.Request) {
	p := mustPrincipal(r)
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	var req struct{}
	if !decodeJSON(w, r, body, &req, true) {
		return
	}
	prices, ok := s.currentPrices(w, r)
	if !ok {
		return
	}
	// A close only buys back shorts, so it takes no risk limit: reducing
	// exposure is always allowed (its fees may take cash below 0).
	ex, err := s.store.Trade(r.Context(), p.Tenant, "close", s.now().UTC(), func(before hedging.Account) ([]hedging.Fill, hedging.Account, error) {
		return hedging.Apply(before, prices, hedging.CloseOrders(before))
	})
	if err != nil {
		if !s.hedgingError(w, r, err) {
			s.internalError(w, r, err)
		}
		return
	}
	out := toExecutionJSON(ex)
	writeJSON(w, http.StatusOK, struct {
		ExecutionID  string      `json:"execution_id,omitempty"`
		Closed       []fillJSON  `json:"closed"`
		Status       string      `json:"status"` // "closed" or "nothing_to_close"
		AccountAfter accountJSON `json:"account_after"`
		ExecutedAt   time.Time   `json:"executed_at"`
	}{out.ExecutionID, out.Orders, closeStatus(ex), out.AccountAfter, out.ExecutedAt})
}

// closeStatus says whether a close traded: with no shorts there is nothing
// to close, no execution is stored and the answer carries no execution_id.
func closeStatus(ex store.Execution) string {
	if ex.ID == "" {
		return "nothing_to_close"
	}
	return "closed"
}
