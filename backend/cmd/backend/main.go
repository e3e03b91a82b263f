// Command backend serves the ensemble and hedging APIs behind tenantgate.
//
//	backend [flags]        serve (needs --assertion-key)
//	backend routes         print the route table, one "METHOD PATTERN[ public]" a line
//
// Every flag can also be set with TENANTGATE_BACKEND_<FLAG> (upper case,
// dashes as underscores); a flag on the command line wins over the variable.
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

type options struct {
	listen            string
	db                string
	assertionKey      string
	assertionAudience string
	assertionIssuer   string
	seedDemo          bool
	logLevel          string
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "routes" {
		for _, r := range api.Routes() {
			fmt.Fprintln(stdout, r.String())
		}
		return 0
	}
	if len(args) > 0 && args[0] == "serve" {
		args = args[1:]
	}
	opts, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "backend:", err)
		return 2
	}
	if err := serve(opts); err != nil {
		fmt.Fprintln(stderr, "backend:", err)
		return 1
	}
	return 0
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("backend", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.listen, "listen", "127.0.0.1:9001", "address to listen on")
	fs.StringVar(&o.db, "db", ".data/backend.db", "SQLite database file (its directory is created)")
	fs.StringVar(&o.assertionKey, "assertion-key", "", "the gate's Ed25519 public key, PKIX PEM (required)")
	fs.StringVar(&o.assertionAudience, "assertion-audience", assertion.DefaultAudience, "expected aud of X-Tenant-Assertion")
	fs.StringVar(&o.assertionIssuer, "assertion-issuer", assertion.DefaultIssuer, "expected iss of X-Tenant-Assertion")
	fs.BoolVar(&o.seedDemo, "seed-demo", false, "give tenants acme and globex demo exchange accounts (once; kept on restart)")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: backend [flags]\n       backend routes\n\nflags (each also %s<FLAG>, e.g. %sLISTEN):\n", envPrefix, envPrefix)
		fs.PrintDefaults()
	}
	// Environment first, so the command line overrides it.
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := envPrefix + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(name); ok && envErr == nil {
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
		return o, fmt.Errorf("unexpected argument %q; the only subcommand is \"routes\"", fs.Arg(0))
	}
	if o.assertionKey == "" {
		return o, fmt.Errorf("--assertion-key (or %sASSERTION_KEY) is required: the gate's Ed25519 public key in PKIX PEM", envPrefix)
	}
	return o, nil
}

func newLogger(level string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.Sampling = nil // every request line, no sampling
	cfg.EncoderConfig.TimeKey = "ts"
	cfg.EncoderConfig.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	return cfg.Build()
}

func serve(o options) error {
	log, err := newLogger(o.logLevel)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()

	pub, err := assertion.LoadPublicKeyPEM(o.assertionKey)
	if err != nil {
		return fmt.Errorf("--assertion-key: %w", err)
	}
	verifier, err := assertion.NewEd25519Verifier(pub, o.assertionAudience)
	if err != nil {
		return err
	}
	verifier.Issuer = o.assertionIssuer

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	st, err := store.OpenSQLite(ctx, o.db)
	if err != nil {
		return err
	}
	defer func() { _ = st.Close() }()

	if o.seedDemo {
		for name, acct := range hedging.DemoAccounts() {
			created, err := st.SeedAccount(ctx, store.MustTenantID(name), acct, time.Now())
			if err != nil {
				return fmt.Errorf("seed demo tenant %s: %w", name, err)
			}
			log.Info("demo account", zap.String("tenant_id", name), zap.Bool("created", created))
		}
	}

	srv, err := api.New(api.Config{Store: st, Verifier: verifier, Logger: log})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", o.listen, err)
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
	log.Info("backend listening", zap.String("addr", ln.Addr().String()), zap.String("db", o.db),
		zap.String("assertion_issuer", o.assertionIssuer), zap.String("assertion_audience", o.assertionAudience))

	errc := make(chan error, 1)
	go func() { errc <- httpSrv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := httpSrv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}
