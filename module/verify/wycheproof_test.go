package verify

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/tenantgate/tenantgate/module/verify/jose"

	"github.com/tenantgate/tenantgate/module/verify/keysource"
)

// Wycheproof (github.com/C2SP/wycheproof, Apache-2.0; see
// testdata/wycheproof/SOURCE and LICENSE) JSON Web Signature and JSON Web Key
// vectors, run through VerifySignature and key-set loading.

type wpFile struct {
	TestGroups []struct {
		Comment string          `json:"comment"`
		Public  json.RawMessage `json:"public"`
		Private json.RawMessage `json:"private"`
		Tests   []struct {
			TcID    int             `json:"tcId"`
			Comment string          `json:"comment"`
			JWS     json.RawMessage `json:"jws"`
			Result  string          `json:"result"`
		} `json:"tests"`
	} `json:"testGroups"`
}

// wpStricter lists vectors Wycheproof calls valid that we reject on purpose.
var wpStricter = map[string]map[int]string{
	"json_web_signature_test.json": {
		346: "the group's key pins alg PS256 and the token says PS384; the contract requires token alg == JWK alg (the rule that makes tcIds 332-340 invalid)",
		350: "the group's key pins alg PS256 and the token says PS384; the contract requires token alg == JWK alg (the rule that makes tcIds 332-340 invalid)",
		347: `key alg "ES521" is not a registered JWS algorithm (RFC 7518 says ES512); a key with an unknown alg is never used`,
		351: `key alg "ES521" is not a registered JWS algorithm (RFC 7518 says ES512); a key with an unknown alg is never used`,
		372: "a '?' inside the base64url header is not canonical base64url; PreCheck rejects any byte outside A-Za-z0-9-_",
		373: "a '?' inside the base64url payload is not canonical base64url; PreCheck rejects any byte outside A-Za-z0-9-_",
	},
	"json_web_key_test.json": {},
}

// wpContradictory lists vectors whose jws is byte-identical to another vector
// of the same file with the opposite result, so no verifier can satisfy both.
// They are skipped (and counted) after checking that the duplicate is still
// there; the padded forms they were presumably meant to carry are rejected
// by TestPreCheck ("padding" cases).
var wpContradictory = map[int]int{
	367: 357, // "invalidBase64Padding" carries exactly the jws of "ValidMac"
	370: 357, // "invalidBase64PaddingInPayload" likewise
}

func loadWycheproof(t *testing.T, name string) wpFile {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "wycheproof", name))
	if err != nil {
		t.Fatal(err)
	}
	var f wpFile
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	return f
}

type wpTally struct{ passed, stricter, contradictory, total int }

func (c *wpTally) check(t *testing.T, file string, id int, comment, want string, err error) {
	t.Helper()
	c.total++
	accepted := err == nil
	switch want {
	case "acceptable":
		c.passed++
		return
	case "valid":
		if accepted {
			c.passed++
			return
		}
		if why, ok := wpStricter[file][id]; ok {
			c.stricter++
			t.Logf("tcId %d (%s): deliberately stricter: %s", id, comment, why)
			return
		}
		t.Errorf("%s tcId %d (%s): want valid, got %v", file, id, comment, err)
	case "invalid":
		if !accepted {
			c.passed++
			return
		}
		t.Errorf("%s tcId %d (%s): want invalid, accepted", file, id, comment)
	default:
		t.Errorf("tcId %d: unknown result %q", id, want)
	}
}

func TestWycheproofJWS(t *testing.T) {
	const file = "json_web_signature_test.json"
	f := loadWycheproof(t, file)
	var tally wpTally
	byID := map[int]string{}
	for _, g := range f.TestGroups {
		for _, tc := range g.Tests {
			byID[tc.TcID] = string(tc.JWS)
		}
	}
	for _, g := range f.TestGroups {
		keyJSON := g.Public
		if keyJSON == nil {
			keyJSON = g.Private // symmetric groups only have the secret
		}
		key, err := jwk.ParseKey(keyJSON)
		if err != nil {
			t.Fatalf("group %s: key: %v", g.Comment, err)
		}
		for _, tc := range g.Tests {
			if twin, ok := wpContradictory[tc.TcID]; ok {
				if byID[twin] != string(tc.JWS) {
					t.Errorf("tcId %d no longer duplicates tcId %d: remove it from wpContradictory", tc.TcID, twin)
				}
				tally.total++
				tally.contradictory++
				t.Logf("tcId %d (%s): skipped, its jws is identical to tcId %d which the file marks valid", tc.TcID, tc.Comment, twin)
				continue
			}
			var raw string
			if err := json.Unmarshal(tc.JWS, &raw); err != nil {
				raw = string(tc.JWS) // JSON serialization given as an object
			}
			tally.check(t, file, tc.TcID, tc.Comment, tc.Result, jose.VerifySignature(raw, key))
		}
	}
	if tally.total != 401 {
		t.Errorf("ran %d vectors, the file has 401", tally.total)
	}
	t.Logf("Wycheproof JWS: %d vectors: %d passed, %d deliberately stricter, %d contradictory (skipped)", tally.total, tally.passed, tally.stricter, tally.contradictory)
}

func TestWycheproofJWK(t *testing.T) {
	const file = "json_web_key_test.json"
	f := loadWycheproof(t, file)
	var tally wpTally
	for _, g := range f.TestGroups {
		// A published set (public) loads under the remote policy; a group
		// with only secrets is a local jwks_file.
		setJSON, policy := g.Public, jose.SetPolicy{Remote: true}
		if setJSON == nil {
			setJSON, policy = g.Private, jose.SetPolicy{}
		}
		ks, _, loadErr := jose.ParseJWKS(setJSON, policy)
		for _, tc := range g.Tests {
			var raw string
			if err := json.Unmarshal(tc.JWS, &raw); err != nil {
				t.Fatalf("tcId %d: %v", tc.TcID, err)
			}
			err := loadErr
			if err == nil {
				err = verifyWithSet(raw, ks)
			}
			tally.check(t, file, tc.TcID, tc.Comment, tc.Result, err)
		}
	}
	if tally.total != 26 {
		t.Errorf("ran %d vectors, the file has 26", tally.total)
	}
	t.Logf("Wycheproof JWK: %d vectors: %d passed, %d deliberately stricter", tally.total, tally.passed, tally.stricter)
}

// verifyWithSet runs the signature path of Verify (header rules, kid
// selection, key fit, jwx) against a loaded set, without claims.
func verifyWithSet(raw string, ks *jose.KeySet) error {
	p, e := jose.Split(raw, 0)
	if e != nil {
		return e
	}
	h, e := jose.CheckHeader(p.HeaderMembers)
	if e != nil {
		return e
	}
	v := &Verifier{}
	is := &issuerState{src: keysource.NewStatic("", ks, keysource.Env{})}
	sig, e := jose.DecodeSignature(&p)
	if e != nil {
		return e
	}
	if _, _, e := v.checkSignature(t0ctx, is, ks, h, &p, sig); e != nil {
		return e
	}
	return nil
}
