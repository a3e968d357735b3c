package gateway

import (
	"mime"
	"net/http"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"
)

// RefuseGRPC answers a gRPC call, a request whose Content-Type is
// application/grpc or one of its kin (+proto, -web, -web-text), with
// FailedPrecondition and the message msg returns, and passes every other
// request to next. A gRPC client pointed at the JSON port by mistake then
// learns at once where to go, instead of reading a JSON 404 it cannot
// decode. The code is not Unimplemented, though no method is served here:
// grpcurl reads Unimplemented on its first call, reflection's, as "server
// does not support the reflection API" and drops the message; and the
// caller must change its target before trying again, which is what
// FailedPrecondition says. The answer is trailers-only, as PROTOCOL-HTTP2
// has it for a call that fails before any message: one HEADERS frame with
// grpc-status and grpc-message, no body, which gRPC clients (over HTTP/2)
// and gRPC-Web clients (over HTTP/1.1 too) both read. The request's body
// is not read.
func RefuseGRPC(next http.Handler, msg func() string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || !strings.HasPrefix(mt, "application/grpc") {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		// The caller's own type, so that a gRPC-Web client reads the
		// answer as its kind; ParseMediaType left it lower case, without
		// parameters.
		h.Set("Content-Type", mt)
		h.Set("Grpc-Status", strconv.Itoa(int(codes.FailedPrecondition)))
		h.Set("Grpc-Message", percentEncode(msg()))
		w.WriteHeader(http.StatusOK)
	})
}

// percentEncode is PROTOCOL-HTTP2's Percent-Encoded for grpc-message:
// every byte outside printable ASCII, and '%', as %XX.
func percentEncode(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '%' {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
