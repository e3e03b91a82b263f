// Package docs_test keeps the documentation honest against the code: every
// Prometheus metric registered in module/ and backend/, every reason word
// and every audit record field is documented, problem+json type URLs land
// on a heading, and every relative link in the README, SECURITY.md,
// backend/README.md and docs/*.md resolves (files and #anchors, with
// GitHub's anchor rules). Metrics and fields are found by reading the Go
// source, so ones added later are checked without editing this test.
package docs_test

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/tenantgate/tenantgate/module/audit"
)

const promPath = "github.com/prometheus/client_golang/prometheus"

func root(t *testing.T) string {
	t.Helper()
	r, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func read(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// goPackages parses the non-test Go files under dir, grouped by directory
// (one package each).
func goPackages(t *testing.T, fset *token.FileSet, dir string) map[string][]*ast.File {
	t.Helper()
	pkgs := map[string][]*ast.File{}
	err := filepath.WalkDir(filepath.Join(root(t), dir), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		pkgs[filepath.Dir(path)] = append(pkgs[filepath.Dir(path)], f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pkgs
}

// strValue evaluates a string expression made of literals, the package's
// string constants, + and prometheus.BuildFQName; ok is false otherwise.
func strValue(e ast.Expr, consts map[string]ast.Expr, promAlias map[string]bool, depth int) (string, bool) {
	if depth > 10 {
		return "", false
	}
	switch v := e.(type) {
	case *ast.BasicLit:
		if v.Kind != token.STRING {
			return "", false
		}
		s, err := strconv.Unquote(v.Value)
		return s, err == nil
	case *ast.Ident:
		if c, ok := consts[v.Name]; ok {
			return strValue(c, consts, promAlias, depth+1)
		}
	case *ast.ParenExpr:
		return strValue(v.X, consts, promAlias, depth+1)
	case *ast.BinaryExpr:
		if v.Op == token.ADD {
			a, ok1 := strValue(v.X, consts, promAlias, depth+1)
			b, ok2 := strValue(v.Y, consts, promAlias, depth+1)
			return a + b, ok1 && ok2
		}
	case *ast.CallExpr:
		if sel, ok := v.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "BuildFQName" && isProm(sel.X, promAlias) && len(v.Args) == 3 {
			var parts []string
			for _, a := range v.Args {
				s, ok := strValue(a, consts, promAlias, depth+1)
				if !ok {
					return "", false
				}
				parts = append(parts, s)
			}
			return fqName(parts...), true
		}
	}
	return "", false
}

func isProm(e ast.Expr, promAlias map[string]bool) bool {
	id, ok := e.(*ast.Ident)
	return ok && promAlias[id.Name]
}

// fqName joins namespace, subsystem and name as prometheus.BuildFQName does.
func fqName(parts ...string) string {
	var keep []string
	for _, p := range parts {
		if p != "" {
			keep = append(keep, p)
		}
	}
	if len(keep) == 0 || parts[len(parts)-1] == "" {
		return ""
	}
	return strings.Join(keep, "_")
}

// registeredMetrics returns every metric name built from prometheus.*Opts
// literals or prometheus.NewDesc in the non-test code under dirs, with the
// place it was found; unreadable names are reported as test errors.
func registeredMetrics(t *testing.T, dirs ...string) map[string]string {
	t.Helper()
	fset := token.NewFileSet()
	found := map[string]string{}
	for _, dir := range dirs {
		for _, files := range goPackages(t, fset, dir) {
			consts := map[string]ast.Expr{}
			for _, f := range files {
				for _, decl := range f.Decls {
					gd, ok := decl.(*ast.GenDecl)
					if !ok || gd.Tok != token.CONST {
						continue
					}
					for _, spec := range gd.Specs {
						vs := spec.(*ast.ValueSpec)
						for i, n := range vs.Names {
							if i < len(vs.Values) {
								consts[n.Name] = vs.Values[i]
							}
						}
					}
				}
			}
			for _, f := range files {
				promAlias := map[string]bool{}
				for _, imp := range f.Imports {
					if p, _ := strconv.Unquote(imp.Path.Value); p == promPath {
						name := "prometheus"
						if imp.Name != nil {
							name = imp.Name.Name
						}
						promAlias[name] = true
					}
				}
				if len(promAlias) == 0 {
					continue
				}
				ast.Inspect(f, func(n ast.Node) bool {
					if n == nil {
						return true
					}
					pos := fset.Position(n.Pos())
					where := strings.TrimPrefix(pos.Filename, root(t)+"/") + ":" + strconv.Itoa(pos.Line)
					switch v := n.(type) {
					case *ast.CompositeLit:
						sel, ok := v.Type.(*ast.SelectorExpr)
						if !ok || !isProm(sel.X, promAlias) || !strings.HasSuffix(sel.Sel.Name, "Opts") {
							return true
						}
						fields := map[string]string{}
						for _, el := range v.Elts {
							kv, ok := el.(*ast.KeyValueExpr)
							if !ok {
								continue
							}
							key, _ := kv.Key.(*ast.Ident)
							if key == nil || (key.Name != "Namespace" && key.Name != "Subsystem" && key.Name != "Name") {
								continue
							}
							s, ok := strValue(kv.Value, consts, promAlias, 0)
							if !ok {
								t.Errorf("%s: cannot read the metric's %s: write it as a string literal or constant so the doc test can check it", where, key.Name)
								return true
							}
							fields[key.Name] = s
						}
						if name := fqName(fields["Namespace"], fields["Subsystem"], fields["Name"]); name != "" {
							found[name] = where
						}
					case *ast.CallExpr:
						sel, ok := v.Fun.(*ast.SelectorExpr)
						if !ok || sel.Sel.Name != "NewDesc" || !isProm(sel.X, promAlias) || len(v.Args) == 0 {
							return true
						}
						name, ok := strValue(v.Args[0], consts, promAlias, 0)
						if !ok {
							t.Errorf("%s: cannot read the metric name of prometheus.NewDesc: write it as a string literal or constant", where)
							return true
						}
						found[name] = where
					}
					return true
				})
			}
		}
	}
	return found
}

// Every metric the code registers has a row in docs/observability.md's
// table and is named in the README.
func TestEveryRegisteredMetricIsDocumented(t *testing.T) {
	metrics := registeredMetrics(t, "module", "backend")
	if _, ok := metrics["tenantgate_requests_total"]; !ok || len(metrics) < 10 {
		t.Fatalf("metric discovery is broken: found %v", metrics)
	}
	obs, readme := read(t, "docs/observability.md"), read(t, "README.md")
	names := make([]string, 0, len(metrics))
	for n := range metrics {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if !strings.Contains(obs, "| `"+n+"` |") {
			t.Errorf("metric %s (%s) has no row in docs/observability.md's metrics table", n, metrics[n])
		}
		if !strings.Contains(readme, n) {
			t.Errorf("metric %s (%s) is not named in README.md", n, metrics[n])
		}
	}
}

// Every field the audit record writes has a row in docs/observability.md.
func TestEveryAuditFieldIsDocumented(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, filepath.Join(root(t), "module", "audit", "record.go"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var fields []string
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) == 0 {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok || !strings.HasPrefix(sel.Sel.Name, "Add") {
			return true
		}
		if lit, ok := call.Args[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
			s, _ := strconv.Unquote(lit.Value)
			fields = append(fields, s)
		}
		return true
	})
	if len(fields) < 10 {
		t.Fatalf("audit field discovery is broken: %v", fields)
	}
	obs := read(t, "docs/observability.md")
	for _, k := range fields {
		if !strings.Contains(obs, "| `"+k+"` |") {
			t.Errorf("audit record field %q has no row in docs/observability.md", k)
		}
	}
}

// Every reason word has its own README heading, and the problem+json type
// URL the gate sends for it points at that heading.
func TestEveryReasonHasTheAnchorItsProblemTypeNames(t *testing.T) {
	consts := reasonConstants(t)
	if len(consts) != len(audit.Reasons) {
		t.Errorf("module/audit declares %d Reason constants but audit.Reasons lists %d", len(consts), len(audit.Reasons))
	}
	anchors := anchorsOf(read(t, "README.md"))
	readme := read(t, "README.md")
	for _, r := range audit.Reasons {
		if !strings.Contains(readme, "`"+string(r)+"`") {
			t.Errorf("reason %s is not in README.md", r)
		}
		rec := httptest.NewRecorder()
		audit.WriteProblem(rec, r, "detail", "req-1")
		var p audit.Problem
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
			t.Fatal(err)
		}
		u, err := url.Parse(p.Type)
		if err != nil {
			t.Fatalf("%s: type %q: %v", r, p.Type, err)
		}
		if u.Scheme != "https" || u.Host != "github.com" || u.Path != "/tenantgate/tenantgate" {
			t.Errorf("%s: type %q does not point at the repository's README", r, p.Type)
		}
		if !anchors[u.Fragment] {
			t.Errorf("%s: type %q names #%s, which no README.md heading has (want a heading such as \"### Reason `%s`\")", r, p.Type, u.Fragment, r)
		}
	}
}

func reasonConstants(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, files := range goPackages(t, token.NewFileSet(), "module/audit") {
		for _, f := range files {
			for _, decl := range f.Decls {
				gd, ok := decl.(*ast.GenDecl)
				if !ok || gd.Tok != token.CONST {
					continue
				}
				for _, spec := range gd.Specs {
					vs := spec.(*ast.ValueSpec)
					if id, ok := vs.Type.(*ast.Ident); ok && id.Name == "Reason" {
						for _, n := range vs.Names {
							out = append(out, n.Name)
						}
					}
				}
			}
		}
	}
	return out
}

var (
	headingRe  = regexp.MustCompile(`^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$`)
	htmlAnchor = regexp.MustCompile(`<a\s+(?:name|id)="([^"]+)"`)
	mdLinkRe   = regexp.MustCompile(`!?\[((?:[^\[\]]|\[[^\]]*\])*)\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	refDefRe   = regexp.MustCompile(`^\s{0,3}\[[^\]]+\]:\s*(\S+)`)
	codeSpanRe = regexp.MustCompile("`+[^`]*`+")
	schemeRe   = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:`)
)

// proseLines returns the lines outside fenced code blocks, with their numbers.
func proseLines(md string) map[int]string {
	out := map[int]string{}
	fence := ""
	for i, line := range strings.Split(md, "\n") {
		trim := strings.TrimSpace(line)
		if fence == "" && (strings.HasPrefix(trim, "```") || strings.HasPrefix(trim, "~~~")) {
			fence = trim[:3]
			continue
		}
		if fence != "" {
			if strings.HasPrefix(trim, fence) {
				fence = ""
			}
			continue
		}
		out[i+1] = line
	}
	return out
}

// slug is GitHub's heading anchor: the heading's text, lower case, with
// everything but letters, marks, digits, connector punctuation (_), spaces
// and hyphens removed, and spaces turned into hyphens.
func slug(heading string) string {
	text := mdLinkRe.ReplaceAllString(heading, "$1")
	text = strings.NewReplacer("`", "", "*", "").Replace(text)
	var b strings.Builder
	for _, r := range strings.ToLower(text) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || unicode.IsLetter(r) || unicode.IsMark(r) || unicode.IsDigit(r) || unicode.Is(unicode.Pc, r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// anchorsOf returns the anchors a Markdown file has on GitHub: one per
// heading (repeats get -1, -2, …) and explicit <a name|id>.
func anchorsOf(md string) map[string]bool {
	anchors := map[string]bool{}
	seen := map[string]int{}
	lines := proseLines(md)
	nums := make([]int, 0, len(lines))
	for n := range lines {
		nums = append(nums, n)
	}
	sort.Ints(nums)
	for _, n := range nums {
		line := lines[n]
		for _, m := range htmlAnchor.FindAllStringSubmatch(line, -1) {
			anchors[m[1]] = true
		}
		m := headingRe.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		s := slug(m[2])
		if k := seen[s]; k > 0 {
			anchors[s+"-"+strconv.Itoa(k)] = true
		} else {
			anchors[s] = true
		}
		seen[s]++
	}
	return anchors
}

// docFiles are the Markdown files a reader follows links in (session notes
// under docs/notes are history and not checked).
func docFiles(t *testing.T) []string {
	t.Helper()
	files := []string{"README.md", "SECURITY.md", "backend/README.md"}
	matches, err := filepath.Glob(filepath.Join(root(t), "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range matches {
		files = append(files, strings.TrimPrefix(m, root(t)+"/"))
	}
	return files
}

func TestEveryRelativeLinkResolves(t *testing.T) {
	checked := 0
	for _, file := range docFiles(t) {
		lines := proseLines(read(t, file))
		for n, line := range lines {
			var targets []string
			for _, m := range mdLinkRe.FindAllStringSubmatch(codeSpanRe.ReplaceAllString(line, ""), -1) {
				targets = append(targets, m[2])
			}
			if m := refDefRe.FindStringSubmatch(line); m != nil {
				targets = append(targets, m[1])
			}
			for _, target := range targets {
				if schemeRe.MatchString(target) || strings.HasPrefix(target, "//") {
					continue
				}
				checked++
				if err := resolve(t, file, target); err != "" {
					t.Errorf("%s:%d: link %q: %s", file, n, target, err)
				}
			}
		}
	}
	if checked < 20 {
		t.Errorf("only %d relative links found: link discovery is broken", checked)
	}
}

// resolve checks one relative link from file; it returns what is wrong.
func resolve(t *testing.T, file, target string) string {
	path, frag, _ := strings.Cut(target, "#")
	path, err := url.PathUnescape(path)
	if err != nil {
		return "bad escape"
	}
	dest := file
	if path != "" {
		dest = filepath.Clean(filepath.Join(filepath.Dir(file), path))
		if strings.HasPrefix(dest, "..") {
			return "points outside the repository"
		}
		if _, err := os.Stat(filepath.Join(root(t), dest)); err != nil {
			return "no such file or directory " + dest
		}
	}
	if frag == "" {
		return ""
	}
	if !strings.HasSuffix(dest, ".md") {
		return "an anchor on a file that is not Markdown"
	}
	if !anchorsOf(read(t, dest))[frag] {
		return "no heading in " + dest + " has the anchor #" + frag
	}
	return ""
}

// The anchor rules above, on headings this repository has.
func TestSlugFollowsGitHub(t *testing.T) {
	for in, want := range map[string]string{
		"Sender-constrained tokens (DPoP, mTLS)":       "sender-constrained-tokens-dpop-mtls",
		"Reason `missing_token`":                       "reason-missing_token",
		"Walkthrough (what `make run` prints)":         "walkthrough-what-make-run-prints",
		"Token types: ID tokens are not access tokens": "token-types-id-tokens-are-not-access-tokens",
		"The [link](x.md) text":                        "the-link-text",
	} {
		if got := slug(in); got != want {
			t.Errorf("slug(%q) = %q, want %q", in, got, want)
		}
	}
	a := anchorsOf("# A\n## A\n```\n# not a heading\n```\n<a id=\"x-y\"></a>\n")
	if !a["a"] || !a["a-1"] || a["not-a-heading"] || !a["x-y"] {
		t.Errorf("anchors %v", a)
	}
}
