package upstream_test

import (
	"testing"

	"github.com/dintero-facade/dintero-facade/internal/dinterotest"
	"github.com/dintero-facade/dintero-facade/upstream"
)

// TestOperations: each operation the client calls is Dintero's as its
// spec declares it (the method and path template under the operationId),
// under a name of its own; only authorize, whose code works once, is not
// sent again.
func TestOperations(t *testing.T) {
	names := map[string]bool{}
	for _, tc := range []struct {
		op         *upstream.Operation
		idempotent bool
	}{
		{upstream.OpDeleteClientGrant, true},
		{upstream.OpAuthorize, false},
		{upstream.OpToken, true},
		{upstream.OpKeys, true},
	} {
		if err := dinterotest.CheckOperation(tc.op); err != nil {
			t.Error(err)
		}
		if names[tc.op.Name()] || tc.op.Name() == "" || tc.op.String() != tc.op.Name() {
			t.Errorf("%s: its name is empty or another operation's", tc.op)
		}
		names[tc.op.Name()] = true
		if tc.op.Idempotent() != tc.idempotent {
			t.Errorf("%s: idempotent %v; want %v", tc.op, tc.op.Idempotent(), tc.idempotent)
		}
	}
}
