package main

import (
	"context"
	"fmt"
	"io"
)

// usageCommands heads `backend help`, `backend --help` and a usage error:
// every subcommand, then (from parseFlags) the serving flags.
const usageCommands = `usage: backend [serve] [flags]          serve the ensemble and hedging APIs (needs --assertion-key or --assertion-secret-file)
       backend routes                   print the route table, one "METHOD PATTERN public|authenticated|roles R..." a line
       backend accounts set --tenant T [--spot ASSET=QTY ...] [--cash USD]   give any tenant a paper exchange account
       backend accounts show --tenant T print a tenant's account as JSON
       backend help [serve|routes|accounts]
Every command also takes --help. Exit status: 0 ok, 1 failure, 2 usage error.
`

const usageRoutes = `usage: backend routes

Prints the route table the backend serves, one "METHOD PATTERN REQUIREMENT"
a line (REQUIREMENT: public, authenticated, or roles R... of which the
assertion must hold one), in the gate's rule syntax, so that
  caddy tenant-gate coverage --config Caddyfile --routes <(backend routes)
checks a Caddyfile against it. Takes no arguments.
`

// noEnv hides the environment from help, which shows the built-in defaults.
func noEnv(string) (string, bool) { return "", false }

// isHelpArg reports whether a is one of the spellings of "help" as a flag.
func isHelpArg(a string) bool { return a == "-h" || a == "-help" || a == "--help" }

func hasHelpArg(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if isHelpArg(a) {
			return true
		}
	}
	return false
}

// helpRequest answers `backend help [topic]` and any command given -h or
// --help. Help that was asked for goes to stdout with exit status 0 (so
// `backend --help | less` works); usage mistakes stay on stderr with 2.
// It reports false when args ask for no help.
func helpRequest(ctx context.Context, args []string, stdout, stderr io.Writer) (int, bool) {
	if len(args) == 0 {
		return 0, false
	}
	topic := ""
	switch {
	case args[0] == "help":
		if len(args) > 2 {
			fmt.Fprintf(stderr, "backend help: one topic at most (serve, routes, accounts), got %q\n", args[1:])
			return exitUsage, true
		}
		if len(args) == 2 {
			topic = args[1]
		}
	case isHelpArg(args[0]):
	case !hasHelpArg(args):
		return 0, false
	default:
		topic = args[0]
	}
	switch topic {
	case "", "serve":
		// parseFlags prints usageCommands and the flags, then reports ErrHelp.
		_, _ = parseFlags([]string{"-h"}, noEnv, stdout)
	case "routes":
		fmt.Fprint(stdout, usageRoutes)
	case "accounts":
		sub := args[1:]
		if args[0] == "help" || len(sub) == 0 || isHelpArg(sub[0]) {
			sub = nil // the accounts overview
		} else {
			sub = []string{sub[0], "-h"}
		}
		// Usage text only: with -h (or no subcommand) runAccounts opens no store.
		_ = runAccounts(ctx, sub, noEnv, stdout, stdout)
	default:
		if args[0] == "help" {
			fmt.Fprintf(stderr, "backend help: unknown topic %q; topics: serve, routes, accounts\n", topic)
			return exitUsage, true
		}
		// An unknown subcommand with --help: the overview says what exists.
		_, _ = parseFlags([]string{"-h"}, noEnv, stdout)
	}
	return exitOK, true
}

// unexpectedArg is the usage error for a stray positional argument.
func unexpectedArg(arg string) error {
	return fmt.Errorf("unexpected argument %q; commands are \"serve\" (the default), \"routes\", \"accounts\" and \"help\"", arg)
}
