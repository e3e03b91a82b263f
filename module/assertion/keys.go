package assertion

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
)

// LoadPrivateKeyPEM reads an Ed25519 private key in PKCS#8 PEM.
func LoadPrivateKeyPEM(path string) (ed25519.PrivateKey, error) {
	der, err := readPEM(path, "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("assertion key %s: %w", path, err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("assertion key %s: want an Ed25519 key, found %T", path, k)
	}
	return ek, nil
}

// LoadPublicKeyPEM reads an Ed25519 public key in PKIX ("PUBLIC KEY") PEM.
func LoadPublicKeyPEM(path string) (ed25519.PublicKey, error) {
	der, err := readPEM(path, "PUBLIC KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("assertion public key %s: %w", path, err)
	}
	ek, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("assertion public key %s: want an Ed25519 key, found %T", path, k)
	}
	return ek, nil
}

// EncodePrivateKeyPEM returns key as PKCS#8 PEM.
func EncodePrivateKeyPEM(key ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// EncodePublicKeyPEM returns key as PKIX PEM.
func EncodePublicKeyPEM(key ed25519.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

func readPEM(path, typ string) ([]byte, error) {
	data, err := os.ReadFile(path) // #nosec G304 -- the path is operator configuration
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("key %s: no PEM block found", path)
	}
	if block.Type != typ {
		return nil, fmt.Errorf("key %s: PEM block is %q, want %q", path, block.Type, typ)
	}
	return block.Bytes, nil
}

// LoadSecretFile reads an HS256 assertion secret from a file. One trailing
// newline ("\n" or "\r\n") is not part of the secret, as Caddy's
// {file.PATH} placeholder reads it, so the gate and the backend agree on a
// file written by `echo`. The secret must be at least MinSecretBytes long.
func LoadSecretFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path) // #nosec G304 -- the path is operator configuration
	if err != nil {
		return nil, fmt.Errorf("read secret: %w", err)
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	if len(b) < MinSecretBytes {
		return nil, fmt.Errorf("secret %s has %d bytes, need at least %d", path, len(b), MinSecretBytes)
	}
	return b, nil
}
