package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// ChainedLine is what the verifier reads from one JSON line that carries a
// chain: the fields that place it and the canonical form of its content.
type ChainedLine struct {
	Chain    string
	Seq      uint64
	MAC      string
	ChainEnd string // set on the record that closes a chain
	// canon is the canonical form of the fields (without the MAC prefix).
	canon []byte
}

// errNotChained marks a JSON line without chain, seq and mac: another
// logger's line, or an audit record written without audit_chain_key.
var errNotChained = errors.New("no chain fields")

// errNotJSON marks a line that is not one JSON object.
var errNotJSON = errors.New("not a JSON object")

// maxDepth bounds nesting, so a hostile line cannot exhaust the stack.
const maxDepth = 32

// ParseChainedLine reads one log line. It returns errNotJSON for a line that
// is not a JSON object, errNotChained for one without chain/seq/mac, and
// another error when the chain fields are there but malformed (a record
// someone edited by hand).
//
// It is a small JSON scanner of its own rather than encoding/json's token
// stream: it keeps the fields in line order, as the mac needs, at a tenth
// of the cost.
func ParseChainedLine(line []byte) (*ChainedLine, error) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] != '{' {
		return nil, errNotJSON
	}
	p := &lineParser{b: line, out: &ChainedLine{}}
	p.c.buf = make([]byte, 0, len(line)+len(line)/4)
	if err := p.topObject(); err != nil {
		if p.seen.mac == 0 {
			return nil, errNotJSON
		}
		return nil, fmt.Errorf("malformed record: %w", err)
	}
	seen, out := &p.seen, p.out
	if seen.chain == 0 || seen.seq == 0 || seen.mac == 0 {
		if seen.chain+seen.seq+seen.mac > 0 {
			return nil, errors.New("malformed record: chain, seq or mac missing")
		}
		return nil, errNotChained
	}
	if seen.chain > 1 || seen.seq > 1 || seen.mac > 1 || seen.chainEnd > 1 {
		return nil, errors.New("malformed record: chain, seq, mac or chain_end appears twice")
	}
	if out.Chain == "" || out.MAC == "" || out.Seq == 0 {
		return nil, errors.New("malformed record: empty chain or mac, or seq not a positive integer")
	}
	out.canon = p.c.buf
	return out, nil
}

type lineParser struct {
	b    []byte
	i    int
	c    canonEncoder
	out  *ChainedLine
	seen struct{ chain, seq, mac, chainEnd int } // how often each chain key appears
}

var errSyntax = errors.New("JSON syntax")

func (p *lineParser) ws() {
	for p.i < len(p.b) && (p.b[p.i] == ' ' || p.b[p.i] == '\t' || p.b[p.i] == '\n' || p.b[p.i] == '\r') {
		p.i++
	}
}

func (p *lineParser) expect(ch byte) error {
	p.ws()
	if p.i >= len(p.b) || p.b[p.i] != ch {
		return errSyntax
	}
	p.i++
	return nil
}

// topObject reads the line's object: logger keys and mac are left out of
// the canonical form, chain, seq and chain_end picked out.
func (p *lineParser) topObject() error {
	p.i = 1
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
	} else {
		for {
			key, err := p.str()
			if err != nil {
				return err
			}
			if err := p.expect(':'); err != nil {
				return err
			}
			if err := p.topField(key); err != nil {
				return err
			}
			p.ws()
			if p.i < len(p.b) && p.b[p.i] == ',' {
				p.i++
				p.ws()
				continue
			}
			if err := p.expect('}'); err != nil {
				return err
			}
			break
		}
	}
	p.ws()
	if p.i != len(p.b) {
		return errSyntax
	}
	return nil
}

func (p *lineParser) topField(key []byte) error {
	p.ws()
	k := string(key) // no allocation where only compared
	switch k {
	case "chain":
		p.seen.chain++
	case "seq":
		p.seen.seq++
	case "mac":
		p.seen.mac++
	case "chain_end":
		p.seen.chainEnd++
	}
	if loggerKeys[k] || k == "mac" {
		start := len(p.c.buf)
		if err := p.value(1); err != nil { // parsed, then dropped from the form
			return err
		}
		if k == "mac" {
			p.out.MAC = scalarString(p.c.buf[start:])
		}
		p.c.buf = p.c.buf[:start]
		return nil
	}
	p.c.name(k)
	start := len(p.c.buf)
	if err := p.value(1); err != nil {
		return err
	}
	v := p.c.buf[start:]
	switch k {
	case "chain":
		p.out.Chain = scalarString(v)
	case "chain_end":
		p.out.ChainEnd = scalarString(v)
	case "seq":
		if len(v) > 0 && v[0] == 'n' {
			p.out.Seq, _ = strconv.ParseUint(string(v[bytes.IndexByte(v, ':')+1:]), 10, 64)
		}
	}
	return nil
}

// scalarString returns the text of a canonical string value, "" for others.
func scalarString(v []byte) string {
	if len(v) == 0 || v[0] != 's' {
		return ""
	}
	return string(v[bytes.IndexByte(v, ':')+1:])
}

// value reads one JSON value and writes its canonical form.
func (p *lineParser) value(depth int) error {
	if depth > maxDepth {
		return errors.New("nested too deep")
	}
	p.ws()
	if p.i >= len(p.b) {
		return errSyntax
	}
	switch ch := p.b[p.i]; {
	case ch == '"':
		s, err := p.str()
		if err != nil {
			return err
		}
		p.c.value('s', s)
	case ch == '{':
		p.i++
		p.c.buf = append(p.c.buf, '{')
		if err := p.members(depth); err != nil {
			return err
		}
		p.c.buf = append(p.c.buf, '}')
	case ch == '[':
		p.i++
		p.c.buf = append(p.c.buf, '[')
		if err := p.elements(depth); err != nil {
			return err
		}
		p.c.buf = append(p.c.buf, ']')
	case ch == 't' || ch == 'f' || ch == 'n':
		for _, lit := range []string{"true", "false", "null"} {
			if bytes.HasPrefix(p.b[p.i:], []byte(lit)) {
				p.i += len(lit)
				if lit == "null" {
					p.c.value('z', nil)
				} else {
					p.c.value('b', []byte(lit))
				}
				return nil
			}
		}
		return errSyntax
	default:
		start := p.i
		for p.i < len(p.b) && bytes.IndexByte([]byte("+-.0123456789eE"), p.b[p.i]) >= 0 {
			p.i++
		}
		num := p.b[start:p.i]
		if len(num) == 0 || !json.Valid(num) {
			return errSyntax
		}
		p.c.value('n', num)
	}
	return nil
}

func (p *lineParser) members(depth int) error {
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return nil
	}
	for {
		p.ws()
		key, err := p.str()
		if err != nil {
			return err
		}
		if err := p.expect(':'); err != nil {
			return err
		}
		p.c.nameBytes(key)
		if err := p.value(depth + 1); err != nil {
			return err
		}
		p.ws()
		if p.i < len(p.b) && p.b[p.i] == ',' {
			p.i++
			continue
		}
		return p.expect('}')
	}
}

func (p *lineParser) elements(depth int) error {
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return nil
	}
	for {
		if err := p.value(depth + 1); err != nil {
			return err
		}
		p.ws()
		if p.i < len(p.b) && p.b[p.i] == ',' {
			p.i++
			continue
		}
		return p.expect(']')
	}
}

// str reads a JSON string and returns its decoded bytes. Plain valid UTF-8
// without escapes is returned as it stands (no copy); anything else goes
// through encoding/json, whose decoding (escapes, U+FFFD for invalid
// bytes) the writer side mirrors.
func (p *lineParser) str() ([]byte, error) {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return nil, errSyntax
	}
	start := p.i + 1
	plain := true
	j := start
	for ; j < len(p.b); j++ {
		ch := p.b[j]
		if ch == '"' {
			break
		}
		if ch == '\\' {
			plain = false
			j++
			continue
		}
		if ch < 0x20 {
			return nil, errSyntax
		}
		if ch >= utf8.RuneSelf {
			plain = false
		}
	}
	if j >= len(p.b) {
		return nil, errSyntax
	}
	p.i = j + 1
	raw := p.b[start:j]
	if plain || utf8.Valid(raw) && bytes.IndexByte(raw, '\\') < 0 {
		return raw, nil
	}
	var s string
	if err := json.Unmarshal(p.b[start-1:j+1], &s); err != nil {
		return nil, errSyntax
	}
	return []byte(s), nil
}
