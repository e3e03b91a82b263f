package hedging

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"sync"
	"time"
)

// PriceSource gives the current prices. The API asks it on every request,
// so a source may change its answer between requests.
type PriceSource interface {
	Prices() (Prices, error)
}

// StaticPrices is a fixed table (DemoPrices by default).
type StaticPrices Prices

// Prices returns the table.
func (s StaticPrices) Prices() (Prices, error) { return Prices(s), nil }

// MaxPrice bounds a price from a file, USD per unit.
const MaxPrice = 1e9

// FilePrices reads a JSON object of asset → USD price ({"BTC": 61000.5})
// and re-reads it when the file's size or modification time changes. A
// file that fails to parse keeps the last good prices (the error is
// returned by Check and by Prices only until a first good read).
type FilePrices struct {
	path string

	mu      sync.Mutex
	modTime time.Time
	size    int64
	prices  Prices
	lastErr error
}

// NewFilePrices reads path once and fails when it is not a valid price file.
func NewFilePrices(path string) (*FilePrices, error) {
	f := &FilePrices{path: path}
	if _, err := f.Prices(); err != nil {
		return nil, err
	}
	return f, nil
}

// Prices returns the file's prices, re-reading it when it changed.
func (f *FilePrices) Prices() (Prices, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, err := os.Stat(f.path)
	if err != nil {
		return f.fallback(fmt.Errorf("price file: %w", err))
	}
	if f.prices != nil && st.ModTime().Equal(f.modTime) && st.Size() == f.size {
		return f.prices, nil
	}
	raw, err := os.ReadFile(f.path)
	if err != nil {
		return f.fallback(fmt.Errorf("price file: %w", err))
	}
	p, err := ParsePrices(raw)
	if err != nil {
		return f.fallback(fmt.Errorf("price file %s: %w", f.path, err))
	}
	f.prices, f.modTime, f.size, f.lastErr = p, st.ModTime(), st.Size(), nil
	return p, nil
}

// Check returns the error of the last read (nil when it succeeded).
func (f *FilePrices) Check() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastErr
}

func (f *FilePrices) fallback(err error) (Prices, error) {
	f.lastErr = err
	if f.prices != nil {
		return f.prices, nil
	}
	return nil, err
}

// ParsePrices parses and checks a price table: asset names of 1-16
// characters A-Z 0-9, prices finite, > 0 and <= MaxPrice, no duplicate keys.
func ParsePrices(raw []byte) (Prices, error) {
	if err := rejectDuplicateKeys(raw); err != nil {
		return nil, err
	}
	var p Prices
	if err := strictDecode(raw, &p); err != nil {
		return nil, err
	}
	if len(p) == 0 {
		return nil, errors.New("no prices: want a JSON object such as {\"BTC\": 60000}")
	}
	for a, v := range p {
		if !ValidAsset(a) {
			return nil, fmt.Errorf("asset %q: names are 1-16 characters of A-Z 0-9", a)
		}
		if !(v > 0) || math.IsInf(v, 0) || v > MaxPrice {
			return nil, fmt.Errorf("price of %s must be > 0 and <= %g, got %v", a, float64(MaxPrice), v)
		}
	}
	return p, nil
}

// ValidAsset reports whether a is an asset name: 1-16 characters of A-Z 0-9.
func ValidAsset(a string) bool {
	if len(a) == 0 || len(a) > 16 {
		return false
	}
	for i := 0; i < len(a); i++ {
		if c := a[i]; !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// rejectDuplicateKeys refuses a top-level object that names a key twice
// (encoding/json would keep the last silently).
func rejectDuplicateKeys(raw []byte) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return errors.New("want a JSON object of asset -> price")
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		if seen[key] {
			return fmt.Errorf("asset %q appears twice", key)
		}
		seen[key] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return err
		}
	}
	return nil
}
