package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
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

// ParseChainedLine reads one log line. It returns errNotJSON for a line that
// is not a JSON object, errNotChained for one without chain/seq/mac, and
// another error when the chain fields are there but malformed (a record
// someone edited by hand).
func ParseChainedLine(line []byte) (*ChainedLine, error) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] != '{' {
		return nil, errNotJSON
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	out := &ChainedLine{}
	seen := map[string]int{}
	var canon canonEncoder
	if err := readObject(dec, &canon, true, out, seen); err != nil {
		if seen["mac"] == 0 {
			return nil, errNotJSON
		}
		return nil, fmt.Errorf("malformed record: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errNotJSON
	}
	if seen["chain"] == 0 || seen["seq"] == 0 || seen["mac"] == 0 {
		if seen["chain"]+seen["seq"]+seen["mac"] > 0 {
			return nil, errors.New("malformed record: chain, seq or mac missing")
		}
		return nil, errNotChained
	}
	for _, k := range []string{"chain", "seq", "mac", "chain_end"} {
		if seen[k] > 1 {
			return nil, fmt.Errorf("malformed record: %s appears %d times", k, seen[k])
		}
	}
	if out.Chain == "" || out.MAC == "" {
		return nil, errors.New("malformed record: empty chain or mac")
	}
	out.canon = canon.buf
	return out, nil
}

// readObject reads the object whose '{' is next in dec into c. top marks
// the record's own level, where logger keys are skipped and the chain
// fields picked out.
func readObject(dec *json.Decoder, c *canonEncoder, top bool, out *ChainedLine, seen map[string]int) error {
	t, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := t.(json.Delim); !ok || d != '{' {
		return errors.New("want an object")
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		key, ok := t.(string)
		if !ok {
			return errors.New("want a key")
		}
		if top {
			seen[key]++
			if loggerKeys[key] || key == "mac" {
				v, err := skipValue(dec)
				if err != nil {
					return err
				}
				if key == "mac" {
					out.MAC, _ = v.(string)
				}
				continue
			}
		}
		c.name(key)
		v, err := readValue(dec, c, out, seen)
		if err != nil {
			return err
		}
		if top {
			switch key {
			case "chain":
				out.Chain, _ = v.(string)
			case "chain_end":
				out.ChainEnd, _ = v.(string)
			case "seq":
				n, _ := v.(json.Number)
				if out.Seq, err = strconv.ParseUint(string(n), 10, 64); err != nil || out.Seq == 0 {
					return fmt.Errorf("seq %q: want a positive integer", n)
				}
			}
		}
	}
	_, err = dec.Token() // '}'
	return err
}

// readValue writes the canonical form of the next value (type, length,
// text) and returns scalars for the caller to pick out.
func readValue(dec *json.Decoder, c *canonEncoder, out *ChainedLine, seen map[string]int) (any, error) {
	t, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch v := t.(type) {
	case json.Delim:
		switch v {
		case '{':
			c.buf = append(c.buf, '{')
			if err := readObjectBody(dec, c, out, seen); err != nil {
				return nil, err
			}
			c.buf = append(c.buf, '}')
			return nil, nil
		case '[':
			c.buf = append(c.buf, '[')
			for dec.More() {
				if _, err := readValue(dec, c, out, seen); err != nil {
					return nil, err
				}
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			c.buf = append(c.buf, ']')
			return nil, nil
		}
		return nil, errors.New("unexpected delimiter")
	case string:
		c.stringValue(v)
	case json.Number:
		c.value('n', []byte(v))
	case bool:
		c.boolValue(v)
	case nil:
		c.value('z', nil)
	}
	return t, nil
}

// readObjectBody is readObject after its '{' was consumed.
func readObjectBody(dec *json.Decoder, c *canonEncoder, out *ChainedLine, seen map[string]int) error {
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		key, ok := t.(string)
		if !ok {
			return errors.New("want a key")
		}
		c.name(key)
		if _, err := readValue(dec, c, out, seen); err != nil {
			return err
		}
	}
	_, err := dec.Token()
	return err
}

func skipValue(dec *json.Decoder) (any, error) {
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return nil, err
	}
	var v any
	_ = json.Unmarshal(raw, &v)
	return v, nil
}
