package ratelimit

import "github.com/prometheus/client_golang/prometheus"

func testutilRegistry() *prometheus.Registry { return prometheus.NewPedanticRegistry() }
