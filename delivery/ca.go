package delivery

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
)

// LoadCAFile returns the system roots plus every certificate of the PEM file at path, for Options.RootCAs.
// It fails when the file cannot be read, holds no certificate or holds one that does not parse.
func LoadCAFile(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading CA file: %w", err) // *fs.PathError names the path
	}
	pool, err := x509.SystemCertPool() // a copy: adding to it changes no other pool
	if err != nil {
		return nil, fmt.Errorf("loading system roots for CA file %s: %w", path, err)
	}
	n := 0
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue // e.g. a key bundled in the same file: neither used nor shown
		}
		n++
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("CA file %s: certificate %d: %w", path, n, err)
		}
		pool.AddCert(cert)
	}
	if n == 0 {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", path)
	}
	return pool, nil
}
