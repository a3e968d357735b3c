package upstream

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/net/http2"

	"github.com/dintero-facade/dintero-facade/internal/h2transport"
)

// retryableStatus reports whether an HTTP status is worth another attempt of
// an idempotent call: Dintero is rate limiting or a proxy in front of it has
// no healthy backend.
func retryableStatus(status int) bool {
	switch status {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// uncertainStatus reports whether an answer leaves the outcome of the call
// unknown: a proxy in front of Dintero failed or timed out, and may have
// passed the request on before it did.
func uncertainStatus(status int) bool {
	switch status {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// notSent reports whether a transport error proves that Dintero did not
// process the request: the transport says it never left the process (no
// connection was had, or none was written to), the connection could not
// be made, or the server refused the stream unprocessed (HTTP/2's
// REFUSED_STREAM, which x/net/http2 has already sent again as far as it
// would). Only such an error lets a non-idempotent call (authorize) be
// tried again, and only such a call is reported as not sent. It reads
// types only, never an error's text: a text can be forged by what the
// server sends.
func notSent(err error) bool {
	var (
		op *net.OpError
		se http2.StreamError
	)
	switch {
	case h2transport.Unsent(err):
		return true
	case errors.As(err, &op) && op.Op == "dial":
		return true
	case errors.As(err, &se) && se.Code == http2.ErrCodeRefusedStream:
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// backoff returns the full-jitter delay before attempt n+1 (n counts from 1):
// a random duration in [0, min(cap, base·2^(n-1))].
func backoff(base, max time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	if d <= 0 {
		return 0
	}
	return rand.N(d + 1)
}

// parseRetryAfter reads a Retry-After header in seconds or as an HTTP date.
// It returns zero when the header is absent or invalid or lies in the past.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	const maxRetryAfter = 365 * 24 * time.Hour
	if s, err := strconv.ParseInt(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		switch {
		case s <= 0 && err == nil:
			return 0
		case err != nil && s < 0: // a negative number too large to parse
			return 0
		case err != nil || s > int64(maxRetryAfter/time.Second):
			// Cap absurd values, without overflowing: they mean "not soon".
			return maxRetryAfter
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// sleep waits for d, or returns the context's error if it ends first. A
// wait that cannot finish before the context's deadline is not started:
// the caller gets its answer at once instead of a certain timeout later.
func sleep(ctx context.Context, d time.Duration) bool {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
