package audit

import (
	"math"
	"strconv"
	"unicode/utf8"

	"go.uber.org/zap/zapcore"
)

// MACVersion opens every MAC input, so a later change of the construction
// cannot be confused with this one.
const MACVersion = "tenantgate-audit-v1"

// The canonical form a record's MAC is computed over (docs/audit.md states
// it for reviewers):
//
//	"tenantgate-audit-v1" 0x0A <previous mac, "" for seq 1> 0x0A <fields>
//
// where <fields> lists every field of the JSON line in line order, except
// the logger's own keys (ts, level, logger, msg, caller, stacktrace) and mac
// itself, each as
//
//	<len(name)> ":" <name> <type> <len(value)> ":" <value>
//
// with lengths in decimal and type one of s (string: the decoded UTF-8
// text), n (number: the literal as written), b (true/false), z (null).
// A nested object is <len(name)> ":" <name> "{" <fields> "}" and an array
// <len(name)> ":" <name> "[" <values> "]", each value <type> <len> ":" <value>.
// Lengths make the form unambiguous whatever a value holds.

// loggerKeys are the keys the logger writes around a record; they are not
// part of the record and not covered by its mac.
var loggerKeys = map[string]bool{"ts": true, "level": true, "logger": true, "msg": true, "caller": true, "stacktrace": true}

// canonEncoder is a zapcore.ObjectEncoder that writes the canonical form of
// the fields a record marshals, exactly as zap's JSON encoder would print
// them and a JSON decoder read them back. Only the methods records use are
// implemented; the embedded nil encoder makes any other one panic in tests.
type canonEncoder struct {
	zapcore.ObjectEncoder
	buf []byte
}

func (c *canonEncoder) reset(prevMAC string) {
	c.buf = append(c.buf[:0], MACVersion...)
	c.buf = append(c.buf, '\n')
	c.buf = append(c.buf, prevMAC...)
	c.buf = append(c.buf, '\n')
}

func (c *canonEncoder) name(key string) {
	c.buf = strconv.AppendInt(c.buf, int64(len(key)), 10)
	c.buf = append(c.buf, ':')
	c.buf = append(c.buf, key...)
}

func (c *canonEncoder) nameBytes(key []byte) {
	c.buf = strconv.AppendInt(c.buf, int64(len(key)), 10)
	c.buf = append(c.buf, ':')
	c.buf = append(c.buf, key...)
}

func (c *canonEncoder) value(typ byte, v []byte) {
	c.buf = append(c.buf, typ)
	c.buf = strconv.AppendInt(c.buf, int64(len(v)), 10)
	c.buf = append(c.buf, ':')
	c.buf = append(c.buf, v...)
}

func (c *canonEncoder) stringValue(s string) {
	if utf8.ValidString(s) {
		c.buf = append(c.buf, 's')
		c.buf = strconv.AppendInt(c.buf, int64(len(s)), 10)
		c.buf = append(c.buf, ':')
		c.buf = append(c.buf, s...)
		return
	}
	// zap's JSON encoder writes each invalid byte as \ufffd: the reader
	// decodes that, so the mac covers that.
	c.value('s', sanitizeUTF8(s))
}

// sanitizeUTF8 replaces every byte that is not part of valid UTF-8 with
// U+FFFD, byte by byte, as zap's JSON encoder does.
func sanitizeUTF8(s string) []byte {
	out := make([]byte, 0, len(s)+8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			out = utf8.AppendRune(out, utf8.RuneError)
		} else {
			out = append(out, s[i:i+size]...)
		}
		i += size
	}
	return out
}

func (c *canonEncoder) AddString(key, v string) {
	c.name(key)
	c.stringValue(v)
}

func (c *canonEncoder) AddInt(key string, v int) { c.AddInt64(key, int64(v)) }

func (c *canonEncoder) AddInt64(key string, v int64) {
	c.name(key)
	var tmp [24]byte
	c.value('n', strconv.AppendInt(tmp[:0], v, 10))
}

func (c *canonEncoder) AddUint64(key string, v uint64) {
	c.name(key)
	var tmp [24]byte
	c.value('n', strconv.AppendUint(tmp[:0], v, 10))
}

// AddFloat64 mirrors zap: NaN and infinities are strings, other values the
// shortest 'f' form.
func (c *canonEncoder) AddFloat64(key string, v float64) {
	c.name(key)
	switch {
	case math.IsNaN(v):
		c.stringValue("NaN")
	case math.IsInf(v, 1):
		c.stringValue("+Inf")
	case math.IsInf(v, -1):
		c.stringValue("-Inf")
	default:
		var tmp [32]byte
		c.value('n', strconv.AppendFloat(tmp[:0], v, 'f', -1, 64))
	}
}

func (c *canonEncoder) AddObject(key string, m zapcore.ObjectMarshaler) error {
	c.name(key)
	c.buf = append(c.buf, '{')
	err := m.MarshalLogObject(c)
	c.buf = append(c.buf, '}')
	return err
}

// AddArray writes an array; records only use arrays of strings.
func (c *canonEncoder) AddArray(key string, m zapcore.ArrayMarshaler) error {
	c.name(key)
	c.buf = append(c.buf, '[')
	err := m.MarshalLogArray(canonArray{c: c})
	c.buf = append(c.buf, ']')
	return err
}

// canonArray writes array elements as bare values. Records only put
// strings in arrays; the embedded nil encoder makes any other element type
// panic in tests.
type canonArray struct {
	zapcore.ArrayEncoder
	c *canonEncoder
}

func (a canonArray) AppendString(v string) { a.c.stringValue(v) }
