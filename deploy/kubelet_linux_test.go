package deploy_test

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// The kubelet's way of writing a Secret or ConfigMap volume, mirrored from
// its sources (pkg/volume/secret, pkg/volume/configmap, pkg/volume/emptydir,
// pkg/volume/util/atomic_writer.go, pkg/volume/volume_linux.go), so that the
// container reads its files as it would in a pod:
//   - the volume's root is an emptyDir: mode 0777, a tmpfs for a Secret
//     (whose root, mounted without a mode option, is 01777);
//   - the files live in a timestamped directory ..YYYY_MM_DD_hh_mm_ss.N
//     (mode 0755); ..data is a symlink to it, and each key a symlink
//     key -> ..data/key; files are owned by root, with the item's mode, else
//     the volume's defaultMode, else 0644;
//   - with fsGroup, before ..data is switched, every file and directory of
//     the volume gets group fsGroup (Lchown, symlinks too) and, but for
//     symlinks, its mode OR 0440 (the volume is read-only), directories also
//     OR setgid and 0110;
//   - an update writes a new timestamped directory, swaps ..data_tmp onto
//     ..data by rename (atomic), then removes the old directory;
//   - the container mounts the volume read-only.

const (
	roMask   = fs.FileMode(0o440) // volume_linux.go: read-only volumes
	rwMask   = fs.FileMode(0o660) // and the emptyDir beneath them
	execMask = fs.FileMode(0o110)
)

// kubeletVolume is one Secret or ConfigMap volume written on the host, to
// be bind-mounted where the container mounts it.
type kubeletVolume struct {
	Dir     string
	fsGroup *int64
}

// newKubeletVolume makes the volume's root as the kubelet's emptyDir does.
func newKubeletVolume(t testing.TB, dir string, secret bool, fsGroup *int64) *kubeletVolume {
	t.Helper()
	mode := fs.FileMode(0o777)
	if secret {
		mode |= fs.ModeSticky // the root of a tmpfs mounted with no mode=
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
	v := &kubeletVolume{Dir: dir, fsGroup: fsGroup}
	// The emptyDir's own SetVolumeOwnership (not read-only).
	if err := v.setOwnership(rwMask); err != nil {
		t.Fatal(err)
	}
	return v
}

// setOwnership is SetVolumeOwnership: group fsGroup and the mask on every
// file and directory of the volume; nothing without fsGroup.
func (v *kubeletVolume) setOwnership(mask fs.FileMode) error {
	if v.fsGroup == nil {
		return nil
	}
	return filepath.WalkDir(v.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(p, -1, int(*v.fsGroup)); err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Mode()&fs.ModeSymlink != 0 {
			return nil
		}
		m := mask
		if info.IsDir() {
			m |= fs.ModeSetgid | execMask
		}
		return os.Chmod(p, info.Mode()|m)
	})
}

// projection is one file of a volume: its content and mode.
type projection struct {
	Data []byte
	Mode fs.FileMode
}

// Write projects payload into the volume, as AtomicWriter.Write does with
// the Secret or ConfigMap volume's setPerms.
func (v *kubeletVolume) Write(t testing.TB, payload map[string]projection) {
	t.Helper()
	if err := v.write(payload); err != nil {
		t.Fatalf("writing volume %s: %v", v.Dir, err)
	}
}

func (v *kubeletVolume) write(payload map[string]projection) error {
	dataDir := filepath.Join(v.Dir, "..data")
	oldTs, err := os.Readlink(dataDir)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	ts, err := os.MkdirTemp(v.Dir, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		return err
	}
	if err := os.Chmod(ts, 0o755); err != nil {
		return err
	}
	for name, p := range payload {
		if strings.HasPrefix(name, "..") || strings.Contains(name, "/") {
			return fmt.Errorf("key %q: only plain file names are mirrored here", name)
		}
		f := filepath.Join(ts, name)
		if err := os.WriteFile(f, p.Data, p.Mode); err != nil {
			return err
		}
		if err := os.Chmod(f, p.Mode); err != nil {
			return err
		}
	}
	if err := v.setOwnership(roMask); err != nil {
		return err
	}
	tmp := filepath.Join(v.Dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, dataDir); err != nil {
		return err
	}
	entries, err := os.ReadDir(v.Dir)
	if err != nil {
		return err
	}
	for name := range payload {
		link := filepath.Join(v.Dir, name)
		if _, err := os.Readlink(link); os.IsNotExist(err) {
			if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
				return err
			}
		}
	}
	for _, e := range entries {
		if _, keep := payload[e.Name()]; !keep && !strings.HasPrefix(e.Name(), "..") {
			if err := os.Remove(filepath.Join(v.Dir, e.Name())); err != nil {
				return err
			}
		}
	}
	if oldTs != "" {
		return os.RemoveAll(filepath.Join(v.Dir, oldTs))
	}
	return nil
}

// payloadFor is the kubelet's MakePayload: every key of data, or the items
// the volume names, with the item's mode, else defaultMode, else 0644.
func payloadFor(t testing.TB, items []corev1.KeyToPath, defaultMode *int32, data map[string][]byte) map[string]projection {
	t.Helper()
	mode := fs.FileMode(corev1.SecretVolumeSourceDefaultMode) // = ConfigMapVolumeSourceDefaultMode
	if defaultMode != nil {
		mode = fs.FileMode(*defaultMode)
	}
	out := map[string]projection{}
	if len(items) == 0 {
		for k, d := range data {
			out[k] = projection{Data: d, Mode: mode}
		}
		return out
	}
	for _, it := range items {
		d, ok := data[it.Key]
		if !ok {
			t.Fatalf("the volume names key %q, which its source lacks", it.Key)
		}
		m := mode
		if it.Mode != nil {
			m = fs.FileMode(*it.Mode)
		}
		out[it.Path] = projection{Data: d, Mode: m}
	}
	return out
}
