package audit

import "fmt"

// verifyChain walks one chain's records in log order and returns its
// summary and its first break (nil when whole).
func verifyChain(id string, es []entry, macs []*macer, allowOpen bool) (ChainSummary, *Break) {
	sum := ChainSummary{ID: id, Records: len(es), First: es[0].Seq, Last: es[0].Seq, Key: -1}
	for _, e := range es {
		sum.First, sum.Last = min(sum.First, e.Seq), max(sum.Last, e.Seq)
	}
	brk := func(e entry, format string, args ...any) *Break {
		return &Break{Chain: id, Seq: e.Seq, At: e.at, What: fmt.Sprintf(format, args...)}
	}
	m, keyBrk := pickKey(id, es, macs, &sum)
	if keyBrk != nil {
		return sum, keyBrk
	}
	first := es[0]
	if first.Seq != 1 {
		return sum, brk(first, "gap: the chain starts at seq %d, seq 1 to %d are missing (deleted, or an older rolled file not given)", first.Seq, first.Seq-1)
	}
	prev, expect := "", uint64(1)
	seen := map[uint64]Location{}
	for i, e := range es {
		if sum.End != "" {
			return sum, brk(e, "inserted record: it follows the closing record (chain_end %q) of seq %d", sum.End, expect-1)
		}
		switch {
		case e.Seq == expect && m.verifies(prev, e):
			prev, expect = e.MAC, expect+1
			seen[e.Seq] = e.at
			sum.End = e.ChainEnd
		case e.Seq == expect:
			if i+1 < len(es) && es[i+1].Seq == expect && m.verifies(prev, es[i+1]) {
				return sum, brk(e, "inserted record: its mac does not verify, and the next line (%s) is the real seq %d", es[i+1].at, expect)
			}
			return sum, brk(e, "changed record: its mac does not verify (a field was edited, added or removed)")
		case e.Seq < expect:
			if at, ok := seen[e.Seq]; ok {
				return sum, brk(e, "repeated seq: seq %d already stands at %s (a copied or inserted record)", e.Seq, at)
			}
			return sum, brk(e, "out of order: seq %d comes after seq %d", e.Seq, expect-1)
		default: // e.Seq > expect
			for _, later := range es[i+1:] {
				if later.Seq == expect {
					return sum, brk(e, "out of order: seq %d stands before seq %d (%s): records were swapped or moved", e.Seq, expect, later.at)
				}
			}
			if e.Seq == expect+1 {
				return sum, brk(e, "gap: seq %d is missing before it (a deleted record)", expect)
			}
			return sum, brk(e, "gap: seq %d to %d are missing before it (deleted records)", expect, e.Seq-1)
		}
	}
	if sum.End == "" && !allowOpen {
		last := es[len(es)-1]
		return sum, brk(last, "no closing record after the last record: the log was cut off here, or the process crashed or is still running (--allow-open accepts a live chain)")
	}
	return sum, nil
}

// pickKey finds the key the chain was written with: the one that verifies
// its first record (or, when that one was edited, its second).
func pickKey(id string, es []entry, macs []*macer, sum *ChainSummary) (*macer, *Break) {
	first := es[0]
	if first.Seq == 1 {
		for i, m := range macs {
			if m.verifies("", first) {
				sum.Key = i
				return m, nil
			}
		}
	}
	// The first record present cannot be checked without its predecessor
	// (a chain whose start is missing) or was edited: the second one says
	// which key it is.
	if len(es) > 1 && es[1].Seq == first.Seq+1 {
		for i, m := range macs {
			if m.verifies(first.MAC, es[1]) {
				sum.Key = i
				return m, nil
			}
		}
	}
	return nil, &Break{Chain: id, Seq: first.Seq, At: first.at,
		What: "no key verifies this chain: a wrong --key-file, or its records were forged or edited"}
}
