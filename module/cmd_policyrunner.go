package tenantgate

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	_ "github.com/caddyserver/caddy/v2/modules/logging" // the file log writer that captures the audit trail

	"github.com/tenantgate/tenantgate/module/audit"
	"github.com/tenantgate/tenantgate/module/policytest"
	"github.com/tenantgate/tenantgate/module/rules"
)

// policyRunner drives cases through a real, provisioned tenant_gate
// handler: the same module, Provision and ServeHTTP that `caddy run` uses.
// Only the config's key sources are replaced (by the command's own key) and
// settings that would reach out of the process (a shared store). Outcomes
// are read from the handler's audit records, which go to a file of a
// Caddy log, so the runner depends on the module's public contract only.
type policyRunner struct {
	dir         string
	keys        *testKeys
	handler     caddyhttp.MiddlewareHandler
	cancel      context.CancelFunc
	issuers     []issuerInfo
	tenantClaim string
	table       *rules.Table // for the report's "rule" only
	auditFile   *os.File
	auditReader *bufio.Reader
	records     map[string]auditLine
	seq         int
}

// auditLine is the part of an audit record a case is judged on.
type auditLine struct {
	RequestID string `json:"request_id"`
	Decision  string `json:"decision"`
	Reason    string `json:"reason"`
	Status    int    `json:"status"`
}

// Settings of a tenant_gate that would make the test depend on something
// outside the process, or change the audit record's shape.
var offlineDrop = []string{"shared_store", "audit_format", "audit_chain_key"}

// Key sources of an issuer; the test's key replaces them all.
var keySources = []string{"jwks_url", "oidc_discovery", "jwks_file", "public_key_file", "hmac_secret"}

func newPolicyRunner(gateJSON map[string]any) (_ *policyRunner, err error) {
	p := &policyRunner{records: map[string]auditLine{}, tenantClaim: "tenant_id"}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	if p.dir, err = os.MkdirTemp("", "tenant-gate-test-"); err != nil {
		return nil, err
	}
	if tc, ok := gateJSON["tenant_claim"].(string); ok && tc != "" {
		p.tenantClaim = tc
	}
	if p.keys, err = newTestKeys(p.dir, jsonStrings(gateJSON["algorithms"])); err != nil {
		return nil, err
	}
	cfg, err := p.offline(gateJSON)
	if err != nil {
		return nil, err
	}
	if raw, ok := cfg["rules"]; ok {
		var rs []rules.Rule
		b, _ := json.Marshal(raw)
		if json.Unmarshal(b, &rs) == nil {
			p.table, _, _ = rules.Compile(rs)
		}
	}

	auditPath := filepath.Join(p.dir, "audit.log")
	ctx, err := caddy.ProvisionContext(captureConfig(auditPath))
	if err != nil {
		return nil, fmt.Errorf("setting up the audit capture: %w", err)
	}
	ctx, p.cancel = caddy.NewContext(ctx)
	raw, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	mod, err := ctx.LoadModuleByID("http.handlers."+handlerName, raw)
	if err != nil {
		return nil, err
	}
	h, ok := mod.(caddyhttp.MiddlewareHandler)
	if !ok {
		return nil, fmt.Errorf("module %T is not an HTTP handler", mod)
	}
	p.handler = h
	if p.auditFile, err = os.Open(auditPath); err != nil { // #nosec G304 -- our own temp file
		return nil, fmt.Errorf("audit capture: %w", err)
	}
	p.auditReader = bufio.NewReader(p.auditFile)
	return p, nil
}

// captureConfig is a Caddy config with no admin endpoint whose only log of
// interest writes the audit trail to path; other logs show warnings and
// errors on stderr.
func captureConfig(path string) *caddy.Config {
	writer, _ := json.Marshal(map[string]any{"output": "file", "filename": path, "roll": false})
	encoder, _ := json.Marshal(map[string]any{"format": "json"})
	return &caddy.Config{
		Admin: &caddy.AdminConfig{Disabled: true, Config: &caddy.ConfigSettings{Persist: new(bool)}},
		Logging: &caddy.Logging{Logs: map[string]*caddy.CustomLog{
			"default": {BaseLog: caddy.BaseLog{Level: "WARN"}, Exclude: []string{audit.LoggerName}},
			"tenant_gate_test_audit": {
				BaseLog: caddy.BaseLog{WriterRaw: writer, EncoderRaw: encoder, Level: "INFO"},
				Include: []string{audit.LoggerName},
			},
		}},
	}
}

// offline rewrites the handler's config: every issuer trusts the test key
// (a jwks_file, or for a multi-tenant issuer a loopback jwks_url with
// {tenant}), the assertion is signed with a fresh key, and settings that
// reach outside the process are dropped.
func (p *policyRunner) offline(gateJSON map[string]any) (map[string]any, error) {
	cfg := make(map[string]any, len(gateJSON))
	for k, v := range gateJSON {
		cfg[k] = v
	}
	delete(cfg, "handler")
	for _, k := range offlineDrop {
		delete(cfg, k)
	}
	list, _ := cfg["issuers"].([]any)
	issuers := make([]any, 0, len(list))
	for _, v := range list {
		src, ok := v.(map[string]any)
		if !ok {
			return nil, errors.New("issuers: not a list of objects")
		}
		is := make(map[string]any, len(src))
		for k, v := range src {
			is[k] = v
		}
		for _, k := range keySources {
			delete(is, k)
		}
		info := issuerInfo{audiences: jsonStrings(is["audiences"])}
		info.iss, _ = is["issuer"].(string)
		info.tokenType, _ = is["token_type"].(string)
		switch {
		case info.template():
			u, err := p.keys.jwksURL()
			if err != nil {
				return nil, fmt.Errorf("issuer %q: %w", info.iss, err)
			}
			is["jwks_url"] = u
		case p.keys.secret != nil:
			is["hmac_secret"] = string(p.keys.secret)
		default:
			is["jwks_file"] = p.keys.jwksPath
		}
		p.issuers = append(p.issuers, info)
		issuers = append(issuers, is)
	}
	if len(issuers) > 0 {
		cfg["issuers"] = issuers
	}
	if alg, _ := cfg["assertion_alg"].(string); alg == "HS256" {
		secret := make([]byte, 32)
		_, _ = rand.Read(secret)
		cfg["assertion_secret"] = hex.EncodeToString(secret)
	} else {
		path, err := writeAssertionKey(p.dir)
		if err != nil {
			return nil, err
		}
		cfg["assertion_key"] = path
	}
	return cfg, nil
}

// run sends one case through the handler and reads its audit record.
func (p *policyRunner) run(c *policytest.Case) (policytest.Outcome, error) {
	p.seq++
	id := "tenant-gate-test-" + strconv.Itoa(p.seq)
	r, err := http.NewRequest(c.Method, "http://localhost"+c.Path, nil)
	if err != nil {
		return policytest.Outcome{}, fmt.Errorf("not a request: %w", err)
	}
	r.RequestURI = c.Path
	r.RemoteAddr = "192.0.2.10:40000"
	for k, v := range c.Headers {
		if strings.EqualFold(k, "Host") {
			r.Host = v
			continue
		}
		r.Header.Set(k, v)
	}
	if c.Claims != nil && r.Header.Get("Authorization") == "" {
		claims, is := caseClaims(c.Claims, p.issuers, p.tenantClaim, time.Now())
		typ := ""
		if is != nil {
			typ = is.tokenType
		}
		tok, err := p.keys.sign(claims, typ)
		if err != nil {
			return policytest.Outcome{}, err
		}
		r.Header.Set("Authorization", "Bearer "+tok)
	}
	repl := caddy.NewReplacer()
	repl.Set("http.request.uuid", id)
	ctx := context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl)
	ctx = context.WithValue(ctx, caddyhttp.VarsCtxKey, map[string]any{})
	r = r.WithContext(ctx)

	w := httptest.NewRecorder()
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
		w.WriteHeader(http.StatusOK)
		return nil
	})
	path := r.URL.EscapedPath()
	if err := p.handler.ServeHTTP(w, r, next); err != nil {
		return policytest.Outcome{}, fmt.Errorf("handler: %w", err)
	}
	rec, ok, err := p.record(id)
	if err != nil {
		return policytest.Outcome{}, err
	}
	got := policytest.Outcome{Rule: p.ruleFor(c.Method, path)}
	if !ok {
		got.Decision, got.Status = "(no audit record)", w.Code
		return got, nil
	}
	got.Decision, got.Reason, got.Status = rec.Decision, rec.Reason, rec.Status
	return got, nil
}

// record reads the audit file up to the record of request id.
func (p *policyRunner) record(id string) (auditLine, bool, error) {
	for {
		if rec, ok := p.records[id]; ok {
			delete(p.records, id)
			return rec, true, nil
		}
		line, err := p.auditReader.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			var rec auditLine
			if jerr := json.Unmarshal(line, &rec); jerr == nil && rec.RequestID != "" {
				p.records[rec.RequestID] = rec
			}
		}
		if errors.Is(err, io.EOF) {
			rec, ok := p.records[id]
			delete(p.records, id)
			return rec, ok, nil
		}
		if err != nil {
			return auditLine{}, false, fmt.Errorf("audit capture: %w", err)
		}
	}
}

// ruleFor names the rule that decides method and path, as `explain` does.
func (p *policyRunner) ruleFor(method, escapedPath string) string {
	path, err := rules.CheckPath(escapedPath)
	if err != nil || p.table == nil {
		return ""
	}
	m, ok := p.table.Match(method, path)
	if !ok {
		return ""
	}
	s := strconv.Quote("rule " + m.Rule.String())
	if m.Rule.Line > 0 {
		s += fmt.Sprintf(" (line %d)", m.Rule.Line)
	}
	return s
}

func (p *policyRunner) close() {
	if p.cancel != nil {
		p.cancel()
	}
	if p.auditFile != nil {
		_ = p.auditFile.Close()
	}
	if p.keys != nil {
		p.keys.close()
	}
	if p.dir != "" {
		_ = os.RemoveAll(p.dir)
	}
}
