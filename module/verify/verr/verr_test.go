package verr

import (
	"errors"
	"testing"
	"time"

	"github.com/tenantgate/tenantgate/module/audit"
)

func TestErrorNamesReasonDetailAndCause(t *testing.T) {
	cause := errors.New("dial tcp: refused")
	e := New(audit.ReasonKeysUnavailable, "keys of issuer x are not loaded yet", cause)
	e.RetryAfter = time.Second
	if e.Error() != "keys_unavailable: keys of issuer x are not loaded yet: dial tcp: refused" || !errors.Is(e, cause) {
		t.Fatalf("%q", e.Error())
	}
	if got := New(audit.ReasonBadSignature, "signature does not verify", nil).Error(); got != "bad_signature: signature does not verify" {
		t.Fatalf("%q", got)
	}
}
