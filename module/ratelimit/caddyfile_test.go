package ratelimit

import (
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func parse(t *testing.T, input string) (*Handler, error) {
	t.Helper()
	h := new(Handler)
	err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
	return h, err
}

func TestUnmarshalCaddyfile(t *testing.T) {
	h, err := parse(t, `tenant_rate_limit {
		store redis://127.0.0.1:6379/0
		limit *    /**                       100/s burst 200
		limit POST /api/v1/hedging/execute   10/m  burst 2
		on_store_error deny
		timeout 20ms
		key_prefix tg:
		max_tenants 500
	}`)
	if err != nil {
		t.Fatal(err)
	}
	if h.Store != "redis://127.0.0.1:6379/0" || h.OnStoreError != "deny" || h.Timeout != caddy.Duration(20*time.Millisecond) ||
		h.KeyPrefix != "tg:" || h.MaxTenants != 500 || len(h.Limits) != 2 {
		t.Fatalf("%+v", h)
	}
	if l := h.Limits[1]; l.Methods[0] != "POST" || l.Pattern != "/api/v1/hedging/execute" || l.Rate != "10/m" || l.Burst != 2 || l.Line != 4 {
		t.Fatalf("%+v", l)
	}
	// A placeholder store is read when the config loads.
	if _, err := parse(t, "tenant_rate_limit {\n store {env.TG_REDIS}\n limit * /** 1/s\n}"); err != nil {
		t.Fatal(err)
	}
}

func TestUnmarshalCaddyfileErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"tenant_rate_limit {\n limit * /** 10/x\n}", `limit 1 (line 2): bad rate "10/x"`},
		{"tenant_rate_limit {\n limit * /** 10/s burst 0\n}", `burst "0": want an integer of at least 1`},
		{"tenant_rate_limit {\n limit * api 10/s\n}", `bad pattern "api"`},
		{"tenant_rate_limit {\n store http://127.0.0.1:6379\n limit * /** 1/s\n}", "store http://127.0.0.1:6379"},
		{"tenant_rate_limit {\n store redis://:hunter2@h:1/db\n limit * /** 1/s\n}", "want redis://"},
		{"tenant_rate_limit {\n store\n}", "wrong argument count"},
		{"tenant_rate_limit {\n}", "at least one `limit"},
		{"tenant_rate_limit extra {\n}", "wrong argument count"},
		{"tenant_rate_limit {\n on_store_error maybe\n}", `on_store_error "maybe": want allow or deny`},
		{"tenant_rate_limit {\n timeout soon\n}", `timeout "soon"`},
		{"tenant_rate_limit {\n timeout -1s\n}", `timeout "-1s"`},
		{"tenant_rate_limit {\n max_tenants 0\n}", `max_tenants "0"`},
		{"tenant_rate_limit {\n max_tenants\n}", "wrong argument count"},
		{"tenant_rate_limit {\n key_prefix\n}", "wrong argument count"},
		{"tenant_rate_limit {\n on_store_error\n}", "wrong argument count"},
		{"tenant_rate_limit {\n timeout\n}", "wrong argument count"},
		{"tenant_rate_limit {\n limits * /** 1/s\n}", `unrecognized subdirective "limits"`},
		{"tenant_rate_limit {\n limit * /** 1/s\n limit * /** 1/s\n}", "limit 2 (line 3): duplicate of limit 1 (line 2)"},
	} {
		_, err := parse(t, c.in)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.in, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%q: the error repeats the password: %v", c.in, err)
		}
	}
	// Every broken limit at once.
	_, err := parse(t, "tenant_rate_limit {\n limit * /** 10/x\n limit * /ok 1/s\n limit GET nope 1/s burst 0\n}")
	for _, want := range []string{"limit 1 (line 2)", "limit 3 (line 4)", "bad pattern", "burst"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}
