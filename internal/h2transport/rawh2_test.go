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
	"net/url"
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
	// h1Next is how many of the next connections offer HTTP/1.1 only
	// in their handshake, as an edge that speaks HTTP/1.1 for a while.
	h1Next atomic.Int64
	// h1Conns and h2Conns count the connections served in HTTP/1.1 and
	// in HTTP/2.
	h1Conns, h2Conns atomic.Int64
	// hangFirst makes the first connection hang right after its TLS
	// handshake: it reads on, and sends nothing, not even SETTINGS.
	hangFirst atomic.Bool
}

// rawConn is one connection of a rawH2, as its handler sees it.
type rawConn struct {
	n  int64 // the connection's number, from 1
	h1 bool  // the connection speaks HTTP/1.1: the frames are said in its terms
	// hung makes the connection hang from now on: it reads on and
	// answers nothing, pings neither.
	hung atomic.Bool
	nc   net.Conn
	mu   sync.Mutex
	fr   *http2.Framer
	enc  *hpack.Encoder
	buf  bytes.Buffer
}

// rawHandler answers the request on stream id of c, whose method and path
// are given; it returns false to end the connection.
type rawHandler func(c *rawConn, id uint32, method, path string) bool

// headers writes a HEADERS frame of the name-value pairs kv; over
// HTTP/1.1, the status line and the header fields.
func (c *rawConn) headers(id uint32, end bool, kv ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.h1 {
		var b strings.Builder
		length := false
		for i := 0; i+1 < len(kv); i += 2 {
			switch kv[i] {
			case ":status":
				fmt.Fprintf(&b, "HTTP/1.1 %s Answer\r\n", kv[i+1])
				continue
			case "content-length":
				length = true
			}
			fmt.Fprintf(&b, "%s: %s\r\n", kv[i], kv[i+1])
		}
		if end && !length {
			b.WriteString("Content-Length: 0\r\n")
		}
		b.WriteString("\r\n")
		_, _ = io.WriteString(c.nc, b.String())
		return
	}
	c.buf.Reset()
	for i := 0; i+1 < len(kv); i += 2 {
		_ = c.enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	_ = c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.buf.Bytes(), EndStream: end, EndHeaders: true})
}

func (c *rawConn) data(id uint32, end bool, p []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.h1 {
		_, _ = c.nc.Write(p)
		return
	}
	_ = c.fr.WriteData(id, end, p)
}

// reset resets the stream; over HTTP/1.1 the connection closes, which is
// how an HTTP/1.1 server fails a request.
func (c *rawConn) reset(id uint32, code http2.ErrCode) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.h1 {
		c.nc.Close()
		return
	}
	_ = c.fr.WriteRSTStream(id, code)
}

// goAway sends a GOAWAY; over HTTP/1.1 the connection closes.
func (c *rawConn) goAway(last uint32, code http2.ErrCode) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.h1 {
		c.nc.Close()
		return
	}
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
	cfg := &tls.Config{Certificates: cert.TLS.Certificates, NextProtos: []string{"h2", "http/1.1"}}
	h1 := &tls.Config{Certificates: cert.TLS.Certificates, NextProtos: []string{"http/1.1"}}
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
				c := cfg
				if s.h1Next.Add(-1) >= 0 {
					c = h1
				} else {
					s.h1Next.Add(1)
				}
				tc := tls.Server(nc, c)
				if tc.Handshake() != nil {
					return
				}
				if tc.ConnectionState().NegotiatedProtocol != http2.NextProtoTLS {
					s.h1Conns.Add(1)
					s.serveH1(&rawConn{n: n, nc: tc, h1: true}, keys, handle)
					return
				}
				s.h2Conns.Add(1)
				s.serve(&rawConn{n: n, nc: tc}, maxStreams, keys, handle)
			})
		}
	})
	return s
}

func (s *rawH2) serve(c *rawConn, maxStreams uint32, keys []byte, handle rawHandler) {
	if c.n == 1 && s.hangFirst.Load() {
		_, _ = io.Copy(io.Discard, c.nc)
		return
	}
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
		if c.hung.Load() {
			continue
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

// serveH1 serves c in HTTP/1.1: the signing keys itself, every other
// request through handle, whose frames rawConn says in HTTP/1.1's terms.
func (s *rawH2) serveH1(c *rawConn, keys []byte, handle rawHandler) {
	br := bufio.NewReader(c.nc)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, req.Body)
		if strings.HasSuffix(req.URL.Path, "/auth/keys") {
			c.mu.Lock()
			_, _ = fmt.Fprintf(c.nc, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(keys), keys)
			c.mu.Unlock()
			continue
		}
		s.requests.Add(1)
		if !handle(c, 1, req.Method, req.URL.RequestURI()) {
			return
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
	return rawClientOn(t, s, headerTimeout, paths[0])
}

// rawClientOn is rawClient whose calls take path p.
func rawClientOn(t *testing.T, s *rawH2, headerTimeout time.Duration, p path) (*upstream.Client, *h2transport.Transport) {
	t.Helper()
	tr := h2transport.New(headerTimeout)
	tr.Std.TLSClientConfig = s.TLS.Clone()
	p.set(t, s, tr)
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

// connectProxy is an HTTP CONNECT proxy, as HTTPS_PROXY names one.
func connectProxy(t *testing.T) *url.URL {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
			return
		}
		up, err := net.Dial("tcp", r.Host)
		if err != nil {
			http.Error(w, "no route", http.StatusBadGateway)
			return
		}
		nc, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			up.Close()
			return
		}
		mu.Lock()
		open = append(open, nc, up)
		mu.Unlock()
		_, _ = nc.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n"))
		wg.Go(func() { _, _ = io.Copy(up, nc); up.Close() })
		wg.Go(func() { _, _ = io.Copy(nc, up); nc.Close() })
	}))
	t.Cleanup(func() {
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		srv.Close()
		wg.Wait()
	})
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// path is a way the transport can carry a call to an https host.
type path struct {
	name string
	// set readies the server and the transport for the path before the
	// first call.
	set func(t *testing.T, srv *rawH2, tr *h2transport.Transport)
}

// paths are every way the transport can carry a call to an https host:
// HTTP/2 through x/net, net/http's transport through a proxy, and
// net/http's transport to a host that answered a handshake with HTTP/1.1.
var paths = []path{
	{"HTTP/2", func(*testing.T, *rawH2, *h2transport.Transport) {}},
	{"proxied", func(t *testing.T, _ *rawH2, tr *h2transport.Transport) { tr.Std.Proxy = http.ProxyURL(connectProxy(t)) }},
	{"after an HTTP/1.1 answer", func(_ *testing.T, srv *rawH2, _ *h2transport.Transport) { srv.h1Next.Store(1) }},
}
