package dpop

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/tenantgate/tenantgate/module/verify/jose"
)

// FuzzProofPreCheck: the DPoP proof pre-check never panics, and anything it
// accepts is three canonical base64url parts whose header is a JSON object
// with typ dpop+jwt, an asymmetric supported alg, and a jwk object without
// private members.
func FuzzProofPreCheck(f *testing.F) {
	hdr := func(h string) string { return base64.RawURLEncoding.EncodeToString([]byte(h)) }
	pub := `{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}`
	for _, s := range []string{
		hdr(`{"typ":"dpop+jwt","alg":"ES256","jwk":`+pub+`}`) + ".e30.c2ln",
		hdr(`{"typ":"dpop+jwt","alg":"none","jwk":`+pub+`}`) + ".e30.",
		hdr(`{"typ":"dpop+jwt","alg":"HS256","jwk":{"kty":"oct","k":"c2VjcmV0"}}`) + ".e30.c2ln",
		hdr(`{"typ":"dpop+jwt","alg":"ES256","jwk":{"kty":"EC","d":"AA"}}`) + ".e30.c2ln",
		hdr(`{"typ":"JWT","alg":"ES256","jwk":`+pub+`}`) + ".e30.c2ln",
		hdr(`{"typ":"dpop+jwt","typ":"JWT","alg":"ES256","jwk":`+pub+`}`) + ".e30.c2ln",
		hdr(`{"typ":"dpop+jwt","alg":"ES256","jwk":"x"}`) + ".e30.c2ln",
		hdr(`{"typ":"dpop+jwt","alg":"ES256","jwk":`+pub+`,"crit":["b64"]}`) + ".e30.c2ln",
		"a.b.c.d.e",
		"..",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		pp, e := precheckProof(raw)
		if e != nil {
			return
		}
		if len(raw) > MaxProofBytes || len(strings.Split(raw, ".")) != 3 {
			t.Fatalf("accepted %d bytes, %d parts", len(raw), len(strings.Split(raw, ".")))
		}
		var h struct {
			Typ string          `json:"typ"`
			Alg string          `json:"alg"`
			JWK json.RawMessage `json:"jwk"`
		}
		if err := json.Unmarshal(pp.HeaderJSON, &h); err != nil {
			t.Fatalf("accepted a header that does not decode: %v", err)
		}
		if !strings.EqualFold(h.Typ, "dpop+jwt") {
			t.Fatalf("accepted typ %q", h.Typ)
		}
		if info := jose.Algorithm(h.Alg); info == nil || info.Kind == jose.KindHMAC {
			t.Fatalf("accepted alg %q", h.Alg)
		}
		var key map[string]json.RawMessage
		if err := json.Unmarshal(h.JWK, &key); err != nil {
			t.Fatalf("accepted a jwk that is not an object: %v", err)
		}
		for _, m := range privateJWKMembers {
			if _, ok := key[m]; ok {
				t.Fatalf("accepted a jwk with %q", m)
			}
		}
	})
}
