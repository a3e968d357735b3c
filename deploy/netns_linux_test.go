package deploy_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// netns is a network namespace of the test's own, with only loopback, held
// by one locked OS thread. The container joins it, so it listens on the
// manifest's own ports (9090, 8080, 8081, 9102) without meeting anything
// else on the machine, and two test runs at once do not collide; the test
// reaches it by opening its sockets on that thread.
type netns struct {
	// Path is the namespace's file, for podman --network ns:Path.
	Path string
	do   chan func()
	done chan struct{}
}

// newNetns makes the namespace and brings its loopback up; it goes when
// the test ends and the container has left it.
func newNetns(t testing.TB) *netns {
	t.Helper()
	n := &netns{do: make(chan func()), done: make(chan struct{})}
	errc := make(chan error, 1)
	go func() {
		// The thread stays locked: when this goroutine returns, Go ends the
		// thread, and the namespace with it once nothing else holds it.
		runtime.LockOSThread()
		defer close(n.done)
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare(CLONE_NEWNET): %w (the container test needs root)", err)
			return
		}
		if err := loopbackUp(); err != nil {
			errc <- err
			return
		}
		n.Path = fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
		errc <- nil
		for f := range n.do {
			f()
		}
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		close(n.do)
		<-n.done
	})
	return n
}

// loopbackUp sets lo up in the calling thread's namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("lo: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("lo up: %w", err)
	}
	return nil
}

// run calls f on the namespace's thread: the sockets f opens are the
// namespace's, and stay so wherever they are used afterwards.
func (n *netns) run(f func()) {
	ran := make(chan struct{})
	n.do <- func() {
		defer close(ran)
		f()
	}
	<-ran
}

// Dial connects to addr in the namespace.
func (n *netns) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	var err error
	n.run(func() { c, err = (&net.Dialer{}).DialContext(ctx, network, addr) })
	return c, err
}

// Listen listens on addr in the namespace.
func (n *netns) Listen(network, addr string) (net.Listener, error) {
	var l net.Listener
	var err error
	n.run(func() { l, err = net.Listen(network, addr) })
	return l, err
}
