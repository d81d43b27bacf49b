package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// stopGrace is how long a server gets to exit after SIGTERM. Prometheus flushes its head
	// block on shutdown, which can take a few seconds on a loaded 2-core machine.
	stopGrace = 10 * time.Second
	// readyTimeout bounds start-up. It is generous because tests run next to other
	// compilations on small CI machines; a healthy server is ready in about a second.
	readyTimeout = 60 * time.Second
	// startAttempts covers the race between FreePort releasing a port and the child binding it.
	startAttempts = 3
	logTailLines  = 40
)

// lookPath is a variable so that tests can check the "binary not found" message without
// uninstalling anything.
var lookPath = exec.LookPath

// requireBinary returns the path of the first of names found in PATH, or fails the test with
// fix, which must tell the reader exactly how to install it. It never skips: a missing server
// is a broken development setup, not a reason to pretend the test passed.
func requireBinary(t testing.TB, fix string, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := lookPath(n); err == nil {
			return p
		}
	}
	t.Fatalf("%s", fix)
	return ""
}

// serverProcess is a child process started by startProcess. Other helpers in this package
// (for example the kube* files) may reuse it for any long-running server.
type serverProcess struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{} // closed after the process has exited and its log file is closed
	waitErr error         // valid once done is closed

	stopOnce sync.Once
	stopErr  error
}

// startProcess starts path with args and sends its stdout and stderr to logPath. The log is
// opened for appending so that a restarted server keeps the earlier run's output, which is
// what one wants to read when a restart test fails. No cleanup is registered: the caller owns
// the lifetime and must call stop (typically from t.Cleanup).
func startProcess(name, logPath, path string, args ...string) (*serverProcess, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening %s log: %w", name, err)
	}
	fmt.Fprintf(logFile, "### testenv: starting %s %s\n", path, strings.Join(args, " "))
	cmd := exec.Command(path, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &serverProcess{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has already exited.
func (p *serverProcess) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits up to stopGrace and then sends SIGKILL. It is idempotent and safe
// to call on a process that has already exited, so both an explicit Stop and the test cleanup
// may call it. It returns an error only if the process could not be made to exit.
func (p *serverProcess) stop() error {
	p.stopOnce.Do(func() {
		if p.exited() {
			return
		}
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			p.stopErr = fmt.Errorf("SIGTERM %s: %w", p.name, err)
		}
		select {
		case <-p.done:
			return
		case <-time.After(stopGrace):
		}
		if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			p.stopErr = fmt.Errorf("SIGKILL %s: %w", p.name, err)
			return
		}
		select {
		case <-p.done:
		case <-time.After(stopGrace):
			p.stopErr = fmt.Errorf("%s (pid %d) did not exit after SIGKILL", p.name, p.cmd.Process.Pid)
		}
	})
	return p.stopErr
}

// waitReady polls url until it answers 200 OK. It gives up early when the process exits,
// because waiting out the full timeout for a server that died on a config error only hides
// the error.
func waitReady(p *serverProcess, url string, timeout time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	var last error
	for {
		if p.exited() {
			return fmt.Errorf("%s exited before becoming ready (%v)", p.name, p.waitErr)
		}
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		last = err
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s: %v", p.name, timeout, last)
		}
		select {
		case <-p.done:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// serverSpec describes how to start one HTTP server process on a fresh port.
type serverSpec struct {
	name     string
	bin      string
	logPath  string
	args     func(port int) []string
	readyURL func(port int) string
}

// startServer starts spec on a free port and waits until it is ready, retrying with a new
// port when the chosen one was taken in the meantime. On failure it stops the process and
// fails the test with the tail of the server's log.
func startServer(t testing.TB, spec serverSpec, port int) (*serverProcess, int) {
	t.Helper()
	fixedPort := port != 0
	for attempt := 1; ; attempt++ {
		if !fixedPort {
			port = FreePort(t)
		}
		p, err := startProcess(spec.name, spec.logPath, spec.bin, spec.args(port)...)
		if err != nil {
			t.Fatalf("testenv: %v", err)
		}
		err = waitReady(p, spec.readyURL(port), readyTimeout)
		if err == nil {
			return p, port
		}
		if stopErr := p.stop(); stopErr != nil {
			t.Logf("testenv: %v", stopErr)
		}
		tail := logTail(spec.logPath, logTailLines)
		if !fixedPort && attempt < startAttempts && strings.Contains(tail, "address already in use") {
			continue
		}
		t.Fatalf("testenv: %v\n--- last lines of %s ---\n%s", err, spec.logPath, tail)
	}
}

// logTail returns the last n lines of the file at path, or a note saying why it cannot.
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
