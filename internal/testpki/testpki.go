// Package testpki makes a throwaway certificate authority with a server
// certificate for loopback, and client certificates: for tests, and for
// the benchmark, which has no test. It imports no testing package.
package testpki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// PKI is a throwaway certificate authority with a server certificate for
// loopback, its files written to a directory.
type PKI struct {
	ca   *x509.Certificate
	key  *ecdsa.PrivateKey
	Pool *x509.CertPool
	// CAFile, CertFile and KeyFile are PEM files: the CA, and the
	// server's certificate and key (for 127.0.0.1, ::1 and localhost).
	CAFile, CertFile, KeyFile string
}

// New makes a CA and a loopback server certificate, and writes their PEM
// files into dir.
func New(dir string) (*PKI, error) {
	p := &PKI{}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "dintero-facade test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	if p.ca, err = x509.ParseCertificate(der); err != nil {
		return nil, err
	}
	p.key = key
	p.Pool = x509.NewCertPool()
	p.Pool.AddCert(p.ca)
	cert, err := p.issue(pkix.Name{CommonName: "localhost"}, nil, x509.ExtKeyUsageServerAuth)
	if err != nil {
		return nil, err
	}
	kder, err := x509.MarshalECPrivateKey(cert.PrivateKey.(*ecdsa.PrivateKey))
	if err != nil {
		return nil, err
	}
	for _, f := range []struct {
		path      *string
		name, typ string
		der       []byte
	}{
		{&p.CAFile, "ca.pem", "CERTIFICATE", der},
		{&p.CertFile, "server.pem", "CERTIFICATE", cert.Certificate[0]},
		{&p.KeyFile, "server-key.pem", "EC PRIVATE KEY", kder},
	} {
		*f.path = filepath.Join(dir, f.name)
		if err := os.WriteFile(*f.path, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), 0o600); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Client issues a client certificate with subject cn and, when uri is not
// empty, that URI SAN (a SPIFFE id, say).
func (p *PKI) Client(cn, uri string) (tls.Certificate, error) {
	var uris []*url.URL
	if uri != "" {
		u, err := url.Parse(uri)
		if err != nil {
			return tls.Certificate{}, err
		}
		uris = append(uris, u)
	}
	return p.issue(pkix.Name{CommonName: cn, Organization: []string{"test"}}, uris, x509.ExtKeyUsageClientAuth)
}

// ClientTLS returns a client TLS configuration that trusts the CA and,
// when certs are given, presents them.
func (p *PKI) ClientTLS(certs ...tls.Certificate) *tls.Config {
	return &tls.Config{RootCAs: p.Pool, Certificates: certs, MinVersion: tls.VersionTLS12}
}

func (p *PKI) issue(subject pkix.Name, uris []*url.URL, usage x509.ExtKeyUsage) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      subject,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		URIs:         uris,
	}
	if usage == x509.ExtKeyUsageServerAuth {
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
