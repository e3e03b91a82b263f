package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
	"unicode/utf8"
)

// checkJSONText refuses what encoding/json would accept silently but the
// backend must not store: invalid UTF-8 (json replaces it with U+FFFD), a
// \u0000 escape, a lone UTF-16 surrogate escape (also replaced), and an
// object that names a key twice (json keeps the last; the gate refuses
// duplicate claims the same way).
func checkJSONText(body []byte) error {
	if !utf8.Valid(body) {
		return errors.New("the request body is not valid UTF-8; send UTF-8 JSON")
	}
	if err := checkEscapes(body); err != nil {
		return err
	}
	return checkDuplicateKeys(body)
}

// checkEscapes walks the \u escapes of a JSON text (backslashes only occur
// inside strings in valid JSON; invalid JSON fails later in the decoder).
func checkEscapes(b []byte) error {
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' || i+1 >= len(b) {
			continue
		}
		if b[i+1] != 'u' {
			i++ // \" \\ \n ...: skip the escaped character
			continue
		}
		u, ok := hex4(b, i+2)
		if !ok {
			return nil // malformed escape: the decoder reports it with its offset
		}
		switch {
		case u == 0:
			return fmt.Errorf("the request body holds a NUL character (\\u0000 at byte %d); strings may not contain NUL", i)
		case u >= 0xD800 && u <= 0xDBFF:
			lo, ok := uint16(0), false
			if i+7 < len(b) && b[i+6] == '\\' && b[i+7] == 'u' {
				lo, ok = hex4(b, i+8)
			}
			if !ok || lo < 0xDC00 || lo > 0xDFFF {
				return fmt.Errorf("the request body holds a lone UTF-16 surrogate (\\u%04x at byte %d); send valid Unicode", u, i)
			}
			i += 11
		case u >= 0xDC00 && u <= 0xDFFF:
			return fmt.Errorf("the request body holds a lone UTF-16 surrogate (\\u%04x at byte %d); send valid Unicode", u, i)
		default:
			i += 5
		}
	}
	return nil
}

func hex4(b []byte, at int) (uint16, bool) {
	if at+4 > len(b) {
		return 0, false
	}
	var v uint16
	for _, c := range b[at : at+4] {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		v = v<<4 | uint16(d)
	}
	return v, true
}

// checkDuplicateKeys tokenizes the document and refuses an object that
// names a key twice, at any depth. Syntax errors are left to the decoder,
// which reports them better.
func checkDuplicateKeys(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	type frame struct {
		object    bool
		expectKey bool
		keys      map[string]bool
		path      string
		key       string // the key last read in an object
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil // io.EOF, or a syntax error the decoder will name
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && top.expectKey {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				continue
			}
			key, _ := tok.(string)
			if top.keys[key] {
				return fmt.Errorf("the request body names %q twice in %s; send each field once", key, top.path)
			}
			top.keys[key] = true
			top.key = key
			top.expectKey = false
			continue
		}
		if top != nil && top.object {
			top.expectKey = true
		}
		if n, ok := tok.(json.Number); ok {
			if _, err := parseDecimal(n.String()); err != nil {
				field := ""
				for i := len(stack) - 1; i >= 0 && field == ""; i-- {
					field = stack[i].key
				}
				return fmt.Errorf("field %q holds a number out of range: %w", field, err)
			}
		}
		switch tok {
		case json.Delim('{'):
			path := "the top-level object"
			if top != nil {
				path = "a nested object"
			}
			stack = append(stack, &frame{object: true, expectKey: true, keys: map[string]bool{}, path: path})
		case json.Delim('['):
			stack = append(stack, &frame{})
		case json.Delim(']'), json.Delim('}'):
			stack = stack[:len(stack)-1]
		}
	}
}

// drainLimit and drainTime bound how much of an over-limit body the backend
// still reads before it answers 413: at loopback or LAN speed any body a
// client sends within drainTime; past either bound the connection is closed
// after the answer.
const (
	drainLimit = 1 << 30
	drainTime  = 10 * time.Second
)

// bodyTooLarge answers 413 so that the peer reads all of it: only after
// the rest of the body has been read to its end (within drainLimit and
// drainTime), even when the peer asked Expect: 100-continue (reading sends
// the 100; a proxy such as Caddy streams the body without waiting for it
// anyway). Answering first breaks the answer through a proxy: Caddy's
// reverse proxy stops reading its client's body once it forwards response
// headers, fails the body it is still sending upstream and drops the
// connection with the answer half-forwarded (a 502 in its log, curl's
// "transfer closed with outstanding read data"); and closing on a peer
// still sending resets the connection, which loses the answer. Drained to
// the end, the connection even stays open.
func (s *Server) bodyTooLarge(w http.ResponseWriter, r *http.Request, detail string) {
	if !drain(w, r.Body) {
		w.Header().Set("Connection", "close")
	}
	writeProblem(w, r, http.StatusRequestEntityTooLarge, "body-too-large", detail)
}

// drain reads and discards what is left of body, within drainLimit and
// drainTime, and reports whether it reached the end.
func drain(w http.ResponseWriter, body io.Reader) bool {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(drainTime))
	defer func() { _ = rc.SetReadDeadline(time.Time{}) }()
	n, err := io.Copy(io.Discard, io.LimitReader(body, drainLimit))
	return err == nil && n < drainLimit
}
