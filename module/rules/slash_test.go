package rules

import "testing"

func TestSlashTwin(t *testing.T) {
	tbl, _, err := Compile([]Rule{
		{Methods: []string{"GET"}, Pattern: "/api/v1/ensemble/", Authenticated: true},
		{Methods: []string{"POST"}, Pattern: "/api/v1/ensemble/create", Authenticated: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		method, path, want string
		ok                 bool
	}{
		{"GET", "/api/v1/ensemble", "/api/v1/ensemble/", true},
		{"POST", "/api/v1/ensemble/create/", "/api/v1/ensemble/create", true},
		{"POST", "/api/v1/ensemble", "", false}, // no POST rule on the twin
		{"GET", "/nothing", "", false},
		{"GET", "/", "", false},
	} {
		got, ok := tbl.SlashTwin(c.method, c.path)
		if got != c.want || ok != c.ok {
			t.Errorf("SlashTwin(%s %s) = %q %v, want %q %v", c.method, c.path, got, ok, c.want, c.ok)
		}
	}
	var nilTable *Table
	if _, ok := nilTable.SlashTwin("GET", "/x"); ok {
		t.Error("a nil table has no twin")
	}
}
