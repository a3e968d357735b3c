// x/net/http2's Transport is marked deprecated in favour of net/http's,
// which at a cold start dials once per waiting request while it does not
// know that a host speaks HTTP/2; see docs/design.md.
//lint:file-ignore SA1019 the facade uses x/net/http2's Transport on purpose: it dials once per host

// Package h2transport carries the facade's calls to Dintero: HTTP/2
// through golang.org/x/net/http2 to an https host, net/http's transport
// otherwise, with a trace of each request that tells whether it may have
// left the process.
package h2transport

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
)

// Transport carries the calls to Dintero. To an https host it speaks
// HTTP/2 through golang.org/x/net/http2's Transport (H2), which dials a
// host once however many calls wait, shares the connection, opens another
// only when the server's stream limit is reached, pings idle connections
// and says in typed errors (http2.StreamError, http2.GoAwayError) what the
// server did not process, sending such requests again itself. A host that
// answers with HTTP/1.1 (for HTTP1For), a plain http URL and a proxied
// host are left to net/http's Transport (Std), which speaks HTTP/1.1 only:
// net/http's own HTTP/2 sends a request the server reset with
// PROTOCOL_ERROR again (golang/go#47635), and no layer below the client
// may send a request again that the server may have processed.
//
// Each request learns from an httptrace.ClientTrace whether its headers
// were written: an error of a request that provably never reached the
// server is marked so (see Unsent).
type Transport struct {
	// Std is net/http's transport, for plain http, proxied hosts and
	// hosts that answer with HTTP/1.1: HTTP/1.1 only. Its TLS
	// configuration, its dialer (DialContext) and its TLSHandshakeTimeout
	// apply to H2's connections too. Change it only before the first
	// call.
	Std *http.Transport
	// H2 is x/net/http2's transport for https hosts: its health pings
	// (ReadIdleTimeout, PingTimeout) and IdleConnTimeout. Change it only
	// before the first call.
	H2 *http2.Transport
	// DialTimeout bounds a dial of H2 with its TLS handshake.
	DialTimeout time.Duration
	// HeaderTimeout bounds the wait for an answer's headers once the
	// request's headers were written, on H2 (Std has its
	// ResponseHeaderTimeout). Zero: no bound. A call that ends without a
	// frame read on its connection since its headers were written makes
	// the connection suspect: x/net pings it with the stream's reset, and
	// the connection is closed unless a frame comes within
	// min(HeaderTimeout, H2.PingTimeout).
	HeaderTimeout time.Duration
	// HTTP1For is how long a host that answered a handshake with
	// HTTP/1.1 is left to Std before HTTP/2 is tried again (an edge may
	// speak HTTP/1.1 for a while, during a deploy say).
	HTTP1For time.Duration

	// hosts holds what is known of each host:port ("h" and "h:443" are
	// one). last is the host of the latest call, as its URL spells it: a
	// client calls one host, which is then found without hashing a map's
	// interface key.
	hosts sync.Map // host:port → *hostInfo
	last  atomic.Pointer[hostEntry]
	// pin makes Std's TLS configuration offer HTTP/1.1 only, once.
	pin sync.Once
}

// hostInfo is what the transport knows of one https host.
type hostInfo struct {
	// proxied is set when the host is reached through a proxy: its calls
	// go to Std.
	proxied bool
	// h1Until is when (Unix nanoseconds) the host, which answered with
	// HTTP/1.1, is tried on HTTP/2 again; 0 when it is not known to.
	h1Until atomic.Int64
	// dialing counts H2's dials in flight to the host; dialDone is closed
	// when the count falls to zero.
	dialing  atomic.Int32
	mu       sync.Mutex
	dialDone chan struct{}
}

// hostEntry is a host, as a URL spells it, and what is known of it.
type hostEntry struct {
	host string
	info *hostInfo
}

// MaxConnsPerHost bounds Std's connections to a host, dialing ones
// included: an HTTP/1.1 host needs a connection per call in flight, and a
// cold start would otherwise dial once per waiting call.
const MaxConnsPerHost = 64

// New returns the transport the facade's client uses: explicit
// dial, TLS-handshake and response-header timeouts, health pings on idle
// HTTP/2 connections, and an idle pool for HTTP/1.1 sized for a busy
// facade (Go's default keeps two idle connections per host, so bursts would
// open and close connections).
func New(responseHeaderTimeout time.Duration) *Transport {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	var h1 http.Protocols
	h1.SetHTTP1(true)
	t := &Transport{
		Std: &http.Transport{
			Proxy:       http.ProxyFromEnvironment,
			DialContext: d.DialContext,
			Protocols:   &h1,
			// Not nil: net/http's own HTTP/2 is never set up.
			TLSNextProto:           map[string]func(string, *tls.Conn) http.RoundTripper{},
			TLSHandshakeTimeout:    5 * time.Second,
			ResponseHeaderTimeout:  responseHeaderTimeout,
			ExpectContinueTimeout:  time.Second,
			MaxIdleConns:           512,
			MaxIdleConnsPerHost:    MaxConnsPerHost,
			MaxConnsPerHost:        MaxConnsPerHost,
			IdleConnTimeout:        90 * time.Second,
			MaxResponseHeaderBytes: 64 << 10,
		},
		DialTimeout:   15 * time.Second,
		HeaderTimeout: responseHeaderTimeout,
		HTTP1For:      time.Minute,
	}
	t.H2 = &http2.Transport{
		DialTLSContext: t.dialTLS,
		// A connection silent for ReadIdleTimeout is pinged, and closed
		// when no answer comes within PingTimeout: a dead peer is found
		// before calls are lost to it.
		ReadIdleTimeout:   30 * time.Second,
		PingTimeout:       10 * time.Second,
		IdleConnTimeout:   90 * time.Second,
		MaxHeaderListSize: 64 << 10,
	}
	return t
}

// errHTTP1 is the dial's answer for a host that speaks HTTP/1.1: the
// request was not sent, and goes to Std.
var errHTTP1 = errors.New("the host does not speak HTTP/2")

// dialTLS dials addr for H2, bounded by DialTimeout and the TLS handshake
// by Std's TLSHandshakeTimeout, with Std's dialer and TLS configuration.
// It offers HTTP/1.1 too, so that a host that speaks only that says so,
// and is then remembered as such.
func (t *Transport) dialTLS(ctx context.Context, network, addr string, h2cfg *tls.Config) (net.Conn, error) {
	t.pin.Do(t.pinHTTP1)
	info := t.info(addr)
	if info.speaksHTTP1() {
		// A call that looked before the dial that learned it ended
		// reaches here after: it goes to Std without a connection that
		// would only say so again.
		return nil, errHTTP1
	}
	info.startDial()
	defer info.endDial()
	if t.DialTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t.DialTimeout)
		defer cancel()
	}
	dial := t.Std.DialContext
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	raw, err := dial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{}
	if t.Std.TLSClientConfig != nil {
		cfg = t.Std.TLSClientConfig.Clone()
	}
	cfg.NextProtos = []string{http2.NextProtoTLS, "http/1.1"}
	if cfg.ServerName == "" {
		cfg.ServerName = h2cfg.ServerName
	}
	tc := tls.Client(raw, cfg)
	hctx := ctx
	if d := t.Std.TLSHandshakeTimeout; d > 0 {
		var cancel context.CancelFunc
		hctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	if err := tc.HandshakeContext(hctx); err != nil {
		raw.Close()
		return nil, err
	}
	if tc.ConnectionState().NegotiatedProtocol != http2.NextProtoTLS {
		// An HTTP/1.1 host needs a connection per call in flight,
		// which net/http's pool manages.
		info.h1Until.Store(time.Now().Add(t.HTTP1For).UnixNano())
		tc.Close()
		return nil, errHTTP1
	}
	info.h1Until.Store(0)
	return newConn(tc, raw), nil
}

// startDial counts a dial to the host in flight.
func (h *hostInfo) startDial() {
	h.mu.Lock()
	if h.dialing.Add(1) == 1 {
		h.dialDone = make(chan struct{})
	}
	h.mu.Unlock()
}

// endDial counts a dial to the host ended; the last one wakes those who
// wait for it.
func (h *hostInfo) endDial() {
	h.mu.Lock()
	if h.dialing.Add(-1) == 0 {
		close(h.dialDone)
		h.dialDone = nil
	}
	h.mu.Unlock()
}

// awaitDial waits for the host's dials in flight to end, or ctx.
func (h *hostInfo) awaitDial(ctx context.Context) error {
	h.mu.Lock()
	done := h.dialDone
	h.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// info returns what is known of the host at addr (host:port).
func (t *Transport) info(addr string) *hostInfo {
	if v, ok := t.hosts.Load(addr); ok {
		return v.(*hostInfo)
	}
	v, _ := t.hosts.LoadOrStore(addr, &hostInfo{})
	return v.(*hostInfo)
}

// host returns what is known of u's host; nil when u is not https, or
// its host is proxied or answered with HTTP/1.1 less than HTTP1For ago.
func (t *Transport) host(u *url.URL) *hostInfo {
	if u.Scheme != "https" {
		return nil
	}
	var info *hostInfo
	if e := t.last.Load(); e != nil && e.host == u.Host {
		info = e.info
	} else {
		addr := u.Host
		if u.Port() == "" {
			addr = net.JoinHostPort(u.Hostname(), "443")
		}
		v, ok := t.hosts.Load(addr)
		if !ok {
			// A proxied host is left to Std, which knows how to
			// tunnel.
			fresh := &hostInfo{}
			if t.Std.Proxy != nil {
				if p, err := t.Std.Proxy(&http.Request{URL: u}); err != nil || p != nil {
					fresh.proxied = true
				}
			}
			v, _ = t.hosts.LoadOrStore(addr, fresh)
		}
		info = v.(*hostInfo)
		t.last.Store(&hostEntry{host: u.Host, info: info})
	}
	if info.proxied {
		return nil
	}
	if info.speaksHTTP1() {
		return nil
	}
	return info
}

// speaksHTTP1 reports whether the host answered with HTTP/1.1 less than
// HTTP1For ago.
func (h *hostInfo) speaksHTTP1() bool {
	until := h.h1Until.Load()
	return until != 0 && time.Now().UnixNano() < until
}

// RoundTrip sends req: over H2 to an https host that speaks HTTP/2,
// through Std otherwise. An error of a request that provably never
// reached the server is an *unsentError.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	info := t.host(req.URL)
	if info == nil {
		return t.roundTripStd(req)
	}
	s := newSending(req.Context(), t.HeaderTimeout, t.suspectAfter())
	req = req.WithContext(s.ctx)
	if info.dialing.Load() > 0 {
		// The call would wait for the dial in flight inside H2, which
		// does not heed its context: it waits here, on its own, and
		// leaves nothing behind when it gives up.
		if err := info.awaitDial(s.ctx); err != nil {
			return s.finish(nil, err)
		}
		if info.speaksHTTP1() {
			// The dial learned that the host speaks HTTP/1.1.
			s.end()
			return t.roundTripStd(req.WithContext(s.parent))
		}
	}
	resp, err := t.H2.RoundTrip(req)
	if errors.Is(err, errHTTP1) {
		s.end()
		return t.roundTripStd(req.WithContext(s.parent))
	}
	return s.finish(resp, err)
}

// pinHTTP1 makes Std's TLS configuration offer HTTP/1.1 only: net/http
// offers what the configuration lists, "h2" too while it speaks HTTP/1.1
// only, and a server that picks it could not read its requests.
func (t *Transport) pinHTTP1() {
	if cfg := t.Std.TLSClientConfig; cfg != nil && !slices.Equal(cfg.NextProtos, []string{"http/1.1"}) {
		cfg = cfg.Clone()
		cfg.NextProtos = []string{"http/1.1"}
		t.Std.TLSClientConfig = cfg
	}
}

// suspectAfter is how long a suspect connection has to show a frame.
func (t *Transport) suspectAfter() time.Duration {
	d := t.H2.PingTimeout
	if d <= 0 {
		d = 15 * time.Second // x/net's default
	}
	if t.HeaderTimeout > 0 {
		d = min(d, t.HeaderTimeout)
	}
	return d
}

// roundTripStd sends req through Std, learning whether its headers were
// written.
func (t *Transport) roundTripStd(req *http.Request) (*http.Response, error) {
	t.pin.Do(t.pinHTTP1)
	s := newSending(req.Context(), 0, 0)
	resp, err := t.Std.RoundTrip(req.WithContext(s.ctx))
	return s.finish(resp, err)
}

// sending is one request on its way: what its trace saw, and the bound on
// the wait for its answer's headers. Once the answer came it is the
// answer's body, so that closing the body releases the request's context.
type sending struct {
	trace  httptrace.ClientTrace
	parent context.Context
	ctx    context.Context
	cancel context.CancelCauseFunc
	// h2 is set for a request to H2: its writer may outlive RoundTrip
	// (see state), and conn is the connection it got.
	h2   bool
	conn atomic.Pointer[conn]
	// state says whether the request's headers may reach the server:
	// sendOpen until the writer encodes the first of them (sendCommitted)
	// or the request is given up before (sendAbandoned).
	state atomic.Int32
	wrote atomic.Bool // its headers were written
	// reads is the connection's frames read, and stream a lower bound on
	// the request's stream id, when its headers were written.
	reads   atomic.Uint64
	stream  atomic.Uint32
	timeout time.Duration
	suspect time.Duration
	timer   atomic.Pointer[time.Timer]
	ended   atomic.Bool
	body    io.ReadCloser
}

// The states of a request's headers.
const (
	sendOpen int32 = iota
	sendCommitted
	sendAbandoned
)

// errHeaderTimeout ends a request whose answer's headers did not come
// within HeaderTimeout.
var errHeaderTimeout error = headerTimeout{}

// headerTimeout is a net.Error that says it is a timeout, as net/http's
// own header timeout does.
type headerTimeout struct{}

func (headerTimeout) Error() string   { return "timeout awaiting response headers" }
func (headerTimeout) Timeout() bool   { return true }
func (headerTimeout) Temporary() bool { return true }

// newSending readies a request of context ctx: its trace, and with a
// timeout, a context the header timer can end. A request to H2 (suspect
// positive) also learns its connection, and commits to writing its
// headers before it does.
func newSending(ctx context.Context, timeout, suspect time.Duration) *sending {
	s := &sending{parent: ctx, timeout: timeout, suspect: suspect, h2: suspect > 0}
	if s.h2 {
		s.trace.GotConn = func(info httptrace.GotConnInfo) {
			if c, ok := info.Conn.(*conn); ok {
				s.conn.Store(c)
			}
		}
		// x/net encodes the headers after its last look at the
		// context, and writes them after: a request given up before
		// kills the connection under it, so that it never was sent.
		s.trace.WroteHeaderField = func(string, []string) {
			if !s.state.CompareAndSwap(sendOpen, sendCommitted) && s.state.Load() == sendAbandoned {
				if c := s.conn.Load(); c != nil {
					c.kill()
				}
			}
			// The first field decides; x/net allocates for each field
			// while the hook is set. The writer's goroutine alone reads
			// it from here on.
			s.trace.WroteHeaderField = nil
		}
	}
	s.trace.WroteHeaders = func() {
		s.wrote.Store(true)
		if c := s.conn.Load(); c != nil {
			s.reads.Store(c.reads.Load())
			s.stream.Store(2*c.written.Add(1) - 1)
		}
		// Each write starts the bound anew: H2 sends a refused stream
		// again, after a backoff of its own.
		if s.timeout > 0 {
			t := time.AfterFunc(s.timeout, func() { s.cancel(errHeaderTimeout) })
			if old := s.timer.Swap(t); old != nil {
				old.Stop()
			}
			if s.ended.Load() {
				t.Stop()
			}
		}
	}
	s.ctx = httptrace.WithClientTrace(ctx, &s.trace)
	if timeout > 0 {
		s.ctx, s.cancel = context.WithCancelCause(s.ctx)
	}
	return s
}

// stopTimer stops the header timer, if it runs.
func (s *sending) stopTimer() {
	if t := s.timer.Load(); t != nil {
		t.Stop()
	}
}

// end stops the header timer and releases the request's context.
func (s *sending) end() {
	s.ended.Store(true)
	s.stopTimer()
	if s.cancel != nil {
		s.cancel(nil)
	}
}

// finish returns the transport's answer: a response whose body releases
// the request's context when closed, or the error, marked as an
// *unsentError when the request provably never reached the server.
func (s *sending) finish(resp *http.Response, err error) (*http.Response, error) {
	if err != nil {
		s.end()
		if s.ctx.Err() != nil && context.Cause(s.ctx) == errHeaderTimeout && s.parent.Err() == nil {
			err = errHeaderTimeout
		}
		if c := s.conn.Load(); c != nil && s.wrote.Load() {
			// No frame since the headers were written: the peer may be
			// gone, and x/net pinged it with the stream's reset.
			c.suspect(s.reads.Load(), s.suspect)
		}
		if s.unsent() {
			return nil, &unsentError{err}
		}
		return nil, err
	}
	s.ended.Store(true)
	s.stopTimer()
	if s.cancel != nil && resp.Body != nil {
		s.body = resp.Body
		resp.Body = s
	} else if s.cancel != nil {
		s.cancel(nil)
	}
	return resp, nil
}

// unsent reports whether the request failed before its headers could
// reach the server, or the server said it did not process it. Over
// HTTP/1.1 net/http returns only once its writer has ended, so headers
// not written were never sent. x/net's writer may outlive RoundTrip; a
// request whose writer had not begun to encode its headers is abandoned
// (and its writer, if it gets there, kills the connection before they
// leave). A GOAWAY whose last stream is below the request's stream says
// it was not processed (RFC 9113 §6.8), whatever its error code.
func (s *sending) unsent() bool {
	if !s.h2 {
		return !s.wrote.Load()
	}
	if s.state.CompareAndSwap(sendOpen, sendAbandoned) || s.state.Load() == sendAbandoned {
		return true
	}
	c := s.conn.Load()
	return c != nil && s.wrote.Load() && c.goAwayBelow(s.stream.Load())
}

// Read reads the answer's body.
func (s *sending) Read(p []byte) (int, error) { return s.body.Read(p) }

// Close closes the answer's body and releases the request's context.
func (s *sending) Close() error {
	err := s.body.Close()
	s.cancel(nil)
	return err
}

// unsentError is the error of a request that provably the server did not
// process: it never reached the server, or a GOAWAY said so.
type unsentError struct{ err error }

func (e *unsentError) Error() string { return e.err.Error() }
func (e *unsentError) Unwrap() error { return e.err }

// Unsent reports whether err, or an error it wraps, is the Transport's
// error of a request that provably never reached the server, or that the
// server said it did not process: nothing was done, and it may be sent
// again.
func Unsent(err error) bool {
	var u *unsentError
	return errors.As(err, &u)
}

// Warm opens a connection to the host of rawURL ahead of the first call,
// and learns which protocol it speaks, with a HEAD of rawURL whose answer
// is ignored (H2 opens connections for requests only). It waits for the
// answer (or ctx).
func (t *Transport) Warm(ctx context.Context, rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return err
	}
	if t.host(u) == nil {
		return nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, rawURL, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "dintero-facade")
	resp, err := t.RoundTrip(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}

// CloseIdleConnections closes the connections no call is using.
func (t *Transport) CloseIdleConnections() {
	t.H2.CloseIdleConnections()
	t.Std.CloseIdleConnections()
}
