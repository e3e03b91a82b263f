package ratelimit

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantgate/tenantgate/module/audit"
)

func testutilRegistry() *prometheus.Registry { return prometheus.NewPedanticRegistry() }

// Outcome is the reason a test reads back from the audit.Outcome the
// handler was given (see outcome in handler_test.go).
type Outcome audit.Reason

func (o Outcome) String() string { return string(o) }
