package deploy

import (
	"bytes"
	"context"
	"maps"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	"go.yaml.in/yaml/v3"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/upid-dev/upid/internal/testenv"
)

// TestHelmInstallAndUpgrade installs the chart with the real helm into a real kube-apiserver,
// plays the webhook's certificate bootstrap as its service account, and upgrades: a values change
// must keep what the webhook wrote (Helm's three-way merge leaves fields it never set), a switch to
// cert-manager must hand the caBundle over to cert-manager's annotation, and the switch back must
// work the way docs/deploy.md says.
func TestHelmInstallAndUpgrade(t *testing.T) {
	kube, _ := startCluster(t)
	ctx := context.Background()
	const ns = "upid-helm"
	sa := "system:serviceaccount:" + ns + ":upid-webhook"
	helm := func(args ...string) {
		t.Helper()
		args = append(args, "--kubeconfig", kube.KubeconfigPath, "--namespace", ns)
		run(t, "helm", args...)
	}
	helm("install", releaseName, chartDir, "--create-namespace", "--set", "webhook.enabled=true")

	// The webhook's first start, as its own service account.
	as := impersonate(t, kube, sa)
	secret, err := as.CoreV1().Secrets(ns).Get(ctx, "upid-webhook-tls", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("webhook cannot read its Secret after helm install: %v", err)
	}
	secret.Data = map[string][]byte{"tls.crt": []byte("cert"), "tls.key": []byte("key"), "ca.crt": []byte("ca")}
	if _, err := as.CoreV1().Secrets(ns).Update(ctx, secret, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("webhook cannot update its Secret: %v", err)
	}
	mwc, err := as.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "upid-webhook", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ca := testenv.NewServingCert(t, "upid-webhook."+ns+".svc").CAPEM
	mwc.Webhooks[0].ClientConfig.CABundle = ca
	if _, err := as.AdmissionregistrationV1().MutatingWebhookConfigurations().Update(ctx, mwc, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("webhook cannot set its caBundle: %v", err)
	}

	helm("upgrade", releaseName, chartDir, "--reuse-values", "--set", "webhook.mode=enforce")
	secret, err = kube.Clientset.CoreV1().Secrets(ns).Get(ctx, "upid-webhook-tls", metav1.GetOptions{})
	if err != nil || string(secret.Data["tls.crt"]) != "cert" {
		t.Errorf("helm upgrade lost the webhook's certificate: %v %v", secret.Data, err)
	}
	mwc = checkWebhookWiring(t, kube, ns, "upid-webhook")
	if !bytes.Equal(mwc.Webhooks[0].ClientConfig.CABundle, ca) {
		t.Errorf("helm upgrade reset the caBundle")
	}
	cm, err := kube.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "upid-config", metav1.GetOptions{})
	if err != nil || !strings.Contains(cm.Data["webhook.yaml"], "mode: enforce") {
		t.Errorf("helm upgrade did not change the webhook's mode: %v\n%s", err, cm.Data["webhook.yaml"])
	}

	helm("upgrade", releaseName, chartDir, "--reuse-values", "--set", "webhook.tls.mode=cert-manager")
	mwc = checkWebhookWiring(t, kube, ns, "upid-webhook")
	if got := mwc.Annotations["cert-manager.io/inject-ca-from"]; got != ns+"/upid-webhook" {
		t.Errorf("after switching to cert-manager, inject-ca-from = %q", got)
	}
	checkAccess(t, kube, []accessCheck{
		{sa, "update", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", "", "upid-webhook", false},
		{sa, "get", "", "secrets", "", ns, "upid-webhook-tls", false},
	})

	// And back, as docs/deploy.md says: the Secret cert-manager wrote outlives its Certificate, and
	// Helm will not take over an object it did not create, so it has to be deleted first.
	certManagers := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "upid-webhook-tls", Annotations: map[string]string{"cert-manager.io/certificate-name": "upid-webhook"}},
		Type: corev1.SecretTypeTLS, Data: map[string][]byte{"tls.crt": []byte("cert"), "tls.key": []byte("key"), "ca.crt": []byte("ca")}}
	if _, err := kube.Clientset.CoreV1().Secrets(ns).Create(ctx, certManagers, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	back := []string{"upgrade", releaseName, chartDir, "--reuse-values", "--set", "webhook.tls.mode=self-managed"}
	if out, err := exec.Command(toolPath(t, "helm"), append(back, "--kubeconfig", kube.KubeconfigPath, "--namespace", ns)...).CombinedOutput(); err == nil || !strings.Contains(string(out), "cannot be imported into the current release") {
		t.Errorf("helm upgrade back to self-managed over cert-manager's Secret: %v %s; docs/deploy.md says it fails until the Secret is deleted", err, out)
	}
	if err := kube.Clientset.CoreV1().Secrets(ns).Delete(ctx, "upid-webhook-tls", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	helm(back...)
	mwc = checkWebhookWiring(t, kube, ns, "upid-webhook")
	if _, ok := mwc.Annotations["cert-manager.io/inject-ca-from"]; ok {
		t.Errorf("back to self-managed, the configuration still asks cert-manager for its caBundle")
	}
	checkAccess(t, kube, []accessCheck{
		{sa, "update", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", "", "upid-webhook", true},
		{sa, "update", "", "secrets", "", ns, "upid-webhook-tls", true},
	})
	if _, err := kube.Clientset.CoreV1().Secrets(ns).Get(ctx, "upid-webhook-tls", metav1.GetOptions{}); err != nil {
		t.Errorf("back to self-managed, no Secret for the webhook to fill: %v", err)
	}
	// Turning persistence on in place: the API server must take the switch from a rolling update
	// to Recreate (Helm's patch has to drop rollingUpdate) and the claim the pod mounts.
	helm("upgrade", releaseName, chartDir, "--reuse-values", "--set", "exporter.persistence.enabled=true")
	d, err := kube.Clientset.AppsV1().Deployments(ns).Get(ctx, "upid-exporter", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType || d.Spec.Strategy.RollingUpdate != nil {
		t.Errorf("exporter strategy after enabling persistence = %+v, want Recreate", d.Spec.Strategy)
	}
	claim := ""
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Name == "state" && v.PersistentVolumeClaim != nil {
			claim = v.PersistentVolumeClaim.ClaimName
		}
	}
	if _, err := kube.Clientset.CoreV1().PersistentVolumeClaims(ns).Get(ctx, claim, metav1.GetOptions{}); claim == "" || err != nil {
		t.Errorf("exporter state volume claims %q: %v", claim, err)
	}
	helm("uninstall", releaseName)
	if _, err := kube.Clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "upid-webhook", metav1.GetOptions{}); err == nil {
		t.Errorf("helm uninstall left the MutatingWebhookConfiguration: admissions would still be sent to a webhook that is gone")
	}
}

// TestScrapeConfigSnippet checks the plain-Prometheus alternative with Prometheus's own relabeling
// code: of the endpoints Kubernetes service discovery would find, the job keeps exactly the UPID
// Services' metrics ports of this release. (promtool cannot check the job: Debian's Prometheus is
// built without Kubernetes service discovery.)
func TestScrapeConfigSnippet(t *testing.T) {
	ms, _ := renderHelm(t, releaseName, releaseNamespace, valuesFile(t, "webhook: {enabled: true}\nscaler: {enabled: true}\nmonitoring: {scrapeConfig: {enabled: true}}")...)
	cm := ms.Get("", "ConfigMap", releaseNamespace, "upid-scrape-config")
	if cm == nil {
		t.Fatal("no ConfigMap upid-scrape-config")
	}
	text, _, _ := unstructured.NestedString(cm.Object, "data", "upid-scrape-config.yaml")
	var jobs []struct {
		JobName       string `yaml:"job_name"`
		HonorLabels   bool   `yaml:"honor_labels"`
		KubernetesSDs []struct {
			Role       string `yaml:"role"`
			Namespaces struct {
				Names []string `yaml:"names"`
			} `yaml:"namespaces"`
		} `yaml:"kubernetes_sd_configs"`
		Relabel []struct {
			SourceLabels []string `yaml:"source_labels"`
			Regex        *string  `yaml:"regex"`
			Action       string   `yaml:"action"`
			TargetLabel  string   `yaml:"target_label"`
		} `yaml:"relabel_configs"`
	}
	dec := yaml.NewDecoder(strings.NewReader(text))
	dec.KnownFields(true)
	if err := dec.Decode(&jobs); err != nil {
		t.Fatalf("scrape config: %v\n%s", err, text)
	}
	if len(jobs) != 1 || len(jobs[0].KubernetesSDs) != 1 || jobs[0].KubernetesSDs[0].Role != "endpoints" ||
		!slices.Equal(jobs[0].KubernetesSDs[0].Namespaces.Names, []string{releaseNamespace}) || !jobs[0].HonorLabels {
		t.Fatalf("scrape config is not one endpoints job in %s honoring labels:\n%s", releaseNamespace, text)
	}
	var cfgs []*relabel.Config
	for i, r := range jobs[0].Relabel {
		c := relabel.DefaultRelabelConfig
		if r.Action != "" {
			c.Action = relabel.Action(r.Action)
		}
		c.TargetLabel = r.TargetLabel
		for _, l := range r.SourceLabels {
			c.SourceLabels = append(c.SourceLabels, model.LabelName(l))
		}
		if r.Regex != nil {
			re, err := relabel.NewRegexp(*r.Regex)
			if err != nil {
				t.Fatalf("relabel_configs[%d].regex: %v", i, err)
			}
			c.Regex = re
		}
		if err := c.Validate(model.UTF8Validation); err != nil {
			t.Fatalf("relabel_configs[%d]: %v", i, err)
		}
		cfgs = append(cfgs, &c)
	}
	// What Kubernetes service discovery would report for each port of each Service.
	kept := map[string]bool{}
	for _, o := range ms.Append(otherService()) {
		if o.GetKind() != "Service" {
			continue
		}
		ports, _, _ := unstructured.NestedSlice(o.Object, "spec", "ports")
		for _, p := range ports {
			port := p.(map[string]any)["name"].(string)
			lb := labels.NewBuilder(labels.EmptyLabels())
			lb.Set("__meta_kubernetes_namespace", o.GetNamespace())
			lb.Set("__meta_kubernetes_service_name", o.GetName())
			lb.Set("__meta_kubernetes_endpoint_port_name", port)
			lb.Set("__meta_kubernetes_pod_name", o.GetName()+"-0")
			lb.Set("job", "upid") // the job_name, before relabeling
			for k, v := range o.GetLabels() {
				lb.Set("__meta_kubernetes_service_label_"+strings.NewReplacer(".", "_", "/", "_", "-", "_").Replace(k), v)
			}
			if relabel.ProcessBuilder(lb, cfgs...) {
				kept[o.GetName()+":"+port] = true
				if lb.Get("service") != o.GetName() {
					t.Errorf("%s:%s scraped without its service label", o.GetName(), port)
				}
				// The job UPID's alerts select (UPIDExporterDown: job="upid-exporter").
				if want := "upid-" + o.GetLabels()["app.kubernetes.io/component"]; lb.Get("job") != want {
					t.Errorf("%s:%s scraped as job %q, want %q", o.GetName(), port, lb.Get("job"), want)
				}
			}
		}
	}
	want := map[string]bool{"upid-exporter:http-metrics": true, "upid-webhook:http-metrics": true, "upid-scaler:http-metrics": true}
	if !maps.Equal(kept, want) {
		t.Errorf("scrape job keeps %v, want %v", kept, want)
	}
}

// otherService is a Service of another application in the same namespace, which the job must drop.
func otherService() *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Service",
		"metadata": map[string]any{"name": "other", "namespace": releaseNamespace, "labels": map[string]any{"app.kubernetes.io/name": "other"}},
		"spec":     map[string]any{"ports": []any{map[string]any{"name": "http-metrics", "port": int64(8080)}}},
	}}
}
