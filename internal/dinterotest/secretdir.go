package dinterotest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// SecretDir lays out files as the kubelet mounts a Secret or ConfigMap:
// each file is a symlink through ..data to a versioned directory, and an
// update swaps ..data atomically (deploy's container test mirrors the
// kubelet more closely: owners, modes, fsGroup).
type SecretDir struct {
	// Dir is the mount's directory.
	Dir string
	n   int
}

// NewSecretDir returns an empty SecretDir in a temporary directory.
func NewSecretDir(t testing.TB) *SecretDir { return &SecretDir{Dir: t.TempDir()} }

// Path is the path of the file name in the mount.
func (s *SecretDir) Path(name string) string { return filepath.Join(s.Dir, name) }

// Write makes files the mount's content, all at once.
func (s *SecretDir) Write(t testing.TB, files map[string][]byte) {
	t.Helper()
	s.n++
	version := fmt.Sprintf("..v%d", s.n)
	if err := os.Mkdir(filepath.Join(s.Dir, version), 0o700); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(s.Dir, version, name), content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tmp := filepath.Join(s.Dir, "..data_tmp")
	if err := os.Symlink(version, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(s.Dir, "..data")); err != nil {
		t.Fatal(err)
	}
	for name := range files {
		if _, err := os.Lstat(s.Path(name)); err == nil {
			continue
		}
		if err := os.Symlink(filepath.Join("..data", name), s.Path(name)); err != nil {
			t.Fatal(err)
		}
	}
}
