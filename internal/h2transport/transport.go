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
// answers with HTTP/1.1, a plain http URL and a proxied host are left to
// net/http's Transport (Std).
//
// Each request learns from an httptrace.ClientTrace whether it got a
// connection and whether its headers were written: an error of a request
// that provably never left the process is marked so (see Unsent).
type Transport struct {
	// Std is net/http's transport, for plain http, proxied hosts and
	// hosts that answer with HTTP/1.1. Its TLS configuration, its dialer
	// (DialContext) and its TLSHandshakeTimeout apply to H2's connections
	// too. Change it only before the first call.
	Std *http.Transport
	// H2 is x/net/http2's transport for https hosts: its health pings
	// (ReadIdleTimeout, PingTimeout) and IdleConnTimeout. Change it only
	// before the first call.
	H2 *http2.Transport
	// DialTimeout bounds a dial of H2 with its TLS handshake.
	DialTimeout time.Duration
	// HeaderTimeout bounds the wait for an answer's headers once the
	// request's headers were written, on H2 (Std has its
	// ResponseHeaderTimeout). Zero: no bound.
	HeaderTimeout time.Duration

	// hosts holds what is known of each host:port ("h" and "h:443" are
	// one). last is the host of the latest call, as its URL spells it: a
	// client calls one host, which is then found without hashing a map's
	// interface key.
	hosts sync.Map // host:port → *hostInfo
	last  atomic.Pointer[hostEntry]
}

// hostInfo is what the transport knows of one https host.
type hostInfo struct {
	// h1 is set once the host answered with HTTP/1.1, or is proxied: its
	// calls go to Std.
	h1 atomic.Bool
	// dialing counts H2's dials in flight to the host.
	dialing atomic.Int32
}

// hostEntry is a host, as a URL spells it, and what is known of it.
type hostEntry struct {
	host string
	info *hostInfo
}

// New returns the transport the facade's client uses: explicit
// dial, TLS-handshake and response-header timeouts, health pings on idle
// HTTP/2 connections, and an idle pool for HTTP/1.1 sized for a busy
// facade (Go's default keeps two idle connections per host, so bursts would
// open and close connections).
func New(responseHeaderTimeout time.Duration) *Transport {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	t := &Transport{
		Std: &http.Transport{
			Proxy:                  http.ProxyFromEnvironment,
			DialContext:            d.DialContext,
			ForceAttemptHTTP2:      true,
			TLSHandshakeTimeout:    5 * time.Second,
			ResponseHeaderTimeout:  responseHeaderTimeout,
			ExpectContinueTimeout:  time.Second,
			MaxIdleConns:           512,
			MaxIdleConnsPerHost:    256,
			IdleConnTimeout:        90 * time.Second,
			MaxResponseHeaderBytes: 64 << 10,
			HTTP2:                  &http.HTTP2Config{SendPingTimeout: 30 * time.Second, PingTimeout: 10 * time.Second},
		},
		DialTimeout:   15 * time.Second,
		HeaderTimeout: responseHeaderTimeout,
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
	info := t.info(addr)
	info.dialing.Add(1)
	defer info.dialing.Add(-1)
	if t.DialTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t.DialTimeout)
		defer cancel()
	}
	dial := t.Std.DialContext
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	conn, err := dial(ctx, network, addr)
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
	tc := tls.Client(conn, cfg)
	hctx := ctx
	if d := t.Std.TLSHandshakeTimeout; d > 0 {
		var cancel context.CancelFunc
		hctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	if err := tc.HandshakeContext(hctx); err != nil {
		conn.Close()
		return nil, err
	}
	if tc.ConnectionState().NegotiatedProtocol != http2.NextProtoTLS {
		// An HTTP/1.1 host needs a connection per call in flight,
		// which net/http's pool manages.
		info.h1.Store(true)
		tc.Close()
		return nil, errHTTP1
	}
	return tc, nil
}

// info returns what is known of the host at addr (host:port).
func (t *Transport) info(addr string) *hostInfo {
	if v, ok := t.hosts.Load(addr); ok {
		return v.(*hostInfo)
	}
	v, _ := t.hosts.LoadOrStore(addr, &hostInfo{})
	return v.(*hostInfo)
}

// host returns what is known of u's host; nil when u is not https or
// its host is proxied or speaks HTTP/1.1.
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
					fresh.h1.Store(true)
				}
			}
			v, _ = t.hosts.LoadOrStore(addr, fresh)
		}
		info = v.(*hostInfo)
		t.last.Store(&hostEntry{host: u.Host, info: info})
	}
	if info.h1.Load() {
		return nil
	}
	return info
}

// RoundTrip sends req: over H2 to an https host that speaks HTTP/2,
// through Std otherwise. An error of a request that provably never left
// the process is an *unsentError.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	info := t.host(req.URL)
	if info == nil {
		return t.roundTripStd(req)
	}
	s := newSending(req.Context(), t.HeaderTimeout)
	req = req.WithContext(s.ctx)
	var resp *http.Response
	var err error
	if info.dialing.Load() > 0 {
		// The call may have to wait for a dial in flight, which H2
		// does without heeding the call's context: the call waits on
		// its own, and gives up at its deadline.
		resp, err = s.await(t.H2, req)
	} else {
		resp, err = t.H2.RoundTrip(req)
	}
	if errors.Is(err, errHTTP1) {
		s.end()
		return t.roundTripStd(req.WithContext(s.parent))
	}
	return s.finish(resp, err)
}

// roundTripStd sends req through Std, learning whether its headers were
// written.
func (t *Transport) roundTripStd(req *http.Request) (*http.Response, error) {
	s := newSending(req.Context(), 0)
	resp, err := t.Std.RoundTrip(req.WithContext(s.ctx))
	return s.finish(resp, err)
}

// sending is one request on its way: what its trace saw, and the bound on
// the wait for its answer's headers. Once the answer came it is the
// answer's body, so that closing the body releases the request's context.
type sending struct {
	trace   httptrace.ClientTrace
	parent  context.Context
	ctx     context.Context
	cancel  context.CancelCauseFunc
	gotConn atomic.Bool // a connection was handed to the request
	wrote   atomic.Bool // its headers were written to it
	timeout time.Duration
	timer   atomic.Pointer[time.Timer]
	ended   atomic.Bool
	// state tells await's two goroutines apart: awaitOpen, then
	// awaitTaken (the caller takes the answer) or awaitLeft (the caller
	// gave up first, and the answer is closed).
	state atomic.Int32
	body  io.ReadCloser
}

// The states of await's handshake.
const (
	awaitOpen int32 = iota
	awaitTaken
	awaitLeft
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
// timeout, a context the header timer can end.
func newSending(ctx context.Context, timeout time.Duration) *sending {
	s := &sending{parent: ctx, timeout: timeout}
	s.trace.GotConn = func(httptrace.GotConnInfo) { s.gotConn.Store(true) }
	s.trace.WroteHeaders = func() {
		s.wrote.Store(true)
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

// await sends req on h2 in a goroutine of its own, and returns its
// answer, or the context's error when the context ends first.
func (s *sending) await(h2 http.RoundTripper, req *http.Request) (*http.Response, error) {
	type result struct {
		resp *http.Response
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		resp, err := h2.RoundTrip(req)
		if s.state.CompareAndSwap(awaitOpen, awaitTaken) {
			ch <- result{resp, err}
			return
		}
		if resp != nil {
			resp.Body.Close()
		}
		s.end()
	}()
	select {
	case r := <-ch:
		return r.resp, r.err
	case <-s.ctx.Done():
		if s.state.CompareAndSwap(awaitOpen, awaitLeft) {
			return nil, context.Cause(s.ctx)
		}
		r := <-ch
		return r.resp, r.err
	}
}

// finish returns the transport's answer: a response whose body releases
// the request's context when closed, or the error, marked as an
// *unsentError when the request provably never left the process.
func (s *sending) finish(resp *http.Response, err error) (*http.Response, error) {
	if err != nil {
		if s.state.Load() != awaitLeft {
			s.end()
		}
		if s.ctx.Err() != nil && context.Cause(s.ctx) == errHeaderTimeout && s.parent.Err() == nil {
			err = errHeaderTimeout
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

// unsent reports whether the request failed before its headers were
// written: it never got a connection, or it got one and failed before
// writing for a reason other than its context ending (the transports
// wait for their writer then; after the context ended, a writer may still
// be finishing, so the request may have left).
func (s *sending) unsent() bool {
	switch {
	case s.wrote.Load():
		return false
	case !s.gotConn.Load():
		return true
	}
	return s.parent.Err() == nil && (s.cancel == nil || s.ctx.Err() == nil)
}

// Read reads the answer's body.
func (s *sending) Read(p []byte) (int, error) { return s.body.Read(p) }

// Close closes the answer's body and releases the request's context.
func (s *sending) Close() error {
	err := s.body.Close()
	s.cancel(nil)
	return err
}

// unsentError is the error of a request that provably never left the
// process: nothing reached the server.
type unsentError struct{ err error }

func (e *unsentError) Error() string { return e.err.Error() }
func (e *unsentError) Unwrap() error { return e.err }

// Unsent reports whether err, or an error it wraps, is the Transport's
// error of a request that provably never left the process: it got no
// connection, or failed before its headers were written for a reason
// other than its context ending.
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
