// Package series builds Prometheus time series in the label layout that the real exporters
// emit: cAdvisor through kubelet's /metrics/cadvisor, kube-state-metrics, kubelet's
// /metrics/probes, OpenCost and an application's own request counter. Every product query
// is written against that layout, so the test harness (internal/testenv) and the demo
// (exporter/demo) both build their data here; a label spelt differently from the real
// exporter would make a query match nothing in a real cluster while still passing against
// made-up data. series_test.go compares each builder with real scrapes.
//
// The package is pure: it neither imports testing nor does I/O beyond WriteOpenMetrics.
package series

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Sample is one value of a series at one instant.
type Sample struct {
	T time.Time
	V float64
}

// Series is one time series with the metadata needed to write it as OpenMetrics.
type Series struct {
	Name    string // sample name as stored in Prometheus, e.g. container_cpu_usage_seconds_total
	Type    string // "counter" or "gauge"
	Help    string
	Labels  map[string]string
	Samples []Sample
}

// Series.Type values; OpenMetrics' other types are not needed by the product's queries.
const (
	TypeCounter = "counter"
	TypeGauge   = "gauge"
)

// Generate evaluates f at start, start+step, ... up to and including end.
//
// Keep start aligned to whole seconds (time.Truncate) when exact PromQL results matter:
// OpenMetrics timestamps are seconds, and a fractional second can come back 1 ms off after
// Prometheus parses it as a float.
func Generate(start, end time.Time, step time.Duration, f func(t time.Time) float64) []Sample {
	if step <= 0 {
		panic(fmt.Sprintf("series.Generate: step must be positive, got %s", step))
	}
	var out []Sample
	for t := start; !t.After(end); t = t.Add(step) {
		out = append(out, Sample{T: t, V: f(t)})
	}
	return out
}

// GenerateCounter returns the cumulative values of a counter whose per-second rate over the
// interval ending at each sample is perSecond(t). It starts at 0 at start. Because every
// interval is integrated exactly, rate(x[w]) over a window in which perSecond is constant
// returns that constant, which lets tests assert exact PromQL results.
// It panics on a negative rate: counters only reset, they never go down, and a reset is
// better modelled explicitly by the caller.
func GenerateCounter(start, end time.Time, step time.Duration, perSecond func(t time.Time) float64) []Sample {
	samples := Generate(start, end, step, perSecond)
	total := 0.0
	for i := range samples {
		r := samples[i].V
		if r < 0 || math.IsNaN(r) {
			panic(fmt.Sprintf("series.GenerateCounter: rate at %s is %v; counters cannot decrease", samples[i].T.Format(time.RFC3339), r))
		}
		if i > 0 {
			total += r * samples[i].T.Sub(samples[i-1].T).Seconds()
		}
		samples[i].V = total
	}
	return samples
}

// Const returns a value function for Generate that always returns v.
func Const(v float64) func(time.Time) float64 {
	return func(time.Time) float64 { return v }
}

// WithLabels returns copies of series with extra merged into their labels (extra wins). Use it
// to add the target labels that scraping would attach, e.g. job="kubelet" or
// job="kube-state-metrics", since series loaded without a scrape (promtool blocks, the demo's
// TSDB) carry only the labels written.
func WithLabels(series []Series, extra map[string]string) []Series {
	out := make([]Series, len(series))
	for i, s := range series {
		labels := make(map[string]string, len(s.Labels)+len(extra))
		for k, v := range s.Labels {
			labels[k] = v
		}
		for k, v := range extra {
			labels[k] = v
		}
		s.Labels = labels
		out[i] = s
	}
	return out
}

// PodRef identifies a container in a pod. Only Namespace, Pod, Container and Node are
// needed; the other fields default to values derived deterministically from the names, so
// that cAdvisor, kube-state-metrics and kubelet series built from the same PodRef agree on the
// pod UID and so join the way real data does.
type PodRef struct {
	Namespace string
	Pod       string
	Container string
	Node      string

	UID           string // pod UID (KSM uid, kubelet pod_uid, part of the cAdvisor cgroup id)
	ContainerID   string // 64 hex digits: cAdvisor name and last element of id
	SandboxID     string // 64 hex digits of the pause container, on which cAdvisor reports pod network
	Image         string // default docker.io/library/busybox:1.36
	QOSClass      string // Guaranteed, Burstable (default) or BestEffort: selects the cgroup path
	PodIP         string
	HostIP        string // defaults to the node's derived InternalIP
	PriorityClass string
	HostNetwork   bool
}

// pauseImage is what cAdvisor reports as image for the sandbox cgroup in the Kubernetes
// 1.35 sample this package mirrors.
const pauseImage = "registry.k8s.io/pause:3.10.1"

func derivedHex(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "/")))
	return hex.EncodeToString(sum[:])
}

func derivedIP(prefix string, parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "/")))
	return fmt.Sprintf("%s.%d.%d", prefix, sum[0], 1+sum[1]%254)
}

// derivedUUID formats a derived hash as a Kubernetes object UID.
func derivedUUID(parts ...string) string {
	h := derivedHex(parts...)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func (r PodRef) uid() string {
	if r.UID != "" {
		return r.UID
	}
	return derivedUUID("uid", r.Namespace, r.Pod)
}

// PodUID is the pod UID that every builder puts on ref's series: ref.UID or the one derived
// from the names. Kubernetes objects built for the same pod should carry it, so that the
// cluster and its metrics agree.
func PodUID(ref PodRef) string { return ref.uid() }

func (r PodRef) containerID() string {
	if r.ContainerID != "" {
		return r.ContainerID
	}
	return derivedHex("container", r.Namespace, r.Pod, r.Container)
}

func (r PodRef) sandboxID() string {
	if r.SandboxID != "" {
		return r.SandboxID
	}
	return derivedHex("sandbox", r.Namespace, r.Pod)
}

func (r PodRef) image() string {
	if r.Image != "" {
		return r.Image
	}
	return "docker.io/library/busybox:1.36"
}

func (r PodRef) hostIP() string {
	if r.HostIP != "" {
		return r.HostIP
	}
	return NodeRef{Name: r.Node}.internalIP()
}

func (r PodRef) podIP() string {
	if r.PodIP != "" {
		return r.PodIP
	}
	if r.HostNetwork {
		return r.hostIP()
	}
	return derivedIP("10.244", "pod", r.Namespace, r.Pod)
}

// podCgroup is the pod's cgroup path with the cgroupfs driver, as in the sample: guaranteed
// pods sit directly under /kubepods, the others under their QoS class.
func (r PodRef) podCgroup() string {
	switch strings.ToLower(r.QOSClass) {
	case "guaranteed":
		return "/kubepods/pod" + r.uid()
	case "besteffort":
		return "/kubepods/besteffort/pod" + r.uid()
	default:
		return "/kubepods/burstable/pod" + r.uid()
	}
}

// cadvisorContainerLabels are the labels kubelet's /metrics/cadvisor puts on a container
// cgroup's series.
func (r PodRef) cadvisorContainerLabels() map[string]string {
	id := r.containerID()
	return map[string]string{
		"container": r.Container,
		"id":        r.podCgroup() + "/" + id,
		"image":     r.image(),
		"name":      id,
		"namespace": r.Namespace,
		"pod":       r.Pod,
	}
}

// ContainerCPUUsageSeconds is cAdvisor's container_cpu_usage_seconds_total for the container
// cgroup. cumulative must be cumulative CPU seconds (see GenerateCounter).
func ContainerCPUUsageSeconds(ref PodRef, cumulative []Sample) Series {
	l := ref.cadvisorContainerLabels()
	l["cpu"] = "total"
	return Series{Name: "container_cpu_usage_seconds_total", Type: TypeCounter,
		Help: "Cumulative cpu time consumed in seconds.", Labels: l, Samples: cumulative}
}

// ContainerMemoryWorkingSet is cAdvisor's container_memory_working_set_bytes for the container
// cgroup.
func ContainerMemoryWorkingSet(ref PodRef, bytes []Sample) Series {
	return Series{Name: "container_memory_working_set_bytes", Type: TypeGauge,
		Help: "Current working set in bytes.", Labels: ref.cadvisorContainerLabels(), Samples: bytes}
}

// ContainerNetworkReceiveBytes is cAdvisor's container_network_receive_bytes_total for the
// pod's eth0. cAdvisor reports pod network on the sandbox (pause) cgroup, so container is ""
// and image is the pause image; ref.Container is ignored.
func ContainerNetworkReceiveBytes(ref PodRef, cumulative []Sample) Series {
	sb := ref.sandboxID()
	return Series{Name: "container_network_receive_bytes_total", Type: TypeCounter,
		Help: "Cumulative count of bytes received",
		Labels: map[string]string{
			"container": "",
			"id":        ref.podCgroup() + "/" + sb,
			"image":     pauseImage,
			"interface": "eth0",
			"name":      sb,
			"namespace": ref.Namespace,
			"pod":       ref.Pod,
		}, Samples: cumulative}
}

// ContainerCPUCFSThrottledPeriods is cAdvisor's container_cpu_cfs_throttled_periods_total for
// the container cgroup (only emitted by cAdvisor for containers with a CPU limit).
func ContainerCPUCFSThrottledPeriods(ref PodRef, cumulative []Sample) Series {
	return Series{Name: "container_cpu_cfs_throttled_periods_total", Type: TypeCounter,
		Help: "Number of throttled period intervals.", Labels: ref.cadvisorContainerLabels(), Samples: cumulative}
}

// ContainerCPUCFSPeriods is cAdvisor's container_cpu_cfs_periods_total for the container cgroup
// (only emitted for containers with a CPU limit): the denominator of the throttled ratio.
func ContainerCPUCFSPeriods(ref PodRef, cumulative []Sample) Series {
	return Series{Name: "container_cpu_cfs_periods_total", Type: TypeCounter,
		Help: "Number of elapsed enforcement period intervals.", Labels: ref.cadvisorContainerLabels(), Samples: cumulative}
}

// ContainerOOMEvents is cAdvisor's container_oom_events_total for the container cgroup.
func ContainerOOMEvents(ref PodRef, cumulative []Sample) Series {
	return Series{Name: "container_oom_events_total", Type: TypeCounter,
		Help: "Count of out of memory events observed for the container", Labels: ref.cadvisorContainerLabels(), Samples: cumulative}
}

var nonLabelChars = regexp.MustCompile(`[^a-zA-Z0-9_]`)

// ksmResourceLabels returns kube-state-metrics' resource and unit labels for a Kubernetes
// resource name: the name is sanitised (nvidia.com/gpu -> nvidia_com_gpu) and the unit
// follows KSM's rules (cpu in cores, memory and storage in bytes, extended resources as
// integers).
func ksmResourceLabels(resource string) (string, string) {
	unit := "integer"
	switch {
	case resource == "cpu":
		unit = "core"
	case resource == "memory", resource == "storage", resource == "ephemeral-storage",
		strings.HasPrefix(resource, "hugepages-"), strings.HasPrefix(resource, "attachable-volumes-"):
		unit = "byte"
	}
	return nonLabelChars.ReplaceAllString(resource, "_"), unit
}

func ksmContainerResource(name, help string, ref PodRef, resource string, samples []Sample) Series {
	res, unit := ksmResourceLabels(resource)
	return Series{Name: name, Type: TypeGauge, Help: help,
		Labels: map[string]string{
			"namespace": ref.Namespace,
			"pod":       ref.Pod,
			"uid":       ref.uid(),
			"container": ref.Container,
			"node":      ref.Node,
			"resource":  res,
			"unit":      unit,
		}, Samples: samples}
}

// KubePodContainerResourceRequests is kube-state-metrics' kube_pod_container_resource_requests.
// resource is the Kubernetes resource name ("cpu", "memory", "nvidia.com/gpu"); values are in
// KSM units (cores, bytes).
func KubePodContainerResourceRequests(ref PodRef, resource string, values []Sample) Series {
	return ksmContainerResource("kube_pod_container_resource_requests",
		"[STABLE] The number of requested request resource by a container. It is recommended to use the kube_pod_resource_requests metric exposed by kube-scheduler instead, as it is more precise.",
		ref, resource, values)
}

// KubePodContainerResourceLimits is kube-state-metrics' kube_pod_container_resource_limits.
func KubePodContainerResourceLimits(ref PodRef, resource string, values []Sample) Series {
	return ksmContainerResource("kube_pod_container_resource_limits",
		"[STABLE] The number of requested limit resource by a container. It is recommended to use the kube_pod_resource_limits metric exposed by kube-scheduler instead, as it is more precise.",
		ref, resource, values)
}

// OwnerRef is a Kubernetes owner reference as kube-state-metrics reports it. The zero value
// means "no owner", which KSM reports with empty owner labels.
type OwnerRef struct {
	Kind          string // e.g. ReplicaSet, StatefulSet, DaemonSet, Job, Node
	Name          string
	NotController bool // owner_is_controller="false"; almost never true in practice
}

func (o OwnerRef) labels(prefix string, l map[string]string) map[string]string {
	kindKey, nameKey := prefix+"_kind", prefix+"_name"
	if o.Kind == "" {
		l[kindKey], l[nameKey] = "", ""
		if prefix == "owner" {
			l["owner_is_controller"] = ""
		}
		return l
	}
	l[kindKey], l[nameKey] = o.Kind, o.Name
	if prefix == "owner" {
		l["owner_is_controller"] = strconv.FormatBool(!o.NotController)
	}
	return l
}

// KubePodOwner is kube-state-metrics' kube_pod_owner (value 1 while the pod exists).
func KubePodOwner(ref PodRef, owner OwnerRef, values []Sample) Series {
	return Series{Name: "kube_pod_owner", Type: TypeGauge, Help: "[STABLE] Information about the Pod's owner.",
		Labels: owner.labels("owner", map[string]string{
			"namespace": ref.Namespace,
			"pod":       ref.Pod,
			"uid":       ref.uid(),
		}), Samples: values}
}

// KubeReplicaSetOwner is kube-state-metrics' kube_replicaset_owner, the link from a ReplicaSet
// to its Deployment.
func KubeReplicaSetOwner(namespace, replicaSet string, owner OwnerRef, values []Sample) Series {
	return Series{Name: "kube_replicaset_owner", Type: TypeGauge, Help: "[STABLE] Information about the ReplicaSet's owner.",
		Labels: owner.labels("owner", map[string]string{
			"namespace":  namespace,
			"replicaset": replicaSet,
		}), Samples: values}
}

// KubeJobOwner is kube-state-metrics' kube_job_owner, the link from a Job to its CronJob. A
// Job created by hand has no owner, which KSM reports with empty owner labels (OwnerRef{}).
func KubeJobOwner(namespace, job string, owner OwnerRef, values []Sample) Series {
	return Series{Name: "kube_job_owner", Type: TypeGauge, Help: "[STABLE] Information about the Job's owner.",
		Labels: owner.labels("owner", map[string]string{
			"namespace": namespace,
			"job_name":  job,
		}), Samples: values}
}

// PodPhases are the pod phases in the order kube-state-metrics writes kube_pod_status_phase.
var PodPhases = []string{"Pending", "Succeeded", "Failed", "Unknown", "Running"}

// KubePodStatusPhase is kube-state-metrics' kube_pod_status_phase for one phase: 1 while the
// pod is in it, else 0. KSM writes all five phases of every pod; KubePodStatusPhases builds
// them together.
func KubePodStatusPhase(ref PodRef, phase string, values []Sample) Series {
	return Series{Name: "kube_pod_status_phase", Type: TypeGauge, Help: "[STABLE] The pods current phase.",
		Labels: map[string]string{
			"namespace": ref.Namespace,
			"pod":       ref.Pod,
			"uid":       ref.uid(),
			"phase":     phase,
		}, Samples: values}
}

// KubePodStatusPhases returns the five kube_pod_status_phase series of a pod whose phase at t
// is phase(t), sampled like Generate. It panics if phase returns anything but one of
// PodPhases, since kube-state-metrics cannot report that: all five series would be 0.
func KubePodStatusPhases(ref PodRef, start, end time.Time, step time.Duration, phase func(time.Time) string) []Series {
	current := Generate(start, end, step, func(t time.Time) float64 {
		p := phase(t)
		i := slices.Index(PodPhases, p)
		if i < 0 {
			panic(fmt.Sprintf("series.KubePodStatusPhases: phase %q at %s is not one of %v", p, t.Format(time.RFC3339), PodPhases))
		}
		return float64(i)
	})
	out := make([]Series, len(PodPhases))
	for i, p := range PodPhases {
		samples := make([]Sample, len(current))
		for j, c := range current {
			samples[j] = Sample{T: c.T}
			if int(c.V) == i {
				samples[j].V = 1
			}
		}
		out[i] = KubePodStatusPhase(ref, p, samples)
	}
	return out
}

// KubePodInfo is kube-state-metrics' kube_pod_info. createdBy is usually the same as the pod's
// controlling owner.
func KubePodInfo(ref PodRef, createdBy OwnerRef, values []Sample) Series {
	return Series{Name: "kube_pod_info", Type: TypeGauge, Help: "[STABLE] Information about pod.",
		Labels: createdBy.labels("created_by", map[string]string{
			"namespace":      ref.Namespace,
			"pod":            ref.Pod,
			"uid":            ref.uid(),
			"host_ip":        ref.hostIP(),
			"pod_ip":         ref.podIP(),
			"node":           ref.Node,
			"priority_class": ref.PriorityClass,
			"host_network":   strconv.FormatBool(ref.HostNetwork),
		}), Samples: values}
}

// NodeRef describes a node for KubeNodeInfo. Empty fields default to the values of the
// Kubernetes 1.35 kind node in the sample (InternalIP and SystemUUID are derived from Name).
type NodeRef struct {
	Name                    string
	InternalIP              string
	ProviderID              string // e.g. aws:///eu-west-1a/i-0123456789abcdef0; empty on kind
	KubeletVersion          string
	ContainerRuntimeVersion string
	OSImage                 string
	KernelVersion           string
	PodCIDR                 string
	SystemUUID              string
}

func (n NodeRef) internalIP() string {
	if n.InternalIP != "" {
		return n.InternalIP
	}
	if n.Name == "" {
		return ""
	}
	return derivedIP("192.168", "node", n.Name)
}

func seriesOrDefault(v, def string) string {
	if v != "" {
		return v
	}
	return def
}

// KubeNodeInfo is kube-state-metrics' kube_node_info.
func KubeNodeInfo(node NodeRef, values []Sample) Series {
	return Series{Name: "kube_node_info", Type: TypeGauge, Help: "[STABLE] Information about a cluster node.",
		Labels: map[string]string{
			"node":                      node.Name,
			"kernel_version":            seriesOrDefault(node.KernelVersion, "6.12.54-linuxkit"),
			"os_image":                  seriesOrDefault(node.OSImage, "Debian GNU/Linux 12 (bookworm)"),
			"container_runtime_version": seriesOrDefault(node.ContainerRuntimeVersion, "containerd://2.2.1"),
			"kubelet_version":           seriesOrDefault(node.KubeletVersion, "v1.35.0"),
			"kubeproxy_version":         "deprecated",
			"provider_id":               node.ProviderID,
			"pod_cidr":                  seriesOrDefault(node.PodCIDR, "10.244.0.0/24"),
			"system_uuid":               seriesOrDefault(node.SystemUUID, derivedHex("system-uuid", node.Name)[:32]),
			"internal_ip":               node.internalIP(),
		}, Samples: values}
}

// KubePodContainerStatusLastTerminatedReason is kube-state-metrics'
// kube_pod_container_status_last_terminated_reason; reason is e.g. OOMKilled, Error or
// Completed.
func KubePodContainerStatusLastTerminatedReason(ref PodRef, reason string, values []Sample) Series {
	return Series{Name: "kube_pod_container_status_last_terminated_reason", Type: TypeGauge,
		Help: "Describes the last reason the container was in terminated state.",
		Labels: map[string]string{
			"namespace": ref.Namespace,
			"pod":       ref.Pod,
			"uid":       ref.uid(),
			"container": ref.Container,
			"reason":    reason,
		}, Samples: values}
}

// KubePodContainerStatusRestartsTotal is kube-state-metrics'
// kube_pod_container_status_restarts_total.
func KubePodContainerStatusRestartsTotal(ref PodRef, cumulative []Sample) Series {
	return Series{Name: "kube_pod_container_status_restarts_total", Type: TypeCounter,
		Help: "[STABLE] The number of container restarts per container.",
		Labels: map[string]string{
			"namespace": ref.Namespace,
			"pod":       ref.Pod,
			"uid":       ref.uid(),
			"container": ref.Container,
		}, Samples: cumulative}
}

// ProberProbeTotal is kubelet's prober_probe_total from /metrics/probes. probeType is
// Liveness, Readiness or Startup; result is successful, failed or unknown.
func ProberProbeTotal(ref PodRef, probeType, result string, cumulative []Sample) Series {
	return Series{Name: "prober_probe_total", Type: TypeCounter,
		Help: "[ALPHA] Cumulative number of a liveness, readiness or startup probe for a container by result.",
		Labels: map[string]string{
			"container":  ref.Container,
			"namespace":  ref.Namespace,
			"pod":        ref.Pod,
			"pod_uid":    ref.uid(),
			"probe_type": probeType,
			"result":     result,
		}, Samples: cumulative}
}

// OpenCostNode is a node as OpenCost's node price metrics label it. Empty fields are
// written empty, as OpenCost does when the cloud provider does not say; UID defaults to one
// derived from Name.
type OpenCostNode struct {
	Name         string // node; OpenCost writes it to instance as well
	InstanceType string // e.g. m6i.xlarge
	Region       string
	ProviderID   string
	Arch         string // e.g. amd64
	UID          string // the Node object's UID
}

// NodeUID is the node UID that OpenCost's series of n carry: n.UID or the one derived from
// the name. A Node object built for the same node should carry it.
func NodeUID(n OpenCostNode) string {
	if n.UID != "" {
		return n.UID
	}
	return derivedUUID("node-uid", n.Name)
}

func openCostNodeSeries(name, help string, n OpenCostNode, values []Sample) Series {
	return Series{Name: name, Type: TypeGauge, Help: help,
		Labels: map[string]string{
			"instance":      n.Name,
			"node":          n.Name,
			"instance_type": n.InstanceType,
			"region":        n.Region,
			"provider_id":   n.ProviderID,
			"arch":          n.Arch,
			"uid":           NodeUID(n),
		}, Samples: values}
}

// NodeCPUHourlyCost is OpenCost's node_cpu_hourly_cost, dollars per vCPU-hour. OpenCost sets
// instance to the node name; a scrape without honor_labels replaces it with the target.
func NodeCPUHourlyCost(n OpenCostNode, values []Sample) Series {
	return openCostNodeSeries("node_cpu_hourly_cost", "node_cpu_hourly_cost hourly cost for each cpu on this node", n, values)
}

// NodeRAMHourlyCost is OpenCost's node_ram_hourly_cost, dollars per GiB-hour.
func NodeRAMHourlyCost(n OpenCostNode, values []Sample) Series {
	return openCostNodeSeries("node_ram_hourly_cost", "node_ram_hourly_cost hourly cost for each gb of ram on this node", n, values)
}

// NodeGPUHourlyCost is OpenCost's node_gpu_hourly_cost, dollars per GPU-hour.
func NodeGPUHourlyCost(n OpenCostNode, values []Sample) Series {
	return openCostNodeSeries("node_gpu_hourly_cost", "node_gpu_hourly_cost hourly cost for each gpu on this node", n, values)
}

// HTTPRequestsTotal is an application's http_requests_total. Applications disagree on label
// names (handler or path, code or status), so the caller supplies all of them.
func HTTPRequestsTotal(labels map[string]string, cumulative []Sample) Series {
	l := make(map[string]string, len(labels))
	for k, v := range labels {
		l[k] = v
	}
	return Series{Name: "http_requests_total", Type: TypeCounter, Help: "Total number of HTTP requests.",
		Labels: l, Samples: cumulative}
}

var (
	metricNameRE = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelNameRE  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// omFamilyName is the OpenMetrics MetricFamily name: counters are declared without the _total
// suffix that their samples carry.
func omFamilyName(s Series) (string, error) {
	if s.Type == TypeCounter {
		base, ok := strings.CutSuffix(s.Name, "_total")
		if !ok || base == "" {
			return "", fmt.Errorf("counter %q: OpenMetrics counter samples must end in _total", s.Name)
		}
		return base, nil
	}
	return s.Name, nil
}

// WriteOpenMetrics writes series in the OpenMetrics text format that
// `promtool tsdb create-blocks-from openmetrics` reads: one HELP/TYPE block per metric family
// with all of its series together (the parser rejects a family that reappears), labels
// sorted, samples sorted by time with timestamps in seconds, and a final "# EOF".
// Families appear in the order of their first series.
func WriteOpenMetrics(w io.Writer, series []Series) error {
	type family struct {
		name, typ, help string
		series          []Series
	}
	var order []*family
	byName := map[string]*family{}
	for _, s := range series {
		if !metricNameRE.MatchString(s.Name) {
			return fmt.Errorf("invalid metric name %q", s.Name)
		}
		if s.Type != TypeCounter && s.Type != TypeGauge {
			return fmt.Errorf("metric %q: type %q is not %q or %q", s.Name, s.Type, TypeCounter, TypeGauge)
		}
		name, err := omFamilyName(s)
		if err != nil {
			return err
		}
		f := byName[name]
		if f == nil {
			f = &family{name: name, typ: s.Type, help: s.Help}
			byName[name] = f
			order = append(order, f)
		} else if f.typ != s.Type || f.help != s.Help {
			return fmt.Errorf("metric family %q: series disagree on type or help (%s %q vs %s %q)", name, f.typ, f.help, s.Type, s.Help)
		}
		f.series = append(f.series, s)
	}

	bw := bufio.NewWriterSize(w, 1<<16)
	var line []byte
	for _, f := range order {
		if f.help != "" {
			fmt.Fprintf(bw, "# HELP %s %s\n", f.name, escapeOM(f.help))
		}
		fmt.Fprintf(bw, "# TYPE %s %s\n", f.name, f.typ)
		seen := map[string]bool{}
		for _, s := range f.series {
			labels, err := formatLabels(s.Labels)
			if err != nil {
				return fmt.Errorf("metric %q: %w", s.Name, err)
			}
			if seen[labels] {
				return fmt.Errorf("metric %q: duplicate series %s", s.Name, labels)
			}
			seen[labels] = true
			samples := slices.Clone(s.Samples)
			sort.SliceStable(samples, func(i, j int) bool { return samples[i].T.Before(samples[j].T) })
			// Histories reach millions of lines, so avoid fmt per sample.
			prefix := s.Name + labels + " "
			for i, smp := range samples {
				if i > 0 && !samples[i-1].T.Before(smp.T) {
					return fmt.Errorf("metric %q%s: two samples at %s", s.Name, labels, smp.T.Format(time.RFC3339Nano))
				}
				line = append(line[:0], prefix...)
				line = appendValue(line, smp.V)
				line = append(line, ' ')
				line = appendTimestamp(line, smp.T)
				line = append(line, '\n')
				if _, err := bw.Write(line); err != nil {
					return err
				}
			}
		}
	}
	bw.WriteString("# EOF\n")
	return bw.Flush()
}

var omEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)

func escapeOM(s string) string { return omEscaper.Replace(s) }

func formatLabels(labels map[string]string) (string, error) {
	if len(labels) == 0 {
		return "", nil
	}
	names := make([]string, 0, len(labels))
	for k := range labels {
		if !labelNameRE.MatchString(k) || strings.HasPrefix(k, "__") {
			return "", fmt.Errorf("invalid label name %q", k)
		}
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `%s="%s"`, k, escapeOM(labels[k]))
	}
	b.WriteByte('}')
	return b.String(), nil
}

func appendValue(b []byte, v float64) []byte {
	switch {
	case math.IsNaN(v):
		return append(b, "NaN"...)
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

// appendTimestamp writes whole seconds without a fraction so that they survive Prometheus'
// float parsing exactly; sub-second times keep millisecond precision.
func appendTimestamp(b []byte, t time.Time) []byte {
	ms := t.UnixMilli()
	if ms%1000 == 0 {
		return strconv.AppendInt(b, ms/1000, 10)
	}
	if ms < 0 {
		b, ms = append(b, '-'), -ms
	}
	b = strconv.AppendInt(b, ms/1000, 10)
	frac := strconv.AppendInt([]byte{'.'}, 1000+ms%1000, 10) // ".1xyz": keeps leading zeros
	frac = append(frac[:1], frac[2:]...)
	for frac[len(frac)-1] == '0' {
		frac = frac[:len(frac)-1]
	}
	return append(b, frac...)
}

// TimeRange returns the earliest and latest sample times and the sample count.
func TimeRange(series []Series) (minT, maxT time.Time, n int) {
	for _, s := range series {
		for _, smp := range s.Samples {
			if n == 0 || smp.T.Before(minT) {
				minT = smp.T
			}
			if n == 0 || smp.T.After(maxT) {
				maxT = smp.T
			}
			n++
		}
	}
	return minT, maxT, n
}
