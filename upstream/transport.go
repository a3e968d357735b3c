package upstream

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
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

	// pools holds each host:port's pool ("h" and "h:443" are one pool).
	// last is the host of the latest call, as its URL spells it: a client
	// calls one host, whose pool is then found without hashing a map's
	// interface key, a deep call on every request.
	pools sync.Map // host:port → *h2Host
	last  atomic.Pointer[hostEntry]
}

// hostEntry is a host, as a URL spells it, and its pool.
type hostEntry struct {
	host string
	h    *h2Host
}

// h2Host is the pool of one https host. Calls read conns without a lock:
// a copy is stored whenever the pool changes.
type h2Host struct {
	addr  string
	conns atomic.Pointer[[]*poolConn]
	// h1 is set once the host answered with HTTP/1.1 (or through a
	// proxy): its calls go to Std.
	h1 atomic.Bool

	mu      sync.Mutex
	dialing *dialCall // the dial in flight, nil when none
}

// poolConn is a connection of the pool. Until its first call has an
// answer, the server's limit of concurrent streams is not known (the
// client assumes 100 until the server's SETTINGS arrive, and a server may
// allow fewer), so it carries that one call alone.
type poolConn struct {
	cc      *http.ClientConn
	probing atomic.Bool   // the first call was handed out
	settled chan struct{} // closed once the first call has its answer
	once    sync.Once
}

func (pc *poolConn) isSettled() bool {
	select {
	case <-pc.settled:
		return true
	default:
		return false
	}
}

func (pc *poolConn) settle() { pc.once.Do(func() { close(pc.settled) }) }

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

// maxUnprocessed bounds how often a call is sent again on another
// connection after the server refused its stream unprocessed.
const maxUnprocessed = 3

// errUnprocessed marks an error after which the server provably did not
// process the request: a refused stream, a graceful GOAWAY, a connection
// that was no longer usable.
var errUnprocessed = errors.New("the server did not process the request")

// RoundTrip sends req on a connection of the host's pool, waiting for the
// one dial in flight when every connection is busy. A request the server
// provably did not process (a refused stream, a graceful GOAWAY) is sent
// again on another connection, as net/http's own pool does.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	h := t.host(req.URL)
	if h == nil {
		return t.Std.RoundTrip(req)
	}
	ctx := req.Context()
	for tries := 1; ; {
		pc, settling, call, h1 := t.reserve(h)
		switch {
		case h1:
			return t.Std.RoundTrip(req)
		case pc != nil:
			resp, err := pc.cc.RoundTrip(req)
			pc.settle()
			if err == nil {
				return resp, nil
			}
			if pc.cc.Err() != nil {
				h.drop(pc)
			}
			if !unprocessed(err) {
				return nil, err
			}
			if tries >= maxUnprocessed || ctx.Err() != nil {
				return nil, fmt.Errorf("%w: %w", errUnprocessed, err)
			}
			if req, err = rewind(req); err != nil {
				return nil, err
			}
			tries++
			continue
		}
		if call != nil {
			settling = call.done
		}
		select {
		case <-settling:
			if call != nil && call.err != nil {
				return nil, call.err
			}
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
}

// unprocessed reports whether err proves the server did not process the
// request. net/http keeps these errors unexported; their texts are stable.
func unprocessed(err error) bool {
	s := err.Error()
	return s == "http2: client conn not usable" ||
		s == "http2: Transport received Server's graceful shutdown GOAWAY" ||
		strings.HasPrefix(s, "stream error: ") && strings.Contains(s, "; REFUSED_STREAM")
}

// rewind returns req ready to be sent again, its body from the start.
func rewind(req *http.Request) (*http.Request, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return req, nil
	}
	if req.GetBody == nil {
		return nil, errors.New("the request body cannot be sent again")
	}
	body, err := req.GetBody()
	if err != nil {
		return nil, err
	}
	r := *req
	r.Body = body
	return &r, nil
}

// host returns the pool of u's host, nil when u is not https, goes
// through a proxy, or its host speaks HTTP/1.1.
func (t *Transport) host(u *url.URL) *h2Host {
	if u.Scheme != "https" {
		return nil
	}
	var h *h2Host
	if e := t.last.Load(); e != nil && e.host == u.Host {
		h = e.h
	} else {
		h = t.pool(u)
		t.last.Store(&hostEntry{host: u.Host, h: h})
	}
	if h.h1.Load() {
		return nil
	}
	return h
}

// pool returns u's pool, adding one if there is none.
func (t *Transport) pool(u *url.URL) *h2Host {
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "443")
	}
	v, ok := t.pools.Load(addr)
	if !ok {
		h := &h2Host{addr: addr}
		if t.Std.Proxy != nil {
			if p, err := t.Std.Proxy(&http.Request{URL: u}); err != nil || p != nil {
				h.h1.Store(true)
			}
		}
		v, _ = t.pools.LoadOrStore(addr, h)
	}
	return v.(*h2Host)
}

// reserve reserves a stream on a connection of h; or returns what to wait
// for: a new connection's first answer, or the dial in flight (starting
// one if there is none); or reports that h speaks HTTP/1.1.
func (t *Transport) reserve(h *h2Host) (_ *poolConn, settling <-chan struct{}, _ *dialCall, h1 bool) {
	if pc, _ := h.reserve(); pc != nil {
		return pc, nil, nil, false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.h1.Load() {
		return nil, nil, nil, true
	}
	// A connection may have been added, or freed, meanwhile.
	pc, settling := h.reserve()
	if pc != nil {
		return pc, nil, nil, false
	}
	if settling != nil {
		return nil, settling, nil, false
	}
	// A connection closed by the peer, a failed ping or its idle timeout
	// leaves the pool here.
	h.keep(func(pc *poolConn) bool { return pc.cc.Err() == nil })
	if h.dialing == nil {
		h.dialing = &dialCall{done: make(chan struct{})}
		go t.dial(h, h.dialing)
	}
	return nil, nil, h.dialing, false
}

// reserve reserves a stream on the first connection that has one free,
// or returns the settled channel of a connection still waiting for its
// first answer. Available is asked first: a failed Reserve allocates its
// error.
func (h *h2Host) reserve() (*poolConn, <-chan struct{}) {
	var settling <-chan struct{}
	p := h.conns.Load()
	if p == nil {
		return nil, nil
	}
	for _, pc := range *p {
		if !pc.isSettled() {
			if pc.probing.CompareAndSwap(false, true) {
				if pc.cc.Reserve() == nil {
					return pc, nil
				}
				pc.settle()
				continue
			}
			settling = pc.settled
			continue
		}
		if pc.cc.Available() > 0 && pc.cc.Reserve() == nil {
			return pc, nil
		}
	}
	return nil, settling
}

// keep stores the connections for which ok holds; h.mu is held.
func (h *h2Host) keep(ok func(*poolConn) bool) {
	var next []*poolConn
	if p := h.conns.Load(); p != nil {
		for _, pc := range *p {
			if ok(pc) {
				next = append(next, pc)
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
		var next []*poolConn
		if p := h.conns.Load(); p != nil {
			next = append(next, *p...)
		}
		next = append(next, &poolConn{cc: cc, settled: make(chan struct{})})
		h.conns.Store(&next)
	}
	h.dialing = nil
	close(call.done)
}

// drop removes a connection that can no longer be used.
func (h *h2Host) drop(pc *poolConn) {
	h.mu.Lock()
	h.keep(func(c *poolConn) bool { return c != pc })
	h.mu.Unlock()
	pc.settle()
	_ = pc.cc.Close()
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
	t.pools.Range(func(_, v any) bool {
		h := v.(*h2Host)
		h.mu.Lock()
		h.keep(func(pc *poolConn) bool {
			if pc.cc.InFlight() == 0 {
				pc.settle()
				_ = pc.cc.Close()
				return false
			}
			return true
		})
		h.mu.Unlock()
		return true
	})
	t.Std.CloseIdleConnections()
}
