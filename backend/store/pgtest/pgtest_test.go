package pgtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeT records what New does to a test instead of stopping it.
type fakeT struct {
	skipped, failed string
	logs            []string
	cleanups        []func()
}

func (f *fakeT) Helper()      {}
func (f *fakeT) Name() string { return "TestFake" }
func (f *fakeT) Logf(format string, args ...any) {
	f.logs = append(f.logs, fmt.Sprintf(format, args...))
}
func (f *fakeT) Skipf(format string, args ...any)  { f.skipped = fmt.Sprintf(format, args...) }
func (f *fakeT) Fatalf(format string, args ...any) { f.failed = fmt.Sprintf(format, args...) }
func (f *fakeT) Cleanup(fn func())                 { f.cleanups = append(f.cleanups, fn) }

func TestNewCreatesAndDrops(t *testing.T) {
	var db *DB
	t.Run("inner", func(t *testing.T) {
		db = New(t)
		if extra := db.ExtraRole("owner"); extra != db.Name+"_owner" {
			t.Errorf("ExtraRole = %s", extra)
		}
		if !strings.HasPrefix(db.Name, "tenantgate_test_") || db.Role != db.Name+"_app" || !strings.HasSuffix(db.URL, "/"+db.Name) {
			t.Fatalf("db = %+v", db)
		}
		if d, r, err := db.Exists(context.Background()); err != nil || !d || r {
			t.Errorf("during the test: database %v role %v (%v)", d, r, err)
		}
	})
	if db == nil {
		t.Skip("inner test skipped")
	}
	if d, r, err := db.Exists(context.Background()); err != nil || d || r {
		t.Errorf("after the test: database %v role %v (%v)", d, r, err)
	}
}

func TestUnavailableSkipsLoudlyOrFails(t *testing.T) {
	log := filepath.Join(t.TempDir(), "skips.txt")
	t.Setenv(EnvURL, "postgres://nobody:secret@127.0.0.1:1/x?connect_timeout=1")
	t.Setenv(EnvSkipLog, log)
	t.Setenv(EnvRequire, "")
	f := &fakeT{}
	if db := New(f); db != nil || f.failed != "" || !strings.Contains(f.skipped, "POSTGRESQL UNAVAILABLE") || strings.Contains(f.skipped, "secret") {
		t.Errorf("skip: db %v, skipped %q, failed %q", db, f.skipped, f.failed)
	}
	if b, err := os.ReadFile(log); err != nil || !strings.Contains(string(b), "postgres: skipped TestFake") {
		t.Errorf("skip log: %q %v", b, err)
	}
	t.Setenv(EnvRequire, "1")
	f = &fakeT{}
	if db := New(f); db != nil || f.skipped != "" || !strings.Contains(f.failed, EnvRequire+"=1") {
		t.Errorf("required: db %v, skipped %q, failed %q", db, f.skipped, f.failed)
	}
	// Dropping from an unreachable server logs instead of failing.
	(&DB{Name: "x", Role: "y", admin: os.Getenv(EnvURL)}).drop(f)
	if len(f.logs) != 1 || !strings.Contains(f.logs[0], "could not drop") {
		t.Errorf("drop logs = %v", f.logs)
	}
	if _, _, err := (&DB{admin: os.Getenv(EnvURL)}).Exists(context.Background()); err == nil {
		t.Error("Exists on an unreachable server")
	}
}

func TestAdminURL(t *testing.T) {
	t.Setenv(EnvURL, "")
	if AdminURL() != DefaultURL {
		t.Errorf("default = %s", AdminURL())
	}
	t.Setenv(EnvURL, "postgres://x@h/db")
	if AdminURL() != "postgres://x@h/db" {
		t.Errorf("from env = %s", AdminURL())
	}
}
