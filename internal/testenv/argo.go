package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// ArgoRolloutsVersion is the release of Argo Rollouts that
// hack/argo-rollouts.sh builds; the default directory is keyed by it.
const ArgoRolloutsVersion = "v1.10.1"

// argoDir returns the directory holding bin/rollouts-controller and
// crds/, and which setting chose it.
func argoDir() (dir, source string) {
	if d := os.Getenv("UPID_ARGO_ROLLOUTS"); d != "" {
		return d, "UPID_ARGO_ROLLOUTS"
	}
	return filepath.Join(cacheRoot(), "argo-rollouts-"+ArgoRolloutsVersion), "default cache"
}

// StartArgoRollouts installs Argo Rollouts' own CRDs in k and runs its
// controller against it until t ends, so that Rollouts are reconciled as
// in a cluster: ReplicaSets made, scaled and labelled by Argo, status and
// phase written by Argo. Its ports are free loopback ports.
func (k *Kube) StartArgoRollouts(t testing.TB) {
	t.Helper()
	dir, source := argoDir()
	bin := filepath.Join(dir, "bin", "rollouts-controller")
	if !kubeIsExecutable(bin) {
		t.Fatalf("rollouts-controller not found in %s (%s): run `make deps` (hack/setup.sh)", dir, source)
	}
	if _, err := envtest.InstallCRDs(k.Config, envtest.CRDInstallOptions{Paths: []string{filepath.Join(dir, "crds")}, ErrorIfPathMissing: true}); err != nil {
		t.Fatalf("testenv: installing Argo Rollouts' CRDs: %v", err)
	}
	logs := &kubeLogs{dir: t.TempDir()}
	var lastErr error
	for attempt := 1; attempt <= 3; attempt++ {
		metrics, err := kubeFreePort()
		if err != nil {
			t.Fatalf("testenv: free port: %v", err)
		}
		healthz, err := kubeFreePort()
		if err != nil {
			t.Fatalf("testenv: free port: %v", err)
		}
		out := logs.open(t, fmt.Sprintf("rollouts-controller.%d", attempt))
		p, err := kubeStartProcess(bin, []string{
			"--kubeconfig=" + k.KubeconfigPath, "--leader-elect=false",
			"--metricsPort=" + strconv.Itoa(metrics), "--healthzPort=" + strconv.Itoa(healthz),
		}, out)
		if err != nil {
			t.Fatalf("testenv: starting rollouts-controller: %v", err)
		}
		if err := kubeWaitHealthy(p, fmt.Sprintf("http://127.0.0.1:%d/healthz", healthz), 60*time.Second); err != nil {
			lastErr = err
			_ = p.stop(5 * time.Second)
			continue
		}
		t.Cleanup(func() {
			if err := p.stop(10 * time.Second); err != nil {
				t.Errorf("testenv: stopping rollouts-controller: %v", err)
			}
			logs.close()
			if t.Failed() {
				logs.dump(t)
			}
		})
		return
	}
	logs.close()
	logs.dump(t)
	t.Fatalf("testenv: rollouts-controller did not become healthy: %v", lastErr)
}
