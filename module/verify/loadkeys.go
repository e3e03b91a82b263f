package verify

import (
	"fmt"
	"os"

	"go.uber.org/zap"
)

// newSource makes the key source an issuer's config names: a static set
// loaded now (its errors fail New), or a remote one fetched in the background.
// report receives a remote source's refresh outcomes; nil sends them to
// the Observer under the issuer's name.
func (v *Verifier) newSource(ic IssuerConfig, report keyReporter) (keySource, error) {
	name := fmt.Sprintf("issuer %q", ic.Issuer)
	var ks *keySet
	var err error
	switch {
	case ic.JWKSFile != "":
		ks, err = v.loadJWKSFile(ic)
		if err != nil {
			err = fmt.Errorf("%s: jwks_file %s: %w", name, ic.JWKSFile, err)
		}
	case ic.PublicKeyFile != "":
		ks, err = loadPEMFile(ic.PublicKeyFile)
		if err != nil {
			err = fmt.Errorf("%s: public_key_file %s: %w", name, ic.PublicKeyFile, err)
		}
	case ic.HMACSecret != "":
		ks, err = newKeySet([]*verifyKey{{kind: kindHMAC, pub: []byte(ic.HMACSecret)}})
	default:
		return newReportingSource(v, ic.Issuer, ic.JWKSURL, ic.OIDCDiscovery, ic.RefreshInterval, report), nil
	}
	if err == nil {
		err = v.checkUsable(name, ks)
	}
	if err != nil {
		return nil, err
	}
	return staticSource{set: ks}, nil
}

func (v *Verifier) loadJWKSFile(ic IssuerConfig) (*keySet, error) {
	data, err := readLimited(ic.JWKSFile)
	if err != nil {
		return nil, err
	}
	ks, skipped, err := parseJWKS(data, setPolicy{})
	for _, s := range skipped {
		v.cfg.Logger.Info("jwks_file: key skipped", zap.String("issuer", ic.Issuer), zap.Error(s))
	}
	return ks, err
}

func loadPEMFile(path string) (*keySet, error) {
	data, err := readLimited(path)
	if err != nil {
		return nil, err
	}
	k, err := parsePublicKeyPEM(data)
	if err != nil {
		return nil, err
	}
	return newKeySet([]*verifyKey{k})
}

func readLimited(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Size() > maxKeyBody {
		return nil, fmt.Errorf("file is larger than %d bytes", maxKeyBody)
	}
	return os.ReadFile(path) // #nosec G304 -- the path is the operator's key file from the config

}

// checkUsable refuses a static key set none of whose keys fits an allowed
// algorithm: every token of that issuer would fail, better to say so now.
func (v *Verifier) checkUsable(name string, ks *keySet) error {
	for _, k := range ks.all {
		for _, a := range v.cfg.Algorithms {
			if k.fits(a) == nil {
				return nil
			}
		}
	}
	return fmt.Errorf("%s: no key fits the allowed algorithms (%s)", name, v.allowedList)
}
