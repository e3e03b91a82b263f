package audit

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
)

var testKey = []byte("0123456789abcdef0123456789abcdef-test")

// chainedLog writes n records (both formats, awkward strings included) and
// the closing record, and returns the lines.
func chainedLog(t *testing.T, key []byte, n int) []string {
	t.Helper()
	var buf bytes.Buffer
	l := jsonLogger(&buf, zapcore.InfoLevel)
	c, err := NewChain(key)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		r := sampleRecord()
		r.Time = time.UnixMilli(1_700_000_000_000 + int64(i))
		r.DurationMS = float64(i) / 3
		r.ClientRequestID = "id-\xff\xfe-\u2028-\"quoted\"\n"
		r.TraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
		f := FormatNative
		if i%2 == 1 {
			f = FormatOCSF
		}
		c.Write(l, "request", r.Marshaler(f))
	}
	c.Close(ChainEndShutdown)
	return strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
}

func writeLog(t *testing.T, lines []string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func verifyLines(t *testing.T, lines []string) *Report {
	t.Helper()
	rep, err := VerifyFiles([][]byte{testKey}, []string{writeLog(t, lines)}, false)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestChainVerifiesWhole(t *testing.T) {
	lines := chainedLog(t, testKey, 6)
	lines = append([]string{`{"level":"info","logger":"http.log","msg":"other logger"}`}, lines...)
	rep := verifyLines(t, lines)
	if !rep.OK() {
		t.Fatalf("breaks: %v", rep.Breaks)
	}
	if rep.Records != 7 || rep.Skipped != 1 || len(rep.Chains) != 1 || rep.Chains[0].First != 1 || rep.Chains[0].Last != 7 || rep.Chains[0].End != ChainEndShutdown {
		t.Fatalf("report %+v", rep)
	}
}

func TestChainBreaks(t *testing.T) {
	cases := []struct {
		name   string
		tamper func([]string) []string
		seq    uint64
		what   string
	}{
		{"edited field", func(l []string) []string {
			l[2] = strings.Replace(l[2], `"tenant_id":"acme"`, `"tenant_id":"globex"`, 1)
			return l
		}, 3, "changed record"},
		{"edited ocsf field", func(l []string) []string {
			l[1] = strings.Replace(l[1], `"status_id":1`, `"status_id":2`, 1)
			return l
		}, 2, "changed record"},
		{"deleted line", func(l []string) []string { return append(l[:2:2], l[3:]...) }, 4, "gap: seq 3 is missing"},
		{"swapped lines", func(l []string) []string { l[2], l[3] = l[3], l[2]; return l }, 4, "out of order"},
		{"inserted copy", func(l []string) []string {
			return append(l[:3:3], append([]string{l[2]}, l[3:]...)...)
		}, 3, "repeated seq"},
		{"inserted forgery", func(l []string) []string {
			forged := strings.Replace(l[2], `"decision":"allow"`, `"decision":"deny"`, 1)
			return append(l[:2:2], append([]string{forged}, l[2:]...)...)
		}, 3, "inserted record"},
		{"truncated", func(l []string) []string { return l[:len(l)-1] }, 6, "no closing record"},
		{"field added", func(l []string) []string {
			l[0] = strings.Replace(l[0], `"seq":1`, `"seq":1,"note":"x"`, 1)
			return l
		}, 1, "changed record"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rep := verifyLines(t, c.tamper(chainedLog(t, testKey, 6)))
			if rep.OK() {
				t.Fatal("tampering not detected")
			}
			b := rep.Breaks[0]
			if b.Seq != c.seq || !strings.Contains(b.What, c.what) || b.At.Line == 0 {
				t.Fatalf("got %v, want seq %d %q", b, c.seq, c.what)
			}
		})
	}
}

func TestVerifyRolledFilesAnyOrder(t *testing.T) {
	lines := chainedLog(t, testKey, 9)
	a, b := writeLog(t, lines[:4]), writeLog(t, lines[4:])
	rep, err := VerifyFiles([][]byte{[]byte("another key of at least 32 bytes!!"), testKey}, []string{b, a}, false)
	if err != nil || !rep.OK() || rep.Chains[0].Key != 1 {
		t.Fatalf("%v %+v", err, rep)
	}
}

func TestVerifyBadInput(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	text := filepath.Join(dir, "text")
	_ = os.WriteFile(empty, nil, 0o600)
	_ = os.WriteFile(text, []byte("hello\nworld\n"), 0o600)
	log := writeLog(t, chainedLog(t, testKey, 2))
	for _, c := range []struct {
		paths []string
		key   []byte
		want  string
	}{
		{[]string{empty}, testKey, "empty file"},
		{[]string{text}, testKey, "not a JSON log"},
		{[]string{filepath.Join(dir, "missing")}, testKey, "no such file"},
		{[]string{writeLog(t, []string{`{"a":1}`})}, testKey, "no chained audit record"},
	} {
		_, err := VerifyFiles([][]byte{c.key}, c.paths, false)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: got %v, want %q", c.paths, err, c.want)
		}
	}
	rep, err := VerifyFiles([][]byte{[]byte("wrong key wrong key wrong key wrong")}, []string{log}, false)
	if err != nil || rep.OK() || !strings.Contains(rep.Breaks[0].What, "no key verifies") {
		t.Fatalf("wrong key: %v %+v", err, rep)
	}
}

func TestChainKeyTooShort(t *testing.T) {
	if _, err := NewChain([]byte("short")); err == nil {
		t.Fatal("a 5-byte key was accepted")
	}
}

// BenchmarkChainLink is the chain's own cost per record: the canonical
// form, HMAC-SHA256 and base64 (no log write).
func BenchmarkChainLink(b *testing.B) {
	c, _ := NewChain(testKey)
	r := sampleRecord()
	b.ReportAllocs()
	start := cpuTime()
	defer func() { reportCPU(b, start, 1) }()
	for b.Loop() {
		c.mu.Lock()
		c.seq++
		c.canon.reset(c.prev)
		_ = r.MarshalLogObject(&c.canon)
		c.link()
		c.mu.Unlock()
	}
}

// BenchmarkChainWrite is a whole chained record through zap's JSON
// encoder to io.Discard (compare BenchmarkWrite, unchained).
func BenchmarkChainWrite(b *testing.B) {
	c, _ := NewChain(testKey)
	l := jsonLogger(io.Discard, zapcore.InfoLevel)
	r := sampleRecord()
	b.ReportAllocs()
	start := cpuTime()
	defer func() { reportCPU(b, start, 1) }()
	for b.Loop() {
		c.Write(l, "request", r)
	}
}

// BenchmarkVerify is the verifier's throughput (records per second =
// 1e9 / ns/op).
func BenchmarkVerify(b *testing.B) {
	var buf bytes.Buffer
	l := jsonLogger(&buf, zapcore.InfoLevel)
	c, _ := NewChain(testKey)
	const n = 10000
	for i := 0; i < n; i++ {
		c.Write(l, "request", sampleRecord())
	}
	c.Close(ChainEndShutdown)
	p := filepath.Join(b.TempDir(), "a.log")
	_ = os.WriteFile(p, buf.Bytes(), 0o600)
	start := cpuTime()
	for b.Loop() {
		rep, err := VerifyFiles([][]byte{testKey}, []string{p}, false)
		if err != nil || !rep.OK() {
			b.Fatal(err, rep.Breaks)
		}
	}
	b.ReportMetric(float64(n+1)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(n+1)*float64(b.N)/(cpuTime()-start).Seconds(), "records/cpu-s")
}
