package rules

import (
	"strings"
	"testing"
)

func TestCheckPath(t *testing.T) {
	ok := []struct{ in, want string }{
		{"/", "/"},
		{"/a", "/a"},
		{"/a/", "/a/"},
		{"/a/b/c/", "/a/b/c/"},
		{"/API/V1/x", "/API/V1/x"}, // case is kept, not folded
		{"/%41%62c", "/Abc"},
		{"/a%20b", "/a b"},
		{"/caf%C3%A9", "/café"},
		{"/café", "/café"},
		{"/a/%25", "/a/%"},     // an encoded "%" decodes once, to a literal "%"
		{"/a/%252e", "/a/%2e"}, // so does a double-encoded dot: it is not a dot segment
		{"/a/...", "/a/..."},
		{"/a/.b/c.", "/a/.b/c."},
		{"/a/b?", "/a/b?"}, // CheckPath gets the part before '?'; a stray one is data
		{"/a:b@c!$&'()*+,=~-_", "/a:b@c!$&'()*+,=~-_"},
	}
	for _, tc := range ok {
		got, err := CheckPath(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("CheckPath(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}

	bad := []struct{ in, want string }{
		{"", `must start with "/"`},
		{"a/b", `must start with "/"`},
		{"*", `must start with "/"`},
		{"http://x/a", `must start with "/"`},
		{"//", `empty segment ("//")`},
		{"//a", `empty segment ("//")`},
		{"/a//b", `empty segment ("//")`},
		{"/a//", `empty segment ("//")`},
		{"/.", `dot segment (".")`},
		{"/..", `dot segment ("..")`},
		{"/a/./b", `dot segment (".")`},
		{"/a/../b", `dot segment ("..")`},
		{"/a/..", `dot segment ("..")`},
		{"/a/../", `dot segment ("..")`},
		{"/a/%2e%2e/b", `encoded "." (%2e)`},
		{"/a/%2E%2E/b", `encoded "." (%2E)`},
		{"/a/.%2e/", `encoded "." (%2e)`},
		{"/a/%2e/", `encoded "."`},
		{"/a/x%2Ey", `encoded "."`},
		{"/a%2Fb", `encoded "/" (%2F)`},
		{"/a%2fb", `encoded "/" (%2f)`},
		{"/a%5Cb", "encoded backslash (%5C)"},
		{"/a%5cb", "encoded backslash (%5c)"},
		{"/a%00", "encoded NUL (%00)"},
		{"/a%01", "encoded control character (%01)"},
		{"/a%0a", "encoded control character (%0a)"},
		{"/a%1F", "encoded control character (%1F)"},
		{"/a%7f", "encoded control character (%7f)"},
		{"/a%3Bb", `encoded ";" (%3B)`},
		{"/a\\b", "backslash"},
		{"/a\x00", "control character (byte 0x00)"},
		{"/a\tb", "control character (byte 0x09)"},
		{"/a\x7f", "control character (byte 0x7F)"},
		{"/a;b", `";" (matrix parameters`},
		{"/a;jsessionid=1/b", `";"`},
		{"/a/;/b", `";"`},
		{"/a%", "invalid percent-encoding"},
		{"/a%4", "invalid percent-encoding"},
		{"/a%zz", "invalid percent-encoding"},
		{"/a%%41", "invalid percent-encoding"},
		{"/a%ff", "not valid UTF-8"},
		{"/a%C3", "not valid UTF-8"},
		{"/a\xff", "not valid UTF-8"},
		{"/%C0%AF", "not valid UTF-8"}, // overlong "/"
	}
	for _, tc := range bad {
		got, err := CheckPath(tc.in)
		if err == nil {
			t.Errorf("CheckPath(%q) = %q, want error mentioning %q", tc.in, got, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("CheckPath(%q) error %q lacks %q", tc.in, err, tc.want)
		}
	}
}

func TestCheckPathAllocs(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := CheckPath("/api/v1/ensemble/e1/predict"); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("CheckPath of a plain path allocates %v times", allocs)
	}
}
