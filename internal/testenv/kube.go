package testenv

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// KubeVersion is the Kubernetes release whose kube-apiserver and kube-controller-manager
// hack/kube-binaries.sh builds; the default binary directory is keyed by it.
const KubeVersion = "v1.37.2"

// kubeControllers are the kube-controller-manager controllers started with
// KubeOptions.ControllerManager: the workload controllers whose objects the cost optimizer
// reads, plus the bookkeeping ones (garbage collection, namespace deletion, default service
// accounts, quota usage) that keep a long-lived test cluster coherent. Anything that needs nodes, cloud
// providers or a signing CA is deliberately left out.
var kubeControllers = []string{
	"deployment-controller",
	"replicaset-controller",
	"statefulset-controller",
	"daemonset-controller",
	"job-controller",
	"cronjob-controller",
	"garbage-collector-controller",
	"resourcequota-controller",
	"namespace-controller",
	"serviceaccount-controller",
	"horizontal-pod-autoscaler-controller",
}

// KubeOptions configures StartKube.
type KubeOptions struct {
	// ControllerManager also starts kube-controller-manager, so that Deployments get
	// ReplicaSets and Pods, Jobs get Pods, and so on. There is no scheduler and no kubelet:
	// Pods stay Pending.
	ControllerManager bool
	// APIServerArgs are extra kube-apiserver flags (without the leading "--"). A flag given
	// here replaces envtest's default value for it rather than being appended to it.
	APIServerArgs map[string][]string
}

// Kube is a running etcd + kube-apiserver (+ optional kube-controller-manager), all bound to
// 127.0.0.1 and stopped when the test that started them ends.
type Kube struct {
	// Config authenticates as an admin (group system:masters).
	Config    *rest.Config
	Clientset kubernetes.Interface
	// Client is a controller-runtime client using client-go's scheme.
	Client client.Client
	// KubeconfigPath is an admin kubeconfig file, usable by kubectl and by the product's
	// binaries via --kubeconfig.
	KubeconfigPath string
	Env            *envtest.Environment

	controllerManager *kubeProcess
}

// kubeBinDir returns the directory holding kube-apiserver and kube-controller-manager, and
// which setting chose it (for error messages).
func kubeBinDir() (dir, source string) {
	if d := os.Getenv("UPID_KUBE_BIN"); d != "" {
		return d, "UPID_KUBE_BIN"
	}
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		return d, "KUBEBUILDER_ASSETS"
	}
	return filepath.Join(cacheRoot(), "kube-"+KubeVersion, "bin"), "default cache"
}

// cacheRoot mirrors CACHE_ROOT in the hack/ scripts: UPID_CACHE replaces
// the whole root.
func cacheRoot() string {
	if root := os.Getenv("UPID_CACHE"); root != "" {
		return root
	}
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			home = os.TempDir()
		}
		base = filepath.Join(home, ".cache")
	}
	return filepath.Join(base, "upid")
}

// kubeBinary returns the path of name in the binary directory, failing the test with the
// command that installs it when it is missing.
func kubeBinary(t testing.TB, name string) string {
	t.Helper()
	dir, source := kubeBinDir()
	p := filepath.Join(dir, name)
	if kubeIsExecutable(p) {
		return p
	}
	t.Fatalf("%s not found in %s (%s): run `make deps` (hack/setup.sh)", name, dir, source)
	return ""
}

// kubeEtcdBinary prefers an etcd shipped next to kube-apiserver (e.g. a kubebuilder assets
// directory) and otherwise uses the distribution's etcd from PATH.
func kubeEtcdBinary(t testing.TB) string {
	t.Helper()
	dir, source := kubeBinDir()
	if p := filepath.Join(dir, "etcd"); kubeIsExecutable(p) {
		return p
	}
	if p, err := exec.LookPath("etcd"); err == nil {
		return p
	}
	t.Fatalf("etcd not found in %s (%s) nor in PATH: run `make deps` (hack/setup.sh)", dir, source)
	return ""
}

func kubeIsExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// StartKube starts etcd and kube-apiserver (and kube-controller-manager if asked) on free
// loopback ports. Everything is stopped and its files removed when t ends, pass or fail.
func StartKube(t testing.TB, opts KubeOptions) *Kube {
	t.Helper()
	apiserverPath := kubeBinary(t, "kube-apiserver")
	etcdPath := kubeEtcdBinary(t)
	cmPath := ""
	if opts.ControllerManager {
		cmPath = kubeBinary(t, "kube-controller-manager")
	}

	// Registered first so that it is removed last, after every process is gone.
	dir := t.TempDir()
	logs := &kubeLogs{dir: filepath.Join(dir, "logs")}
	if err := os.MkdirAll(logs.dir, 0o755); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	etcdDir, err := kubeEtcdDataDir(dir)
	if err != nil {
		t.Fatalf("testenv: etcd data dir: %v", err)
	}
	if etcdDir != filepath.Join(dir, "etcd") {
		t.Cleanup(func() { _ = os.RemoveAll(etcdDir) })
	}

	env := &envtest.Environment{
		// 20s (envtest's default) is too tight when the machine is busy compiling.
		ControlPlaneStartTimeout: 90 * time.Second,
		ControlPlaneStopTimeout:  30 * time.Second,
	}
	apiserver := env.ControlPlane.GetAPIServer()
	apiserver.Path = apiserverPath
	apiserver.CertDir = filepath.Join(dir, "apiserver")
	apiserver.Out = logs.open(t, "kube-apiserver")
	apiserver.Err = apiserver.Out
	for flag, values := range opts.APIServerArgs {
		apiserver.Configure().Set(flag, values...)
	}
	env.ControlPlane.Etcd = &envtest.Etcd{
		Path:    etcdPath,
		DataDir: etcdDir,
	}
	env.ControlPlane.Etcd.Out = logs.open(t, "etcd")
	env.ControlPlane.Etcd.Err = env.ControlPlane.Etcd.Out
	// envtest provisions a kubectl handle even though nobody here uses it; point it at
	// something real rather than at /usr/local/kubebuilder.
	if p, err := exec.LookPath("kubectl"); err == nil {
		env.ControlPlane.KubectlPath = p
	} else {
		env.ControlPlane.KubectlPath = filepath.Join(filepath.Dir(apiserverPath), "kubectl")
	}
	if err := os.MkdirAll(apiserver.CertDir, 0o700); err != nil {
		t.Fatalf("testenv: %v", err)
	}

	k := &Kube{Env: env}
	t.Cleanup(func() {
		// The controller-manager goes first so that it does not spend the apiserver's
		// shutdown retrying and logging connection errors.
		if cm := k.controllerManager; cm != nil {
			if err := cm.stop(10 * time.Second); err != nil {
				t.Errorf("testenv: stopping kube-controller-manager: %v", err)
			}
		}
		if err := env.Stop(); err != nil {
			t.Errorf("testenv: stopping envtest control plane: %v", err)
		}
		logs.close()
		if t.Failed() {
			logs.dump(t)
		}
	})

	start := time.Now()
	if _, err := env.Start(); err != nil {
		// The cleanup above dumps the process logs, since the test has failed by then.
		t.Fatalf("testenv: starting etcd + kube-apiserver: %v", err)
	}

	// A dedicated user rather than env.Config so that the kubeconfig handed to kubectl
	// and the controller-manager carries an explicit, named system:masters identity.
	admin, err := env.AddUser(envtest.User{Name: "upid-testenv-admin", Groups: []string{"system:masters"}},
		&rest.Config{QPS: 1000, Burst: 2000})
	if err != nil {
		t.Fatalf("testenv: provisioning admin user: %v", err)
	}
	k.Config = admin.Config()
	kubeconfig, err := admin.KubeConfig()
	if err != nil {
		t.Fatalf("testenv: rendering admin kubeconfig: %v", err)
	}
	k.KubeconfigPath = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(k.KubeconfigPath, kubeconfig, 0o600); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if k.Clientset, err = kubernetes.NewForConfig(k.Config); err != nil {
		t.Fatalf("testenv: clientset: %v", err)
	}
	if k.Client, err = client.New(k.Config, client.Options{Scheme: scheme.Scheme}); err != nil {
		t.Fatalf("testenv: controller-runtime client: %v", err)
	}
	t.Logf("testenv: kube-apiserver %s ready at %s in %s", KubeVersion, k.Config.Host, time.Since(start).Round(time.Millisecond))

	if opts.ControllerManager {
		cmStart := time.Now()
		k.controllerManager = kubeStartControllerManager(t, cmPath, k.KubeconfigPath, filepath.Join(dir, "kube-controller-manager"), logs)
		t.Logf("testenv: kube-controller-manager healthy in %s", time.Since(cmStart).Round(time.Millisecond))
	}
	return k
}

// kubeEtcdDataDir puts etcd's data on tmpfs when there is one: the Debian etcd (3.4)
// predates --unsafe-no-fsync, and fsync on a shared disk dominates apiserver write latency.
func kubeEtcdDataDir(dir string) (string, error) {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "upid-testenv-etcd-"); err == nil {
			return d, nil
		}
	}
	d := filepath.Join(dir, "etcd")
	return d, os.MkdirAll(d, 0o700)
}

// kubeStartControllerManager starts kube-controller-manager and waits for its /healthz.
// A free port can be taken by someone else between probing and binding, so a start that
// loses that race is retried on a fresh port.
func kubeStartControllerManager(t testing.TB, path, kubeconfig, dir string, logs *kubeLogs) *kubeProcess {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	var lastErr error
	for attempt := 1; attempt <= 3; attempt++ {
		port, err := kubeFreePort()
		if err != nil {
			t.Fatalf("testenv: free port: %v", err)
		}
		args := []string{
			"--kubeconfig=" + kubeconfig,
			"--controllers=" + strings.Join(kubeControllers, ","),
			"--leader-elect=false",
			"--bind-address=127.0.0.1",
			"--secure-port=" + strconv.Itoa(port),
			// Self-signed serving cert goes here instead of the default /var/run/kubernetes.
			"--cert-dir=" + dir,
			"--use-service-account-credentials=false",
		}
		logFile := logs.open(t, fmt.Sprintf("kube-controller-manager.%d", attempt))
		p, err := kubeStartProcess(path, args, logFile)
		if err != nil {
			t.Fatalf("testenv: starting kube-controller-manager: %v", err)
		}
		healthz := fmt.Sprintf("https://127.0.0.1:%d/healthz", port)
		if err := kubeWaitHealthy(p, healthz, 60*time.Second); err != nil {
			lastErr = err
			_ = p.stop(5 * time.Second)
			if out, _ := os.ReadFile(logFile.Name()); bytes.Contains(out, []byte("address already in use")) {
				continue
			}
			break
		}
		p.healthz = healthz
		return p
	}
	t.Fatalf("testenv: kube-controller-manager did not become healthy: %v", lastErr)
	return nil
}

// kubeWaitHealthy polls url (HTTPS, certificate not verified: the controller-manager's
// serving cert is self-signed) until it answers 200, the process exits, or timeout passes.
func kubeWaitHealthy(p *kubeProcess, url string, timeout time.Duration) error {
	hc := &http.Client{
		Timeout: 2 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // self-signed test cert
		},
	}
	defer hc.CloseIdleConnections()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("process exited before %s answered: %v", url, p.waitErr)
		default:
		}
		resp, err := hc.Get(url)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%s: %s", resp.Status, bytes.TrimSpace(body))
		} else {
			last = err.Error()
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("%s not healthy after %s (last: %s)", url, timeout, last)
}

// kubeFreePort asks the kernel for an unused loopback port. The port is released before
// returning, so callers must tolerate losing it to a race.
func kubeFreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// kubeProcess is a child process owned by a test.
type kubeProcess struct {
	cmd      *exec.Cmd
	healthz  string
	done     chan struct{}
	waitErr  error
	stopOnce sync.Once
	stopErr  error
}

func kubeStartProcess(path string, args []string, out io.Writer) (*kubeProcess, error) {
	cmd := exec.Command(path, args...)
	cmd.Stdout = out
	cmd.Stderr = out
	// Own process group, like envtest's processes: a Ctrl-C aimed at `go test` must not
	// kill the child before the test's cleanup gets to stop it in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &kubeProcess{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *kubeProcess) hasExited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, escalating to SIGKILL after grace.
func (p *kubeProcess) stop(grace time.Duration) error {
	p.stopOnce.Do(func() {
		select {
		case <-p.done:
			return
		default:
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(grace):
			_ = p.cmd.Process.Kill()
			<-p.done
			p.stopErr = fmt.Errorf("%s ignored SIGTERM for %s and was killed", filepath.Base(p.cmd.Path), grace)
		}
	})
	return p.stopErr
}

// kubeLogs collects the control plane's output in files so that a failing test can show
// what the processes said, while a passing test stays quiet.
type kubeLogs struct {
	dir   string
	mu    sync.Mutex
	files []*os.File
}

func (l *kubeLogs) open(t testing.TB, name string) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(l.dir, name+".log"))
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	l.mu.Lock()
	l.files = append(l.files, f)
	l.mu.Unlock()
	return f
}

func (l *kubeLogs) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, f := range l.files {
		_ = f.Close()
	}
}

// dump logs the tail of every process log; the files themselves go away with the temp dir.
func (l *kubeLogs) dump(t testing.TB) {
	t.Helper()
	l.mu.Lock()
	names := make([]string, 0, len(l.files))
	for _, f := range l.files {
		names = append(names, f.Name())
	}
	l.mu.Unlock()
	const tail = 8 << 10
	for _, name := range names {
		data, err := os.ReadFile(name)
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				t.Logf("testenv: reading %s: %v", name, err)
			}
			continue
		}
		if len(data) > tail {
			data = data[len(data)-tail:]
			if i := bytes.IndexByte(data, '\n'); i >= 0 {
				data = data[i+1:]
			}
		}
		t.Logf("testenv: ---- tail of %s ----\n%s", filepath.Base(name), data)
	}
}

// kubeContext bounds one API call made by the helpers.
func kubeContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}
