package audit

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"go.uber.org/zap/zapcore"
)

func TestParseChainedLineEdges(t *testing.T) {
	for _, c := range []struct {
		line string
		want string // "" ok, else a substring of the error
	}{
		{`{"chain":"c","seq":1,"mac":"m","a":[1,"x",true,false,null,{"b":-1.5e3}],"o":{},"e":[]}`, ""},
		{` {"chain":"c" , "seq" : 2 , "mac":"m","s":"tab\tand \u00e9 and \ud83d\ude00"} `, ""},
		{"{\"chain\":\"c\",\"seq\":3,\"mac\":\"m\",\"bad\":\"\xff\"}", ""},
		{`{}`, "no chain fields"},
		{`{"level":"info","msg":"x"}`, "no chain fields"},
		{`not json`, "not a JSON object"},
		{`{"a":1} trailing`, "not a JSON object"},
		{`{"a":tru}`, "not a JSON object"},
		{`{"a":01x}`, "not a JSON object"},
		{`{"a":"unterminated}`, "not a JSON object"},
		{"{\"a\":\"ctl\x01\"}", "not a JSON object"},
		{`{"a" 1}`, "not a JSON object"},
		{`{"chain":"c","seq":1}`, "chain, seq or mac missing"},
		{`{"chain":"c","seq":1,"mac":"m","mac":"n"}`, "appears twice"},
		{`{"chain":"c","seq":0,"mac":"m"}`, "seq not a positive integer"},
		{`{"chain":"c","seq":"1","mac":"m"}`, "seq not a positive integer"},
		{`{"chain":"c","seq":1,"mac":"m","x":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`, "malformed record"},
		{`{"mac":"m","x":[1,}`, "malformed record"},
	} {
		cl, err := ParseChainedLine([]byte(c.line))
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%q: %v", c.line, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%q: got %v (%+v), want %q", c.line, err, cl, c.want)
		}
	}
}

// The reader's canonical form of a line equals the writer's for the same
// record, also for floats zap writes as strings and escaped text.
func TestCanonicalFormsAgree(t *testing.T) {
	for _, f := range []float64{0, 1.5, -2e-7, 1e21, math.NaN(), math.Inf(1), math.Inf(-1)} {
		var buf bytes.Buffer
		l := jsonLogger(&buf, zapcore.InfoLevel)
		c, _ := NewChain(testKey)
		r := sampleRecord()
		r.DurationMS, r.Path = f, "/a\"b\\c\u0001\u2028<>&"
		c.Write(l, "request", r)
		cl, err := ParseChainedLine(buf.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		var w canonEncoder
		_ = r.MarshalLogObject(&w)
		w.AddString("chain", c.ID())
		w.AddUint64("seq", 1)
		if !bytes.Equal(w.buf, cl.canon) {
			t.Errorf("%v:\nwriter %q\nreader %q", f, w.buf, cl.canon)
		}
	}
}

func TestChainHelpers(t *testing.T) {
	if fp := KeyFingerprint(testKey); len(fp) != 16 || fp == KeyFingerprint([]byte("other")) {
		t.Fatalf("fingerprint %q", fp)
	}
	b := Break{At: Location{"a.log", 3}, What: "x"}
	if b.String() != "a.log:3: x" {
		t.Fatal(b.String())
	}
	b.Chain, b.Seq = "c", 2
	if b.String() != "chain c: seq 2 at a.log:3: x" {
		t.Fatal(b.String())
	}
	// A chain closed without records writes nothing and gets a new id.
	c, _ := NewChain(testKey)
	id := c.ID()
	c.Close(ChainEndShutdown)
	if c.ID() == id {
		t.Fatal("closing did not start a new chain")
	}
}

// FuzzParseChainedLine: the verifier reads untrusted files, so no line may
// make it panic, and a line it accepts as a chained record must be one
// encoding/json accepts too.
func FuzzParseChainedLine(f *testing.F) {
	f.Add([]byte(`{"chain":"c","seq":1,"mac":"m","a":[1,"x",true,null,{"b":-1.5e3}]}`))
	f.Add([]byte(`{"level":"info","ts":1.5,"msg":"x","chain":"c","seq":2,"mac":"m","s":"\u00e9\ud83d\ude00\n"}`))
	f.Add([]byte("{\"chain\":\"c\",\"seq\":3,\"mac\":\"m\",\"bad\":\"\xff\"}"))
	f.Fuzz(func(t *testing.T, line []byte) {
		cl, err := ParseChainedLine(line)
		if err == nil && !json.Valid(bytes.TrimSpace(line)) {
			t.Fatalf("accepted invalid JSON %q as %+v", line, cl)
		}
	})
}
