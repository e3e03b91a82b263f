package integration_test

import (
	"io"
	"net"
	"strings"
	"time"

	"encoding/json"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
	. "github.com/onsi/gomega"
)

// rawRequest writes req as-is on a new connection to base and returns the
// whole response, for requests Go's client would normalise. "Host: t" in
// req is replaced with base's host, which the site matches on.
func rawRequest(base, req string) string {
	req = strings.Replace(req, "Host: t\r\n", "Host: "+strings.TrimPrefix(base, "http://")+"\r\n", 1)
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), 5*time.Second)
	Expect(err).NotTo(HaveOccurred())
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	_, err = io.WriteString(conn, req)
	Expect(err).NotTo(HaveOccurred())
	out, _ := io.ReadAll(conn)
	return string(out)
}

func signHMAC(secret []byte, c claims) string {
	payload, err := json.Marshal(c)
	Expect(err).NotTo(HaveOccurred())
	out, err := jws.Sign(payload, jws.WithKey(jwa.HS256, secret))
	Expect(err).NotTo(HaveOccurred())
	return string(out)
}
