package exporter_test

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The benchmark cluster is a model from which every object is generated on
// demand, by index, when the fake API server serves it: nothing but the
// model (a few bytes per workload) is held, so the memory the benchmark
// measures is the exporter's, not a second copy of the cluster.
//
// Its shape at N pods:
//   - N/30 nodes (5,000 at 150,000 pods: Kubernetes' limits), each running
//     one pod of each of three DaemonSets in kube-system;
//   - N/300 team namespaces;
//   - 8% of the pods in 3-replica StatefulSets;
//   - 2% in CronJobs that keep three finished Jobs of one pod each;
//   - N/1000 bare pods and N/5000 Jobs without a CronJob;
//   - the rest in Deployments of 1 to 10 replicas, each with its current
//     ReplicaSet and three old ones scaled to zero (revisionHistoryLimit),
//     a quarter of them with an HPA.
//
// Pods are what a real cluster stores: an app container and a sidecar (a
// native sidecar, restartable init container, in a fifth of workloads), env
// vars, volumes, probes, labels, annotations, managedFields and status;
// about 7.5 KB in protobuf, 11.4 KB in JSON. Controllers and Services carry
// a last-applied-configuration annotation as kubectl leaves it; every
// Deployment and StatefulSet has a Service (StatefulSets a headless one too).

const (
	benchOldReplicaSets = 3 // per Deployment, besides the current one
	benchJobsPerCronJob = 3 // successfulJobsHistoryLimit
	benchDaemonSets     = 3
	benchSTSReplicas    = 3
)

var (
	benchApps      = []string{"checkout", "payments", "catalog", "search", "auth", "orders", "inventory", "notifications", "billing", "recommendations", "gateway", "profile", "cart", "shipping", "pricing", "reviews"}
	benchStateful  = []string{"redis", "postgres", "kafka", "zookeeper", "elasticsearch", "rabbitmq"}
	benchBatch     = []string{"report", "cleanup", "backup", "sync", "digest"}
	benchDaemons   = []string{"kube-proxy", "node-exporter", "fluent-bit"}
	benchReplicas  = []int{2, 3, 5, 1, 8, 4, 6, 3, 10, 2}
	benchInstances = []struct {
		typ      string
		cpu, mem string
	}{{"m5.2xlarge", "8", "32Gi"}, {"m5.4xlarge", "16", "64Gi"}, {"c5.4xlarge", "16", "32Gi"}, {"r5.2xlarge", "8", "64Gi"}}
	benchZones = []string{"eu-west-1a", "eu-west-1b", "eu-west-1c"}
)

// Verdicts the canned Prometheus data steers a workload towards.
const (
	benchActive = iota
	benchIdle
	benchUnknown // coverage too low
)

// Request metrics a workload exposes.
const (
	benchNoApp    = iota
	benchHTTP     // http_requests_total{handler, user_agent}
	benchSpring   // http_server_requests_seconds_count{uri}
	benchIstio    // istio_requests_total{destination_workload, request_user_agent}
	benchNginx    // nginx_ingress_controller_requests{exported_service, path}, through its Service
	benchAppKinds // count
)

type benchWorkload struct {
	ns, kind, name string
	replicas       int // pods that resolve to the workload
	firstPod       int // global index of its first pod
	idx            int // index among the workloads of its kind
	app            int
	hpa            bool
	nativeSidecar  bool
	verdict        int
}

// benchService selects the pods of a workload; StatefulSets have a headless
// one too.
type benchService struct {
	w        int
	headless bool
}

type benchCluster struct {
	pods, nodes int
	namespaces  []string // [0] is kube-system
	workloads   []benchWorkload
	byKind      map[string][]int // kind → indexes into workloads
	standalone  []int            // Jobs without a CronJob
	hpas        []int            // Deployments with an HPA
	services    []benchService
	created     time.Time
	// JSON of the managedFields, shared by every object of a kind.
	podFields, podStatusFields, ctrlFields, svcFields, nodeFields []byte
}

func newBenchCluster(pods int) *benchCluster {
	c := &benchCluster{
		pods: pods, nodes: max(pods/30, 3), byKind: map[string][]int{},
		created: time.Date(2025, 6, 1, 8, 0, 0, 0, time.UTC),
	}
	c.namespaces = append(c.namespaces, "kube-system")
	for i := range max(pods/300, 2) {
		c.namespaces = append(c.namespaces, fmt.Sprintf("team-%03d", i))
	}
	next := 0
	add := func(kind, ns, name string, replicas int) *benchWorkload {
		k := len(c.workloads)
		c.workloads = append(c.workloads, benchWorkload{
			ns: ns, kind: kind, name: name, replicas: replicas, firstPod: next, idx: len(c.byKind[kind]),
			app: k % benchAppKinds, nativeSidecar: k%5 == 4,
		})
		w := &c.workloads[k]
		switch {
		case k%17 == 3:
			w.verdict = benchUnknown
		case k%6 == 1:
			w.verdict = benchIdle
		}
		c.byKind[kind] = append(c.byKind[kind], k)
		next += replicas
		return w
	}
	team := func(i int) string { return c.namespaces[1+i%(len(c.namespaces)-1)] }
	for i, d := range benchDaemons[:benchDaemonSets] {
		w := add("DaemonSet", "kube-system", d, c.nodes)
		w.app, w.verdict = []int{benchNoApp, benchHTTP, benchNoApp}[i], benchActive
	}
	for i := range pods * 8 / 100 / benchSTSReplicas {
		add("StatefulSet", team(i), fmt.Sprintf("%s-%d", benchStateful[i%len(benchStateful)], i), benchSTSReplicas)
	}
	for i := range pods * 2 / 100 / benchJobsPerCronJob {
		w := add("CronJob", team(i), fmt.Sprintf("%s-%d", benchBatch[i%len(benchBatch)], i), benchJobsPerCronJob)
		w.app, w.verdict = benchNoApp, benchActive
	}
	for i := range pods / 5000 {
		w := add("Job", team(i), fmt.Sprintf("migrate-%d", i), 1)
		w.app, w.verdict = benchNoApp, benchActive
		c.standalone = append(c.standalone, len(c.workloads)-1)
	}
	for i := range pods / 1000 {
		add("Pod", team(i), fmt.Sprintf("debug-%d", i), 1)
	}
	for i := 0; next < pods; i++ {
		n := min(benchReplicas[i%len(benchReplicas)], pods-next)
		w := add("Deployment", team(i), fmt.Sprintf("%s-%d", benchApps[i%len(benchApps)], i), n)
		if i%4 == 0 {
			w.hpa = true
			c.hpas = append(c.hpas, len(c.workloads)-1)
		}
	}
	for k, w := range c.workloads {
		switch {
		case w.kind == "Deployment" || w.name == "node-exporter":
			c.services = append(c.services, benchService{w: k})
		case w.kind == "StatefulSet":
			c.services = append(c.services, benchService{w: k}, benchService{w: k, headless: true})
		}
	}
	c.podFields = benchFieldsJSON(map[string]any{
		"f:metadata": map[string]any{
			"f:annotations":     benchSet("checksum/config", "kubectl.kubernetes.io/default-container", "kubectl.kubernetes.io/restartedAt", "prometheus.io/path", "prometheus.io/port", "prometheus.io/scrape"),
			"f:generateName":    map[string]any{},
			"f:labels":          benchSet("app.kubernetes.io/component", "app.kubernetes.io/instance", "app.kubernetes.io/name", "app.kubernetes.io/part-of", "app.kubernetes.io/version", "pod-template-hash", "team"),
			"f:ownerReferences": map[string]any{".": map[string]any{}, `k:{"uid":"0b7c5c3e-0000-4000-8000-000000000000"}`: map[string]any{}},
		},
		"f:spec": map[string]any{
			"f:containers": map[string]any{
				`k:{"name":"app"}`:   benchContainerFields("POD_NAME", "POD_NAMESPACE", "POD_IP", "NODE_NAME", "GOMAXPROCS", "LOG_FORMAT", "OTEL_EXPORTER_OTLP_ENDPOINT", "DATABASE_PASSWORD"),
				`k:{"name":"proxy"}`: benchSet("args", "env", "image", "imagePullPolicy", "name", "ports", "readinessProbe", "resources", "securityContext", "volumeMounts"),
			},
			"f:dnsPolicy": map[string]any{}, "f:enableServiceLinks": map[string]any{}, "f:restartPolicy": map[string]any{},
			"f:schedulerName": map[string]any{}, "f:securityContext": benchSet("fsGroup", "runAsUser", "seccompProfile"),
			"f:serviceAccount": map[string]any{}, "f:serviceAccountName": map[string]any{}, "f:terminationGracePeriodSeconds": map[string]any{},
			"f:topologySpreadConstraints": map[string]any{},
			"f:volumes":                   map[string]any{`k:{"name":"config"}`: benchSet("configMap", "name"), `k:{"name":"tmp"}`: benchSet("emptyDir", "name")},
		},
	})
	c.podStatusFields = benchFieldsJSON(map[string]any{
		"f:status": map[string]any{
			"f:conditions": map[string]any{
				`k:{"type":"ContainersReady"}`:           benchSet("lastProbeTime", "lastTransitionTime", "status", "type"),
				`k:{"type":"Initialized"}`:               benchSet("lastProbeTime", "lastTransitionTime", "status", "type"),
				`k:{"type":"PodReadyToStartContainers"}`: benchSet("lastProbeTime", "lastTransitionTime", "status", "type"),
				`k:{"type":"Ready"}`:                     benchSet("lastProbeTime", "lastTransitionTime", "status", "type"),
			},
			"f:containerStatuses": map[string]any{}, "f:hostIP": map[string]any{}, "f:hostIPs": map[string]any{}, "f:phase": map[string]any{},
			"f:podIP": map[string]any{}, "f:podIPs": map[string]any{".": map[string]any{}, `k:{"ip":"10.0.0.1"}`: benchSet("ip")}, "f:startTime": map[string]any{},
		},
	})
	c.ctrlFields = benchFieldsJSON(map[string]any{
		"f:metadata": map[string]any{
			"f:annotations": benchSet("kubectl.kubernetes.io/last-applied-configuration"),
			"f:labels":      benchSet("app.kubernetes.io/instance", "app.kubernetes.io/managed-by", "app.kubernetes.io/name", "app.kubernetes.io/part-of", "team"),
		},
		"f:spec": map[string]any{
			"f:progressDeadlineSeconds": map[string]any{}, "f:replicas": map[string]any{}, "f:revisionHistoryLimit": map[string]any{},
			"f:selector": map[string]any{}, "f:strategy": benchSet("rollingUpdate", "type"),
			"f:template": map[string]any{
				"f:metadata": map[string]any{"f:annotations": benchSet("checksum/config", "prometheus.io/path", "prometheus.io/port", "prometheus.io/scrape"), "f:labels": benchSet("app.kubernetes.io/name", "team")},
				"f:spec": map[string]any{"f:containers": map[string]any{
					`k:{"name":"app"}`:   benchContainerFields("POD_NAME", "POD_NAMESPACE", "POD_IP", "NODE_NAME", "GOMAXPROCS", "LOG_FORMAT", "OTEL_EXPORTER_OTLP_ENDPOINT", "DATABASE_PASSWORD"),
					`k:{"name":"proxy"}`: benchContainerFields("POD_NAME", "POD_NAMESPACE", "INSTANCE_IP", "SERVICE_ACCOUNT", "PROXY_CONFIG", "ISTIO_META_WORKLOAD_NAME"),
				}},
			},
		},
	})
	c.svcFields = benchFieldsJSON(map[string]any{
		"f:metadata": map[string]any{
			"f:annotations": benchSet("kubectl.kubernetes.io/last-applied-configuration"),
			"f:labels":      benchSet("app.kubernetes.io/instance", "app.kubernetes.io/name", "app.kubernetes.io/part-of", "team"),
		},
		"f:spec": map[string]any{
			"f:internalTrafficPolicy": map[string]any{}, "f:sessionAffinity": map[string]any{}, "f:type": map[string]any{},
			"f:ports":    map[string]any{".": map[string]any{}, `k:{"port":80,"protocol":"TCP"}`: benchSet("name", "port", "protocol", "targetPort"), `k:{"port":9090,"protocol":"TCP"}`: benchSet("name", "port", "protocol", "targetPort")},
			"f:selector": map[string]any{},
		},
	})
	c.nodeFields = benchFieldsJSON(map[string]any{
		"f:metadata": map[string]any{
			"f:annotations": benchSet("alpha.kubernetes.io/provided-node-ip", "csi.volume.kubernetes.io/nodeid", "node.alpha.kubernetes.io/ttl", "volumes.kubernetes.io/controller-managed-attach-detach"),
			"f:labels":      benchSet("beta.kubernetes.io/arch", "beta.kubernetes.io/instance-type", "beta.kubernetes.io/os", "eks.amazonaws.com/capacityType", "eks.amazonaws.com/nodegroup", "kubernetes.io/arch", "kubernetes.io/hostname", "kubernetes.io/os", "node.kubernetes.io/instance-type", "topology.kubernetes.io/region", "topology.kubernetes.io/zone"),
		},
		"f:spec": benchSet("podCIDR", "podCIDRs", "providerID"),
		"f:status": map[string]any{
			"f:addresses": benchSet("InternalIP", "Hostname", "InternalDNS"), "f:allocatable": benchSet("cpu", "ephemeral-storage", "memory", "pods"),
			"f:capacity": benchSet("cpu", "ephemeral-storage", "memory", "pods"), "f:conditions": benchSet("DiskPressure", "MemoryPressure", "PIDPressure", "Ready"),
			"f:daemonEndpoints": map[string]any{}, "f:images": map[string]any{}, "f:nodeInfo": map[string]any{},
		},
	})
	return c
}

func benchSet(keys ...string) map[string]any {
	m := map[string]any{".": map[string]any{}}
	for _, k := range keys {
		m["f:"+k] = map[string]any{}
	}
	return m
}

func benchContainerFields(env ...string) map[string]any {
	envs := map[string]any{".": map[string]any{}}
	for _, e := range env {
		envs[`k:{"name":"`+e+`"}`] = benchSet("name", "value", "valueFrom")
	}
	m := benchSet("args", "image", "imagePullPolicy", "name", "resources", "securityContext", "terminationMessagePath", "terminationMessagePolicy", "volumeMounts")
	m["f:env"] = envs
	m["f:livenessProbe"] = benchSet("failureThreshold", "httpGet", "initialDelaySeconds", "periodSeconds", "successThreshold", "timeoutSeconds")
	m["f:readinessProbe"] = benchSet("failureThreshold", "httpGet", "periodSeconds", "successThreshold", "timeoutSeconds")
	m["f:ports"] = map[string]any{".": map[string]any{}, `k:{"containerPort":8080,"protocol":"TCP"}`: benchSet("containerPort", "name", "protocol")}
	return m
}

func benchFieldsJSON(m map[string]any) []byte {
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// workloadOfPod finds the workload of the pod with global index p.
func (c *benchCluster) workloadOfPod(p int) (*benchWorkload, int) {
	k := sort.Search(len(c.workloads), func(i int) bool { return c.workloads[i].firstPod > p }) - 1
	w := &c.workloads[k]
	return w, p - w.firstPod
}

// nodeOfPod spreads pods over the nodes; DaemonSet pods run one per node.
func (c *benchCluster) nodeOfPod(w *benchWorkload, p, j int) int {
	if w.kind == "DaemonSet" {
		return j
	}
	return int(uint64(p) * 2654435761 % uint64(c.nodes))
}

func (c *benchCluster) nodeName(i int) string {
	return fmt.Sprintf("ip-10-%d-%d-%d.eu-west-1.compute.internal", 16+i/65536, i/256%256, i%256)
}

// running says whether the pod is Running (CronJob pods have Succeeded).
func (w *benchWorkload) running() bool { return w.kind != "CronJob" && w.kind != "Job" }

// benchHash hashes strings and ints (and slices of them) with FNV-1a.
func benchHash(parts ...any) uint64 {
	h := uint64(14695981039346656037)
	var add func(p any)
	add = func(p any) {
		switch v := p.(type) {
		case string:
			for i := 0; i < len(v); i++ {
				h ^= uint64(v[i])
				h *= 1099511628211
			}
		case int:
			for i := 0; i < 8; i++ {
				h ^= uint64(v>>(8*i)) & 0xff
				h *= 1099511628211
			}
		case []any:
			for _, x := range v {
				add(x)
			}
		default:
			panic(fmt.Sprintf("benchHash: %T", p))
		}
		h ^= 0xff
		h *= 1099511628211
	}
	add(parts)
	return h
}

const benchAlnum = "bcdfghjklmnpqrstvwxz2456789"

func benchSuffix(n int, parts ...any) string {
	v := benchHash(parts...)
	b := make([]byte, n)
	for i := range b {
		b[i] = benchAlnum[v%uint64(len(benchAlnum))]
		v /= uint64(len(benchAlnum))
		if v == 0 {
			v = benchHash(i, parts)
		}
	}
	return string(b)
}

func benchUID(parts ...any) types.UID {
	a, b := benchHash(parts...), benchHash(parts, "uid")
	return types.UID(fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", a>>32, a>>16&0xffff, a&0xfff, b>>52, b&0xffffffffffff))
}

func benchHex(n int, parts ...any) string {
	var out []byte
	for i := 0; len(out) < n; i++ {
		out = strconv.AppendUint(out, benchHash(i, parts), 16)
	}
	return string(out[:n])
}

func (c *benchCluster) rsName(w *benchWorkload, rev int) string {
	return w.name + "-" + benchSuffix(10, w.ns, w.name, rev)
}

func (c *benchCluster) jobName(w *benchWorkload, j int) string {
	return fmt.Sprintf("%s-%d", w.name, 29000000+j*60)
}

var (
	benchQty   = map[string]resource.Quantity{}
	benchTrue  = true
	benchFalse = false
)

// benchQ returns a quantity parsed once, before the servers run concurrently.
func benchQ(s string) resource.Quantity {
	v, ok := benchQty[s]
	if !ok {
		panic("benchQ: add " + s + " to the list in init")
	}
	return v
}

func init() {
	for _, s := range []string{"100m", "250m", "500m", "1", "2", "4", "8", "16", "128Mi", "256Mi", "512Mi", "1Gi", "2Gi", "4Gi", "32Gi", "64Gi", "110", "100Gi", "7900m", "15800m", "30Gi", "60Gi", "95Gi"} {
		benchQty[s] = resource.MustParse(s)
	}
}

func (c *benchCluster) labels(w *benchWorkload) map[string]string {
	return map[string]string{
		"app.kubernetes.io/name": w.name, "app.kubernetes.io/instance": w.name + "-prod", "app.kubernetes.io/part-of": w.ns,
		"app.kubernetes.io/version": "1.42.0", "app.kubernetes.io/component": "server", "team": w.ns,
	}
}

func (c *benchCluster) meta(name, ns string, labels, annotations map[string]string, fields []byte, parts ...any) metav1.ObjectMeta {
	t := metav1.NewTime(c.created)
	return metav1.ObjectMeta{
		Name: name, Namespace: ns, UID: benchUID(parts...), ResourceVersion: strconv.FormatUint(benchHash(parts...)%90000000+1000, 10),
		CreationTimestamp: t, Labels: labels, Annotations: annotations, Generation: 3,
		ManagedFields: []metav1.ManagedFieldsEntry{{
			Manager: "kubectl-client-side-apply", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "apps/v1",
			Time: &t, FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: fields},
		}},
	}
}

func (c *benchCluster) template(w *benchWorkload) corev1.PodTemplateSpec {
	l := c.labels(w)
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: l, Annotations: map[string]string{
			"prometheus.io/scrape": "true", "prometheus.io/port": "9090", "prometheus.io/path": "/metrics",
			"checksum/config": benchHex(64, w.ns, w.name, "config"), "kubectl.kubernetes.io/restartedAt": "2025-05-28T09:14:03Z",
			"kubectl.kubernetes.io/default-container": "app",
		}},
		Spec: c.podSpec(w),
	}
}

func (c *benchCluster) podSpec(w *benchWorkload) corev1.PodSpec {
	k := benchHash(w.ns, w.name)
	cpu := []string{"100m", "250m", "500m", "1", "2"}[k%5]
	mem := []string{"128Mi", "256Mi", "512Mi", "1Gi", "2Gi"}[k/5%5]
	cpuLim := []string{"500m", "1", "2", "4", "4"}[k%5]
	memLim := []string{"256Mi", "512Mi", "1Gi", "2Gi", "4Gi"}[k/5%5]
	mounts := []corev1.VolumeMount{
		{Name: "config", MountPath: "/etc/app", ReadOnly: true},
		{Name: "tmp", MountPath: "/tmp"},
		{Name: "kube-api-access", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount", ReadOnly: true},
	}
	sc := &corev1.SecurityContext{
		RunAsNonRoot: &benchTrue, ReadOnlyRootFilesystem: &benchTrue, AllowPrivilegeEscalation: &benchFalse,
		Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
	field := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: path}}}
	}
	app := corev1.Container{
		Name:  "app",
		Image: fmt.Sprintf("123456789012.dkr.ecr.eu-west-1.amazonaws.com/%s/%s:1.42.%d", w.ns, w.name, k%90),
		Args:  []string{"--config=/etc/app/config.yaml", "--log-level=info", "--http-port=8080", "--metrics-port=9090"},
		Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}, {Name: "metrics", ContainerPort: 9090, Protocol: corev1.ProtocolTCP}},
		Env: []corev1.EnvVar{
			field("POD_NAME", "metadata.name"), field("POD_NAMESPACE", "metadata.namespace"), field("POD_IP", "status.podIP"), field("NODE_NAME", "spec.nodeName"),
			{Name: "GOMAXPROCS", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{ContainerName: "app", Resource: "limits.cpu", Divisor: benchQ("1")}}},
			{Name: "LOG_FORMAT", Value: "json"},
			{Name: "OTEL_EXPORTER_OTLP_ENDPOINT", Value: "http://otel-collector.observability.svc.cluster.local:4317"},
			{Name: "DATABASE_PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: w.name + "-db"}, Key: "password"}}},
		},
		EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: w.name + "-env"}}}},
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: benchQ(cpu), corev1.ResourceMemory: benchQ(mem)},
			Limits:   corev1.ResourceList{corev1.ResourceCPU: benchQ(cpuLim), corev1.ResourceMemory: benchQ(memLim)},
		},
		VolumeMounts: mounts,
		LivenessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http"), Scheme: corev1.URISchemeHTTP}},
			InitialDelaySeconds: 10, PeriodSeconds: 10, TimeoutSeconds: 1, SuccessThreshold: 1, FailureThreshold: 3},
		ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromString("http"), Scheme: corev1.URISchemeHTTP}},
			PeriodSeconds: 5, TimeoutSeconds: 1, SuccessThreshold: 1, FailureThreshold: 3},
		TerminationMessagePath: corev1.TerminationMessagePathDefault, TerminationMessagePolicy: corev1.TerminationMessageReadFile,
		ImagePullPolicy: corev1.PullIfNotPresent, SecurityContext: sc,
	}
	proxy := corev1.Container{
		Name:  "proxy",
		Image: "docker.io/istio/proxyv2:1.26.2",
		Args:  []string{"proxy", "sidecar", "--domain", "$(POD_NAMESPACE).svc.cluster.local", "--proxyLogLevel=warning", "--proxyComponentLogLevel=misc:error", "--log_output_level=default:info"},
		Ports: []corev1.ContainerPort{{Name: "http-envoy-prom", ContainerPort: 15090, Protocol: corev1.ProtocolTCP}},
		Env: []corev1.EnvVar{
			field("POD_NAME", "metadata.name"), field("POD_NAMESPACE", "metadata.namespace"), field("INSTANCE_IP", "status.podIP"),
			field("SERVICE_ACCOUNT", "spec.serviceAccountName"), {Name: "PROXY_CONFIG", Value: `{"holdApplicationUntilProxyStarts":true}`},
			{Name: "ISTIO_META_WORKLOAD_NAME", Value: w.name},
		},
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: benchQ("100m"), corev1.ResourceMemory: benchQ("128Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceCPU: benchQ("2"), corev1.ResourceMemory: benchQ("1Gi")},
		},
		VolumeMounts: mounts[2:],
		ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz/ready", Port: intstr.FromInt32(15021), Scheme: corev1.URISchemeHTTP}},
			InitialDelaySeconds: 1, PeriodSeconds: 15, TimeoutSeconds: 3, SuccessThreshold: 1, FailureThreshold: 4},
		TerminationMessagePath: corev1.TerminationMessagePathDefault, TerminationMessagePolicy: corev1.TerminationMessageReadFile,
		ImagePullPolicy: corev1.PullIfNotPresent, SecurityContext: sc,
	}
	grace, expiry := int64(30), int64(3607)
	spec := corev1.PodSpec{
		Containers: []corev1.Container{app, proxy},
		Volumes: []corev1.Volume{
			{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: w.name + "-config"}}}},
			{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			{Name: "kube-api-access", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{ExpirationSeconds: &expiry, Path: "token"}},
				{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"}, Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
				{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "namespace", FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}}}}},
			}}}},
		},
		RestartPolicy: corev1.RestartPolicyAlways, TerminationGracePeriodSeconds: &grace, DNSPolicy: corev1.DNSClusterFirst,
		ServiceAccountName: w.name, DeprecatedServiceAccount: w.name, SchedulerName: corev1.DefaultSchedulerName,
		SecurityContext: &corev1.PodSecurityContext{RunAsUser: ptrInt64(1000), FSGroup: ptrInt64(2000), SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
		Tolerations: []corev1.Toleration{
			{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptrInt64(300)},
			{Key: "node.kubernetes.io/unreachable", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptrInt64(300)},
		},
		TopologySpreadConstraints: []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: "topology.kubernetes.io/zone", WhenUnsatisfiable: corev1.ScheduleAnyway,
			LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": w.name}}}},
		EnableServiceLinks: &benchTrue,
	}
	if w.nativeSidecar {
		always := corev1.ContainerRestartPolicyAlways
		proxy.RestartPolicy = &always
		spec.Containers = spec.Containers[:1]
		spec.InitContainers = []corev1.Container{proxy}
	}
	return spec
}

func ptrInt64(v int64) *int64 { return &v }

// lastApplied is what kubectl apply leaves on every object it manages.
func (c *benchCluster) lastApplied(w *benchWorkload) map[string]string {
	t := c.template(w)
	t.Annotations = map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": "9090", "prometheus.io/path": "/metrics"}
	b, err := json.Marshal(map[string]any{
		"apiVersion": "apps/v1", "kind": w.kind,
		"metadata": map[string]any{"name": w.name, "namespace": w.ns, "labels": c.labels(w)},
		"spec":     map[string]any{"template": t},
	})
	if err != nil {
		panic(err)
	}
	return map[string]string{"kubectl.kubernetes.io/last-applied-configuration": string(b)}
}

func (c *benchCluster) Namespace(i int) *corev1.Namespace {
	name := c.namespaces[i]
	ns := &corev1.Namespace{
		ObjectMeta: c.meta(name, "", map[string]string{"kubernetes.io/metadata.name": name, "team": name, "cost-center": fmt.Sprintf("cc-%d", i%40), "environment": "production"}, nil, c.ctrlFields, "ns", name),
		Spec:       corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{corev1.FinalizerKubernetes}},
		Status:     corev1.NamespaceStatus{Phase: corev1.NamespaceActive},
	}
	return ns
}

func (c *benchCluster) Node(i int) *corev1.Node {
	name := c.nodeName(i)
	it := benchInstances[i%len(benchInstances)]
	zone := benchZones[i%len(benchZones)]
	capacityType := "ON_DEMAND"
	if i%3 == 0 {
		capacityType = "SPOT"
	}
	t := metav1.NewTime(c.created)
	n := &corev1.Node{
		ObjectMeta: c.meta(name, "", map[string]string{
			"beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/instance-type": it.typ, "beta.kubernetes.io/os": "linux",
			"eks.amazonaws.com/capacityType": capacityType, "eks.amazonaws.com/nodegroup": "ng-" + it.typ, "eks.amazonaws.com/nodegroup-image": "ami-0a1b2c3d4e5f67890",
			"failure-domain.beta.kubernetes.io/region": "eu-west-1", "failure-domain.beta.kubernetes.io/zone": zone,
			"kubernetes.io/arch": "amd64", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
			"node.kubernetes.io/instance-type": it.typ, "topology.kubernetes.io/region": "eu-west-1", "topology.kubernetes.io/zone": zone,
			"topology.ebs.csi.aws.com/zone": zone, "k8s.io/cloud-provider-aws": benchHex(32, "cluster"),
		}, map[string]string{
			"alpha.kubernetes.io/provided-node-ip":                   fmt.Sprintf("10.%d.%d.%d", 16+i/65536, i/256%256, i%256),
			"csi.volume.kubernetes.io/nodeid":                        fmt.Sprintf(`{"ebs.csi.aws.com":"i-0%s"}`, benchHex(16, "i", i)),
			"node.alpha.kubernetes.io/ttl":                           "0",
			"volumes.kubernetes.io/controller-managed-attach-detach": "true",
		}, c.nodeFields, "node", i),
		Spec: corev1.NodeSpec{
			ProviderID: fmt.Sprintf("aws:///%s/i-0%s", zone, benchHex(16, "i", i)),
			PodCIDR:    fmt.Sprintf("10.%d.%d.0/24", 100+i/256, i%256), PodCIDRs: []string{fmt.Sprintf("10.%d.%d.0/24", 100+i/256, i%256)},
		},
		Status: corev1.NodeStatus{
			Capacity: corev1.ResourceList{corev1.ResourceCPU: benchQ(it.cpu), corev1.ResourceMemory: benchQ(it.mem), corev1.ResourcePods: benchQ("110"), corev1.ResourceEphemeralStorage: benchQ("100Gi")},
			Allocatable: corev1.ResourceList{
				corev1.ResourceCPU: benchQ(map[string]string{"8": "7900m", "16": "15800m"}[it.cpu]), corev1.ResourceMemory: benchQ(map[string]string{"32Gi": "30Gi", "64Gi": "60Gi"}[it.mem]),
				corev1.ResourcePods: benchQ("110"), corev1.ResourceEphemeralStorage: benchQ("95Gi"),
			},
			Phase: corev1.NodeRunning,
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: fmt.Sprintf("10.%d.%d.%d", 16+i/65536, i/256%256, i%256)},
				{Type: corev1.NodeHostName, Address: name}, {Type: corev1.NodeInternalDNS, Address: name},
			},
			DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: 10250}},
			NodeInfo: corev1.NodeSystemInfo{
				MachineID: benchHex(32, "m", i), SystemUUID: string(benchUID("sys", i)), BootID: string(benchUID("boot", i)),
				KernelVersion: "6.1.134-152.225.amzn2023.x86_64", OSImage: "Amazon Linux 2023.7.20250609", ContainerRuntimeVersion: "containerd://1.7.27",
				KubeletVersion: "v1.33.1-eks-b9364f6", OperatingSystem: "linux", Architecture: "amd64",
			},
		},
	}
	for _, ct := range []corev1.NodeConditionType{corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure, corev1.NodeReady} {
		st, reason, msg := corev1.ConditionFalse, "KubeletHasSufficient"+string(ct), "kubelet has sufficient resources"
		if ct == corev1.NodeReady {
			st, reason, msg = corev1.ConditionTrue, "KubeletReady", "kubelet is posting ready status"
		}
		n.Status.Conditions = append(n.Status.Conditions, corev1.NodeCondition{Type: ct, Status: st, LastHeartbeatTime: t, LastTransitionTime: t, Reason: reason, Message: msg})
	}
	// Nodes list the images they hold: the bulk of a real Node.
	for j := range 40 {
		img := fmt.Sprintf("123456789012.dkr.ecr.eu-west-1.amazonaws.com/%s/%s", benchApps[(i+j)%len(benchApps)], benchApps[j%len(benchApps)])
		n.Status.Images = append(n.Status.Images, corev1.ContainerImage{
			Names:     []string{img + "@sha256:" + benchHex(64, "img", i, j), fmt.Sprintf("%s:1.42.%d", img, j)},
			SizeBytes: int64(20_000_000 + j*1_234_567),
		})
	}
	return n
}

func (c *benchCluster) ownerRef(kind, name string, parts ...any) []metav1.OwnerReference {
	api := "apps/v1"
	if kind == "Job" || kind == "CronJob" {
		api = "batch/v1"
	}
	return []metav1.OwnerReference{{APIVersion: api, Kind: kind, Name: name, UID: benchUID(parts...), Controller: &benchTrue, BlockOwnerDeletion: &benchTrue}}
}

func (c *benchCluster) workload(kind string, i int) *benchWorkload {
	return &c.workloads[c.byKind[kind][i]]
}

func (c *benchCluster) Deployment(i int) *appsv1.Deployment {
	w := c.workload("Deployment", i)
	r, hist := int32(w.replicas), int32(benchOldReplicaSets)
	d := &appsv1.Deployment{
		ObjectMeta: c.meta(w.name, w.ns, c.labels(w), c.lastApplied(w), c.ctrlFields, w.kind, w.ns, w.name),
		Spec: appsv1.DeploymentSpec{
			Replicas: &r, RevisionHistoryLimit: &hist, Template: c.template(w),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": w.name}},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{
				MaxUnavailable: &intstr.IntOrString{Type: intstr.String, StrVal: "25%"}, MaxSurge: &intstr.IntOrString{Type: intstr.String, StrVal: "25%"}}},
		},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 3, Replicas: r, UpdatedReplicas: r, ReadyReplicas: r, AvailableReplicas: r},
	}
	d.Annotations["deployment.kubernetes.io/revision"] = strconv.Itoa(benchOldReplicaSets + 1)
	t := metav1.NewTime(c.created)
	d.Status.Conditions = []appsv1.DeploymentCondition{
		{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, LastUpdateTime: t, LastTransitionTime: t, Reason: "MinimumReplicasAvailable", Message: "Deployment has minimum availability."},
		{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, LastUpdateTime: t, LastTransitionTime: t, Reason: "NewReplicaSetAvailable", Message: fmt.Sprintf("ReplicaSet %q has successfully progressed.", c.rsName(w, 0))},
	}
	return d
}

// ReplicaSet i is revision i%4 of Deployment i/4; revision 0 is current.
func (c *benchCluster) ReplicaSet(i int) *appsv1.ReplicaSet {
	w := c.workload("Deployment", i/(benchOldReplicaSets+1))
	rev := i % (benchOldReplicaSets + 1)
	r := int32(0)
	if rev == 0 {
		r = int32(w.replicas)
	}
	name := c.rsName(w, rev)
	l := c.labels(w)
	l["pod-template-hash"] = name[len(w.name)+1:]
	tmpl := c.template(w)
	tmpl.Labels = l
	rs := &appsv1.ReplicaSet{
		ObjectMeta: c.meta(name, w.ns, l, map[string]string{
			"deployment.kubernetes.io/desired-replicas": strconv.Itoa(w.replicas), "deployment.kubernetes.io/max-replicas": strconv.Itoa(w.replicas + 1),
			"deployment.kubernetes.io/revision": strconv.Itoa(benchOldReplicaSets + 1 - rev),
		}, c.ctrlFields, "ReplicaSet", w.ns, name),
		Spec:   appsv1.ReplicaSetSpec{Replicas: &r, Template: tmpl, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": w.name, "pod-template-hash": l["pod-template-hash"]}}},
		Status: appsv1.ReplicaSetStatus{Replicas: r, FullyLabeledReplicas: r, ReadyReplicas: r, AvailableReplicas: r, ObservedGeneration: 3},
	}
	rs.OwnerReferences = c.ownerRef("Deployment", w.name, w.kind, w.ns, w.name)
	return rs
}

func (c *benchCluster) StatefulSet(i int) *appsv1.StatefulSet {
	w := c.workload("StatefulSet", i)
	r := int32(w.replicas)
	return &appsv1.StatefulSet{
		ObjectMeta: c.meta(w.name, w.ns, c.labels(w), c.lastApplied(w), c.ctrlFields, w.kind, w.ns, w.name),
		Spec: appsv1.StatefulSetSpec{
			Replicas: &r, Template: c.template(w), ServiceName: w.name + "-headless", PodManagementPolicy: appsv1.OrderedReadyPodManagement,
			Selector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": w.name}},
			UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "data"},
				Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: benchQ("100Gi")}}},
			}},
		},
		Status: appsv1.StatefulSetStatus{Replicas: r, ReadyReplicas: r, CurrentReplicas: r, UpdatedReplicas: r, AvailableReplicas: r, ObservedGeneration: 3,
			CurrentRevision: w.name + "-" + benchSuffix(10, w.name), UpdateRevision: w.name + "-" + benchSuffix(10, w.name)},
	}
}

func (c *benchCluster) DaemonSet(i int) *appsv1.DaemonSet {
	w := c.workload("DaemonSet", i)
	n := int32(c.nodes)
	return &appsv1.DaemonSet{
		ObjectMeta: c.meta(w.name, w.ns, c.labels(w), c.lastApplied(w), c.ctrlFields, w.kind, w.ns, w.name),
		Spec: appsv1.DaemonSetSpec{
			Template: c.template(w), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": w.name}},
			UpdateStrategy: appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType},
		},
		Status: appsv1.DaemonSetStatus{CurrentNumberScheduled: n, DesiredNumberScheduled: n, NumberReady: n, NumberAvailable: n, UpdatedNumberScheduled: n, ObservedGeneration: 3},
	}
}

func (c *benchCluster) CronJob(i int) *batchv1.CronJob {
	w := c.workload("CronJob", i)
	one, hist := int32(1), int32(benchJobsPerCronJob)
	tmpl := c.template(w)
	tmpl.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
	last := metav1.NewTime(c.created.Add(time.Hour))
	return &batchv1.CronJob{
		ObjectMeta: c.meta(w.name, w.ns, c.labels(w), c.lastApplied(w), c.ctrlFields, w.kind, w.ns, w.name),
		Spec: batchv1.CronJobSpec{
			Schedule: "0 * * * *", ConcurrencyPolicy: batchv1.ForbidConcurrent, Suspend: &benchFalse, SuccessfulJobsHistoryLimit: &hist, FailedJobsHistoryLimit: &one,
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Parallelism: &one, Completions: &one, BackoffLimit: ptrInt32(6), Template: tmpl}},
		},
		Status: batchv1.CronJobStatus{LastScheduleTime: &last, LastSuccessfulTime: &last},
	}
}

func ptrInt32(v int32) *int32 { return &v }

// Job i is job i%3 of CronJob i/3, then the Jobs without a CronJob.
func (c *benchCluster) Job(i int) *batchv1.Job {
	var w *benchWorkload
	var name string
	var owner []metav1.OwnerReference
	if cj := len(c.byKind["CronJob"]) * benchJobsPerCronJob; i < cj {
		w = c.workload("CronJob", i/benchJobsPerCronJob)
		name = c.jobName(w, i%benchJobsPerCronJob)
		owner = c.ownerRef("CronJob", w.name, w.kind, w.ns, w.name)
	} else {
		w = &c.workloads[c.standalone[i-cj]]
		name = w.name
	}
	one := int32(1)
	tmpl := c.template(w)
	tmpl.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
	t := metav1.NewTime(c.created.Add(time.Hour))
	j := &batchv1.Job{
		ObjectMeta: c.meta(name, w.ns, c.labels(w), nil, c.ctrlFields, "Job", w.ns, name),
		Spec:       batchv1.JobSpec{Parallelism: &one, Completions: &one, BackoffLimit: ptrInt32(6), Template: tmpl},
		Status: batchv1.JobStatus{StartTime: &t, CompletionTime: &t, Succeeded: 1, Ready: ptrInt32(0), Terminating: ptrInt32(0), UncountedTerminatedPods: &batchv1.UncountedTerminatedPods{},
			Conditions: []batchv1.JobCondition{
				{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, LastProbeTime: t, LastTransitionTime: t, Reason: "CompletionsReached", Message: "Reached expected number of succeeded pods"},
				{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastProbeTime: t, LastTransitionTime: t, Reason: "CompletionsReached", Message: "Reached expected number of succeeded pods"},
			}},
	}
	j.OwnerReferences = owner
	return j
}

func (c *benchCluster) jobs() int {
	return len(c.byKind["CronJob"])*benchJobsPerCronJob + len(c.standalone)
}

func (c *benchCluster) HPA(i int) *autoscalingv2.HorizontalPodAutoscaler {
	w := &c.workloads[c.hpas[i]]
	util := int32(70)
	return &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: c.meta(w.name, w.ns, c.labels(w), nil, c.ctrlFields, "HPA", w.ns, w.name),
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: w.name},
			MinReplicas:    ptrInt32(1), MaxReplicas: int32(w.replicas * 3),
			Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
				Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: &util}}}},
		},
		Status: autoscalingv2.HorizontalPodAutoscalerStatus{CurrentReplicas: int32(w.replicas), DesiredReplicas: int32(w.replicas)},
	}
}

// benchPodIDs are the fields that tell apart the pods of one workload.
type benchPodIDs struct {
	name, uid, rv, node, hostIP, podIP, appID, proxyID string
}

func (c *benchCluster) podIDs(p int) (benchPodIDs, *benchWorkload, int) {
	w, j := c.workloadOfPod(p)
	node := c.nodeOfPod(w, p, j)
	var name string
	switch w.kind {
	case "Deployment":
		name = c.rsName(w, 0) + "-" + benchSuffix(5, p)
	case "StatefulSet":
		name = fmt.Sprintf("%s-%d", w.name, j)
	case "CronJob":
		name = c.jobName(w, j) + "-" + benchSuffix(5, p)
	case "DaemonSet", "Job":
		name = w.name + "-" + benchSuffix(5, p)
	default:
		name = w.name
	}
	return benchPodIDs{
		name: name, uid: string(benchUID("Pod", w.ns, name)), rv: strconv.FormatUint(benchHash("Pod", w.ns, name)%90000000+1000, 10),
		node: c.nodeName(node), hostIP: fmt.Sprintf("10.%d.%d.%d", 16+node/65536, node/256%256, node%256),
		podIP:   fmt.Sprintf("10.%d.%d.%d", 100+p/65536, p/256%256, p%256),
		appID:   "containerd://" + benchHex(64, "c", p, "app"),
		proxyID: "containerd://" + benchHex(64, "c", p, "proxy"),
	}, w, j
}

// Pod p is pod p-firstPod of the workload it falls in.
func (c *benchCluster) Pod(p int) *corev1.Pod {
	ids, w, j := c.podIDs(p)
	tmpl := c.template(w)
	name := ids.name
	var owner []metav1.OwnerReference
	switch w.kind {
	case "Deployment":
		rs := c.rsName(w, 0)
		owner = c.ownerRef("ReplicaSet", rs, "ReplicaSet", w.ns, rs)
		tmpl.Labels["pod-template-hash"] = rs[len(w.name)+1:]
	case "StatefulSet":
		owner = c.ownerRef("StatefulSet", w.name, w.kind, w.ns, w.name)
		tmpl.Labels["statefulset.kubernetes.io/pod-name"] = name
	case "DaemonSet":
		owner = c.ownerRef("DaemonSet", w.name, w.kind, w.ns, w.name)
	case "CronJob":
		job := c.jobName(w, j)
		owner = c.ownerRef("Job", job, "Job", w.ns, job)
	case "Job":
		owner = c.ownerRef("Job", w.name, "Job", w.ns, w.name)
	}
	meta := c.meta(name, w.ns, tmpl.Labels, tmpl.Annotations, c.podFields, "Pod", w.ns, name)
	meta.UID, meta.ResourceVersion = types.UID(ids.uid), ids.rv
	switch {
	case w.kind == "StatefulSet":
		meta.GenerateName = w.name + "-"
	case owner != nil:
		meta.GenerateName = name[:len(name)-5]
	}
	meta.OwnerReferences = owner
	meta.Generation = 1
	meta.ManagedFields[0].Manager, meta.ManagedFields[0].APIVersion = "kube-controller-manager", "v1"
	t := *meta.ManagedFields[0].Time
	meta.ManagedFields = append(meta.ManagedFields, metav1.ManagedFieldsEntry{
		Manager: "kubelet", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "v1", Time: &t,
		FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: c.podStatusFields}, Subresource: "status",
	})
	spec := tmpl.Spec
	spec.NodeName = ids.node
	if !w.running() {
		spec.RestartPolicy = corev1.RestartPolicyOnFailure
	}
	pod := &corev1.Pod{ObjectMeta: meta, Spec: spec}
	st := &pod.Status
	st.Phase, st.QOSClass = corev1.PodRunning, corev1.PodQOSBurstable
	st.HostIP, st.PodIP = ids.hostIP, ids.podIP
	st.HostIPs, st.PodIPs = []corev1.HostIP{{IP: ids.hostIP}}, []corev1.PodIP{{IP: ids.podIP}}
	st.StartTime = &t
	ready := corev1.ConditionTrue
	if !w.running() {
		st.Phase, ready = corev1.PodSucceeded, corev1.ConditionFalse
	}
	for _, ct := range []corev1.PodConditionType{"PodReadyToStartContainers", corev1.PodInitialized, corev1.PodReady, corev1.ContainersReady, corev1.PodScheduled} {
		s := corev1.ConditionTrue
		if ct == corev1.PodReady || ct == corev1.ContainersReady {
			s = ready
		}
		st.Conditions = append(st.Conditions, corev1.PodCondition{Type: ct, Status: s, LastTransitionTime: t})
	}
	status := func(ct corev1.Container) corev1.ContainerStatus {
		id := ids.appID
		if ct.Name == "proxy" {
			id = ids.proxyID
		}
		cs := corev1.ContainerStatus{
			Name: ct.Name, Image: ct.Image, ImageID: ct.Image + "@sha256:" + benchHex(64, "img", ct.Image),
			ContainerID: id, Ready: w.running(), Started: &benchTrue, RestartCount: int32(w.firstPod % 3),
			Resources: &corev1.ResourceRequirements{Requests: ct.Resources.Requests, Limits: ct.Resources.Limits},
		}
		if w.running() {
			cs.State.Running = &corev1.ContainerStateRunning{StartedAt: t}
		} else {
			cs.State.Terminated = &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed", StartedAt: t, FinishedAt: t, ContainerID: cs.ContainerID}
		}
		for _, m := range ct.VolumeMounts {
			cs.VolumeMounts = append(cs.VolumeMounts, corev1.VolumeMountStatus{Name: m.Name, MountPath: m.MountPath, ReadOnly: m.ReadOnly})
		}
		return cs
	}
	for _, ct := range spec.Containers {
		st.ContainerStatuses = append(st.ContainerStatuses, status(ct))
	}
	for _, ct := range spec.InitContainers {
		st.InitContainerStatuses = append(st.InitContainerStatuses, status(ct))
	}
	return pod
}

func (c *benchCluster) Service(i int) *corev1.Service {
	s := c.services[i]
	w := &c.workloads[s.w]
	name := w.name
	svc := &corev1.Service{
		ObjectMeta: c.meta(name, w.ns, c.labels(w), nil, c.svcFields, "Service", w.ns, name),
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app.kubernetes.io/name": w.name, "app.kubernetes.io/instance": w.name + "-prod"},
			Ports: []corev1.ServicePort{
				{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromString("http")},
				{Name: "metrics", Protocol: corev1.ProtocolTCP, Port: 9090, TargetPort: intstr.FromString("metrics")},
			},
			Type: corev1.ServiceTypeClusterIP, SessionAffinity: corev1.ServiceAffinityNone,
			IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol}, IPFamilyPolicy: ptrTo(corev1.IPFamilyPolicySingleStack),
			InternalTrafficPolicy: ptrTo(corev1.ServiceInternalTrafficPolicyCluster),
		},
	}
	ip := fmt.Sprintf("172.20.%d.%d", i/256%256, i%256)
	svc.Spec.ClusterIP, svc.Spec.ClusterIPs = ip, []string{ip}
	if s.headless {
		svc.Name = name + "-headless"
		svc.Spec.ClusterIP, svc.Spec.ClusterIPs = corev1.ClusterIPNone, []string{corev1.ClusterIPNone}
	}
	applied, err := json.Marshal(map[string]any{
		"apiVersion": "v1", "kind": "Service", "metadata": map[string]any{"name": svc.Name, "namespace": w.ns, "labels": svc.Labels},
		"spec": map[string]any{"selector": svc.Spec.Selector, "ports": svc.Spec.Ports},
	})
	if err != nil {
		panic(err)
	}
	svc.Annotations = map[string]string{"kubectl.kubernetes.io/last-applied-configuration": string(applied)}
	return svc
}

func ptrTo[T any](v T) *T { return &v }
