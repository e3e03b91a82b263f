package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// Help that was asked for goes to stdout with exit 0, for every command and
// every spelling; nothing goes to stderr and nothing is served or opened.
func TestHelpForEveryCommand(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"help"}, []string{"backend routes", "backend accounts set", "backend help", "-listen", "TENANTGATE_BACKEND_"}},
		{[]string{"--help"}, []string{"backend accounts show", "-assertion-key"}},
		{[]string{"-help"}, []string{"backend routes"}},
		{[]string{"serve", "--help"}, []string{"-db"}},
		{[]string{"--listen", "127.0.0.1:0", "--help"}, []string{"-listen"}},
		{[]string{"help", "serve"}, []string{"-seed-demo"}},
		{[]string{"routes", "--help"}, []string{"usage: backend routes", "coverage"}},
		{[]string{"routes", "-h"}, []string{"usage: backend routes"}},
		{[]string{"help", "routes"}, []string{"usage: backend routes"}},
		{[]string{"accounts", "--help"}, []string{"backend accounts set", "backend accounts show"}},
		{[]string{"help", "accounts"}, []string{"backend accounts set"}},
		{[]string{"accounts", "set", "--help"}, []string{"-spot", "-cash", "-tenant"}},
		{[]string{"accounts", "show", "-h"}, []string{"-tenant", "-db"}},
		{[]string{"bogus", "--help"}, []string{"backend routes"}},
	} {
		var out, errb bytes.Buffer
		code := run(context.Background(), tc.args, env{}.lookup, &out, &errb)
		if code != exitOK || errb.Len() != 0 {
			t.Errorf("%v: exit %d, stderr %q; want 0 and nothing on stderr", tc.args, code, errb.String())
		}
		for _, w := range tc.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%v: stdout does not mention %q:\n%s", tc.args, w, out.String())
			}
		}
	}
}

func TestHelpMistakesAreUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"help", "nope"}, `unknown topic "nope"`},
		{[]string{"help", "routes", "accounts"}, "one topic at most"},
		{[]string{"--listen", "127.0.0.1:0", "stray"}, `commands are "serve" (the default), "routes", "accounts" and "help"`},
	} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), tc.args, env{}.lookup, &out, &errb); code != exitUsage || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, errb.String(), exitUsage, tc.want)
		}
	}
}
