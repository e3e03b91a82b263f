package integration_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/tenantgate/tenantgate/module/assertion"
)

// rawAnswer is one response read to its end over a raw connection.
type rawAnswer struct {
	status int
	header http.Header
	body   []byte
}

// rawPost POSTs size bytes of a JSON-looking body over a fresh connection
// the way curl does, and reads the answer TO ITS END (every byte of a
// chunked or sized body, or an error): with chunked false it announces
// Content-Length, else Transfer-Encoding: chunked; with expectContinue it
// waits up to 1 s for a 100 before sending, as curl does. The body streams
// while the answer is read, so an early answer arrives as soon as it is
// sent; a write error after the answer is not an error (curl ignores it).
func rawPost(url string, headers map[string]string, size int, chunked, expectContinue bool) (rawAnswer, error) {
	u, err := neturl.Parse(url)
	Expect(err).NotTo(HaveOccurred())
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		return rawAnswer{}, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n", u.RequestURI(), u.Host)
	for k, v := range headers {
		head += k + ": " + v + "\r\n"
	}
	if chunked {
		head += "Transfer-Encoding: chunked\r\n"
	} else {
		head += fmt.Sprintf("Content-Length: %d\r\n", size+len(`{"name":"`))
	}
	if expectContinue {
		head += "Expect: 100-continue\r\n"
	}
	if _, err := io.WriteString(conn, head+"\r\n"); err != nil {
		return rawAnswer{}, err
	}
	var once sync.Once
	send := func() {
		once.Do(func() {
			go func() {
				w := bufio.NewWriterSize(conn, 64<<10)
				block := []byte(strings.Repeat("x", 32<<10))
				write := func(p []byte) error {
					if chunked {
						if _, err := fmt.Fprintf(w, "%x\r\n", len(p)); err != nil {
							return err
						}
					}
					if _, err := w.Write(p); err != nil {
						return err
					}
					if chunked {
						_, err := w.WriteString("\r\n")
						return err
					}
					return nil
				}
				if write([]byte(`{"name":"`)) != nil {
					return
				}
				for left := size; left > 0; left -= len(block) {
					if write(block[:min(left, len(block))]) != nil {
						return
					}
				}
				if chunked {
					_, _ = w.WriteString("0\r\n\r\n")
				}
				_ = w.Flush()
			}()
		})
	}
	rd := bufio.NewReader(conn)
	if expectContinue {
		_ = conn.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := rd.Peek(1); err != nil {
			send()
		}
		_ = conn.SetReadDeadline(time.Now().Add(60 * time.Second))
	} else {
		send()
	}
	for {
		resp, err := http.ReadResponse(rd, nil)
		if err != nil {
			return rawAnswer{}, err
		}
		if resp.StatusCode == http.StatusContinue {
			send()
			continue
		}
		b, err := io.ReadAll(resp.Body) // to the end: a broken-off body is an error here
		if err != nil {
			return rawAnswer{status: resp.StatusCode, header: resp.Header, body: b}, fmt.Errorf("reading the %d body: %w", resp.StatusCode, err)
		}
		return rawAnswer{status: resp.StatusCode, header: resp.Header, body: b}, nil
	}
}

// expectWhole413 checks one complete problem+json 413 from the backend.
func expectWhole413(a rawAnswer, err error, what string) {
	ExpectWithOffset(1, err).NotTo(HaveOccurred(), what)
	ExpectWithOffset(1, a.status).To(Equal(http.StatusRequestEntityTooLarge), "%s: %s", what, a.body)
	ExpectWithOffset(1, a.header.Get("Content-Type")).To(Equal("application/problem+json"), what)
	var p map[string]any
	ExpectWithOffset(1, json.Unmarshal(a.body, &p)).To(Succeed(), "%s: a whole JSON body, got %q", what, a.body)
	ExpectWithOffset(1, p["type"]).To(Equal("urn:tenantgate:problem:body-too-large"), what)
	ExpectWithOffset(1, a.header.Get("X-Request-ID")).NotTo(BeEmpty(), what)
}

var _ = Describe("a body over the backend's limit", Ordered, func() {
	var uncappedGate string // a gate without request_body: every byte reaches the backend

	BeforeAll(func() {
		addr := freeAddr()
		uncappedGate = "http://" + addr
		sites := "http://" + addr + " {\n\ttenant_gate {\n%[1]s\n" + shippedRules() + "\t}\n\treverse_proxy " +
			strings.TrimPrefix(env.backendURL, "http://") + "\n}\n"
		gate := env.startCaddy("uncapped", sites, uncappedGate+"/healthz")
		DeferCleanup(gate.stop)
	})

	type shape struct {
		size                    int
		chunked, expectContinue bool
	}
	shapes := []shape{}
	for _, size := range []int{100 << 10, 10 << 20, 40 << 20} {
		for _, chunked := range []bool{false, true} {
			for _, ec := range []bool{false, true} {
				shapes = append(shapes, shape{size, chunked, ec})
			}
		}
	}
	describe := func(s shape) string {
		framing := "Content-Length"
		if s.chunked {
			framing = "chunked"
		}
		return fmt.Sprintf("%d KiB, %s, Expect: 100-continue %v", s.size>>10, framing, s.expectContinue)
	}

	It("answers one whole problem+json 413 straight from the backend, for every size and framing", func() {
		for _, s := range shapes {
			raw := mint(env.assertionPriv, func(c *assertion.Claims) {
				c.Path, c.Roles = "/api/v1/ensemble/create", []string{"ensemble:write"}
			})
			a, err := rawPost(env.backendURL+"/api/v1/ensemble/create", map[string]string{"X-Tenant-Assertion": raw},
				s.size, s.chunked, s.expectContinue)
			expectWhole413(a, err, "direct "+describe(s))
		}
	})

	It("answers one whole problem+json 413 through a gate without an edge cap, with the gate's request id", func() {
		tok := env.token("acme", "ensemble:write")
		for _, s := range shapes {
			a, err := rawPost(uncappedGate+"/api/v1/ensemble/create", map[string]string{"Authorization": "Bearer " + tok},
				s.size, s.chunked, s.expectContinue)
			if err != nil {
				files, _ := filepath.Glob(filepath.Join(env.dir, "uncapped", "*"))
				for _, f := range append(files, env.backendLog) {
					b, _ := os.ReadFile(f)
					if len(b) > 6000 {
						b = b[len(b)-6000:]
					}
					GinkgoWriter.Printf("==== %s\n%s\n", f, b)
				}
			}
			expectWhole413(a, err, "through the gate "+describe(s))
		}
	})
})
