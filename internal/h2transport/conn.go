package h2transport

import (
	"crypto/tls"
	"encoding/binary"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// conn is an HTTP/2 connection as H2 has it from dialTLS: the TLS
// connection, watched. It counts what x/net reads (a stream whose call
// ended with nothing read since its headers were written makes it
// suspect), the requests whose headers were written (a lower bound on a
// stream's id), and reads the GOAWAY frames that come, which x/net does
// not always hand on in a type.
type conn struct {
	*tls.Conn
	raw net.Conn // the TCP connection beneath

	reads   atomic.Uint64 // reads that returned bytes
	written atomic.Uint32 // requests whose headers were written

	// armed is set while a read deadline gives the suspect connection
	// its last chance; mu orders arming and disarming.
	armed atomic.Bool
	mu    sync.Mutex

	// goAway holds 1 + the lowest last stream id of the GOAWAY frames
	// read; 0 while none came.
	goAway atomic.Uint64
	// frame is the reader's place in the frames (read by x/net's read
	// loop alone).
	frame frameScan
}

// newConn watches tc, whose TCP connection is raw.
func newConn(tc *tls.Conn, raw net.Conn) *conn { return &conn{Conn: tc, raw: raw} }

// Read reads from the connection, counting what came and reading the
// frames' headers for GOAWAY.
func (c *conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.reads.Add(1)
		if last, ok := c.frame.scan(p[:n]); ok {
			for {
				old := c.goAway.Load()
				if (old != 0 && old-1 <= uint64(last)) || c.goAway.CompareAndSwap(old, uint64(last)+1) {
					break
				}
			}
		}
		if c.armed.Load() {
			c.disarm()
		}
	}
	return n, err
}

// Close closes the connection: its TLS close, and the TCP connection
// beneath if that takes long (a peer that does not read), as x/net does
// for its own connections.
func (c *conn) Close() error {
	t := time.AfterFunc(250*time.Millisecond, func() { c.raw.Close() })
	defer t.Stop()
	return c.Conn.Close()
}

// suspect gives the connection d to show a frame, unless one was read
// since the reader had counted seen reads: x/net's read loop then fails,
// and x/net closes the connection and fails its streams.
func (c *conn) suspect(seen uint64, d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reads.Load() != seen || c.armed.Load() {
		return
	}
	c.armed.Store(true)
	_ = c.Conn.SetReadDeadline(time.Now().Add(d))
	if c.reads.Load() != seen {
		// A read came in between; Read may not have seen armed.
		c.armed.Store(false)
		_ = c.Conn.SetReadDeadline(time.Time{})
	}
}

// disarm lifts the deadline of a suspect connection that read a frame.
func (c *conn) disarm() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.armed.Load() {
		c.armed.Store(false)
		_ = c.Conn.SetReadDeadline(time.Time{})
	}
}

// kill closes the TCP connection beneath at once, so that nothing more
// is written to it.
func (c *conn) kill() { c.raw.Close() }

// goAwayBelow reports whether a GOAWAY came whose last stream id is
// below stream.
func (c *conn) goAwayBelow(stream uint32) bool {
	g := c.goAway.Load()
	return g != 0 && g-1 < uint64(stream)
}

// frameScan follows the frames of an HTTP/2 connection's incoming bytes
// (the server sends no preface): the 9 bytes of each frame's header, then
// its payload, of which it keeps the first 8 of a GOAWAY (RFC 9113 §6.8:
// the last stream id, then the error code).
type frameScan struct {
	head  [9]byte
	nhead int
	left  uint32 // payload bytes still to come
	away  bool   // the frame is a GOAWAY
	body  [8]byte
	nbody int
}

// frameGoAway is the type of a GOAWAY frame.
const frameGoAway = 0x7

// scan reads p, the next bytes of the connection, and returns the last
// stream id of a GOAWAY whose first 8 bytes of payload it completed (of
// the last, when p completes several).
func (f *frameScan) scan(p []byte) (last uint32, ok bool) {
	for len(p) > 0 {
		if f.nhead < len(f.head) {
			n := copy(f.head[f.nhead:], p)
			f.nhead += n
			p = p[n:]
			if f.nhead < len(f.head) {
				return last, ok
			}
			f.left = uint32(f.head[0])<<16 | uint32(f.head[1])<<8 | uint32(f.head[2])
			f.away = f.head[3] == frameGoAway
			f.nbody = 0
			if f.left == 0 {
				f.nhead = 0
			}
			continue
		}
		n := uint32(min(len(p), int(f.left)))
		if f.away && f.nbody < len(f.body) {
			k := copy(f.body[f.nbody:], p[:n])
			f.nbody += k
			if f.nbody == len(f.body) {
				last, ok = binary.BigEndian.Uint32(f.body[:4])&(1<<31-1), true
			}
		}
		f.left -= n
		p = p[n:]
		if f.left == 0 {
			f.nhead = 0
		}
	}
	return last, ok
}
