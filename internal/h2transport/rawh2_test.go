package h2transport_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
	"github.com/dintero-facade/dintero-facade/internal/h2transport"
	"github.com/dintero-facade/dintero-facade/upstream"
)

// rawH2 is an HTTP/2 server over TLS written frame by frame with x/net's
// Framer, so that a test sends exactly the frames it means: a reset with
// any code, a GOAWAY naming any stream, a header no server library would
// send. It answers the signing keys itself; every other request goes to
// the test's handler.
type rawH2 struct {
	URL string
	// TLS is a client configuration that trusts the server.
	TLS *tls.Config

	requests atomic.Int64 // requests other than the keys
	conns    atomic.Int64 // connections accepted
	pings    atomic.Int64 // PINGs received
	closed   atomic.Int64 // connections ended
	// noPingAck makes the server leave PINGs unanswered.
	noPingAck atomic.Bool
}

// rawConn is one connection of a rawH2, as its handler sees it.
type rawConn struct {
	n   int64 // the connection's number, from 1
	nc  net.Conn
	mu  sync.Mutex
	fr  *http2.Framer
	enc *hpack.Encoder
	buf bytes.Buffer
}

// rawHandler answers the request on stream id of c, whose method and path
// are given; it returns false to end the connection.
type rawHandler func(c *rawConn, id uint32, method, path string) bool

// headers writes a HEADERS frame of the name-value pairs kv.
func (c *rawConn) headers(id uint32, end bool, kv ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf.Reset()
	for i := 0; i+1 < len(kv); i += 2 {
		_ = c.enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	_ = c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.buf.Bytes(), EndStream: end, EndHeaders: true})
}

func (c *rawConn) data(id uint32, end bool, p []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.fr.WriteData(id, end, p)
}

func (c *rawConn) reset(id uint32, code http2.ErrCode) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.fr.WriteRSTStream(id, code)
}

func (c *rawConn) goAway(last uint32, code http2.ErrCode) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.fr.WriteGoAway(last, code, nil)
}

// redirect answers authorize with a 302 whose Location carries an access
// token, the shape of a good answer.
func (c *rawConn) redirect(id uint32) {
	c.headers(id, true, ":status", "302", "location", "https://app.example.com/cb?access_token=A1&state=s")
}

// newRawH2 starts a rawH2 whose connections allow maxStreams streams
// (0: no limit announced).
func newRawH2(t *testing.T, maxStreams uint32, handle rawHandler) *rawH2 {
	t.Helper()
	cert := httptest.NewUnstartedServer(nil)
	cert.EnableHTTP2 = true
	cert.StartTLS()
	cert.Close() // only its certificate and client configuration are used
	s := &rawH2{TLS: cert.Client().Transport.(*http.Transport).TLSClientConfig.Clone()}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.URL = "https://" + l.Addr().String()
	cfg := &tls.Config{Certificates: cert.TLS.Certificates, NextProtos: []string{"h2"}}
	keys := keysJSON(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open = append(open, nc)
			mu.Unlock()
			n := s.conns.Add(1)
			wg.Go(func() {
				defer s.closed.Add(1)
				defer nc.Close()
				tc := tls.Server(nc, cfg)
				if tc.Handshake() != nil {
					return
				}
				s.serve(&rawConn{n: n, nc: tc}, maxStreams, keys, handle)
			})
		}
	})
	return s
}

func (s *rawH2) serve(c *rawConn, maxStreams uint32, keys []byte, handle rawHandler) {
	br := bufio.NewReader(c.nc)
	if _, err := io.ReadFull(br, make([]byte, len(http2.ClientPreface))); err != nil {
		return
	}
	c.fr = http2.NewFramer(c.nc, br)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.enc = hpack.NewEncoder(&c.buf)
	var settings []http2.Setting
	if maxStreams > 0 {
		settings = append(settings, http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: maxStreams})
	}
	c.mu.Lock()
	_ = c.fr.WriteSettings(settings...)
	c.mu.Unlock()
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				c.mu.Lock()
				_ = c.fr.WriteSettingsAck()
				c.mu.Unlock()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				s.pings.Add(1)
				if !s.noPingAck.Load() {
					c.mu.Lock()
					_ = c.fr.WritePing(true, f.Data)
					c.mu.Unlock()
				}
			}
		case *http2.MetaHeadersFrame:
			method, path := f.PseudoValue("method"), f.PseudoValue("path")
			if strings.HasSuffix(path, "/auth/keys") {
				c.headers(f.StreamID, false, ":status", "200", "content-type", "application/json")
				c.data(f.StreamID, true, keys)
				continue
			}
			s.requests.Add(1)
			if !handle(c, f.StreamID, method, path) {
				return
			}
		}
	}
}

// keysJSON is the keys endpoint's answer with the shared test key.
func keysJSON(t *testing.T) []byte {
	key, _ := dinterotest.TestKeys(t)
	enc := base64.RawURLEncoding.EncodeToString
	return fmt.Appendf(nil, `[{"alg":"RS256","kty":"RSA","use":"sig","kid":"k1","n":%q,"e":%q}]`,
		enc(key.N.Bytes()), enc(big.NewInt(int64(key.E)).Bytes()))
}

// rawClient is a client of s with a transport of its own, whose header
// timeout is headerTimeout.
func rawClient(t *testing.T, s *rawH2, headerTimeout time.Duration) (*upstream.Client, *h2transport.Transport) {
	t.Helper()
	tr := h2transport.New(headerTimeout)
	tr.Std.TLSClientConfig = s.TLS.Clone()
	t.Cleanup(tr.CloseIdleConnections)
	c, err := upstream.New(upstream.Options{BaseURL: s.URL + "/v1", Transport: tr, BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return c, tr
}

// rawCaller is a caller's own token; rawH2 reads none.
var rawCaller = upstream.Call{Authorization: "Bearer raw-caller-token-0001"}

// waitFor polls cond for up to d, for what a server sees a moment after
// the client.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}
