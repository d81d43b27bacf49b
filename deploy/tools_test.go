package deploy

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// kubeVersion is the Kubernetes version helm renders and lints for: the one testenv runs.
const kubeVersion = "1.37.2"

// Where the chart and the kustomize tree live, relative to this package.
const (
	chartDir     = "helm/upid"
	kustomizeDir = "kustomize"
	// releaseName and releaseNamespace are those the kustomize bases are rendered with.
	releaseName      = "upid"
	releaseNamespace = "upid-system"
)

// toolPath finds a binary installed by hack/tools.sh, failing the test with the command that
// installs it.
func toolPath(t testing.TB, name string) string {
	t.Helper()
	dir := os.Getenv("UPID_TOOLS_BIN")
	source := "UPID_TOOLS_BIN"
	if dir == "" {
		// Mirrors BIN in hack/tools.sh.
		root := os.Getenv("UPID_CACHE")
		if root == "" {
			base := os.Getenv("XDG_CACHE_HOME")
			if base == "" {
				home, err := os.UserHomeDir()
				if err != nil {
					t.Fatalf("no home directory to find %s in: %v", name, err)
				}
				base = filepath.Join(home, ".cache")
			}
			root = filepath.Join(base, "upid")
		}
		dir, source = filepath.Join(root, "tools", "bin"), "default cache"
	}
	p := filepath.Join(dir, name)
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm()&0o111 == 0 {
		t.Fatalf("%s not found in %s (%s): run hack/tools.sh (make test does)", name, dir, source)
	}
	return p
}

// run executes a tool and returns its stdout; a failure fails the test with stderr.
func run(t testing.TB, name string, args ...string) []byte {
	t.Helper()
	out, stderr, err := runErr(t, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr)
	}
	return out
}

func runErr(t testing.TB, name string, args ...string) (stdout, stderr []byte, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, toolPath(t, name), args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	// Helm keeps caches and repository config in $HOME; none of it is needed to render a
	// local chart, and a test must not write to the user's home.
	tmp := t.TempDir()
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(tmp, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(tmp, "config"),
		"HELM_DATA_HOME="+filepath.Join(tmp, "data"),
	)
	err = cmd.Run()
	return o.Bytes(), e.Bytes(), err
}

// helmArgs are the arguments that render the chart as release name in namespace with the
// given values files.
func helmArgs(name, namespace string, valuesFiles ...string) []string {
	args := []string{"template", name, chartDir, "--namespace", namespace, "--kube-version", kubeVersion}
	for _, f := range valuesFiles {
		args = append(args, "--values", f)
	}
	return args
}

// renderHelm renders the chart and parses the result.
func renderHelm(t testing.TB, name, namespace string, valuesFiles ...string) (Manifests, []byte) {
	t.Helper()
	out := run(t, "helm", helmArgs(name, namespace, valuesFiles...)...)
	ms, err := Parse(out)
	if err != nil {
		t.Fatalf("helm template output: %v", err)
	}
	return ms, out
}

// renderKustomize builds a kustomize directory and parses the result.
func renderKustomize(t testing.TB, dir string) Manifests {
	t.Helper()
	out := run(t, "kustomize", "build", dir)
	ms, err := Parse(out)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	return ms
}

type unstructuredAlias = unstructured.Unstructured
