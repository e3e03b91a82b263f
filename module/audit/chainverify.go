package audit

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"slices"
	"strconv"
)

// maxLineBytes bounds one log line the verifier reads.
const maxLineBytes = 1 << 20

// Location is where a record stands: file and 1-based line.
type Location struct {
	File string
	Line int
}

func (l Location) String() string { return l.File + ":" + strconv.Itoa(l.Line) }

// ChainSummary describes one chain found in the logs.
type ChainSummary struct {
	ID          string
	Records     int    // records of the chain, closing record included
	First, Last uint64 // first and last seq seen
	End         string // chain_end of the closing record; "" when none
	Key         int    // index of the key that verifies it; -1 when none
}

// Break is the first thing wrong with a chain.
type Break struct {
	Chain string
	Seq   uint64
	At    Location
	What  string
}

func (b Break) String() string {
	if b.Chain == "" {
		return fmt.Sprintf("%s: %s", b.At, b.What)
	}
	return fmt.Sprintf("chain %s: seq %d at %s: %s", b.Chain, b.Seq, b.At, b.What)
}

// Report is what VerifyFiles found.
type Report struct {
	Records   int // chained records read
	Skipped   int // lines that are not chained audit records (other loggers, blank)
	Unchained int // of those, audit records written without audit_chain_key
	Chains    []ChainSummary
	Breaks    []Break // the first break of each broken chain, earliest file position first
}

// OK reports whether every chain is whole.
func (r *Report) OK() bool { return len(r.Breaks) == 0 }

// entry is one chained record and where it stands.
type entry struct {
	*ChainedLine
	at      Location
	fileIdx int
}

// VerifyFiles checks the chains in the given log files (any order; rolled
// files of one log are put back in seq order) with the given keys (a
// chain verifies with one of them). allowOpen accepts a chain without a
// closing record (the live chain of a running gate). The error is for input
// that cannot be verified at all: an unreadable, empty or non-log file, no
// key, no chained record.
func VerifyFiles(keys [][]byte, paths []string, allowOpen bool) (*Report, error) {
	if len(keys) == 0 {
		return nil, errors.New("no key: give --key-file with the audit_chain_key")
	}
	if len(paths) == 0 {
		return nil, errors.New("no log file given")
	}
	rep := &Report{}
	byChain := map[string][]entry{}
	var order []string // chain ids in the order first seen
	for i, p := range paths {
		if err := readLog(p, i, rep, func(e entry) {
			if _, ok := byChain[e.Chain]; !ok {
				order = append(order, e.Chain)
			}
			byChain[e.Chain] = append(byChain[e.Chain], e)
		}); err != nil {
			return nil, err
		}
	}
	if rep.Records == 0 && len(rep.Breaks) == 0 {
		return nil, fmt.Errorf("no chained audit record in %d file(s) (%d other lines): was audit_chain_key set?", len(paths), rep.Skipped)
	}
	macs := make([]*macer, len(keys))
	for i, k := range keys {
		macs[i] = newMacer(k)
	}
	for _, id := range order {
		es := fileOrder(byChain[id])
		sum, brk := verifyChain(id, es, macs, allowOpen)
		rep.Chains = append(rep.Chains, sum)
		if brk != nil {
			rep.Breaks = append(rep.Breaks, *brk)
		}
	}
	return rep, nil
}

// readLog reads one file, handing each chained record to add.
func readLog(path string, idx int, rep *Report, add func(entry)) error {
	f, err := os.Open(path) // #nosec G304 -- a log file the operator names
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	lines, jsonLines := 0, 0
	var buf []byte
	for {
		line, err := readLine(r, buf[:0])
		buf = line
		if len(line) > 0 || err == nil {
			lines++
		}
		if err != nil && err != io.EOF {
			return fmt.Errorf("%s:%d: %w", path, lines, err)
		}
		if len(bytes.TrimSpace(line)) > 0 {
			cl, perr := ParseChainedLine(line)
			switch {
			case perr == nil:
				jsonLines++
				rep.Records++
				add(entry{ChainedLine: cl, at: Location{path, lines}, fileIdx: idx})
			case errors.Is(perr, errNotJSON):
				rep.Skipped++
			case errors.Is(perr, errNotChained):
				jsonLines++
				rep.Skipped++
				if bytes.Contains(line, []byte(`"logger":"`+LoggerName+`"`)) {
					rep.Unchained++
				}
			default:
				jsonLines++
				rep.Breaks = append(rep.Breaks, Break{At: Location{path, lines}, What: perr.Error()})
			}
		}
		if err == io.EOF {
			break
		}
	}
	if lines == 0 {
		return fmt.Errorf("%s: empty file", path)
	}
	if jsonLines == 0 {
		return fmt.Errorf("%s: not a JSON log (none of its %d lines is a JSON object)", path, lines)
	}
	return nil
}

// readLine reads one line without its newline, refusing absurdly long ones.
func readLine(r *bufio.Reader, line []byte) ([]byte, error) {
	for {
		chunk, isPrefix, err := r.ReadLine()
		line = append(line, chunk...)
		if len(line) > maxLineBytes {
			return nil, fmt.Errorf("line longer than %d bytes: not an audit log", maxLineBytes)
		}
		if err != nil || !isPrefix {
			return line, err
		}
	}
}

// fileOrder puts a chain's records in log order: files by the lowest seq
// the chain has in them (rolled files given in any order), lines in file
// order within a file.
func fileOrder(es []entry) []entry {
	minSeq := map[int]uint64{}
	for _, e := range es {
		if m, ok := minSeq[e.fileIdx]; !ok || e.Seq < m {
			minSeq[e.fileIdx] = e.Seq
		}
	}
	slices.SortStableFunc(es, func(a, b entry) int {
		if a.fileIdx != b.fileIdx {
			if minSeq[a.fileIdx] < minSeq[b.fileIdx] {
				return -1
			}
			return 1
		}
		return a.at.Line - b.at.Line
	})
	return es
}

// macer recomputes macs with one key, reusing its keyed hash.
type macer struct {
	h        hash.Hash
	buf, sum []byte
	text     [64]byte
}

func newMacer(key []byte) *macer { return &macer{h: hmac.New(sha256.New, key)} }

// verifies reports whether e's mac is the HMAC of prev and its fields.
func (m *macer) verifies(prev string, e entry) bool {
	m.buf = append(m.buf[:0], MACVersion...)
	m.buf = append(m.buf, '\n')
	m.buf = append(m.buf, prev...)
	m.buf = append(m.buf, '\n')
	m.buf = append(m.buf, e.canon...)
	m.h.Reset()
	m.h.Write(m.buf)
	m.sum = m.h.Sum(m.sum[:0])
	want := m.text[:base64.RawURLEncoding.EncodedLen(len(m.sum))]
	base64.RawURLEncoding.Encode(want, m.sum)
	return hmac.Equal(want, []byte(e.MAC))
}
