package keysource

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tenantgate/tenantgate/module/tenantid"
	"github.com/tenantgate/tenantgate/module/verify/jose"
)

// TenantsFilePoll is how often a tenants_file is checked for changes. A
// poll (not a file watch) survives editors and tools that replace the file
// by renaming a new one over it, and costs one stat per second.
const TenantsFilePoll = time.Second

// tenantList is who a multi-tenant issuer admits: listed names, every
// name (`tenants *`), or the lines of a file that may change at any time.
type tenantList struct {
	any    bool
	listed map[string]struct{}
	file   *tenantsFile
}

type tenantsFile struct {
	path  string
	names atomic.Pointer[map[string]struct{}]
	stamp fileStamp
}

// fileStamp is what tells a changed file from an unchanged one.
type fileStamp struct {
	info os.FileInfo
}

func (s fileStamp) same(fi os.FileInfo) bool {
	return s.info != nil && os.SameFile(s.info, fi) && s.info.ModTime().Equal(fi.ModTime()) && s.info.Size() == fi.Size()
}

func newTenantList(names []string, path string) (*tenantList, error) {
	l := &tenantList{listed: map[string]struct{}{}}
	for _, n := range names {
		if n == AnyTenant {
			l.any = true
			continue
		}
		l.listed[n] = struct{}{}
	}
	if path == "" {
		return l, nil
	}
	l.file = &tenantsFile{path: path}
	fi, set, err := readTenantsFile(path)
	if err != nil {
		return nil, fmt.Errorf("tenants_file %s: %w", path, err)
	}
	l.file.names.Store(&set)
	l.file.stamp = fileStamp{fi}
	return l, nil
}

func (l *tenantList) admits(tenant string) bool {
	if l.any {
		return true
	}
	if _, ok := l.listed[tenant]; ok {
		return true
	}
	if l.file != nil {
		_, ok := (*l.file.names.Load())[tenant]
		return ok
	}
	return false
}

// watch re-reads the file whenever it changes, until ctx ends, and hands
// the tenants that left it to gone. A file that cannot be read or holds a
// bad line leaves the last good list in force (and says so in the log):
// half a file written in place must not lock customers out.
func (l *tenantList) watch(ctx context.Context, log *zap.Logger, gone func([]string)) {
	f := l.file
	tick := time.NewTicker(TenantsFilePoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		fi, err := os.Stat(f.path)
		if err != nil {
			if f.stamp.info != nil {
				log.Warn("tenants_file unreadable; keeping the last good list", zap.String("path", f.path), zap.Error(err))
				f.stamp = fileStamp{}
			}
			continue
		}
		if f.stamp.same(fi) {
			continue
		}
		fi, set, err := readTenantsFile(f.path)
		if err != nil {
			log.Warn("tenants_file has problems; keeping the last good list", zap.String("path", f.path), zap.Error(err))
			f.stamp = fileStamp{fi}
			continue
		}
		f.stamp = fileStamp{fi}
		old := *f.names.Swap(&set)
		var left []string
		for n := range old {
			if _, ok := set[n]; !ok {
				left = append(left, n)
			}
		}
		log.Info("tenants_file reloaded", zap.String("path", f.path), zap.Int("tenants", len(set)), zap.Int("removed", len(left)))
		if len(left) > 0 {
			gone(left)
		}
	}
}

// maxTenantsFile bounds the file read into memory (about 100,000 tenants).
const maxTenantsFile = 4 << 20

// readTenantsFile reads one tenant per line; surrounding spaces, blank
// lines and lines starting with # are ignored. Every bad line is reported.
func readTenantsFile(path string) (os.FileInfo, map[string]struct{}, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, nil, err
	}
	if fi.Size() > maxTenantsFile {
		return fi, nil, fmt.Errorf("file is larger than %d bytes", maxTenantsFile)
	}
	data, err := os.ReadFile(path) // #nosec G304 -- the operator's tenants_file from the config
	if err != nil {
		return fi, nil, err
	}
	set := map[string]struct{}{}
	var bad []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxTenantsFile)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !tenantid.Valid(line) {
			bad = append(bad, fmt.Sprintf("line %d: %q is not a tenant name", n, jose.Truncate(line, 80)))
			continue
		}
		set[line] = struct{}{}
	}
	if err := sc.Err(); err != nil {
		return fi, nil, err
	}
	if len(bad) > 0 {
		return fi, nil, fmt.Errorf("%s (names are 1-%d characters from A-Z a-z 0-9 . _ -)", strings.Join(bad, "; "), tenantid.MaxLen)
	}
	return fi, set, nil
}
