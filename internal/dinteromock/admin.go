package dinteromock

import (
	"net"
	"net/http"
)

// RotateKeysPath is the mock's own endpoint that rotates its signing key:
// POST it, from loopback, and the keys endpoint lists the new key alone.
// It is no part of Dintero's API.
const RotateKeysPath = "/_mock/rotate-keys"

// WithAdmin serves m, and beside Dintero's API the mock's own endpoint
// RotateKeysPath, which answers loopback callers only: a mock listening
// beyond loopback must not let the network rotate its keys.
func (m *Mock) WithAdmin() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", m)
	mux.HandleFunc(RotateKeysPath, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeError(w, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", "POST rotates the signing key")
			return
		}
		if host, _, err := net.SplitHostPort(r.RemoteAddr); err != nil || !net.ParseIP(host).IsLoopback() {
			writeError(w, http.StatusForbidden, "FORBIDDEN", "the mock's keys are rotated from loopback only")
			return
		}
		if err := m.RotateKey(nil, false); err != nil {
			writeError(w, http.StatusInternalServerError, "INTERNAL", "rotating the signing key: "+err.Error())
			return
		}
		writeJSON(w, http.StatusOK, struct {
			KID string `json:"kid"`
		}{m.KeyID()})
	})
	return mux
}
