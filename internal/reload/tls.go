package reload

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"slices"
	"sync/atomic"
	"time"
)

// TLSFiles are the listeners' TLS: the certificate and key, and the CA that
// signs the callers' certificates under mutual TLS. It reads them again
// when their files change, so that short-lived certificates (cert-manager,
// a SPIFFE helper) are followed without a restart; connections already
// open keep the certificate they were made with, new handshakes take the
// new one. Files that do not load are logged and ignored: the previous
// ones stay.
type TLSFiles struct {
	cert, key, clientCA string
	current             atomic.Pointer[tls.Config]
}

// NewTLSFiles loads the certificate and key and, when clientCA is not
// empty, the CA of the callers' certificates (mutual TLS); nil without a
// certificate.
func NewTLSFiles(cert, key, clientCA string) (*TLSFiles, error) {
	if cert == "" {
		return nil, nil
	}
	f := &TLSFiles{cert: cert, key: key, clientCA: clientCA}
	if err := f.load(); err != nil {
		return nil, err
	}
	return f, nil
}

// load reads the files and, when they are good, makes them current.
func (f *TLSFiles) load() error {
	cert, err := tls.LoadX509KeyPair(f.cert, f.key)
	if err != nil {
		return fmt.Errorf("--tls-cert/--tls-key: %w", err)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if f.clientCA != "" {
		pem, err := os.ReadFile(f.clientCA)
		if err != nil {
			return fmt.Errorf("--client-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("--client-ca %s: no PEM certificate in it", f.clientCA)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	f.current.Store(tc)
	return nil
}

// Config returns the TLS configuration of a listener that speaks protos
// (ALPN): each handshake takes the files current at the time.
func (f *TLSFiles) Config(protos ...string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: protos,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			tc := f.current.Load().Clone()
			tc.NextProtos = slices.Clone(protos)
			return tc, nil
		},
	}
}

// Watch reloads the files when their directories change and when o.Signal
// fires (SIGHUP), until ctx ends, and shows the served certificate's
// expiry in o.Metrics.
func (f *TLSFiles) Watch(ctx context.Context, o Options) error {
	k := kind{label: "tls", reloaded: "TLS files reloaded", refused: "TLS files not reloaded: keeping the previous ones"}
	o.Metrics.served(f.NotAfter())
	return watch(ctx, k, []string{f.cert, f.key, f.clientCA}, o, func() ([]any, error) {
		if err := f.load(); err != nil {
			return nil, err
		}
		o.Metrics.served(f.NotAfter())
		return []any{"tls_cert", f.cert, "client_ca", f.clientCA, "not_after", f.NotAfter().UTC().Format(time.RFC3339)}, nil
	})
}

// NotAfter is when the certificate served expires.
func (f *TLSFiles) NotAfter() time.Time {
	return f.current.Load().Certificates[0].Leaf.NotAfter
}
