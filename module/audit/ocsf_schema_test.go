package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
)

// ocsfDir holds the vendored OCSF 1.8.0 files (see its README.md).
const ocsfDir = "testdata/ocsf-1.8.0"

type ocsfDef struct {
	Name        string                     `json:"name"`
	UID         int                        `json:"uid"`
	Extends     string                     `json:"extends"`
	Category    string                     `json:"category"`
	Attributes  map[string]json.RawMessage `json:"attributes"`
	Constraints struct {
		AtLeastOne []string `json:"at_least_one"`
	} `json:"constraints"`
}

type ocsfAttr struct {
	Requirement string                     `json:"requirement"`
	Type        string                     `json:"type"`
	Enum        map[string]json.RawMessage `json:"enum"`
	IsArray     bool                       `json:"is_array"`
}

type ocsfSchema struct {
	t          *testing.T
	dict       map[string]ocsfAttr
	objects    map[string]ocsfDef
	categories map[string]struct {
		UID int `json:"uid"`
	}
	version  string
	problems []string
}

func (s *ocsfSchema) fail(format string, args ...any) {
	s.problems = append(s.problems, fmt.Sprintf(format, args...))
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(ocsfDir, path))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func loadOCSF(t *testing.T) *ocsfSchema {
	s := &ocsfSchema{t: t, objects: map[string]ocsfDef{}}
	var dict struct {
		Attributes map[string]ocsfAttr `json:"attributes"`
	}
	readJSON(t, "dictionary.fragment.json", &dict)
	s.dict = dict.Attributes
	var cats struct {
		Attributes map[string]struct {
			UID int `json:"uid"`
		} `json:"attributes"`
	}
	readJSON(t, "categories.json", &cats)
	s.categories = cats.Attributes
	var ver struct {
		Version string `json:"version"`
	}
	readJSON(t, "version.json", &ver)
	s.version = ver.Version
	files, _ := filepath.Glob(filepath.Join(ocsfDir, "objects", "*.json"))
	for _, f := range files {
		var d ocsfDef
		readJSON(t, strings.TrimPrefix(f, ocsfDir+"/"), &d)
		s.objects[d.Name] = d
	}
	return s
}

// resolve merges a definition with the ones it extends (child wins) and
// returns its attributes (with requirement) and at_least_one constraints.
func (s *ocsfSchema) resolve(chain []ocsfDef) (map[string]ocsfAttr, [][]string) {
	attrs := map[string]ocsfAttr{}
	var atLeastOne [][]string              // a child's constraints replace its parent's
	for i := len(chain) - 1; i >= 0; i-- { // base first
		for name, raw := range chain[i].Attributes {
			if name == "$include" { // profiles: optional, not applied
				continue
			}
			var a ocsfAttr
			_ = json.Unmarshal(raw, &a)
			prev := attrs[name]
			if a.Requirement == "" {
				a.Requirement = prev.Requirement
			}
			if a.Enum == nil {
				a.Enum = prev.Enum
			}
			attrs[name] = a
		}
		if c := chain[i].Constraints.AtLeastOne; c != nil {
			atLeastOne = [][]string{c}
		}
	}
	return attrs, atLeastOne
}

func (s *ocsfSchema) objectChain(name string) []ocsfDef {
	var chain []ocsfDef
	for name != "" {
		d, ok := s.objects[name]
		if !ok {
			s.t.Fatalf("object %q is not in the vendored schema", name)
		}
		chain = append(chain, d)
		name = d.Extends
	}
	return chain
}

// check validates obj (a JSON object of the record) against the attributes
// and constraints of its definition, recursing into every object it holds.
func (s *ocsfSchema) check(path string, obj map[string]any, attrs map[string]ocsfAttr, atLeastOne [][]string) {
	for name, a := range attrs {
		if a.Requirement == "required" {
			if _, ok := obj[name]; !ok {
				s.fail("%s: required attribute %q missing", path, name)
			}
		}
	}
	for _, group := range atLeastOne {
		found := false
		for _, name := range group {
			if _, ok := obj[name]; ok {
				found = true
			}
		}
		if !found {
			s.fail("%s: none of %v present (at_least_one)", path, group)
		}
	}
	for name, v := range obj {
		if path == "" && (loggerKeys[name] || name == "chain" || name == "seq" || name == "mac") {
			continue // the log line's and the chain's own keys
		}
		def, ok := s.dict[name]
		if _, inClass := attrs[name]; !ok || !inClass {
			s.fail("%s: attribute %q is not one of this object's attributes", path, name)
			continue
		}
		switch def.Type {
		case "object":
			if _, ok := v.(map[string]any); !ok {
				s.fail("%s.%s: want an object", path, name)
			}
		case "string_t", "ip_t", "timestamp_t", "integer_t", "long_t":
			if def.IsArray {
				if _, ok := v.([]any); !ok {
					s.fail("%s.%s: want an array", path, name)
				}
				continue
			}
			s.checkScalar(path+"."+name, def, v)
		default: // an OCSF object type
			sub, ok := v.(map[string]any)
			if !ok {
				s.fail("%s.%s: want an object", path, name)
				continue
			}
			subAttrs, subAtLeast := s.resolve(s.objectChain(def.Type))
			s.check(path+"."+name, sub, subAttrs, subAtLeast)
		}
	}
}

// inEnum reports whether the number v is a key of enum.
func inEnum(enum map[string]json.RawMessage, v any) bool {
	n, ok := v.(float64)
	if !ok {
		return false
	}
	_, ok = enum[strconv.FormatInt(int64(n), 10)]
	return ok
}

func (s *ocsfSchema) checkScalar(path string, def ocsfAttr, v any) {
	switch def.Type {
	case "string_t", "ip_t":
		if _, ok := v.(string); !ok {
			s.fail("%s: want a string, got %v", path, v)
		}
	default:
		if n, ok := v.(float64); !ok || n != float64(int64(n)) {
			s.fail("%s: want an integer, got %v", path, v)
		}
	}
}

// TestOCSFRecordsMatchSchema writes records of every decision in the OCSF
// form, chained, and checks each against the vendored API Activity class.
func TestOCSFRecordsMatchSchema(t *testing.T) {
	s := loadOCSF(t)
	var base, app, class ocsfDef
	readJSON(t, "events/base_event.json", &base)
	readJSON(t, "events/application/application.json", &app)
	readJSON(t, "events/application/api_activity.json", &class)
	attrs, atLeastOne := s.resolve([]ocsfDef{class, app, base})
	for _, name := range []string{"activity_id", "category_uid", "class_uid", "type_uid", "severity_id", "time", "metadata", "actor", "api", "src_endpoint"} {
		if attrs[name].Requirement != "required" {
			t.Fatalf("the vendored schema does not require %q: wrong files?", name)
		}
	}
	wantClass := s.categories[app.Category].UID*1000 + class.UID
	// A record that names the trace profile in metadata.profiles may use
	// its attributes too.
	var traceProf ocsfDef
	readJSON(t, "profiles/trace.json", &traceProf)
	withTrace, _ := s.resolve([]ocsfDef{traceProf, class, app, base})
	// activity_id: the class's enum plus the base event's Unknown/Other.
	activities := map[string]json.RawMessage{}
	for _, d := range []ocsfDef{base, class} {
		var a ocsfAttr
		_ = json.Unmarshal(d.Attributes["activity_id"], &a)
		for k, v := range a.Enum {
			activities[k] = v
		}
	}

	var buf bytes.Buffer
	l := jsonLogger(&buf, zapcore.InfoLevel)
	c, _ := NewChain(testKey)
	for _, d := range []struct {
		method   string
		decision Decision
		reason   Reason
		status   int
	}{
		{"GET", DecisionAllow, ReasonOK, 200}, {"POST", DecisionDeny, ReasonMissingToken, 401},
		{"DELETE", DecisionWouldDeny, ReasonMissingRole, 204}, {"OPTIONS", DecisionPublic, ReasonPublic, 204},
		{"PATCH", DecisionDeny, ReasonInternal, 500},
	} {
		r := sampleRecord()
		r.Method, r.Decision, r.Reason, r.Status = d.method, d.decision, d.reason, d.status
		r.Time, r.TraceID = time.UnixMilli(1_700_000_000_123), "4bf92f3577b34da6a3ce929d0e0e4736"
		if d.decision == DecisionDeny {
			r.TenantID, r.UserID, r.Issuer = "", "", ""
		}
		c.Write(l, "request", r.Marshaler(FormatOCSF))
	}
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		classAttrs := attrs
		if profiles, _ := rec["metadata"].(map[string]any)["profiles"].([]any); len(profiles) == 1 && profiles[0] == "trace" {
			classAttrs = withTrace
		}
		s.check("", rec, classAttrs, atLeastOne)
		for _, p := range s.problems {
			t.Error(p)
		}
		s.problems = nil
		// The check can fail: without src_endpoint, or with an actor
		// without user, the record is refused.
		delete(rec, "src_endpoint")
		delete(rec["actor"].(map[string]any), "user")
		delete(rec["actor"].(map[string]any), "idp")
		s.check("", rec, classAttrs, atLeastOne)
		if got := strings.Join(s.problems, "; "); !strings.Contains(got, `required attribute "src_endpoint" missing`) || !strings.Contains(got, ".actor: none of") {
			t.Errorf("a record without src_endpoint and actor.user passed the schema check: %q", got)
		}
		s.problems = nil
		if !inEnum(activities, rec["activity_id"]) || !inEnum(s.dict["status_id"].Enum, rec["status_id"]) || !inEnum(s.dict["severity_id"].Enum, rec["severity_id"]) {
			t.Errorf("activity_id %v, status_id %v or severity_id %v not in the schema's enums", rec["activity_id"], rec["status_id"], rec["severity_id"])
		}
		act := rec["activity_id"].(float64)
		if rec["class_uid"] != float64(wantClass) || rec["category_uid"] != float64(s.categories[app.Category].UID) ||
			rec["type_uid"] != float64(wantClass)*100+act {
			t.Errorf("class/category/type: %v %v %v", rec["class_uid"], rec["category_uid"], rec["type_uid"])
		}
		meta := rec["metadata"].(map[string]any)
		if meta["version"] != s.version || meta["product"].(map[string]any)["name"] != "tenantgate" {
			t.Errorf("metadata %v, want version %s", meta, s.version)
		}
		if rec["time"] != float64(1_700_000_000_123) {
			t.Errorf("time %v: want ms", rec["time"])
		}
		wantStatus := 1.0
		if rec["unmapped"].(map[string]any)["decision"] == "deny" {
			wantStatus = 2
		}
		if rec["status_id"] != wantStatus || rec["status_detail"] == "" {
			t.Errorf("status_id %v (detail %v), want %v", rec["status_id"], rec["status_detail"], wantStatus)
		}
	}
	if t.Failed() {
		t.Log(buf.String())
	}
}
