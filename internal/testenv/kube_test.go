package testenv

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
)

// TestKube shares one cluster (with controller-manager) between its subtests, then checks
// that the cluster's cleanup really stopped every process and removed its files.
func TestKube(t *testing.T) {
	var (
		addrs     []string
		files     []string
		cm        *kubeProcess
		clusterOK bool
	)
	t.Run("cluster", func(t *testing.T) {
		start := time.Now()
		k := StartKube(t, KubeOptions{ControllerManager: true})
		t.Logf("StartKube with controller-manager took %s", time.Since(start).Round(time.Millisecond))

		addrs = []string{
			k.Env.ControlPlane.Etcd.URL.Host,
			k.Env.ControlPlane.APIServer.SecureServing.HostPort(),
			strings.TrimSuffix(strings.TrimPrefix(k.controllerManager.healthz, "https://"), "/healthz"),
		}
		files = []string{k.KubeconfigPath, k.Env.ControlPlane.Etcd.DataDir, k.Env.ControlPlane.APIServer.CertDir}
		cm = k.controllerManager
		for _, a := range addrs {
			if !kubeDialable(a) {
				t.Fatalf("%s is not accepting connections while the cluster runs", a)
			}
		}
		for _, f := range files {
			if _, err := os.Stat(f); err != nil {
				t.Fatalf("expected %s to exist while the cluster runs: %v", f, err)
			}
		}

		ctx := t.Context()
		t.Run("client-go write, controller-runtime read", func(t *testing.T) {
			ns := kubeCreateNamespace(t, k, "roundtrip", nil)
			want := map[string]string{"cpu": "250m", "memory": "128Mi"}
			_, err := k.Clientset.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: "sizing"},
				Data:       want,
			}, metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("create ConfigMap: %v", err)
			}

			var got corev1.ConfigMap
			if err := k.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "sizing"}, &got); err != nil {
				t.Fatalf("controller-runtime Get: %v", err)
			}
			if fmt.Sprint(got.Data) != fmt.Sprint(want) {
				t.Errorf("ConfigMap data = %v, want %v", got.Data, want)
			}
			err = k.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "absent"}, &corev1.ConfigMap{})
			if !apierrors.IsNotFound(err) {
				t.Errorf("Get of a missing ConfigMap: err = %v, want NotFound", err)
			}
		})

		t.Run("kubeconfig file", func(t *testing.T) {
			ns := kubeCreateNamespace(t, k, "kubeconfig", nil)
			cfg, err := clientcmd.BuildConfigFromFlags("", k.KubeconfigPath)
			if err != nil {
				t.Fatalf("loading %s: %v", k.KubeconfigPath, err)
			}
			if strings.TrimSuffix(cfg.Host, "/") != strings.TrimSuffix(k.Config.Host, "/") {
				t.Errorf("kubeconfig server = %q, want %q", cfg.Host, k.Config.Host)
			}
			cs, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				t.Fatal(err)
			}
			list, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
			if err != nil {
				t.Fatalf("listing namespaces with the kubeconfig: %v", err)
			}
			found := false
			for _, n := range list.Items {
				found = found || n.Name == ns
			}
			if !found {
				t.Errorf("namespace %s not listed through the kubeconfig (got %d namespaces)", ns, len(list.Items))
			}
			// system:masters is what lets the product read anything; check it rather than trust it.
			review, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("SelfSubjectReview: %v", err)
			}
			if groups := review.Status.UserInfo.Groups; !slices.Contains(groups, "system:masters") {
				t.Errorf("kubeconfig user %q has groups %v, want system:masters", review.Status.UserInfo.Username, groups)
			}
		})

		t.Run("deployment gets a ReplicaSet and Pods", func(t *testing.T) {
			ns := kubeCreateNamespace(t, k, "workload", nil)
			dep := &appsv1.Deployment{
				ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
				Spec: appsv1.DeploymentSpec{
					Replicas: ptr.To[int32](2),
					Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
					Template: corev1.PodTemplateSpec{
						ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
						Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx"}}},
					},
				},
			}
			dep, err := k.Clientset.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("create Deployment: %v", err)
			}

			var rs *appsv1.ReplicaSet
			var pods []corev1.Pod
			kubeEventually(t, 60*time.Second, func() (bool, string) {
				rsList, err := k.Clientset.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
				if err != nil {
					return false, err.Error()
				}
				rs = nil
				for i := range rsList.Items {
					if kubeControlledBy(rsList.Items[i].OwnerReferences, dep.UID) {
						rs = &rsList.Items[i]
					}
				}
				if rs == nil {
					return false, fmt.Sprintf("no ReplicaSet owned by the Deployment among %d", len(rsList.Items))
				}
				podList, err := k.Clientset.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
				if err != nil {
					return false, err.Error()
				}
				pods = pods[:0]
				for _, p := range podList.Items {
					if kubeControlledBy(p.OwnerReferences, rs.UID) {
						pods = append(pods, p)
					}
				}
				return len(pods) == 2, fmt.Sprintf("%d Pods owned by ReplicaSet %s, want 2", len(pods), rs.Name)
			})
			if got := ptr.Deref(rs.Spec.Replicas, 0); got != 2 {
				t.Errorf("ReplicaSet replicas = %d, want 2", got)
			}
			for _, p := range pods {
				// No scheduler, no kubelet: the pods exist but never run.
				if p.Status.Phase != corev1.PodPending {
					t.Errorf("pod %s phase = %q, want Pending", p.Name, p.Status.Phase)
				}
			}
		})
		clusterOK = !t.Failed()
	})
	if !clusterOK {
		return
	}

	// The "cluster" subtest has returned, so its cleanup has run.
	for _, a := range addrs {
		if kubeDialable(a) {
			t.Errorf("%s still accepts connections after cleanup", a)
		}
	}
	for _, f := range files {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("%s still exists after cleanup (stat err: %v)", f, err)
		}
	}
	if !cm.hasExited() {
		t.Errorf("kube-controller-manager (pid %d) still running after cleanup", cm.cmd.Process.Pid)
	}
}

// TestKubeMissingBinary checks that a missing binary fails the test with the command that
// fixes it, instead of a confusing envtest error or a skip.
func TestKubeMissingBinary(t *testing.T) {
	fake := func(t *testing.T, dir, name string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name  string
		opts  KubeOptions
		setup func(t *testing.T, dir string)
		want  string
	}{
		{
			name:  "apiserver",
			setup: func(*testing.T, string) {},
			want:  "kube-apiserver not found in %s",
		},
		{
			name:  "controller-manager",
			opts:  KubeOptions{ControllerManager: true},
			setup: func(t *testing.T, dir string) { fake(t, dir, "kube-apiserver"); fake(t, dir, "etcd") },
			want:  "kube-controller-manager not found in %s",
		},
		{
			name:  "etcd",
			setup: func(t *testing.T, dir string) { fake(t, dir, "kube-apiserver"); t.Setenv("PATH", t.TempDir()) },
			want:  "etcd not found in %s",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			t.Setenv("UPID_KUBE_BIN", dir)
			tt.setup(t, dir)
			ft := &kubeFatalTB{kubeScopedTB: kubeScopedTB{TB: t}}
			ft.run(func() { StartKube(ft, tt.opts) })
			if ft.fatal == "" {
				t.Fatalf("StartKube did not fail")
			}
			for _, want := range []string{fmt.Sprintf(tt.want, dir), "run `make deps` (hack/setup.sh)"} {
				if !strings.Contains(ft.fatal, want) {
					t.Errorf("failure message %q does not contain %q", ft.fatal, want)
				}
			}
		})
	}
}

func TestKubeBinDir(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"UPID_KUBE_BIN wins", map[string]string{"UPID_KUBE_BIN": "/a", "KUBEBUILDER_ASSETS": "/b", "UPID_CACHE": "/c"}, "/a"},
		{"KUBEBUILDER_ASSETS", map[string]string{"KUBEBUILDER_ASSETS": "/b", "UPID_CACHE": "/c"}, "/b"},
		{"UPID_CACHE is the cache root", map[string]string{"UPID_CACHE": "/c", "XDG_CACHE_HOME": "/x"}, "/c/kube-" + KubeVersion + "/bin"},
		{"XDG_CACHE_HOME", map[string]string{"XDG_CACHE_HOME": "/x", "HOME": "/h"}, "/x/upid/kube-" + KubeVersion + "/bin"},
		{"HOME", map[string]string{"HOME": "/h"}, "/h/.cache/upid/kube-" + KubeVersion + "/bin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{"UPID_KUBE_BIN", "KUBEBUILDER_ASSETS", "UPID_CACHE", "XDG_CACHE_HOME", "HOME"} {
				t.Setenv(k, tt.env[k])
			}
			if got, _ := kubeBinDir(); got != tt.want {
				t.Errorf("kubeBinDir() = %q, want %q", got, tt.want)
			}
		})
	}
}

func kubeCreateNamespace(t testing.TB, k *Kube, prefix string, labels map[string]string) string {
	t.Helper()
	ctx, cancel := kubeContext()
	defer cancel()
	ns, err := k.Clientset.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-", Labels: labels},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	return ns.Name
}

func kubeControlledBy(refs []metav1.OwnerReference, uid types.UID) bool {
	for _, r := range refs {
		if r.UID == uid && ptr.Deref(r.Controller, false) {
			return true
		}
	}
	return false
}

// kubeEventually polls cond until it holds, failing the test with cond's last explanation
// after timeout.
func kubeEventually(t testing.TB, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s: %s", timeout, why)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func kubeDialable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// kubeFatalTB records a helper's Fatal instead of failing the real test, so that tests can
// assert on the message; cleanups registered through it run when run returns.
type kubeFatalTB struct {
	kubeScopedTB
	fatal string
}

func (f *kubeFatalTB) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (f *kubeFatalTB) Fatal(args ...any) { f.Fatalf("%s", fmt.Sprint(args...)) }

// run calls fn on its own goroutine (Fatalf ends it with Goexit), then runs the cleanups.
func (f *kubeFatalTB) run(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
	f.stop()
}
