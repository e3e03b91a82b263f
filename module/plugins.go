package tenantgate

// Handlers that ship with tenant_gate. xcaddy builds with
// `--with github.com/tenantgate/tenantgate/module` only, so every other
// Caddy module of this repository registers itself through an import here.
import (
	_ "github.com/tenantgate/tenantgate/module/ratelimit" // http.handlers.tenant_rate_limit
)
