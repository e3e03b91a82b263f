package keysource

import (
	"fmt"
	"net"
	"net/url"
)

// CheckFetchURL accepts https URLs, and http only to a loopback host: keys
// fetched over plain http could be replaced by anyone on the path.
func CheckFetchURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("not a URL: %w", err)
	}
	if u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if host == "localhost" {
			return nil
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
			return nil
		}
		return fmt.Errorf("%q uses http; use https (plain http is allowed only to a loopback host)", raw)
	}
	return fmt.Errorf("%q: scheme must be https", raw)
}
