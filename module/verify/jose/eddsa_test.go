package jose

import (
	"compress/gzip"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// edCase is one (public key, message, signature) of a published vector.
type edCase struct {
	name          string
	pub, msg, sig []byte
}

func readGzipJSON(t testing.TB, name string, v any) {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "ed25519", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.NewDecoder(zr).Decode(v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// edVectors are the published edge cases of testdata/ed25519.
func edVectors(t testing.TB) []edCase {
	var out []edCase
	var cctv []struct{ A, R, S, M string }
	readGzipJSON(t, "ed25519vectors.json.gz", &cctv)
	for i, v := range cctv {
		out = append(out, edCase{"ed25519vectors/" + strconv.Itoa(i), unhex(t, v.A), []byte(v.M), append(unhex(t, v.R), unhex(t, v.S)...)})
	}
	var spec []struct {
		Message   string `json:"message"`
		PubKey    string `json:"pub_key"`
		Signature string `json:"signature"`
	}
	readGzipJSON(t, "speccheck_cases.json.gz", &spec)
	for i, v := range spec {
		out = append(out, edCase{"speccheck/" + strconv.Itoa(i), unhex(t, v.PubKey), unhex(t, v.Message), unhex(t, v.Signature)})
	}
	var wp struct {
		TestGroups []struct {
			Key   struct{ PK string } `json:"key"`
			Tests []struct {
				TcID     int `json:"tcId"`
				Msg, Sig string
			} `json:"tests"`
		} `json:"testGroups"`
	}
	readGzipJSON(t, "eddsa_test.json.gz", &wp)
	for _, g := range wp.TestGroups {
		for _, c := range g.Tests {
			out = append(out, edCase{"wycheproof/" + strconv.Itoa(c.TcID), unhex(t, g.Key.PK), unhex(t, c.Msg), unhex(t, c.Sig)})
		}
	}
	return out
}

// sameVerdict fails when the registered EdDSA verifier and crypto/ed25519
// disagree on pub, msg, sig; it reports whether the signature verified.
func sameVerdict(t testing.TB, name string, pub, msg, sig []byte) bool {
	t.Helper()
	want := ed25519.Verify(ed25519.PublicKey(pub), msg, sig)
	got := sigVerifiers["EdDSA"].Verify(msg, sig, ed25519.PublicKey(pub)) == nil
	if got != want {
		t.Errorf("%s: the gate's EdDSA verifier says %v, crypto/ed25519 says %v (pub %x sig %x)", name, got, want, pub, sig)
	}
	return want
}

// The EdDSA verifier the gate registers with jwx (curve25519-voi, for
// speed) must give crypto/ed25519's verdict on every published edge case:
// low-order and non-canonical points, S out of range, Wycheproof's
// malleability and truncation cases. Each valid vector's signature is
// also mutated bit by bit.
func TestEdDSAVerifierIsStdlibs(t *testing.T) {
	if _, ok := sigVerifiers["EdDSA"].(voiEdDSAVerifier); !ok {
		t.Fatalf("EdDSA tokens are verified by %T, not the registered voi verifier", sigVerifiers["EdDSA"])
	}
	var accepted, rejected int
	for _, c := range edVectors(t) {
		if len(c.pub) != ed25519.PublicKeySize {
			continue // crypto/ed25519 panics; jose.Key never holds such a key
		}
		if !sameVerdict(t, c.name, c.pub, c.msg, c.sig) {
			rejected++
			continue
		}
		accepted++
		for bit := 0; bit < 8*len(c.sig); bit += 7 {
			m := append([]byte(nil), c.sig...)
			m[bit/8] ^= 1 << (bit % 8)
			sameVerdict(t, c.name+"/sig-bit-"+strconv.Itoa(bit), c.pub, c.msg, m)
		}
	}
	// The vectors hold both outcomes, so agreement is not agreement on "no".
	if accepted < 50 || rejected < 50 {
		t.Fatalf("only %d accepted and %d rejected vectors: the test data is not what it was", accepted, rejected)
	}
	// A wrong key type is an error, not a panic.
	if err := sigVerifiers["EdDSA"].Verify([]byte("m"), make([]byte, 64), []byte("short")); err == nil {
		t.Fatal("a non-Ed25519 key verified")
	}
}

func FuzzEdDSAVerifierIsStdlibs(f *testing.F) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	msg := []byte("header.payload")
	f.Add([]byte(pub), msg, ed25519.Sign(priv, msg))
	for i, c := range edVectors(f) {
		if i%7 == 0 {
			f.Add(c.pub, c.msg, c.sig)
		}
	}
	f.Fuzz(func(t *testing.T, pub, msg, sig []byte) {
		if len(pub) != ed25519.PublicKeySize {
			return
		}
		sameVerdict(t, "fuzz", pub, msg, sig)
	})
}
