package keysource

import (
	"fmt"
	"os"
	"strings"

	"go.uber.org/zap"

	"github.com/tenantgate/tenantgate/module/verify/jose"
)

// New makes the key source spec names: a static set loaded now (its errors
// are returned), or a Remote one fetched in the background through
// env.Feeds. Nothing is reported until Announce.
func New(spec Spec, env Env) (Source, error) {
	env = env.withDefaults()
	name := fmt.Sprintf("issuer %q", spec.Issuer)
	var ks *jose.KeySet
	var err error
	switch {
	case spec.JWKSFile != "":
		ks, err = loadJWKSFile(spec, env.Logger)
		if err != nil {
			err = fmt.Errorf("%s: jwks_file %s: %w", name, spec.JWKSFile, err)
		}
	case spec.PublicKeyFile != "":
		ks, err = loadPEMFile(spec.PublicKeyFile)
		if err != nil {
			err = fmt.Errorf("%s: public_key_file %s: %w", name, spec.PublicKeyFile, err)
		}
	case spec.HMACSecret != "":
		ks, err = jose.NewKeySet([]*jose.Key{{Kind: jose.KindHMAC, Pub: []byte(spec.HMACSecret)}})
	default:
		return NewRemote(spec, env, nil)
	}
	if err == nil {
		err = checkUsable(name, ks, spec.Algorithms)
	}
	if err != nil {
		return nil, err
	}
	return NewStatic(spec.Issuer, ks, env), nil
}

func loadJWKSFile(spec Spec, log *zap.Logger) (*jose.KeySet, error) {
	data, err := readLimited(spec.JWKSFile)
	if err != nil {
		return nil, err
	}
	ks, skipped, err := jose.ParseJWKS(data, jose.SetPolicy{})
	for _, s := range skipped {
		log.Info("jwks_file: key skipped", zap.String("issuer", spec.Issuer), zap.Error(s))
	}
	return ks, err
}

func loadPEMFile(path string) (*jose.KeySet, error) {
	data, err := readLimited(path)
	if err != nil {
		return nil, err
	}
	k, err := jose.ParsePublicKeyPEM(data)
	if err != nil {
		return nil, err
	}
	return jose.NewKeySet([]*jose.Key{k})
}

func readLimited(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Size() > jose.MaxKeyBody {
		return nil, fmt.Errorf("file is larger than %d bytes", jose.MaxKeyBody)
	}
	return os.ReadFile(path) // #nosec G304 -- the path is the operator's key file from the config
}

// checkUsable refuses a static key set none of whose keys fits an allowed
// algorithm: every token of that issuer would fail, better to say so now.
// With no allow-list given, every set is usable.
func checkUsable(name string, ks *jose.KeySet, algs []string) error {
	if len(algs) == 0 {
		return nil
	}
	for _, k := range ks.All {
		for _, a := range algs {
			if k.Fits(a) == nil {
				return nil
			}
		}
	}
	return fmt.Errorf("%s: no key fits the allowed algorithms (%s)", name, strings.Join(algs, " "))
}
