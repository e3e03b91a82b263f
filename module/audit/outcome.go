package audit

import "context"

// Outcome is how a handler that runs after tenant_gate (tenant_rate_limit)
// tells the gate's exchange that it answered the request itself, so the one
// audit record and the metrics of that request say so. The gate puts a
// fresh Outcome in the request's context before it calls the next handler,
// and reads it once when the request is finished; nothing else can set it
// (a `vars` directive or a placeholder cannot fake it).
type Outcome struct {
	reason Reason
}

type outcomeKey struct{}

// WithOutcome returns ctx carrying o.
func WithOutcome(ctx context.Context, o *Outcome) context.Context {
	return context.WithValue(ctx, outcomeKey{}, o)
}

// OutcomeContext is ctx carrying Outcome, like WithOutcome, as a value the
// caller can embed in a struct of its own: the gate's exchange holds one,
// so forwarding a request allocates no context node.
type OutcomeContext struct {
	context.Context
	Outcome *Outcome
}

// Value answers the Outcome's key, and asks the parent for any other.
func (c *OutcomeContext) Value(key any) any {
	if _, ok := key.(outcomeKey); ok {
		return c.Outcome
	}
	return c.Context.Value(key)
}

// OutcomeFrom returns the Outcome the gate put in ctx, nil when no gate
// runs in front.
func OutcomeFrom(ctx context.Context) *Outcome {
	o, _ := ctx.Value(outcomeKey{}).(*Outcome)
	return o
}

// Deny records that the handler refused the request for reason. It is safe
// on a nil Outcome (no gate in front: nobody to tell). The first denial
// stands.
func (o *Outcome) Deny(reason Reason) {
	if o != nil && o.reason == "" {
		o.reason = reason
	}
}

// Denied returns the reason a later handler refused the request for, ""
// when none did.
func (o *Outcome) Denied() Reason {
	if o == nil {
		return ""
	}
	return o.reason
}
