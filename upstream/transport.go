package upstream

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Transport carries the calls to Dintero. To an https host it speaks
// HTTP/2 over connections of its own pool, dialed one at a time: the first
// one whatever the load (net/http's pool dials once per waiting request
// while it does not know the host speaks HTTP/2, hundreds of TLS handshakes
// at a cold start), and a further one only when every connection is at the
// server's limit of concurrent streams. A host that answers with HTTP/1.1,
// a plain http URL and a proxied host are left to net/http's own pool.
type Transport struct {
	// Std is the net/http transport underneath: its timeouts, TLS
	// configuration and proxy apply to every connection. Change it only
	// before the first call.
	Std *http.Transport

	hosts sync.Map // host:port → *h2Host
}

// h2Host is the pool of one https host. Calls read conns without a lock:
// a copy is stored whenever the pool changes.
type h2Host struct {
	addr  string
	conns atomic.Pointer[[]*http.ClientConn]
	// h1 is set once the host answered with HTTP/1.1 (or through a
	// proxy): its calls go to Std.
	h1 atomic.Bool

	mu      sync.Mutex
	dialing *dialCall // the dial in flight, nil when none
}

// dialCall is one dial; done is closed when it has ended, with err set if
// it failed.
type dialCall struct {
	done chan struct{}
	err  error
}

// NewTransport returns the transport a Client uses by default: explicit
// dial, TLS-handshake and response-header timeouts, health pings on idle
// HTTP/2 connections, and an idle pool for HTTP/1.1 sized for a busy
// facade (Go's default keeps two idle connections per host, so bursts would
// open and close connections).
func NewTransport(responseHeaderTimeout time.Duration) *Transport {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	std := &http.Transport{
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
		// A connection silent for SendPingTimeout is pinged, and closed
		// when no answer comes within PingTimeout: a dead peer is found
		// before calls are lost to it.
		HTTP2: &http.HTTP2Config{SendPingTimeout: 30 * time.Second, PingTimeout: 10 * time.Second},
	}
	return &Transport{Std: std}
}

// dialTimeout bounds a dial with its TLS handshake.
const dialTimeout = 15 * time.Second

// RoundTrip sends req on a connection of the host's pool, waiting for the
// one dial in flight when every connection is busy.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	h := t.host(req.URL)
	if h == nil {
		return t.Std.RoundTrip(req)
	}
	ctx := req.Context()
	for {
		cc, call, h1 := t.reserve(h)
		switch {
		case h1:
			return t.Std.RoundTrip(req)
		case cc != nil:
			resp, err := cc.RoundTrip(req)
			if err != nil && cc.Err() != nil {
				h.drop(cc)
			}
			return resp, err
		}
		select {
		case <-call.done:
			if call.err != nil {
				return nil, call.err
			}
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
}

// host returns the pool of u's host, nil when u is not https, goes
// through a proxy, or its host speaks HTTP/1.1.
func (t *Transport) host(u *url.URL) *h2Host {
	if u.Scheme != "https" {
		return nil
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "443")
	}
	v, ok := t.hosts.Load(addr)
	if !ok {
		h := &h2Host{addr: addr}
		if t.Std.Proxy != nil {
			if p, err := t.Std.Proxy(&http.Request{URL: u}); err != nil || p != nil {
				h.h1.Store(true)
			}
		}
		v, _ = t.hosts.LoadOrStore(addr, h)
	}
	h := v.(*h2Host)
	if h.h1.Load() {
		return nil
	}
	return h
}

// reserve reserves a stream on a connection of h, or returns the dial to
// wait for (starting it if none is in flight), or reports that h speaks
// HTTP/1.1.
func (t *Transport) reserve(h *h2Host) (*http.ClientConn, *dialCall, bool) {
	if cc := h.reserve(); cc != nil {
		return cc, nil, false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.h1.Load() {
		return nil, nil, true
	}
	// A connection may have been added, or freed, meanwhile.
	if cc := h.reserve(); cc != nil {
		return cc, nil, false
	}
	// A connection closed by the peer, a failed ping or its idle timeout
	// leaves the pool here.
	h.keep(func(cc *http.ClientConn) bool { return cc.Err() == nil })
	if h.dialing == nil {
		h.dialing = &dialCall{done: make(chan struct{})}
		go t.dial(h, h.dialing)
	}
	return nil, h.dialing, false
}

// reserve reserves a stream on the first connection that has one free.
// Available is asked first: a failed Reserve allocates its error.
func (h *h2Host) reserve() *http.ClientConn {
	if p := h.conns.Load(); p != nil {
		for _, cc := range *p {
			if cc.Available() > 0 && cc.Reserve() == nil {
				return cc
			}
		}
	}
	return nil
}

// keep stores the connections for which ok holds; h.mu is held.
func (h *h2Host) keep(ok func(*http.ClientConn) bool) {
	var next []*http.ClientConn
	if p := h.conns.Load(); p != nil {
		for _, cc := range *p {
			if ok(cc) {
				next = append(next, cc)
			}
		}
	}
	h.conns.Store(&next)
}

// dial adds a connection to h. It is bound by dialTimeout, not by any
// caller: the callers waiting for it may give up, and the next ones use it.
func (t *Transport) dial(h *h2Host, call *dialCall) {
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	defer cancel()
	var proto string
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{TLSHandshakeDone: func(cs tls.ConnectionState, _ error) { proto = cs.NegotiatedProtocol }})
	cc, err := t.Std.NewClientConn(ctx, "https", h.addr)
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case err != nil:
		call.err = err
	case proto != "h2":
		// An HTTP/1.1 host needs a connection per call in flight, which
		// net/http's pool manages.
		h.h1.Store(true)
		cc.Close()
	default:
		var next []*http.ClientConn
		if p := h.conns.Load(); p != nil {
			next = append(next, *p...)
		}
		next = append(next, cc)
		h.conns.Store(&next)
	}
	h.dialing = nil
	close(call.done)
}

// drop removes a connection that can no longer be used.
func (h *h2Host) drop(cc *http.ClientConn) {
	h.mu.Lock()
	h.keep(func(c *http.ClientConn) bool { return c != cc })
	h.mu.Unlock()
	_ = cc.Close()
}

// Warm opens a connection to the host of rawURL ahead of the first call,
// and learns which protocol it speaks. It waits for the dial (or ctx).
func (t *Transport) Warm(ctx context.Context, rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return err
	}
	h := t.host(u)
	if h == nil {
		return nil
	}
	h.mu.Lock()
	if p := h.conns.Load(); (p != nil && len(*p) > 0) || h.h1.Load() {
		h.mu.Unlock()
		return nil
	}
	if h.dialing == nil {
		h.dialing = &dialCall{done: make(chan struct{})}
		go t.dial(h, h.dialing)
	}
	call := h.dialing
	h.mu.Unlock()
	select {
	case <-call.done:
		return call.err
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// CloseIdleConnections closes the connections no call is using.
func (t *Transport) CloseIdleConnections() {
	t.hosts.Range(func(_, v any) bool {
		h := v.(*h2Host)
		h.mu.Lock()
		h.keep(func(cc *http.ClientConn) bool {
			if cc.InFlight() == 0 {
				_ = cc.Close()
				return false
			}
			return true
		})
		h.mu.Unlock()
		return true
	})
	t.Std.CloseIdleConnections()
}
