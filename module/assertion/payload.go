package assertion

import (
	"encoding/json"
	"strconv"
)

// appendPayload appends the JSON of w to dst, byte for byte what
// json.Marshal(w) writes (payload_test.go holds it to that), without
// reflection: the assertion is made once per allowed request, and
// encoding/json's reflection and allocations were a fifth of the HS256
// signing cost.
func appendPayload(dst []byte, w *wireClaims) []byte {
	dst = append(dst, `{"iss":`...)
	dst = appendString(dst, w.Issuer)
	dst = append(dst, `,"aud":`...)
	dst = appendString(dst, w.Audience)
	dst = append(dst, `,"sub":`...)
	dst = appendString(dst, w.Subject)
	dst = append(dst, `,"tid":`...)
	dst = appendString(dst, w.Tenant)
	dst = append(dst, `,"roles":`...)
	if w.Roles == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, '[')
		for i, r := range w.Roles {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, r)
		}
		dst = append(dst, ']')
	}
	dst = append(dst, `,"htm":`...)
	dst = appendString(dst, w.Method)
	dst = append(dst, `,"htu":`...)
	dst = appendString(dst, w.Path)
	dst = append(dst, `,"iat":`...)
	dst = strconv.AppendInt(dst, w.IssuedAt, 10)
	dst = append(dst, `,"exp":`...)
	dst = strconv.AppendInt(dst, w.Expiry, 10)
	dst = append(dst, `,"jti":`...)
	dst = appendString(dst, w.ID)
	return append(dst, '}')
}

// appendString appends s as a JSON string. Printable ASCII other than the
// characters encoding/json escapes is copied as is; anything else (quotes,
// backslashes, controls, <, >, &, non-ASCII) goes through json.Marshal, so
// the escaping is always encoding/json's own.
func appendString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, err := json.Marshal(s)
			if err != nil { // a string always encodes; keep the output valid regardless
				return append(dst, `""`...)
			}
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}
