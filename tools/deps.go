//go:build tools

// Package tools pins modules that the build needs before code imports them.
package tools

import (
	_ "github.com/caddyserver/caddy/v2"
	_ "github.com/lestrrat-go/jwx/v2/jwt"
	_ "github.com/onsi/ginkgo/v2"
	_ "github.com/onsi/gomega"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "go.uber.org/zap"
	_ "modernc.org/sqlite"
)
