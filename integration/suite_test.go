// Package integration starts the real bin/caddy (with tenant_gate) and the
// real bin/backend over loopback, with JWKS servers and key sets made at
// run time, and tries the contract from outside.
package integration_test

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

func TestIntegration(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "tenantgate integration")
}

var env *testEnv

var _ = BeforeSuite(func() {
	env = startEnv()
})

var _ = AfterSuite(func() {
	if env != nil {
		env.stop()
	}
})
