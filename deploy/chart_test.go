package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/upid-dev/upid/alerts"
	"github.com/upid-dev/upid/internal/config"
)

// chartCase is one combination of values and what its rendering must contain.
type chartCase struct {
	name   string
	values string // YAML, layered on the chart's values.yaml
	check  func(t *testing.T, r rendering)
}

// rendering is a chart rendered as release "upid" in "upid-system".
type rendering struct {
	Manifests
	ns string
}

var gkDeployment = schema.GroupKind{Group: "apps", Kind: "Deployment"}

const fullValues = `
cluster: prod-eu-1
prometheus:
  url: https://thanos.monitoring.svc:10902
  selector: '{cluster="prod-eu-1"}'
  auth:
    bearerTokenSecret: {name: thanos-token}
    caConfigMap: {name: thanos-ca}
pricing:
  inline: |
    rates: []
exporter:
  namespaceLabels: [team, cost-center]
webhook:
  enabled: true
  mode: enforce
  excludeNamespaces: [istio-system]
scaler:
  enabled: true
  policy: {dryRun: false, scope: cluster, wakeWindows: ["Mon-Fri 08:00-18:00 Europe/Berlin"]}
monitoring:
  scrapeConfig: {enabled: true}
networkPolicy:
  metricsFrom:
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}
  alertmanagerFrom:
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}
`

var chartCases = []chartCase{
	{name: "defaults", check: func(t *testing.T, r rendering) {
		r.mustHave(t, "apps", "Deployment", "upid-exporter")
		// The webhook is on by default, in recommend mode: it annotates and changes nothing.
		r.mustHave(t, "apps", "Deployment", "upid-webhook")
		r.checkMWC(t, "upid-webhook", "upid-webhook")
		r.mustNotHave(t, "apps", "Deployment", "upid-scaler")
		r.mustNotHave(t, "", "Namespace", "")
		r.mustHave(t, "monitoring.coreos.com", "ServiceMonitor", "upid")
		rule := r.mustHave(t, "monitoring.coreos.com", "PrometheusRule", "upid")
		if !strings.Contains(mustJSON(t, rule.Object["spec"]), `"alert":"UPIDWorkloadIdle"`) {
			t.Errorf("PrometheusRule has no UPIDWorkloadIdle alert")
		}
		dashboards, _ := filepath.Glob(filepath.Join(chartDir, "files/dashboards/*.json"))
		n := 0
		for _, cm := range r.OfKind(schema.GroupKind{Kind: "ConfigMap"}) {
			if cm.GetLabels()["grafana_dashboard"] == "1" {
				n++
				for name, v := range cm.Object["data"].(map[string]any) {
					if !json.Valid([]byte(v.(string))) {
						t.Errorf("dashboard %s/%s is not JSON", cm.GetName(), name)
					}
				}
			}
		}
		if n == 0 || n != len(dashboards) {
			t.Errorf("%d dashboard ConfigMaps for %d dashboards", n, len(dashboards))
		}
		// The exporter reads exactly what issue #8 lists, and only reads.
		got := ruleSet(t, r.mustHave(t, "rbac.authorization.k8s.io", "ClusterRole", "upid-exporter"))
		want := map[string][]string{}
		for _, res := range []string{"/pods", "/nodes", "/namespaces", "/services", "apps/deployments", "apps/replicasets",
			"apps/statefulsets", "apps/daemonsets", "batch/jobs", "batch/cronjobs", "autoscaling/horizontalpodautoscalers"} {
			want[res] = []string{"get", "list", "watch"}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("exporter ClusterRole grants %v, want %v", got, want)
		}
		cfg := r.config(t, "exporter.yaml")
		if cfg.Prometheus.URL != "http://prometheus-operated.monitoring.svc:9090" {
			t.Errorf("prometheus.url = %q", cfg.Prometheus.URL)
		}
	}},
	{name: "webhook-self-managed", values: "webhook: {enabled: true}", check: func(t *testing.T, r rendering) {
		d := r.mustHave(t, "apps", "Deployment", "upid-webhook")
		r.checkWebhookHA(t, d, "webhook")
		r.checkMWC(t, "upid-webhook", "upid-webhook")
		mwc := r.mustHave(t, "admissionregistration.k8s.io", "MutatingWebhookConfiguration", "upid-webhook")
		if _, ok := mwc.GetAnnotations()["cert-manager.io/inject-ca-from"]; ok {
			t.Errorf("self-managed TLS must not ask cert-manager for the caBundle")
		}
		r.mustHave(t, "", "Secret", "upid-webhook-tls")
		role := ruleSet(t, r.mustHave(t, "rbac.authorization.k8s.io", "Role", "upid-webhook-tls"))
		if !reflect.DeepEqual(role, map[string][]string{"/secrets[upid-webhook-tls]": {"get", "update"}}) {
			t.Errorf("webhook TLS Role grants %v", role)
		}
		cr := ruleSet(t, r.mustHave(t, "rbac.authorization.k8s.io", "ClusterRole", "upid-webhook"))
		if v := cr["admissionregistration.k8s.io/mutatingwebhookconfigurations[upid-webhook]"]; !reflect.DeepEqual(v, []string{"get", "update"}) {
			t.Errorf("webhook may %v its MutatingWebhookConfiguration, want [get update] by name", v)
		}
		r.mustNotHave(t, "cert-manager.io", "Certificate", "upid-webhook")
		// The webhook reads recommendations through the exporter's Service.
		wh := r.section(t, "webhook.yaml", "webhook")
		if wh["recommendations_url"] != "http://upid-exporter.upid-system.svc:9847" {
			t.Errorf("recommendations_url = %v", wh["recommendations_url"])
		}
		tls := wh["tls"].(map[string]any)
		if tls["mode"] != "self_managed" || tls["secret_name"] != "upid-webhook-tls" || tls["configuration_name"] != "upid-webhook" {
			t.Errorf("webhook tls config = %v", tls)
		}
		r.webhookConfigLoads(t)
	}},
	{name: "webhook-cert-manager", values: "webhook: {enabled: true, tls: {mode: cert-manager}}", check: func(t *testing.T, r rendering) {
		r.checkMWC(t, "upid-webhook", "upid-webhook")
		mwc := r.mustHave(t, "admissionregistration.k8s.io", "MutatingWebhookConfiguration", "upid-webhook")
		if got := mwc.GetAnnotations()["cert-manager.io/inject-ca-from"]; got != "upid-system/upid-webhook" {
			t.Errorf("inject-ca-from = %q", got)
		}
		cert := r.mustHave(t, "cert-manager.io", "Certificate", "upid-webhook")
		secret, _, _ := unstructured.NestedString(cert.Object, "spec", "secretName")
		dns, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
		if !slices.Contains(dns, "upid-webhook.upid-system.svc") {
			t.Errorf("Certificate dnsNames %v lack the Service's name", dns)
		}
		issuer, _, _ := unstructured.NestedString(cert.Object, "spec", "issuerRef", "name")
		r.mustHave(t, "cert-manager.io", "Issuer", issuer)
		d := r.mustHave(t, "apps", "Deployment", "upid-webhook")
		if got := secretVolumes(d); !slices.Contains(got, secret) {
			t.Errorf("webhook pods mount Secrets %v, not the Certificate's %q", got, secret)
		}
		// cert-manager owns the Secret and the caBundle: no Secret object, no Secret or MWC access.
		r.mustNotHave(t, "", "Secret", "upid-webhook-tls")
		r.mustNotHave(t, "rbac.authorization.k8s.io", "Role", "upid-webhook-tls")
		for res := range ruleSet(t, r.mustHave(t, "rbac.authorization.k8s.io", "ClusterRole", "upid-webhook")) {
			if strings.Contains(res, "mutatingwebhookconfigurations") {
				t.Errorf("webhook may change %s although cert-manager injects the caBundle", res)
			}
		}
		if r.section(t, "webhook.yaml", "webhook")["tls"].(map[string]any)["mode"] != "files" {
			t.Errorf("webhook must read cert-manager's files")
		}
		r.webhookConfigLoads(t)
	}},
	{name: "cert-manager-cluster-issuer", values: "webhook: {enabled: true, tls: {mode: cert-manager, certManager: {issuerRef: {name: corp-ca, kind: ClusterIssuer}}}}", check: func(t *testing.T, r rendering) {
		cert := r.mustHave(t, "cert-manager.io", "Certificate", "upid-webhook")
		ref, _, _ := unstructured.NestedStringMap(cert.Object, "spec", "issuerRef")
		if ref["name"] != "corp-ca" || ref["kind"] != "ClusterIssuer" {
			t.Errorf("issuerRef = %v", ref)
		}
		if n := len(r.OfKind(schema.GroupKind{Group: "cert-manager.io", Kind: "Issuer"})); n != 0 {
			t.Errorf("%d Issuers rendered next to an existing ClusterIssuer", n)
		}
	}},
	{name: "sidecar-suite", values: "webhook: {enabled: true}\nsidecarSuite: {enabled: true}", check: func(t *testing.T, r rendering) {
		r.mustNotHave(t, "apps", "Deployment", "upid-webhook")
		r.mustNotHave(t, "", "ServiceAccount", "upid-webhook")
		d := r.mustHave(t, "apps", "Deployment", "upid-exporter")
		names := containerNames(d)
		if !reflect.DeepEqual(names, []string{"exporter", "webhook"}) {
			t.Errorf("exporter pod containers = %v, want exporter and webhook", names)
		}
		r.checkWebhookHA(t, d, "exporter")
		r.checkMWC(t, "upid-webhook", "upid-webhook")
		if got := r.section(t, "webhook.yaml", "webhook")["recommendations_url"]; got != "http://localhost:9847" {
			t.Errorf("sidecar reads recommendations from %v, want localhost", got)
		}
		// The webhook's permissions go to the pod's service account, the exporter's: the cluster-wide
		// reads and, for its self-managed certificate, its Secret.
		for kind, name := range map[string]string{"ClusterRoleBinding": "upid-webhook", "RoleBinding": "upid-webhook-tls"} {
			b := r.mustHave(t, "rbac.authorization.k8s.io", kind, name)
			if s := subjects(b); !reflect.DeepEqual(s, []string{"upid-system/upid-exporter"}) {
				t.Errorf("%s %s binds %v", kind, name, s)
			}
		}
		r.webhookConfigLoads(t)
	}},
	{name: "full", values: fullValues, check: func(t *testing.T, r rendering) {
		cfg := r.config(t, "exporter.yaml")
		if cfg.Exporter.Cluster != "prod-eu-1" || cfg.Prometheus.URL != "https://thanos.monitoring.svc:10902" ||
			cfg.Exporter.PricingFile != "/etc/upid/pricing/pricing.yaml" || !reflect.DeepEqual(cfg.Exporter.NamespaceLabels, []string{"team", "cost-center"}) {
			t.Errorf("exporter config = cluster %q url %q pricing %q labels %v", cfg.Exporter.Cluster, cfg.Prometheus.URL, cfg.Exporter.PricingFile, cfg.Exporter.NamespaceLabels)
		}
		if cfg.Prometheus.Selector != `{cluster="prod-eu-1"}` {
			t.Errorf("prometheus.selector = %q", cfg.Prometheus.Selector)
		}
		if cfg.Prometheus.HTTPClient.Authorization == nil || cfg.Prometheus.HTTPClient.Authorization.CredentialsFile != "/etc/upid/prometheus/token/token" ||
			cfg.Prometheus.HTTPClient.TLSConfig.CAFile != "/etc/upid/prometheus/ca/ca.crt" {
			t.Errorf("prometheus http_client = %+v", cfg.Prometheus.HTTPClient)
		}
		// Every file the config names is mounted.
		d := r.mustHave(t, "apps", "Deployment", "upid-exporter")
		for _, f := range []string{cfg.Exporter.PricingFile, cfg.Prometheus.HTTPClient.Authorization.CredentialsFile, cfg.Prometheus.HTTPClient.TLSConfig.CAFile} {
			if !mounted(d, "exporter", f) {
				t.Errorf("%s is not under any mount of the exporter", f)
			}
		}
		r.mustHave(t, "", "ConfigMap", "upid-pricing")
		r.mustHave(t, "", "ConfigMap", "upid-scrape-config")
		s := r.mustHave(t, "apps", "Deployment", "upid-scaler")
		if got := secretVolumes(s); !slices.Contains(got, "upid-scaler-token") {
			t.Errorf("scaler mounts Secrets %v", got)
		}
		sc := r.section(t, "scaler.yaml", "scaler")
		if !mounted(s, "scaler", sc["bearer_token_file"].(string)) {
			t.Errorf("scaler token file %v is not mounted", sc["bearer_token_file"])
		}
		if sc["dry_run"] != false || sc["scope"] != "cluster" || sc["cluster"] != "prod-eu-1" {
			t.Errorf("scaler policy = %v", sc)
		}
		le := sc["leader_election"].(map[string]any)
		lease := ruleSet(t, r.mustHave(t, "rbac.authorization.k8s.io", "Role", "upid-scaler-leader-election"))
		if le["enabled"] != true || lease[fmt.Sprintf("coordination.k8s.io/leases[%s]", le["name"])] == nil {
			t.Errorf("leader election %v is not granted its Lease: %v", le, lease)
		}
		scr := ruleSet(t, r.mustHave(t, "rbac.authorization.k8s.io", "ClusterRole", "upid-scaler"))
		for _, res := range []string{"apps/deployments/scale", "apps/statefulsets/scale", "argoproj.io/rollouts/scale"} {
			if !slices.Contains(scr[res], "update") {
				t.Errorf("scaler cannot update %s: %v", res, scr)
			}
		}
		mwc := r.mustHave(t, "admissionregistration.k8s.io", "MutatingWebhookConfiguration", "upid-webhook")
		excluded := mustJSON(t, mwc.Object["webhooks"])
		if !strings.Contains(excluded, `"istio-system"`) {
			t.Errorf("excludeNamespaces not in the namespaceSelector: %s", excluded)
		}
		np := r.mustHave(t, "networking.k8s.io", "NetworkPolicy", "upid-scaler")
		if !strings.Contains(mustJSON(t, np.Object["spec"]), "monitoring") {
			t.Errorf("scaler NetworkPolicy ignores alertmanagerFrom")
		}
		r.webhookConfigLoads(t)
		r.scalerConfigLoads(t)
	}},
	{name: "without-exporter", values: "exporter: {enabled: false}\nwebhook: {enabled: true, config: {recommendations_url: 'http://upid.other.svc:9847'}}\nscaler: {enabled: true}", check: func(t *testing.T, r rendering) {
		r.mustNotHave(t, "apps", "Deployment", "upid-exporter")
		r.mustNotHave(t, "rbac.authorization.k8s.io", "ClusterRole", "upid-exporter")
		r.mustNotHave(t, "networking.k8s.io", "NetworkPolicy", "upid-exporter")
		r.mustHave(t, "apps", "Deployment", "upid-webhook")
		r.mustHave(t, "apps", "Deployment", "upid-scaler")
		cm := r.mustHave(t, "", "ConfigMap", "upid-config")
		if _, ok, _ := unstructured.NestedString(cm.Object, "data", "exporter.yaml"); ok {
			t.Errorf("exporter.yaml rendered without an exporter")
		}
		// <component>.config reaches the file and wins over the chart's own choice.
		if got := r.section(t, "webhook.yaml", "webhook")["recommendations_url"]; got != "http://upid.other.svc:9847" {
			t.Errorf("webhook.config.recommendations_url ignored: %v", got)
		}
		r.checkMWC(t, "upid-webhook", "upid-webhook")
	}},
	{name: "persistence", values: "exporter: {persistence: {enabled: true, storageClassName: fast, size: 2Gi}}", check: func(t *testing.T, r rendering) {
		pvc := r.mustHave(t, "", "PersistentVolumeClaim", "upid-exporter-state")
		class, _, _ := unstructured.NestedString(pvc.Object, "spec", "storageClassName")
		size, _, _ := unstructured.NestedString(pvc.Object, "spec", "resources", "requests", "storage")
		modes, _, _ := unstructured.NestedStringSlice(pvc.Object, "spec", "accessModes")
		if class != "fast" || size != "2Gi" || !reflect.DeepEqual(modes, []string{"ReadWriteOnce"}) {
			t.Errorf("claim: class %q, size %q, modes %v", class, size, modes)
		}
		r.checkStateClaim(t, "upid-exporter-state")
	}},
	{name: "persistence-existing-claim", values: "exporter: {persistence: {enabled: true, existingClaim: upid-state}}", check: func(t *testing.T, r rendering) {
		r.mustNotHave(t, "", "PersistentVolumeClaim", "")
		r.checkStateClaim(t, "upid-state")
	}},
	{name: "persistence-sidecar-suite", values: "webhook: {enabled: true}\nsidecarSuite: {enabled: true, replicas: 1}\nexporter: {persistence: {enabled: true}}", check: func(t *testing.T, r rendering) {
		r.checkStateClaim(t, "upid-exporter-state")
		r.mustNotHave(t, "policy", "PodDisruptionBudget", "")
	}},
	{name: "minimal", values: "monitoring: {serviceMonitor: {enabled: false}, prometheusRule: {enabled: false}, dashboards: {enabled: false}}\nnetworkPolicy: {enabled: false}\nnamespace: {create: true}", check: func(t *testing.T, r rendering) {
		for _, o := range r.Manifests {
			if g := o.GroupVersionKind().Group; g == "monitoring.coreos.com" || g == "networking.k8s.io" || o.GetLabels()["grafana_dashboard"] != "" {
				t.Errorf("%s rendered although disabled", KeyOf(o))
			}
		}
		ns := r.mustHave(t, "", "Namespace", "upid-system")
		if ns.GetLabels()["pod-security.kubernetes.io/enforce"] != "restricted" {
			t.Errorf("namespace labels = %v", ns.GetLabels())
		}
	}},
}

// chartFailures are values the chart must refuse, with a message naming the value (the schema,
// values.schema.json, names it as a JSON pointer; the templates' own checks as a dotted path).
var chartFailures = []struct{ name, values, message string }{
	{"bad tls mode", "webhook: {enabled: true, tls: {mode: vault}}", "/webhook/tls/mode"},
	{"bad webhook mode", "webhook: {enabled: true, mode: always}", "/webhook/mode"},
	{"slow webhook", "webhook: {enabled: true, timeoutSeconds: 31}", "/webhook/timeoutSeconds"},
	{"misspelt value", "webhook: {enabeld: true}", "'enabeld' not allowed"},
	{"misspelt section", "scalar: {enabled: true}", "'scalar' not allowed"},
	{"bad duration", "exporter: {interval: 5 minutes}", "/exporter/interval"},
	{"bad prometheus url", "prometheus: {url: prometheus:9090}", "/prometheus/url"},
	{"sidecar without exporter", "exporter: {enabled: false}\nwebhook: {enabled: true}\nsidecarSuite: {enabled: true}", "sidecarSuite.enabled"},
	{"shared state claim", "webhook: {enabled: true}\nsidecarSuite: {enabled: true}\nexporter: {persistence: {enabled: true}}", "exporter.persistence.enabled needs one exporter pod"},
	{"replicated state claim", "exporter: {replicas: 2, persistence: {enabled: true}}", "exporter.persistence.enabled needs one exporter pod"},
	{"bad claim size", "exporter: {persistence: {enabled: true, size: 2 GB}}", "/exporter/persistence/size"},
	{"scaler without token", "scaler: {enabled: true, authTokenSecret: {name: ''}}", "scaler.authTokenSecret.name"},
}

func valuesFile(t *testing.T, values string) []string {
	t.Helper()
	if values == "" {
		return nil
	}
	p := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(p, []byte(values), 0o644); err != nil {
		t.Fatal(err)
	}
	return []string{p}
}

func TestHelmLint(t *testing.T) {
	for _, c := range chartCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			args := []string{"lint", chartDir, "--strict", "--namespace", releaseNamespace, "--kube-version", kubeVersion}
			for _, f := range valuesFile(t, c.values) {
				args = append(args, "--values", f)
			}
			out := run(t, "helm", args...)
			if !strings.Contains(string(out), "0 chart(s) failed") {
				t.Errorf("helm lint:\n%s", out)
			}
		})
	}
}

func TestHelmTemplate(t *testing.T) {
	for _, c := range chartCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ms, _ := renderHelm(t, releaseName, releaseNamespace, valuesFile(t, c.values)...)
			r := rendering{Manifests: ms, ns: releaseNamespace}
			for _, o := range ms {
				if o.GetNamespace() != "" && o.GetNamespace() != releaseNamespace {
					t.Errorf("%s is outside the release namespace", KeyOf(o))
				}
				if o.GetLabels()["app.kubernetes.io/part-of"] != "upid" {
					t.Errorf("%s lacks app.kubernetes.io/part-of=upid", KeyOf(o))
				}
			}
			checkScrapeTargets(t, r)
			checkStateFile(t, r)
			checkMemoryLimits(t, r)
			c.check(t, r)
		})
	}
}

// checkScrapeTargets checks that the ServiceMonitor, when rendered, scrapes every UPID Service on a
// port that Service has, and that each such port reaches a container port serving /metrics.
func checkScrapeTargets(t *testing.T, r rendering) {
	t.Helper()
	sms := r.OfKind(schema.GroupKind{Group: "monitoring.coreos.com", Kind: "ServiceMonitor"})
	if len(sms) == 0 {
		return
	}
	sel, _, _ := unstructured.NestedStringMap(sms[0].Object, "spec", "selector", "matchLabels")
	eps, _, _ := unstructured.NestedSlice(sms[0].Object, "spec", "endpoints")
	port := eps[0].(map[string]any)["port"]
	// Prometheus refuses a timeout longer than the interval, and its
	// default 10 s is too short for a large cluster's exposition.
	iv, to := eps[0].(map[string]any)["interval"], eps[0].(map[string]any)["scrapeTimeout"]
	i, err1 := model.ParseDuration(fmt.Sprint(iv))
	d, err2 := model.ParseDuration(fmt.Sprint(to))
	if err1 != nil || err2 != nil || d > i || d <= model.Duration(10*time.Second) {
		t.Errorf("ServiceMonitor interval %v, scrapeTimeout %v: want a timeout above 10s and at most the interval", iv, to)
	}
	// prometheus-operator names the job after the Service's jobLabel label:
	// the jobs UPID's own alerts select must be the Services' whatever the
	// release is called (UPIDExporterDown: job="upid-exporter").
	jobLabel, _, _ := unstructured.NestedString(sms[0].Object, "spec", "jobLabel")
	jobs := map[string]bool{}
	for _, svc := range r.OfKind(schema.GroupKind{Kind: "Service"}) {
		if job := svc.GetLabels()[jobLabel]; jobLabel == "" || job != "upid-"+svc.GetLabels()["app.kubernetes.io/component"] {
			t.Errorf("Service %s is scraped as job %q (jobLabel %q), want upid-<component>", svc.GetName(), job, jobLabel)
		} else {
			jobs[job] = true
		}
	}
	components := map[string]bool{"upid-exporter": true, "upid-webhook": true, "upid-scaler": true}
	for _, a := range alerts.Alerts(alerts.Default()) {
		for _, m := range regexp.MustCompile(`job="([^"]+)"`).FindAllStringSubmatch(a.Expr, -1) {
			if !components[m[1]] {
				t.Errorf("alert %s selects job %q, which no UPID Service is scraped as (this rendering's: %v)", a.Alert, m[1], jobs)
			}
		}
	}
	for _, svc := range r.OfKind(schema.GroupKind{Kind: "Service"}) {
		if !matches(sel, svc.GetLabels()) {
			t.Errorf("ServiceMonitor does not select Service %s", svc.GetName())
			continue
		}
		ports, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
		var target any
		for _, p := range ports {
			if pm := p.(map[string]any); pm["name"] == port {
				target = pm["targetPort"]
			}
		}
		if target == nil {
			t.Errorf("Service %s has no port %v to scrape", svc.GetName(), port)
			continue
		}
		podSel, _, _ := unstructured.NestedStringMap(svc.Object, "spec", "selector")
		found := false
		for _, d := range r.OfKind(gkDeployment) {
			labels, _, _ := unstructured.NestedStringMap(d.Object, "spec", "template", "metadata", "labels")
			if matches(podSel, labels) && hasContainerPort(d, target) {
				found = true
			}
		}
		if !found {
			t.Errorf("Service %s port %v → %v reaches no container", svc.GetName(), port, target)
		}
	}
}

// checkStateFile checks that the exporter's checkpoint, when configured,
// lies on a volume its container mounts: on the read-only root filesystem
// every save would fail.
func checkStateFile(t *testing.T, r rendering) {
	t.Helper()
	for _, cm := range r.OfKind(schema.GroupKind{Kind: "ConfigMap"}) {
		data, _, _ := unstructured.NestedStringMap(cm.Object, "data")
		var c struct {
			Exporter struct {
				Recommender struct {
					StateFile string `yaml:"state_file"`
				} `yaml:"recommender"`
			} `yaml:"exporter"`
		}
		if err := yaml.Unmarshal([]byte(data["exporter.yaml"]), &c); err != nil || c.Exporter.Recommender.StateFile == "" {
			continue
		}
		dir := filepath.Dir(c.Exporter.Recommender.StateFile)
		mounted := false
		for _, d := range r.OfKind(gkDeployment) {
			for _, ctr := range containers(d) {
				mounts, _, _ := unstructured.NestedSlice(ctr, "volumeMounts")
				for _, m := range mounts {
					mm := m.(map[string]any)
					if ctr["name"] == "exporter" && mm["mountPath"] == dir && mm["readOnly"] != true {
						mounted = true
					}
				}
			}
		}
		if !mounted {
			t.Errorf("exporter.recommender.state_file %s: the exporter mounts no writable volume at %s", c.Exporter.Recommender.StateFile, dir)
		}
	}
}

func TestHelmTemplateRefusesBadValues(t *testing.T) {
	for _, c := range chartFailures {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			args := helmArgs(releaseName, releaseNamespace, valuesFile(t, c.values)...)
			_, stderr, err := runErr(t, "helm", args...)
			if err == nil {
				t.Fatalf("helm template accepted %q", c.values)
			}
			if !strings.Contains(string(stderr), c.message) {
				t.Errorf("error does not name %s:\n%s", c.message, stderr)
			}
		})
	}
}

// ---- helpers over a rendering ----

func (r rendering) mustHave(t *testing.T, group, kind, name string) *unstructured.Unstructured {
	t.Helper()
	ns := r.ns
	if kind == "ClusterRole" || kind == "ClusterRoleBinding" || kind == "MutatingWebhookConfiguration" || kind == "Namespace" {
		ns = ""
	}
	o := r.Get(group, kind, ns, name)
	if o == nil {
		t.Fatalf("no %s %q in %v", kind, name, r.Keys())
	}
	return o
}

func (r rendering) mustNotHave(t *testing.T, group, kind, name string) {
	t.Helper()
	for _, o := range r.Manifests {
		k := KeyOf(o)
		if k.Group == group && k.Kind == kind && (name == "" || k.Name == name) {
			t.Errorf("unexpected %s", k)
		}
	}
}

// file returns a file of the components' ConfigMap.
func (r rendering) file(t *testing.T, name string) []byte {
	t.Helper()
	cm := r.mustHave(t, "", "ConfigMap", "upid-config")
	s, ok, _ := unstructured.NestedString(cm.Object, "data", name)
	if !ok {
		t.Fatalf("ConfigMap upid-config has no %s", name)
	}
	return []byte(s)
}

// config loads a rendered config file with the product's own strict loader.
func (r rendering) config(t *testing.T, name string) config.Config {
	t.Helper()
	cfg, err := config.Parse(name, r.file(t, name))
	if err != nil {
		t.Fatalf("%s does not load: %v", name, err)
	}
	return cfg
}

// section returns one top-level section of a rendered config file as YAML data.
func (r rendering) section(t *testing.T, file, key string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := yaml.Unmarshal(r.file(t, file), &m); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	s, ok := m[key].(map[string]any)
	if !ok {
		t.Fatalf("%s has no %s section", file, key)
	}
	return s
}

func (r rendering) webhookConfigLoads(t *testing.T) {
	t.Helper()
	r.config(t, "webhook.yaml")
}

func (r rendering) scalerConfigLoads(t *testing.T) {
	t.Helper()
	r.config(t, "scaler.yaml")
}

// checkMWC checks the admission settings issue #8 asks for and that the webhook points at a
// Service of the rendering whose port reaches a container port of the pods it selects.
func (r rendering) checkMWC(t *testing.T, name, service string) {
	t.Helper()
	mwc := r.mustHave(t, "admissionregistration.k8s.io", "MutatingWebhookConfiguration", name)
	hooks, _, _ := unstructured.NestedSlice(mwc.Object, "webhooks")
	if len(hooks) != 1 {
		t.Fatalf("%d webhooks, want 1", len(hooks))
	}
	h := hooks[0].(map[string]any)
	for field, want := range map[string]any{
		"failurePolicy": "Ignore", "sideEffects": "None", "reinvocationPolicy": "IfNeeded",
	} {
		if h[field] != want {
			t.Errorf("%s = %v, want %v", field, h[field], want)
		}
	}
	if ts, _ := h["timeoutSeconds"].(int64); ts < 1 || ts > 2 {
		t.Errorf("timeoutSeconds = %v, want 1-2", h["timeoutSeconds"])
	}
	sel := mustJSON(t, h["namespaceSelector"])
	for _, ns := range []string{"kube-system", "kube-node-lease", r.ns} {
		if !strings.Contains(sel, `"`+ns+`"`) || !strings.Contains(sel, "NotIn") {
			t.Errorf("namespaceSelector %s does not exclude %s", sel, ns)
		}
	}
	if os := mustJSON(t, h["objectSelector"]); !strings.Contains(os, "upid.io/webhook") {
		t.Errorf("objectSelector %s has no opt-out", os)
	}
	conds := mustJSON(t, h["matchConditions"])
	for _, sa := range []string{"upid-exporter", "upid-webhook", "upid-scaler"} {
		if !strings.Contains(conds, "system:serviceaccount:"+r.ns+":"+sa) {
			t.Errorf("matchConditions %s do not exclude %s", conds, sa)
		}
	}
	svcRef, _, _ := unstructured.NestedMap(h, "clientConfig", "service")
	if svcRef["name"] != service || svcRef["namespace"] != r.ns || svcRef["path"] != "/mutate-v1-pod" {
		t.Errorf("clientConfig.service = %v", svcRef)
	}
	svc := r.mustHave(t, "", "Service", service)
	port := findServicePort(svc, svcRef["port"].(int64))
	if port == nil {
		t.Fatalf("Service %s has no port %v", service, svcRef["port"])
	}
	selector, _, _ := unstructured.NestedStringMap(svc.Object, "spec", "selector")
	var pods []*unstructured.Unstructured
	for _, d := range r.OfKind(gkDeployment) {
		labels, _, _ := unstructured.NestedStringMap(d.Object, "spec", "template", "metadata", "labels")
		if matches(selector, labels) {
			pods = append(pods, d)
		}
	}
	if len(pods) != 1 {
		t.Fatalf("Service %s selects %d Deployments, want 1", service, len(pods))
	}
	if !hasContainerPort(pods[0], port["targetPort"]) {
		t.Errorf("Service %s targets %v, which no container of %s exposes", service, port["targetPort"], pods[0].GetName())
	}
	// The admission port in the webhook's config is the one the Service reaches.
	if p := r.section(t, "webhook.yaml", "webhook")["port"]; !hasContainerPort(pods[0], int64(p.(int))) {
		t.Errorf("webhook listens on %v, which its container does not expose", p)
	}
}

// checkStateClaim checks that the exporter checkpoints to the claim and is updated without a
// surge: with RollingUpdate the new pod would wait for a ReadWriteOnce volume the old pod holds
// on another node, while the old one waits for the new one to be ready.
func (r rendering) checkStateClaim(t *testing.T, claim string) {
	t.Helper()
	d := r.mustHave(t, "apps", "Deployment", "upid-exporter")
	strategy, _, _ := unstructured.NestedMap(d.Object, "spec", "strategy")
	if !reflect.DeepEqual(strategy, map[string]any{"type": "Recreate"}) {
		t.Errorf("exporter strategy = %v, want Recreate", strategy)
	}
	vols, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "volumes")
	var got any
	for _, v := range vols {
		if vm := v.(map[string]any); vm["name"] == "state" {
			got = vm["persistentVolumeClaim"]
		}
	}
	if !reflect.DeepEqual(got, map[string]any{"claimName": claim}) {
		t.Errorf("state volume claims %v, want %s", got, claim)
	}
	if r.config(t, "exporter.yaml").Exporter.Recommender.StateFile == "" {
		t.Errorf("exporter.recommender.state_file unset with a state claim")
	}
}

// checkWebhookHA checks what keeps admissions served during upgrades and drains.
func (r rendering) checkWebhookHA(t *testing.T, d *unstructured.Unstructured, component string) {
	t.Helper()
	if n, _, _ := unstructured.NestedInt64(d.Object, "spec", "replicas"); n < 2 {
		t.Errorf("%s runs %d replicas, want ≥ 2", d.GetName(), n)
	}
	if mu, _, _ := unstructured.NestedFieldNoCopy(d.Object, "spec", "strategy", "rollingUpdate", "maxUnavailable"); fmt.Sprint(mu) != "0" {
		t.Errorf("%s maxUnavailable = %v, want 0", d.GetName(), mu)
	}
	if aa, ok, _ := unstructured.NestedMap(d.Object, "spec", "template", "spec", "affinity", "podAntiAffinity"); !ok || len(aa) == 0 {
		t.Errorf("%s has no pod anti-affinity", d.GetName())
	}
	pdb := r.mustHave(t, "policy", "PodDisruptionBudget", d.GetName())
	sel, _, _ := unstructured.NestedStringMap(pdb.Object, "spec", "selector", "matchLabels")
	labels, _, _ := unstructured.NestedStringMap(d.Object, "spec", "template", "metadata", "labels")
	if !matches(sel, labels) || sel["app.kubernetes.io/component"] != component {
		t.Errorf("PodDisruptionBudget %s selects %v", pdb.GetName(), sel)
	}
}

// ruleSet flattens RBAC rules into "group/resource[names]" → verbs.
func ruleSet(t *testing.T, role *unstructured.Unstructured) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	rules, _, _ := unstructured.NestedSlice(role.Object, "rules")
	for _, r := range rules {
		rule := r.(map[string]any)
		get := func(k string) []string { v, _, _ := unstructured.NestedStringSlice(rule, k); return v }
		for _, g := range get("apiGroups") {
			for _, res := range get("resources") {
				key := g + "/" + res
				if names := get("resourceNames"); len(names) > 0 {
					key += "[" + strings.Join(names, ",") + "]"
				}
				out[key] = append(out[key], get("verbs")...)
			}
		}
	}
	return out
}

func subjects(binding *unstructured.Unstructured) []string {
	var out []string
	ss, _, _ := unstructured.NestedSlice(binding.Object, "subjects")
	for _, s := range ss {
		m := s.(map[string]any)
		out = append(out, fmt.Sprintf("%v/%v", m["namespace"], m["name"]))
	}
	return out
}

func podSpecOf(d *unstructured.Unstructured) map[string]any {
	spec, _, _ := unstructured.NestedMap(d.Object, "spec", "template", "spec")
	return spec
}

func containers(d *unstructured.Unstructured) []map[string]any {
	cs, _, _ := unstructured.NestedSlice(podSpecOf(d), "containers")
	out := make([]map[string]any, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.(map[string]any))
	}
	return out
}

func containerNames(d *unstructured.Unstructured) []string {
	var out []string
	for _, c := range containers(d) {
		out = append(out, c["name"].(string))
	}
	return out
}

func secretVolumes(d *unstructured.Unstructured) []string {
	var out []string
	vols, _, _ := unstructured.NestedSlice(podSpecOf(d), "volumes")
	for _, v := range vols {
		if name, ok, _ := unstructured.NestedString(v.(map[string]any), "secret", "secretName"); ok {
			out = append(out, name)
		}
	}
	return out
}

// mounted reports whether path lies under a volume mount of the named container.
func mounted(d *unstructured.Unstructured, container, path string) bool {
	for _, c := range containers(d) {
		if c["name"] != container {
			continue
		}
		mounts, _, _ := unstructured.NestedSlice(c, "volumeMounts")
		for _, m := range mounts {
			mp := m.(map[string]any)["mountPath"].(string)
			if strings.HasPrefix(path, strings.TrimSuffix(mp, "/")+"/") {
				return true
			}
		}
	}
	return false
}

func findServicePort(svc *unstructured.Unstructured, port int64) map[string]any {
	ports, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
	for _, p := range ports {
		pm := p.(map[string]any)
		if pm["port"] == port {
			return pm
		}
	}
	return nil
}

// hasContainerPort reports whether a container of d exposes target, a port name or number.
func hasContainerPort(d *unstructured.Unstructured, target any) bool {
	for _, c := range containers(d) {
		ports, _, _ := unstructured.NestedSlice(c, "ports")
		for _, p := range ports {
			pm := p.(map[string]any)
			if pm["name"] == target || pm["containerPort"] == target {
				return true
			}
		}
	}
	return false
}

func matches(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestConfigChecksums checks that a Deployment's pods roll when, and only when, a file they read changes.
func TestConfigChecksums(t *testing.T) {
	sum := func(t *testing.T, values, deployment string) string {
		ms, _ := renderHelm(t, releaseName, releaseNamespace, valuesFile(t, values)...)
		d := ms.Get("apps", "Deployment", releaseNamespace, deployment)
		if d == nil {
			t.Fatalf("no Deployment %s", deployment)
		}
		tmpl, _, _ := unstructured.NestedStringMap(d.Object, "spec", "template", "metadata", "annotations")
		if tmpl["checksum/config"] == "" {
			t.Fatalf("%s has no checksum/config", deployment)
		}
		return tmpl["checksum/config"]
	}
	const on = "webhook: {enabled: true}\nscaler: {enabled: true}\n"
	cases := []struct {
		name, from, to, deployment string
		changes                    bool
	}{
		{"webhook on leaves the exporter alone", "", "webhook: {enabled: true}", "upid-exporter", false},
		{"webhook mode leaves the exporter alone", on, on + "webhook: {enabled: true, mode: enforce}", "upid-exporter", false},
		{"exporter interval rolls the exporter", on, on + "exporter: {interval: 10m}", "upid-exporter", true},
		{"pricing rolls the exporter", on, on + "pricing: {inline: 'rates: []'}", "upid-exporter", true},
		{"exporter interval leaves the webhook alone", on, on + "exporter: {interval: 10m}", "upid-webhook", false},
		{"webhook mode rolls the webhook", on, on + "webhook: {enabled: true, mode: enforce}", "upid-webhook", true},
		{"webhook mode rolls the sidecar suite", on + "sidecarSuite: {enabled: true}", on + "sidecarSuite: {enabled: true}\nwebhook: {enabled: true, mode: enforce}", "upid-exporter", true},
		{"scaler policy rolls the scaler", on, on + "scaler: {enabled: true, policy: {dryRun: false}}", "upid-scaler", true},
		{"logging rolls the scaler", on, on + "logging: {level: debug}", "upid-scaler", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			a, b := sum(t, c.from, c.deployment), sum(t, c.to, c.deployment)
			if (a != b) != c.changes {
				t.Errorf("checksum of %s changed: %v, want %v", c.deployment, a != b, c.changes)
			}
		})
	}
}

// TestDocsScrapeJob checks that the scrape job docs/deploy.md gives to copy is the one the chart's
// ConfigMap holds (monitoring.scrapeConfig.enabled), which TestScrapeConfigSnippet runs through
// Prometheus's relabeling: the docs offer the two as alternatives.
func TestDocsScrapeJob(t *testing.T) {
	doc, err := os.ReadFile("../docs/deploy.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "\n## Plain Prometheus")
	_, block, ok2 := strings.Cut(section, "```yaml\n")
	block, _, ok3 := strings.Cut(block, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal("docs/deploy.md: no yaml block under ## Plain Prometheus")
	}
	var docs struct {
		ScrapeConfigs []any `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal([]byte(block), &docs); err != nil {
		t.Fatalf("docs/deploy.md scrape job: %v", err)
	}
	ms, _ := renderHelm(t, releaseName, releaseNamespace, valuesFile(t, "monitoring: {scrapeConfig: {enabled: true}}")...)
	cm := ms.Get("", "ConfigMap", releaseNamespace, "upid-scrape-config")
	if cm == nil {
		t.Fatal("no ConfigMap upid-scrape-config")
	}
	text, _, _ := unstructured.NestedString(cm.Object, "data", "upid-scrape-config.yaml")
	var chart []any
	if err := yaml.Unmarshal([]byte(text), &chart); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(docs.ScrapeConfigs, chart) {
		want, _ := yaml.Marshal(chart)
		got, _ := yaml.Marshal(docs.ScrapeConfigs)
		t.Errorf("docs/deploy.md's scrape job differs from the chart's ConfigMap upid-scrape-config:\ndocs:\n%s\nchart:\n%s", got, want)
	}
}

// checkMemoryLimits checks that every container with a memory limit runs a server that bounds
// its Go runtime under it: the webhook collects at GOGC=400 (webhook.GCPercent), so a heap of
// informer caches grows to five times its live size unless the runtime knows the limit the kernel
// enforces. `upid exporter`, `webhook` and `scaler` read it from their cgroup and keep a tenth of
// it free (cmd/upid/memlimit.go); a GOMEMLIMIT in the environment would take that tenth back.
func checkMemoryLimits(t *testing.T, r rendering) {
	t.Helper()
	servers := map[string]bool{"exporter": true, "webhook": true, "scaler": true}
	for _, d := range r.OfKind(gkDeployment) {
		cs, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
		for _, c := range cs {
			cm, _ := c.(map[string]any)
			name, _, _ := unstructured.NestedString(cm, "name")
			if _, ok, _ := unstructured.NestedFieldNoCopy(cm, "resources", "limits", "memory"); !ok {
				continue
			}
			args, _, _ := unstructured.NestedStringSlice(cm, "args")
			if len(args) == 0 || !servers[args[0]] {
				t.Errorf("Deployment %s container %s has a memory limit but runs %v, which does not bound its Go runtime under it", d.GetName(), name, args)
			}
			env, _, _ := unstructured.NestedSlice(cm, "env")
			for _, e := range env {
				em, _ := e.(map[string]any)
				if em["name"] == "GOMEMLIMIT" || em["name"] == "AUTOMEMLIMIT" {
					t.Errorf("Deployment %s container %s sets %s: the runtime's limit is 90 %% of the cgroup's unless an operator chooses otherwise", d.GetName(), name, em["name"])
				}
			}
		}
	}
}
