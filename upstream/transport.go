package upstream

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"sync"
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

	mu    sync.Mutex
	hosts map[string]*h2Host // by host:port
}

// h2Host is the pool of one https host.
type h2Host struct {
	conns   []*http.ClientConn
	dialing *dialCall // the dial in flight, nil when none
	// h1 is set once the host answered with HTTP/1.1 (or through a
	// proxy): its calls go to Std.
	h1 bool
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
	h, addr := t.host(req.URL)
	if h == nil {
		return t.Std.RoundTrip(req)
	}
	ctx := req.Context()
	for {
		cc, call, h1 := t.reserve(h, addr)
		switch {
		case h1:
			return t.Std.RoundTrip(req)
		case cc != nil:
			resp, err := cc.RoundTrip(req)
			if err != nil && cc.Err() != nil {
				t.drop(h, cc)
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

// host returns the pool of u's host, nil when u is not https or goes
// through a proxy.
func (t *Transport) host(u *url.URL) (*h2Host, string) {
	if u.Scheme != "https" {
		return nil, ""
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "443")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if h, ok := t.hosts[addr]; ok {
		if h.h1 {
			return nil, ""
		}
		return h, addr
	}
	if t.hosts == nil {
		t.hosts = map[string]*h2Host{}
	}
	h := &h2Host{}
	if t.Std.Proxy != nil {
		if p, err := t.Std.Proxy(&http.Request{URL: u}); err != nil || p != nil {
			h.h1 = true
		}
	}
	t.hosts[addr] = h
	if h.h1 {
		return nil, ""
	}
	return h, addr
}

// reserve reserves a stream on a connection of h, or returns the dial to
// wait for (starting it if none is in flight), or reports that h speaks
// HTTP/1.1.
func (t *Transport) reserve(h *h2Host, addr string) (*http.ClientConn, *dialCall, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if h.h1 {
		return nil, nil, true
	}
	live := h.conns[:0]
	for _, cc := range h.conns {
		// A connection closed by the peer, a failed ping or its idle
		// timeout leaves the pool here.
		if cc.Err() == nil {
			live = append(live, cc)
		}
	}
	clear(h.conns[len(live):])
	h.conns = live
	for _, cc := range h.conns {
		if cc.Reserve() == nil {
			return cc, nil, false
		}
	}
	if h.dialing == nil {
		h.dialing = &dialCall{done: make(chan struct{})}
		go t.dial(h, addr, h.dialing)
	}
	return nil, h.dialing, false
}

// dial adds a connection to h. It is bound by dialTimeout, not by any
// caller: the callers waiting for it may give up, and the next ones use it.
func (t *Transport) dial(h *h2Host, addr string, call *dialCall) {
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	defer cancel()
	var proto string
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{TLSHandshakeDone: func(cs tls.ConnectionState, _ error) { proto = cs.NegotiatedProtocol }})
	cc, err := t.Std.NewClientConn(ctx, "https", addr)
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case err != nil:
		call.err = err
	case proto != "h2":
		// An HTTP/1.1 host needs a connection per call in flight, which
		// net/http's pool manages.
		h.h1 = true
		cc.Close()
	default:
		h.conns = append(h.conns, cc)
	}
	h.dialing = nil
	close(call.done)
}

// drop removes a connection that can no longer be used.
func (t *Transport) drop(h *h2Host, cc *http.ClientConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, c := range h.conns {
		if c == cc {
			h.conns = append(h.conns[:i], h.conns[i+1:]...)
			break
		}
	}
	_ = cc.Close()
}

// Warm opens a connection to the host of rawURL ahead of the first call,
// and learns which protocol it speaks. It waits for the dial (or ctx).
func (t *Transport) Warm(ctx context.Context, rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return err
	}
	h, addr := t.host(u)
	if h == nil {
		return nil
	}
	t.mu.Lock()
	if len(h.conns) > 0 || h.h1 {
		t.mu.Unlock()
		return nil
	}
	if h.dialing == nil {
		h.dialing = &dialCall{done: make(chan struct{})}
		go t.dial(h, addr, h.dialing)
	}
	call := h.dialing
	t.mu.Unlock()
	select {
	case <-call.done:
		return call.err
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// CloseIdleConnections closes the connections no call is using.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	for _, h := range t.hosts {
		live := h.conns[:0]
		for _, cc := range h.conns {
			if cc.InFlight() == 0 {
				_ = cc.Close()
				continue
			}
			live = append(live, cc)
		}
		clear(h.conns[len(live):])
		h.conns = live
	}
	t.mu.Unlock()
	t.Std.CloseIdleConnections()
}
