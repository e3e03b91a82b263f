package main

import (
	"fmt"
	"html"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Chart geometry, in SVG user units.
const (
	chartLabelW = 330 // target names
	chartBarW   = 300 // longest bar of a panel
	chartValueW = 90  // the value after a bar
	chartRowH   = 22
	chartTop    = 58
)

// barColor tells the kinds of target apart at a glance.
func barColor(t target) string {
	switch {
	case t.peer:
		return "#d9822b"
	case t.proc == procCaddyBefore:
		return "#9fb7d6"
	case t.bare:
		return "#8a8a8a"
	}
	return "#2b6cb0"
}

// writeChart draws two panels of horizontal bars, one row per target: CPU
// time of the serving process per request (the bare share of a gate bar
// drawn darker, so the add-on is the rest), and saturated throughput.
func writeChart(path string, rows []row, at time.Time) error {
	var maxCPU, maxSat, bareCPU, maxEq float64
	rows = slices.Clone(rows)
	for i := range rows { // a target that served nothing draws no bar
		if math.IsNaN(rows[i].cpu) {
			rows[i].cpu = 0
		}
		if math.IsNaN(rows[i].sat) {
			rows[i].sat = 0
		}
	}
	for _, r := range rows {
		maxCPU, maxSat = max(maxCPU, r.cpu), max(maxSat, r.sat)
		if r.t.name == bareName {
			bareCPU = r.cpu
		}
		if r.eq != nil && !math.IsNaN(r.eq.gate) {
			maxEq = max(maxEq, r.eq.gate, r.eq.bare)
		}
	}
	if maxCPU <= 0 || maxSat <= 0 {
		return fmt.Errorf("nothing measured")
	}
	panelW := chartBarW + chartValueW
	panels := 2
	if maxEq > 0 {
		panels = 3
	}
	width := chartLabelW + panels*panelW + 20
	height := chartTop + len(rows)*chartRowH + 54
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">
<rect width="100%%" height="100%%" fill="white"/>
<text x="10" y="20" font-size="15" font-weight="bold">tenantgate bench-load, %s</text>
<text x="%d" y="%d" font-weight="bold">CPU µs per request, saturated (serving process)</text>
<text x="%d" y="%d" font-weight="bold">saturated throughput, req/s</text>
`, width, height, width, height, at.UTC().Format("2006-01-02 15:04 UTC"),
		chartLabelW, chartTop-12, chartLabelW+panelW, chartTop-12)
	if maxEq > 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-weight="bold">CPU µs per request at equal rate</text>
`, chartLabelW+2*panelW, chartTop-12)
	}
	for i, r := range rows {
		y := chartTop + i*chartRowH
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>
`, chartLabelW-8, y+14, html.EscapeString(r.t.name))
		w := r.cpu / maxCPU * chartBarW
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="16" fill="%s"/>
`, chartLabelW, y+2, w, barColor(r.t))
		if r.t.proc == procCaddy && !r.t.bare && bareCPU > 0 {
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="16" fill="#1a3f6b" opacity="0.55"/>
`, chartLabelW, y+2, min(bareCPU, r.cpu)/maxCPU*chartBarW)
		}
		label := fmt.Sprintf("%.0f", r.cpu)
		if r.t.baseline != "" && !math.IsNaN(r.added) {
			label += fmt.Sprintf(" (%+.0f)", r.added)
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%d">%s</text>
`, float64(chartLabelW)+w+4, y+14, label)
		x := chartLabelW + panelW
		w = r.sat / maxSat * chartBarW
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="16" fill="%s"/>
<text x="%.1f" y="%d">%.0f</text>
`, x, y+2, w, barColor(r.t), float64(x)+w+4, y+14, r.sat)
		if e := r.eq; maxEq > 0 && e != nil && !math.IsNaN(e.gate) {
			x += panelW
			w = e.gate / maxEq * chartBarW
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="16" fill="%s"/>
<rect x="%d" y="%d" width="%.1f" height="16" fill="#1a3f6b" opacity="0.55"/>
<text x="%.1f" y="%d">%.0f (%+.0f)</text>
`, x, y+2, w, barColor(r.t), x, y+2, min(e.bare, e.gate)/maxEq*chartBarW, float64(x)+w+4, y+14, e.gate, e.added)
		}
	}
	fmt.Fprintf(&b, `<text x="10" y="%d" fill="#555">Dark part of a gate's CPU bar: bare reverse_proxy in the same run; (+n): µs the add-on costs over it. Grey: bare; blue: tenant_gate; light blue: BENCH_BEFORE build; orange: peers.</text>
<text x="10" y="%d" fill="#555">Left two panels: saturated rounds (closed loop). Equal rate: open loop at half the gate's saturated rate, its bare site at that same rate (dark part), medians of pairs.</text>
</svg>
`, height-28, height-12)
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}
