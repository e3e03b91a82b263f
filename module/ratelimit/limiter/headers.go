package limiter

import (
	"strconv"
	"strings"
	"time"
)

// The response headers of draft-ietf-httpapi-ratelimit-headers-09 (March
// 2025): RateLimit-Policy names each policy with its quota q over a window
// of w seconds, RateLimit gives per policy the remaining quota r and the
// seconds t until the quota is full again. Both are Structured Field lists.
const (
	HeaderPolicy    = "RateLimit-Policy"
	HeaderRateLimit = "RateLimit"
)

// Checked is one limit and the store's answer for it.
type Checked struct {
	Policy *Policy
	Result Result
}

// PolicyHeader is the RateLimit-Policy value for the limits checked. A
// GCRA limit of N per period with burst B is described as its burst: q=B
// over w = the time B requests take to earn back, so r never exceeds q.
func PolicyHeader(checked []Checked) string {
	if len(checked) == 1 {
		return checked[0].Policy.policyItem
	}
	var b strings.Builder
	for i, c := range checked {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(c.Policy.policyItem)
	}
	return b.String()
}

// RateLimitHeader is the RateLimit value for the limits checked.
func RateLimitHeader(checked []Checked) string {
	var b strings.Builder
	for i, c := range checked {
		if i > 0 {
			b.WriteString(", ")
		}
		t := c.Result.ResetAfter
		if !c.Result.Allowed {
			t = c.Result.RetryAfter
		}
		b.WriteString(c.Policy.quotedID)
		b.WriteString(";r=")
		b.WriteString(strconv.Itoa(c.Result.Remaining))
		b.WriteString(";t=")
		b.WriteString(strconv.FormatInt(CeilSeconds(t), 10))
	}
	return b.String()
}

// CeilSeconds rounds d up to whole seconds (Retry-After and t are integers;
// rounding down would invite a retry that is refused again).
func CeilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}

// sfString quotes s as a Structured Field string (RFC 9651): printable
// ASCII only, with \ and " escaped; other bytes are percent-encoded so the
// value stays valid and deterministic.
func sfString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c > 0x7e || c == '%':
			const hexdig = "0123456789ABCDEF"
			b.WriteByte('%')
			b.WriteByte(hexdig[c>>4])
			b.WriteByte(hexdig[c&15])
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
