package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is a process the benchmark started.
type proc struct {
	name string
	cmd  *exec.Cmd
}

func (p *proc) stop() {
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = p.cmd.Process.Kill()
		}
	}
}

func start(name string, logTo io.Writer, bin string, args ...string) (*proc, error) {
	return startEnv(name, logTo, nil, bin, args...)
}

func startEnv(name string, logTo io.Writer, env []string, bin string, args ...string) (*proc, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logTo, logTo
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	return &proc{name: name, cmd: cmd}, nil
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func waitTCP(addr string) error {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s did not start listening", addr)
}

// startNginx starts nginx proxying plain HTTP on listen to the stub at
// upstream with a keepalive pool.
func startNginx(bin, dir, listen, upstream string, logTo io.Writer) (*proc, error) {
	return startNginxConf(bin, filepath.Join(dir, "nginx"), fmt.Sprintf(`
  upstream stub { server %[1]s; keepalive 256; }
  server {
    listen %[2]s;
    location / {
      proxy_pass http://stub;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }`, upstream, listen), logTo)
}

// startNginxConf starts nginx with one worker and no access log, its files
// under nd, serving servers (upstream and server blocks of its http block).
func startNginxConf(bin, nd, servers string, logTo io.Writer) (*proc, error) {
	if err := os.MkdirAll(filepath.Join(nd, "logs"), 0o755); err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/logs/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;%[2]s
}
`, nd, servers)
	cf := filepath.Join(nd, "nginx.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	return start("nginx", logTo, bin, "-p", nd, "-c", cf, "-g", "daemon off;")
}

// childOf returns a child process of pid, found by scanning /proc (the
// kernel here has no /proc/PID/task/TID/children), or pid itself if it has
// none. nginx serves from a worker process that its master forks.
func childOf(pid int) int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return pid
	}
	for _, e := range ents {
		c, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c))
		if err != nil {
			continue
		}
		// The fields after the command name: state, then the parent's pid.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			return c
		}
	}
	return pid
}
