//go:build !linux

package deploy_test

import "testing"

// TestContainer needs Linux: podman's runc, and a network namespace of the
// test's own.
func TestContainer(t *testing.T) {
	t.Skip("the container test runs on Linux only (podman, runc, network namespaces)")
}
