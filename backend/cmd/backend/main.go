// Command backend serves the ensemble and hedging APIs behind tenantgate.
//
//	backend [flags]        serve (needs --assertion-key, or --assertion-secret-file)
//	backend routes         print the route table, one "METHOD PATTERN public|authenticated|roles R..." a line
//	backend accounts set --tenant T --spot BTC=2.5 ...   provision a tenant's paper exchange account
//	backend accounts show --tenant T
//	backend help [serve|routes|accounts]   (every command also takes --help; help goes to stdout)
//
// Every flag can also be set with TENANTGATE_BACKEND_<FLAG> (upper case,
// dashes as underscores); a flag on the command line wins over the variable.
//
// Exit status: 0 after a clean shutdown (SIGTERM/SIGINT) or `routes`, 1 when
// serving fails (key, database, listen address), 2 for a usage error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tenantgate/tenantgate/backend/api"
	"github.com/tenantgate/tenantgate/backend/hedging"
	"github.com/tenantgate/tenantgate/backend/store"
	"github.com/tenantgate/tenantgate/module/assertion"
)

const envPrefix = "TENANTGATE_BACKEND_"

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// shutdownTimeout bounds how long in-flight requests may run after SIGTERM.
const shutdownTimeout = 20 * time.Second

type options struct {
	listen            string
	db                string
	assertionKey      string
	assertionSecret   string // file holding the HS256 secret, instead of assertionKey
	assertionAudience string
	assertionIssuer   string
	seedDemo          bool
	logLevel          zapcore.Level
	pricesFile        string
	riskLimitsFile    string
	idempotencyTTL    time.Duration
	pg                store.PostgresOptions // with a postgres:// --db only
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := run(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole command: it parses args (and the environment through
// lookupEnv), then prints the routes or serves until ctx is done, and returns
// the exit status. Logs and errors go to stderr.
func run(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) int {
	if code, ok := helpRequest(ctx, args, stdout, stderr); ok {
		return code
	}
	if len(args) > 0 && args[0] == "routes" {
		if len(args) > 1 {
			fmt.Fprintf(stderr, "backend: routes takes no arguments, got %q\n", args[1:])
			return exitUsage
		}
		for _, r := range api.Routes() {
			fmt.Fprintln(stdout, r.String())
		}
		return exitOK
	}
	if len(args) > 0 && args[0] == "accounts" {
		return runAccounts(ctx, args[1:], lookupEnv, stdout, stderr)
	}
	if len(args) > 0 && args[0] == "serve" {
		args = args[1:]
	}
	opts, err := parseFlags(args, lookupEnv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "backend:", err)
		return exitUsage
	}
	if err := serve(ctx, opts, stderr); err != nil {
		fmt.Fprintln(stderr, "backend:", err)
		return exitFailure
	}
	return exitOK
}

func parseFlags(args []string, lookupEnv func(string) (string, bool), stderr io.Writer) (options, error) {
	var o options
	logLevel := "info"
	fs := flag.NewFlagSet("backend", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.listen, "listen", "127.0.0.1:9001", "address to listen on")
	fs.StringVar(&o.db, "db", ".data/backend.db", "SQLite database file (its directory is created), or a postgres:// URL")
	addPostgresFlags(fs, &o.pg)
	fs.StringVar(&o.assertionKey, "assertion-key", "", "the gate's Ed25519 public key, PKIX PEM (required unless --assertion-secret-file)")
	fs.StringVar(&o.assertionSecret, "assertion-secret-file", "", "file holding the gate's HS256 assertion secret (>= 32 bytes), when the gate runs assertion_alg HS256; instead of --assertion-key")
	fs.StringVar(&o.assertionAudience, "assertion-audience", assertion.DefaultAudience, "expected aud of X-Tenant-Assertion")
	fs.StringVar(&o.assertionIssuer, "assertion-issuer", assertion.DefaultIssuer, "expected iss of X-Tenant-Assertion")
	fs.BoolVar(&o.seedDemo, "seed-demo", false, "give tenants acme and globex demo exchange accounts (once; kept on restart)")
	fs.StringVar(&logLevel, "log-level", logLevel, "debug, info, warn or error")
	fs.StringVar(&o.pricesFile, "prices", "", "JSON price file {\"BTC\": 60000, ...}, re-read when it changes (default: the static demo table)")
	fs.StringVar(&o.riskLimitsFile, "risk-limits", "", "JSON risk limits per tenant (default: built-in limits, see backend/README.md)")
	fs.DurationVar(&o.idempotencyTTL, "idempotency-retention", api.DefaultIdempotencyRetention, "how long an Idempotency-Key replays its answer before it is swept")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "%s\nflags (each also %s<FLAG>, e.g. %sLISTEN):\n", usageCommands, envPrefix, envPrefix)
		fs.PrintDefaults()
	}
	// Environment first, so the command line overrides it.
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := envPrefix + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := lookupEnv(name); ok && envErr == nil {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("%s=%q: %w", name, v, err)
			}
		}
	})
	if envErr != nil {
		return o, envErr
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, unexpectedArg(fs.Arg(0))
	}
	// An empty issuer or audience would make the verifier's check vacuous
	// or unsatisfiable; refuse to start rather than guess.
	if strings.TrimSpace(o.assertionIssuer) == "" {
		return o, fmt.Errorf("--assertion-issuer (or %sASSERTION_ISSUER) must not be empty: it is the iss the gate signs (default %q)", envPrefix, assertion.DefaultIssuer)
	}
	if strings.TrimSpace(o.assertionAudience) == "" {
		return o, fmt.Errorf("--assertion-audience (or %sASSERTION_AUDIENCE) must not be empty: it is the gate's assertion_audience (default %q)", envPrefix, assertion.DefaultAudience)
	}
	if o.idempotencyTTL < time.Minute {
		return o, fmt.Errorf("--idempotency-retention must be at least 1m, got %s", o.idempotencyTTL)
	}
	switch {
	case o.assertionKey != "" && o.assertionSecret != "":
		return o, errors.New("--assertion-key and --assertion-secret-file exclude each other: give the one that matches the gate's assertion_alg")
	case o.assertionKey == "" && o.assertionSecret == "":
		return o, fmt.Errorf("--assertion-key (or %sASSERTION_KEY) is required: the gate's Ed25519 public key in PKIX PEM (or --assertion-secret-file for HS256)", envPrefix)
	}
	lvl, err := zapcore.ParseLevel(logLevel)
	if err != nil {
		return o, fmt.Errorf("--log-level: %w (use debug, info, warn or error)", err)
	}
	o.logLevel = lvl
	return o, nil
}

// newLogger returns a JSON logger on w: production encoding with "ts" in
// RFC 3339, no sampling (every request line is written).
func newLogger(level zapcore.Level, w io.Writer) *zap.Logger {
	enc := zap.NewProductionEncoderConfig()
	enc.TimeKey = "ts"
	enc.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	sink := zapcore.Lock(zapcore.AddSync(w))
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), sink, level)
	return zap.New(core, zap.AddCaller(), zap.AddStacktrace(zapcore.ErrorLevel), zap.ErrorOutput(sink))
}

// newTrustVerifier checks X-Tenant-Assertion with the gate's Ed25519 public
// key or, for a gate on assertion_alg HS256, the shared secret; either way
// with the same checks (alg pinned, iss, aud, times, htm/htu).
func newTrustVerifier(o options) (*assertion.Verifier, error) {
	var verifier *assertion.Verifier
	if o.assertionSecret != "" {
		secret, err := assertion.LoadSecretFile(o.assertionSecret)
		if err != nil {
			return nil, fmt.Errorf("--assertion-secret-file: %w", err)
		}
		if verifier, err = assertion.NewHMACVerifier(secret, o.assertionAudience); err != nil {
			return nil, fmt.Errorf("--assertion-audience: %w", err)
		}
	} else {
		pub, err := assertion.LoadPublicKeyPEM(o.assertionKey)
		if err != nil {
			return nil, fmt.Errorf("--assertion-key: %w", err)
		}
		if verifier, err = assertion.NewEd25519Verifier(pub, o.assertionAudience); err != nil {
			return nil, fmt.Errorf("--assertion-audience: %w", err)
		}
	}
	verifier.Issuer = o.assertionIssuer
	return verifier, nil
}

// serve runs the backend until ctx is done, then shuts down gracefully.
func serve(ctx context.Context, o options, logOut io.Writer) error {
	log := newLogger(o.logLevel, logOut)
	defer func() { _ = log.Sync() }()

	verifier, err := newTrustVerifier(o)
	if err != nil {
		return err
	}

	st, err := openStore(ctx, o)
	if err != nil {
		return fmt.Errorf("--db: %w", err)
	}
	defer func() { _ = st.Close() }()
	warnStore(st, log)

	if o.seedDemo {
		for name, acct := range hedging.DemoAccounts() {
			created, err := st.SeedAccount(ctx, store.MustTenantID(name), acct, time.Now())
			if err != nil {
				return fmt.Errorf("seed demo tenant %s: %w", name, err)
			}
			log.Info("demo account", zap.String("tenant_id", name), zap.Bool("created", created))
		}
	}

	cfg := api.Config{Store: st, Verifier: verifier, Logger: log, IdempotencyRetention: o.idempotencyTTL}
	if err := loadDomainConfig(&cfg, o); err != nil {
		return err
	}
	srv, err := api.New(cfg)
	if err != nil {
		return err
	}
	go sweepIdempotencyKeys(ctx, st, o.idempotencyTTL, log)
	go sweepSpentAssertions(ctx, st, log)
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", o.listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	httpSrv := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
	}
	log.Info("backend listening", zap.String("addr", ln.Addr().String()), zap.String("db", describeDB(o.db)),
		zap.String("assertion_issuer", o.assertionIssuer), zap.String("assertion_audience", o.assertionAudience))

	errc := make(chan error, 1)
	go func() { errc <- httpSrv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := httpSrv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}
