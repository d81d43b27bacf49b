package webhook

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func f(v float64) *float64 { return &v }

func rl(kv ...string) corev1.ResourceList {
	l := corev1.ResourceList{}
	for i := 0; i < len(kv); i += 2 {
		l[corev1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return l
}

func container(name string, req, lim corev1.ResourceList) corev1.Container {
	return corev1.Container{Name: name, Image: "x", Resources: corev1.ResourceRequirements{Requests: req, Limits: lim}}
}

func limitRange(typ corev1.LimitType, min, max, ratio corev1.ResourceList) *corev1.LimitRange {
	return &corev1.LimitRange{Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{Type: typ, Min: min, Max: max, MaxLimitRequestRatio: ratio}}}}
}

func quota(hard, used corev1.ResourceList) *corev1.ResourceQuota {
	return &corev1.ResourceQuota{Spec: corev1.ResourceQuotaSpec{Hard: hard}, Status: corev1.ResourceQuotaStatus{Hard: hard, Used: used}}
}

var defaultPolicy = Policy{ChangeThreshold: 0.1, MemoryMargin: 0.1, LimitPolicy: LimitKeepRatio}

const mi = 1 << 20

func TestDecide(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	sidecar := container("proxy", rl("cpu", "1", "memory", "512Mi"), nil)
	sidecar.RestartPolicy = &always
	initC := container("migrate", rl("cpu", "1", "memory", "512Mi"), nil)
	small := Target{CPURequest: f(0.25), MemoryRequest: f(128 * mi)}

	tests := []struct {
		name        string
		init        []corev1.Container
		containers  []corev1.Container
		targets     map[string]Target
		podLevel    *corev1.ResourceRequirements // spec.resources
		podTargets  map[corev1.ResourceName]float64
		wantPod     *Resources // the pod-level resources after
		lrs         []*corev1.LimitRange
		quotas      []*corev1.ResourceQuota
		policy      func(*Policy)
		wantReason  string
		want        map[string]Resources // container → expected new resources
		wantQoSSame bool
	}{
		{
			name:       "burstable without limits: requests only",
			containers: []corev1.Container{container("app", rl("cpu", "1", "memory", "1Gi"), nil)},
			targets:    map[string]Target{"app": small},
			want:       map[string]Resources{"app": {Requests: map[string]string{"cpu": "250m", "memory": "128Mi"}}},
		},
		{
			name:       "keep_ratio scales limits with requests",
			containers: []corev1.Container{container("app", rl("cpu", "1", "memory", "1Gi"), rl("cpu", "2", "memory", "2Gi"))},
			targets:    map[string]Target{"app": small},
			want: map[string]Resources{"app": {
				Requests: map[string]string{"cpu": "250m", "memory": "128Mi"},
				Limits:   map[string]string{"cpu": "500m", "memory": "256Mi"},
			}},
		},
		{
			name:       "guaranteed stays guaranteed",
			containers: []corev1.Container{container("app", rl("cpu", "1", "memory", "1Gi"), rl("cpu", "1", "memory", "1Gi"))},
			targets:    map[string]Target{"app": {CPURequest: f(0.25), CPULimit: f(1), MemoryRequest: f(128 * mi), MemoryLimit: f(512 * mi)}},
			policy:     func(p *Policy) { p.LimitPolicy = LimitRecommended },
			want: map[string]Resources{"app": {
				Requests: map[string]string{"cpu": "250m", "memory": "128Mi"},
				Limits:   map[string]string{"cpu": "250m", "memory": "128Mi"},
			}},
		},
		{
			name:       "best effort is left alone",
			containers: []corev1.Container{container("app", nil, nil)},
			targets:    map[string]Target{"app": small},
			wantReason: "best_effort",
		},
		{
			name:       "recommended limits",
			containers: []corev1.Container{container("app", rl("cpu", "1", "memory", "1Gi"), rl("cpu", "2", "memory", "2Gi"))},
			targets:    map[string]Target{"app": {CPURequest: f(0.25), CPULimit: f(0.75), MemoryRequest: f(128 * mi), MemoryLimit: f(300 * mi)}},
			policy:     func(p *Policy) { p.LimitPolicy = LimitRecommended },
			want: map[string]Resources{"app": {
				Requests: map[string]string{"cpu": "250m", "memory": "128Mi"},
				Limits:   map[string]string{"cpu": "750m", "memory": "300Mi"},
			}},
		},
		{
			name:       "unchanged limits cap the request",
			containers: []corev1.Container{container("app", rl("cpu", "100m", "memory", "64Mi"), rl("cpu", "200m", "memory", "1Gi"))},
			targets:    map[string]Target{"app": {CPURequest: f(0.5), MemoryRequest: f(128 * mi)}},
			policy:     func(p *Policy) { p.LimitPolicy = LimitUnchanged },
			want: map[string]Resources{"app": {
				Requests: map[string]string{"cpu": "200m", "memory": "128Mi"},
				Limits:   map[string]string{"cpu": "200m", "memory": "1Gi"},
			}},
		},
		{
			name:       "memory never below peak times margin",
			containers: []corev1.Container{container("app", rl("cpu", "1", "memory", "1Gi"), nil)},
			targets:    map[string]Target{"app": {MemoryRequest: f(100 * mi), MemoryPeak: f(400 * mi)}},
			want:       map[string]Resources{"app": {Requests: map[string]string{"cpu": "1", "memory": "440Mi"}}},
		},
		{
			name:       "below the change threshold",
			containers: []corev1.Container{container("app", rl("cpu", "1", "memory", "1Gi"), nil)},
			targets:    map[string]Target{"app": {CPURequest: f(0.95), MemoryRequest: f(1000 * mi)}},
			wantReason: "below_threshold",
		},
		{
			name:       "one resource over the threshold, the other not",
			containers: []corev1.Container{container("app", rl("cpu", "1", "memory", "1Gi"), nil)},
			targets:    map[string]Target{"app": {CPURequest: f(0.5), MemoryRequest: f(1000 * mi)}},
			want:       map[string]Resources{"app": {Requests: map[string]string{"cpu": "500m", "memory": "1Gi"}}},
		},
		{
			name:       "LimitRange min raises the request",
			containers: []corev1.Container{container("app", rl("cpu", "1", "memory", "1Gi"), nil)},
			targets:    map[string]Target{"app": {CPURequest: f(0.01), MemoryRequest: f(16 * mi)}},
			lrs:        []*corev1.LimitRange{limitRange(corev1.LimitTypeContainer, rl("cpu", "100m", "memory", "64Mi"), nil, nil)},
			want:       map[string]Resources{"app": {Requests: map[string]string{"cpu": "100m", "memory": "64Mi"}}},
		},
		{
			name:       "LimitRange max caps the request and limit",
			containers: []corev1.Container{container("app", rl("cpu", "1", "memory", "1Gi"), rl("cpu", "2", "memory", "2Gi"))},
			targets:    map[string]Target{"app": {CPURequest: f(0.5), MemoryRequest: f(3 << 30)}},
			lrs:        []*corev1.LimitRange{limitRange(corev1.LimitTypeContainer, nil, rl("memory", "2Gi"), nil)},
			want: map[string]Resources{"app": {
				Requests: map[string]string{"cpu": "500m", "memory": "2Gi"},
				Limits:   map[string]string{"cpu": "1", "memory": "2Gi"},
			}},
		},
		{
			name:       "LimitRange max below the memory floor keeps memory",
			containers: []corev1.Container{container("app", rl("cpu", "1", "memory", "1Gi"), nil)},
			targets:    map[string]Target{"app": {CPURequest: f(0.5), MemoryRequest: f(100 * mi), MemoryPeak: f(900 * mi)}},
			lrs:        []*corev1.LimitRange{limitRange(corev1.LimitTypeContainer, nil, rl("memory", "512Mi"), nil)},
			want:       map[string]Resources{"app": {Requests: map[string]string{"cpu": "500m", "memory": "1Gi"}}},
		},
		{
			// Found by FuzzDecide: clamping to the kept 7m limit would put the
			// request under the LimitRange min.
			name:       "kept limit under the LimitRange min leaves the resource alone",
			containers: []corev1.Container{container("app", rl("cpu", "7m", "memory", "64Mi"), rl("cpu", "7m", "memory", "1Gi"))},
			targets:    map[string]Target{"app": {CPURequest: f(0.5), MemoryRequest: f(128 * mi)}},
			lrs:        []*corev1.LimitRange{limitRange(corev1.LimitTypeContainer, rl("cpu", "33m"), nil, nil)},
			policy:     func(p *Policy) { p.LimitPolicy = LimitUnchanged },
			want: map[string]Resources{"app": {
				Requests: map[string]string{"cpu": "7m", "memory": "128Mi"},
				Limits:   map[string]string{"cpu": "7m", "memory": "1Gi"},
			}},
		},
		{
			name:       "LimitRange ratio caps the limit",
			containers: []corev1.Container{container("app", rl("cpu", "1", "memory", "1Gi"), rl("cpu", "4", "memory", "1Gi"))},
			targets:    map[string]Target{"app": {CPURequest: f(0.5)}},
			lrs:        []*corev1.LimitRange{limitRange(corev1.LimitTypeContainer, nil, nil, rl("cpu", "2"))},
			want: map[string]Resources{"app": {
				Requests: map[string]string{"cpu": "500m", "memory": "1Gi"},
				Limits:   map[string]string{"cpu": "1", "memory": "1Gi"},
			}},
		},
		{
			// 300m each is under the Pod item's minimum, their sum is not.
			name:       "pod LimitRange items bound the pod's sum, not each container",
			containers: []corev1.Container{container("app", rl("cpu", "1", "memory", "1Gi"), nil), container("log", rl("cpu", "1"), nil)},
			targets:    map[string]Target{"app": {CPURequest: f(0.3)}, "log": {CPURequest: f(0.3)}},
			lrs:        []*corev1.LimitRange{limitRange(corev1.LimitTypePod, rl("cpu", "500m"), nil, nil)},
			want: map[string]Resources{
				"app": {Requests: map[string]string{"cpu": "300m", "memory": "1Gi"}},
				"log": {Requests: map[string]string{"cpu": "300m"}},
			},
		},
		{
			name:       "sidecars and init containers skipped by default",
			init:       []corev1.Container{initC, sidecar},
			containers: []corev1.Container{container("app", rl("cpu", "1", "memory", "1Gi"), nil)},
			targets:    map[string]Target{"app": small, "proxy": small, "migrate": small},
			want:       map[string]Resources{"app": {Requests: map[string]string{"cpu": "250m", "memory": "128Mi"}}},
		},
		{
			name:       "sidecars applied when asked, init containers not",
			init:       []corev1.Container{initC, sidecar},
			containers: []corev1.Container{container("app", rl("cpu", "1", "memory", "1Gi"), nil)},
			targets:    map[string]Target{"app": small, "proxy": small, "migrate": small},
			policy:     func(p *Policy) { p.SidecarContainers = true },
			want: map[string]Resources{
				"app":   {Requests: map[string]string{"cpu": "250m", "memory": "128Mi"}},
				"proxy": {Requests: map[string]string{"cpu": "250m", "memory": "128Mi"}},
			},
		},
		{
			name:       "init containers applied when asked",
			init:       []corev1.Container{initC},
			containers: []corev1.Container{container("app", rl("cpu", "1", "memory", "1Gi"), nil)},
			targets:    map[string]Target{"migrate": small},
			policy:     func(p *Policy) { p.InitContainers = true },
			want:       map[string]Resources{"migrate": {Requests: map[string]string{"cpu": "250m", "memory": "128Mi"}}},
		},
		{
			name:       "container without recommendation untouched",
			containers: []corev1.Container{container("app", rl("cpu", "1", "memory", "1Gi"), nil), container("log", rl("cpu", "1"), nil)},
			targets:    map[string]Target{"app": small},
			want:       map[string]Resources{"app": {Requests: map[string]string{"cpu": "250m", "memory": "128Mi"}}},
		},
		{
			name:       "no target for any container",
			containers: []corev1.Container{container("app", rl("cpu", "1"), nil)},
			targets:    map[string]Target{"other": small},
			wantReason: "no_recommendation",
		},
		{
			name:       "missing data for one resource",
			containers: []corev1.Container{container("app", rl("cpu", "1", "memory", "1Gi"), nil)},
			targets:    map[string]Target{"app": {CPURequest: f(0.25)}},
			want:       map[string]Resources{"app": {Requests: map[string]string{"cpu": "250m", "memory": "1Gi"}}},
		},
		{
			name:       "nonsense targets ignored",
			containers: []corev1.Container{container("app", rl("cpu", "1", "memory", "1Gi"), nil)},
			targets:    map[string]Target{"app": {CPURequest: f(-1), MemoryRequest: f(0)}},
			wantReason: "below_threshold",
		},
		{
			name: "burstable pod that would become guaranteed is left alone",
			containers: []corev1.Container{
				container("app", rl("cpu", "1", "memory", "1Gi"), rl("cpu", "500m", "memory", "1Gi")),
			},
			targets:    map[string]Target{"app": {CPURequest: f(0.5)}},
			policy:     func(p *Policy) { p.LimitPolicy = LimitUnchanged },
			wantReason: "qos_change",
		},
		{
			// The pod's CPU request (200m) is what the scheduler reserves;
			// containers requesting 250m in all would make the pod invalid.
			name:       "pod-level CPU request: CPU stays, memory moves",
			containers: []corev1.Container{container("app", rl("cpu", "100m", "memory", "1Gi"), nil), container("log", rl("cpu", "100m"), nil)},
			targets:    map[string]Target{"app": small, "log": {CPURequest: f(0.5)}},
			podLevel:   &corev1.ResourceRequirements{Requests: rl("cpu", "200m")},
			want:       map[string]Resources{"app": {Requests: map[string]string{"cpu": "100m", "memory": "128Mi"}}},
		},
		{
			// keep_ratio would raise the memory limit above the pod's.
			name:       "pod-level memory limit: memory stays",
			containers: []corev1.Container{container("app", rl("cpu", "1", "memory", "64Mi"), rl("memory", "128Mi"))},
			targets:    map[string]Target{"app": {CPURequest: f(0.25), MemoryRequest: f(128 * mi)}},
			podLevel:   &corev1.ResourceRequirements{Limits: rl("memory", "128Mi")},
			want: map[string]Resources{"app": {
				Requests: map[string]string{"cpu": "250m", "memory": "64Mi"},
				Limits:   map[string]string{"memory": "128Mi"},
			}},
		},
		{
			name:       "pod-level CPU and memory: nothing moves",
			containers: []corev1.Container{container("app", rl("cpu", "1", "memory", "1Gi"), nil)},
			targets:    map[string]Target{"app": small},
			podLevel:   &corev1.ResourceRequirements{Requests: rl("cpu", "2", "memory", "2Gi"), Limits: rl("cpu", "2", "memory", "2Gi")},
			wantReason: "pod_level_resources",
		},
		{
			name:       "pod-level CPU, memory below threshold",
			containers: []corev1.Container{container("app", rl("cpu", "1", "memory", "128Mi"), nil)},
			targets:    map[string]Target{"app": small},
			podLevel:   &corev1.ResourceRequirements{Limits: rl("cpu", "2")},
			wantReason: "pod_level_resources",
		},
		{
			// Two containers at 250m make 500m, under the Pod item's 600m
			// minimum that the pod's 2 cores met.
			name:       "pod LimitRange minimum on the sum",
			containers: []corev1.Container{container("app", rl("cpu", "1", "memory", "1Gi"), nil), container("log", rl("cpu", "1", "memory", "1Gi"), nil)},
			targets:    map[string]Target{"app": small, "log": small},
			lrs:        []*corev1.LimitRange{limitRange(corev1.LimitTypePod, rl("cpu", "600m"), nil, nil)},
			wantReason: "limit_range",
		},
		{
			name:       "pod LimitRange maximum on the limits' sum",
			containers: []corev1.Container{container("app", rl("cpu", "1"), rl("cpu", "1")), container("log", rl("cpu", "100m"), rl("cpu", "1"))},
			targets:    map[string]Target{"log": {CPURequest: f(0.3)}},
			lrs:        []*corev1.LimitRange{limitRange(corev1.LimitTypePod, nil, rl("cpu", "3500m"), nil)},
			wantReason: "limit_range",
		},
		{
			name:       "pod LimitRange met by the new sums",
			containers: []corev1.Container{container("app", rl("cpu", "1", "memory", "1Gi"), nil), container("log", rl("cpu", "1", "memory", "1Gi"), nil)},
			targets:    map[string]Target{"app": small, "log": small},
			lrs:        []*corev1.LimitRange{limitRange(corev1.LimitTypePod, rl("cpu", "500m", "memory", "256Mi"), nil, nil)},
			want: map[string]Resources{
				"app": {Requests: map[string]string{"cpu": "250m", "memory": "128Mi"}},
				"log": {Requests: map[string]string{"cpu": "250m", "memory": "128Mi"}},
			},
		},
		{
			// 1.9 used + 250m is over the 2 cores: the pod asking 100m fit.
			name:       "quota without room for a raise",
			containers: []corev1.Container{container("app", rl("cpu", "100m", "memory", "1Gi"), nil)},
			targets:    map[string]Target{"app": small},
			quotas:     []*corev1.ResourceQuota{quota(rl("requests.cpu", "2"), rl("requests.cpu", "1900m"))},
			wantReason: "resource_quota",
		},
		{
			name:       "quota with room for a raise",
			containers: []corev1.Container{container("app", rl("cpu", "100m", "memory", "1Gi"), nil)},
			targets:    map[string]Target{"app": small},
			quotas:     []*corev1.ResourceQuota{quota(rl("requests.cpu", "2"), rl("requests.cpu", "1750m"))},
			want:       map[string]Resources{"app": {Requests: map[string]string{"cpu": "250m", "memory": "128Mi"}}},
		},
		{
			name:       "full quota, lower requests",
			containers: []corev1.Container{container("app", rl("cpu", "1", "memory", "1Gi"), nil)},
			targets:    map[string]Target{"app": small},
			quotas:     []*corev1.ResourceQuota{quota(rl("cpu", "2", "memory", "1Gi"), rl("cpu", "2", "memory", "1Gi"))},
			want:       map[string]Resources{"app": {Requests: map[string]string{"cpu": "250m", "memory": "128Mi"}}},
		},
		{
			// keep_ratio raises the memory limit with the request.
			name:       "quota on limits, usage not known yet",
			containers: []corev1.Container{container("app", rl("cpu", "1", "memory", "64Mi"), rl("memory", "128Mi"))},
			targets:    map[string]Target{"app": small},
			quotas:     []*corev1.ResourceQuota{quota(rl("limits.memory", "10Gi"), nil)},
			wantReason: "resource_quota",
		},
		{
			name:       "pod-level CPU request sized for the pod",
			containers: []corev1.Container{container("app", nil, nil), container("log", nil, nil)},
			podLevel:   &corev1.ResourceRequirements{Requests: rl("cpu", "2")},
			podTargets: map[corev1.ResourceName]float64{"cpu": 0.3501},
			wantPod:    &Resources{Requests: map[string]string{"cpu": "351m"}},
		},
		{
			// Both requests come from their limits at creation: Guaranteed,
			// which a smaller request would end.
			name:       "pod-level limits alone stay Guaranteed",
			containers: []corev1.Container{container("app", nil, nil)},
			podLevel:   &corev1.ResourceRequirements{Limits: rl("cpu", "2", "memory", "4Gi")},
			podTargets: map[corev1.ResourceName]float64{"cpu": 0.3, "memory": 300 * mi},
			wantReason: "qos_change",
		},
		{
			// 500m requested by the containers is the pod's floor, and its
			// request at creation: nothing moves.
			name:       "pod-level limit over containers' requests",
			containers: []corev1.Container{container("app", rl("cpu", "400m"), nil), container("log", rl("cpu", "100m"), nil)},
			podLevel:   &corev1.ResourceRequirements{Limits: rl("cpu", "2")},
			podTargets: map[corev1.ResourceName]float64{"cpu": 0.3},
			wantReason: "pod_level_resources",
		},
		{
			// Memory alone at pod level: Burstable either way.
			name:       "pod-level request capped at its limit",
			containers: []corev1.Container{container("app", nil, nil)},
			podLevel:   &corev1.ResourceRequirements{Requests: rl("memory", "1Gi"), Limits: rl("memory", "2Gi")},
			podTargets: map[corev1.ResourceName]float64{"memory": 3 << 30},
			wantPod:    &Resources{Requests: map[string]string{"memory": "2Gi"}, Limits: map[string]string{"memory": "2Gi"}},
		},
		{
			name:       "pod-level CPU and memory, containers' CPU fixed too",
			containers: []corev1.Container{container("app", rl("cpu", "100m"), nil)},
			targets:    map[string]Target{"app": small},
			podLevel:   &corev1.ResourceRequirements{Requests: rl("cpu", "1", "memory", "1Gi")},
			podTargets: map[corev1.ResourceName]float64{"cpu": 0.05, "memory": 300 * mi},
			wantPod:    &Resources{Requests: map[string]string{"cpu": "100m", "memory": "300Mi"}},
		},
		{
			name:       "pod-level raise without quota room",
			containers: []corev1.Container{container("app", nil, nil)},
			podLevel:   &corev1.ResourceRequirements{Requests: rl("cpu", "100m")},
			podTargets: map[corev1.ResourceName]float64{"cpu": 0.25},
			quotas:     []*corev1.ResourceQuota{quota(rl("requests.cpu", "200m"), rl("requests.cpu", "0"))},
			wantReason: "resource_quota",
		},
		{
			// The API server completes the pod's memory from the container
			// (request = limit = 1Gi): with CPU at its limit the pod is
			// Guaranteed, and a container memory limit above its request
			// would end that.
			name:       "container change that would end a pod-level Guaranteed class",
			containers: []corev1.Container{container("app", rl("memory", "1Gi"), rl("memory", "1Gi"))},
			targets:    map[string]Target{"app": {MemoryRequest: f(128 * mi), MemoryLimit: f(256 * mi)}},
			podLevel:   &corev1.ResourceRequirements{Requests: rl("cpu", "1"), Limits: rl("cpu", "1")},
			policy:     func(p *Policy) { p.LimitPolicy = LimitRecommended },
			wantReason: "qos_change",
		},
		{
			// The pod is created requesting its 1-core limit: 200m lowers it,
			// which a full quota admits.
			name:       "pod-level limit alone, lowered under a full quota",
			containers: []corev1.Container{container("app", nil, nil)},
			podLevel:   &corev1.ResourceRequirements{Limits: rl("cpu", "1")},
			podTargets: map[corev1.ResourceName]float64{"cpu": 0.2},
			quotas:     []*corev1.ResourceQuota{quota(rl("requests.cpu", "4"), rl("requests.cpu", "4"))},
			wantPod:    &Resources{Requests: map[string]string{"cpu": "200m"}, Limits: map[string]string{"cpu": "1"}},
		},
		{
			name:       "empty pod-level resources change nothing",
			containers: []corev1.Container{container("app", rl("cpu", "1", "memory", "1Gi"), nil)},
			targets:    map[string]Target{"app": small},
			podLevel:   &corev1.ResourceRequirements{},
			want:       map[string]Resources{"app": {Requests: map[string]string{"cpu": "250m", "memory": "128Mi"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"},
				Spec:       corev1.PodSpec{InitContainers: tt.init, Containers: tt.containers, Resources: tt.podLevel},
			}
			p := defaultPolicy
			if tt.policy != nil {
				tt.policy(&p)
			}
			before := qosClass(pod)
			orig := pod.DeepCopy()
			plan := Decide(pod, &WorkloadRecs{Containers: tt.targets, Pod: tt.podTargets}, Constraints{LimitRanges: tt.lrs, Quotas: tt.quotas}, p)
			if tt.wantReason != "" {
				if plan.Changed() || plan.Reason != tt.wantReason {
					t.Fatalf("changed=%v reason=%q, want no change with reason %q (recommended %v)", plan.Changed(), plan.Reason, tt.wantReason, plan.Recommended)
				}
				return
			}
			if !plan.Changed() {
				t.Fatalf("no change, reason %q", plan.Reason)
			}
			got, _ := json.Marshal(plan.Recommended)
			want, _ := json.Marshal(tt.want)
			if string(got) != string(want) {
				t.Errorf("recommended\n got %s\nwant %s", got, want)
			}
			// Applying the patch to the pod's JSON gives exactly the plan,
			// and keeps the QoS class.
			gotPod, _ := json.Marshal(plan.RecommendedPod)
			wantPod, _ := json.Marshal(tt.wantPod)
			if string(gotPod) != string(wantPod) {
				t.Errorf("recommended pod-level\n got %s\nwant %s", gotPod, wantPod)
			}
			patched := applyPatch(t, orig, plan, ModeEnforce)
			if q := qosClass(patched); q != before && tt.podLevel == nil {
				t.Errorf("QoS %s → %s", before, q)
			}
			if tt.wantPod != nil {
				if g := resourcesOf(*patched.Spec.Resources); !equalResources(g, *tt.wantPod) {
					t.Errorf("patched pod-level resources %+v, want %+v", g, *tt.wantPod)
				}
				if patched.Annotations[AnnotationOriginalPod] == "" || patched.Annotations[AnnotationRecommendedPod] != string(gotPod) {
					t.Errorf("pod-level annotations %q, %q", patched.Annotations[AnnotationOriginalPod], patched.Annotations[AnnotationRecommendedPod])
				}
			}
			for _, c := range append(append([]corev1.Container{}, patched.Spec.InitContainers...), patched.Spec.Containers...) {
				w, ok := tt.want[c.Name]
				if !ok {
					continue
				}
				if g := resourcesOf(c.Resources); !equalResources(g, w) {
					t.Errorf("patched %s = %+v, want %+v", c.Name, g, w)
				}
			}
			if patched.Annotations[AnnotationMode] != ModeEnforce {
				t.Errorf("mode annotation = %q", patched.Annotations[AnnotationMode])
			}
			var origAnn map[string]Resources
			if err := json.Unmarshal([]byte(patched.Annotations[AnnotationOriginal]), &origAnn); len(tt.want) > 0 && err != nil {
				t.Fatalf("original annotation: %v", err)
			}
			for name := range tt.want {
				if _, ok := origAnn[name]; !ok {
					t.Errorf("original annotation lacks %s: %v", name, origAnn)
				}
			}
			// Recommend mode changes annotations only.
			rec := applyPatch(t, orig, plan, ModeRecommend)
			if !equalSpec(rec, orig) {
				t.Errorf("recommend mode changed the spec")
			}
			if len(tt.want) > 0 && rec.Annotations[AnnotationRecommended] != string(got) {
				t.Errorf("recommended annotation = %s, want %s", rec.Annotations[AnnotationRecommended], got)
			}
		})
	}
}

func qosClass(pod *corev1.Pod) corev1.PodQOSClass {
	f := fieldsOf(pod)
	return qosOf(f.Spec.InitContainers, f.Spec.Containers)
}

func equalResources(a, b Resources) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func equalSpec(a, b *corev1.Pod) bool {
	x, _ := json.Marshal(a.Spec)
	y, _ := json.Marshal(b.Spec)
	return string(x) == string(y)
}

func applyPatch(t testing.TB, pod *corev1.Pod, plan *Plan, mode string) *corev1.Pod {
	t.Helper()
	ops, err := plan.Patch(pod, mode)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(pod)
	pj, _ := json.Marshal(ops)
	p, err := jsonpatch.DecodePatch(pj)
	if err != nil {
		t.Fatalf("decode patch %s: %v", pj, err)
	}
	out, err := p.Apply(raw)
	if err != nil {
		t.Fatalf("apply patch %s: %v", pj, err)
	}
	var got corev1.Pod
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	return &got
}

func TestPatchIsMinimal(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{"keep": "me", AnnotationOriginal: `{"app":{}}`}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{
			container("side", rl("cpu", "1"), nil),
			container("app", rl("cpu", "1", "memory", "1Gi"), nil),
		}},
	}
	plan := Decide(pod, &WorkloadRecs{Containers: map[string]Target{"app": {CPURequest: f(0.5), MemoryRequest: f(1000 * mi)}}}, Constraints{}, defaultPolicy)
	ops, err := plan.Patch(pod, ModeEnforce)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, op := range ops {
		paths = append(paths, op.Operation+" "+op.Path)
	}
	got, _ := json.Marshal(paths)
	// Memory is within the threshold, the other container has no target,
	// and the original annotation of an earlier invocation is kept.
	want := `["add /spec/containers/1/resources/requests/cpu","add /metadata/annotations/upid.io~1webhook-mode","add /metadata/annotations/upid.io~1recommended-resources"]`
	if string(got) != want {
		t.Errorf("ops\n got %s\nwant %s", got, want)
	}
}

func TestWorkloadCandidates(t *testing.T) {
	yes := true
	owned := func(kind, name string, labels map[string]string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Labels: labels, OwnerReferences: []metav1.OwnerReference{
			{Kind: "Other", Name: "x"}, {Kind: kind, Name: name, Controller: &yes},
		}}}
	}
	tests := []struct {
		name string
		pod  *corev1.Pod
		want string
	}{
		{"deployment", owned("ReplicaSet", "web-7d9f8", map[string]string{"pod-template-hash": "7d9f8"}), `[{"Kind":"Deployment","Name":"web"},{"Kind":"ReplicaSet","Name":"web-7d9f8"}]`},
		{"bare replicaset", owned("ReplicaSet", "web", nil), `[{"Kind":"ReplicaSet","Name":"web"}]`},
		{"hash mismatch", owned("ReplicaSet", "web-abc", map[string]string{"pod-template-hash": "zzz"}), `[{"Kind":"ReplicaSet","Name":"web-abc"}]`},
		{"statefulset", owned("StatefulSet", "db", nil), `[{"Kind":"StatefulSet","Name":"db"}]`},
		{"daemonset", owned("DaemonSet", "agent", nil), `[{"Kind":"DaemonSet","Name":"agent"}]`},
		{"cronjob", owned("Job", "backup-29123456", nil), `[{"Kind":"CronJob","Name":"backup"},{"Kind":"Job","Name":"backup-29123456"}]`},
		{"job", owned("Job", "migrate", nil), `[{"Kind":"Job","Name":"migrate"}]`},
		{"job with dash", owned("Job", "migrate-", nil), `[{"Kind":"Job","Name":"migrate-"}]`},
		{"argo rollout", owned("ReplicaSet", "web-6d7f9", map[string]string{"rollouts-pod-template-hash": "6d7f9"}), `[{"Kind":"Rollout","Name":"web"},{"Kind":"ReplicaSet","Name":"web-6d7f9"}]`},
		{"rollout hash mismatch", owned("ReplicaSet", "web-6d7f9", map[string]string{"rollouts-pod-template-hash": "zzz"}), `[{"Kind":"ReplicaSet","Name":"web-6d7f9"}]`},
		{"operator's controller", owned("CloneSet", "web", nil), `null`},
		{"static pod", owned("Node", "n1", nil), `null`},
		{"no owner", &corev1.Pod{}, `null`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := json.Marshal(workloadCandidates(fieldsOf(tt.pod)))
			if string(got) != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

// TestRestore: taking back UPID's change sets CPU and memory to the record
// of the originals, removes what the container did not set before, and
// keeps every other resource. With the record of what UPID set, what a
// webhook after it added or changed stays (found in review: a memory limit
// injected after UPID was removed with UPID's raise).
func TestRestore(t *testing.T) {
	now := corev1.ResourceRequirements{Requests: rl("cpu", "400m", "memory", "256Mi", "ephemeral-storage", "1Gi"), Limits: rl("memory", "512Mi")}
	for _, tc := range []struct {
		name string
		orig Resources
		rec  *Resources // what UPID set; nil for no record
		want corev1.ResourceRequirements
	}{
		{"a limit injected after UPID stays", Resources{Requests: map[string]string{"cpu": "100m", "memory": "128Mi"}},
			&Resources{Requests: map[string]string{"cpu": "400m", "memory": "256Mi"}},
			corev1.ResourceRequirements{Requests: rl("cpu", "100m", "memory", "128Mi", "ephemeral-storage", "1Gi"), Limits: rl("memory", "512Mi")}},
		{"a limit UPID set goes", Resources{Requests: map[string]string{"cpu": "100m", "memory": "128Mi"}},
			&Resources{Requests: map[string]string{"cpu": "400m", "memory": "256Mi"}, Limits: map[string]string{"memory": "512Mi"}},
			corev1.ResourceRequirements{Requests: rl("cpu", "100m", "memory", "128Mi", "ephemeral-storage", "1Gi"), Limits: corev1.ResourceList{}}},
		{"a request raised after UPID keeps its raise", Resources{Requests: map[string]string{"cpu": "100m", "memory": "128Mi"}},
			&Resources{Requests: map[string]string{"cpu": "300m", "memory": "256Mi"}},
			corev1.ResourceRequirements{Requests: rl("cpu", "200m", "memory", "128Mi", "ephemeral-storage", "1Gi"), Limits: rl("memory", "512Mi")}},
		{"a limit UPID removed comes back", Resources{Requests: map[string]string{"cpu": "100m", "memory": "128Mi"}, Limits: map[string]string{"memory": "512Mi", "cpu": "1"}},
			&Resources{Requests: map[string]string{"cpu": "400m", "memory": "256Mi"}, Limits: map[string]string{"memory": "512Mi"}},
			corev1.ResourceRequirements{Requests: rl("cpu", "100m", "memory", "128Mi", "ephemeral-storage", "1Gi"), Limits: rl("cpu", "1", "memory", "512Mi")}},
		{"both recorded", Resources{Requests: map[string]string{"cpu": "100m", "memory": "128Mi"}, Limits: map[string]string{"memory": "256Mi"}}, nil,
			corev1.ResourceRequirements{Requests: rl("cpu", "100m", "memory", "128Mi", "ephemeral-storage", "1Gi"), Limits: rl("memory", "256Mi")}},
		{"memory was not requested", Resources{Requests: map[string]string{"cpu": "100m"}, Limits: map[string]string{"memory": "256Mi"}}, nil,
			corev1.ResourceRequirements{Requests: rl("cpu", "100m", "ephemeral-storage", "1Gi"), Limits: rl("memory", "256Mi")}},
		{"no limits", Resources{Requests: map[string]string{"cpu": "100m", "memory": "128Mi"}}, nil,
			corev1.ResourceRequirements{Requests: rl("cpu", "100m", "memory", "128Mi", "ephemeral-storage", "1Gi"), Limits: corev1.ResourceList{}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rec Resources
			if tc.rec != nil {
				rec = *tc.rec
			}
			if got := restore(now, tc.orig, rec, tc.rec != nil); !equality.Semantic.DeepEqual(got, tc.want) {
				t.Errorf("restore = %v, want %v", got, tc.want)
			}
		})
	}
	if cpu := now.Requests[corev1.ResourceCPU]; cpu.String() != "400m" {
		t.Errorf("restore changed its argument: cpu %s", cpu.String())
	}
}

// TestListOps: the patch of a resource list applies to the container as
// sent, the list absent included, and removes what the new list lacks, as
// taking a change back to an original needs.
func TestListOps(t *testing.T) {
	for _, tc := range []struct {
		name     string
		doc      string // the container's resources as sent
		old, nw  corev1.ResourceList
		wantJSON string
	}{
		{"replace and remove", `{"requests":{"cpu":"400m","memory":"1Gi","ephemeral-storage":"1Gi"}}`, rl("cpu", "400m", "memory", "1Gi", "ephemeral-storage", "1Gi"), rl("cpu", "100m", "ephemeral-storage", "1Gi"),
			`{"requests":{"cpu":"100m","ephemeral-storage":"1Gi"}}`},
		{"absent list", `{}`, nil, rl("cpu", "100m"), `{"requests":{"cpu":"100m"}}`},
		{"unchanged", `{"requests":{"cpu":"100m"}}`, rl("cpu", "100m"), rl("cpu", "100m"), `{"requests":{"cpu":"100m"}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ops := listOps("/requests", tc.old, tc.nw)
			raw, err := json.Marshal(ops)
			if err != nil {
				t.Fatal(err)
			}
			p, err := jsonpatch.DecodePatch(raw)
			if err != nil {
				t.Fatal(err)
			}
			got, err := p.Apply([]byte(tc.doc))
			if err != nil {
				t.Fatalf("patch %s does not apply to %s: %v", raw, tc.doc, err)
			}
			if !jsonpatch.Equal(got, []byte(tc.wantJSON)) {
				t.Errorf("patched %s, want %s", got, tc.wantJSON)
			}
		})
	}
}

// TestUndoForPodLimitRange: a Pod item of a LimitRange bounds the pod's
// sums after every webhook, as a quota does: UPID's earlier raise is taken
// back when a container added since takes the pod out of range, and only
// when taking it back brings the pod into range.
func TestUndoForPodLimitRange(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{AnnotationMode: ModeEnforce,
			AnnotationOriginal: `{"app":{"requests":{"cpu":"100m"},"limits":{"cpu":"400m"}}}`}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{
			container("app", rl("cpu", "400m"), rl("cpu", "800m")), // as UPID raised it
			container("injected", rl("cpu", "200m"), rl("cpu", "300m")),
		}},
	}
	for _, tc := range []struct {
		max  string // the Pod item's max CPU
		undo bool
	}{
		{"1", true},     // 1100m of limits with the raise, 700m without
		{"2", false},    // fits either way
		{"500m", false}, // out of range either way: taking back cannot save it
	} {
		t.Run(tc.max, func(t *testing.T) {
			lr := &corev1.LimitRange{Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{Type: corev1.LimitTypePod, Max: rl("cpu", tc.max)}}}}
			back := undo(fieldsOf(pod), &Plan{}, Constraints{LimitRanges: []*corev1.LimitRange{lr}})
			if (back != nil) != tc.undo {
				t.Fatalf("undo = %+v, want taking back %v", back, tc.undo)
			}
			if back == nil {
				return
			}
			if back.Reason != "limit_range" || len(back.changes) != 1 {
				t.Fatalf("undo = %+v, want app taken back for limit_range", back)
			}
			got := back.changes[0].new
			if r, l := got.Requests[corev1.ResourceCPU], got.Limits[corev1.ResourceCPU]; r.String() != "100m" || l.String() != "400m" {
				t.Errorf("app taken back to %v, want its original 100m/400m", got)
			}
		})
	}
}

// TestPodLevelTakenBack: a reinvocation takes back UPID's change of the
// pod-level requests as it does the containers' when the pod no longer
// fits its quota with it: to the recorded original, plus what a sidecar
// injector added to the pod's request since (the pod as it would be
// without UPID), never under what the containers request together, with
// the same records removed, reason and Event (found in review: the
// pod-level raise stayed, and the quota admission rejected the pod).
func TestPodLevelTakenBack(t *testing.T) {
	const (
		orig200 = `{"requests":{"cpu":"200m"},"limits":{"cpu":"2"}}`
		rec400  = `{"requests":{"cpu":"400m"},"limits":{"cpu":"2"}}`
	)
	records := []string{AnnotationOriginal, AnnotationRecommended, AnnotationOriginalPod, AnnotationRecommendedPod}
	for _, tc := range []struct {
		name         string
		podCPU       string // the pod's cpu request as the reinvocation finds it
		injected     string // the cpu request of a container injected after UPID, "" for none
		orig, rec    string // the pod-level records
		appRecord    bool   // the first call also changed app's memory
		quotaCPU     string
		wantCPU      string // "" for no pod-level cpu request
		wantAppMem   string
		takenBack    bool
		wantRecorded []string
	}{
		{"untouched since", "400m", "", orig200, rec400, false, "300m", "200m", "128Mi", true, nil},
		{"injector added its share", "430m", "30m", orig200, rec400, false, "420m", "230m", "128Mi", true, nil},
		{"fits", "400m", "", orig200, rec400, false, "1", "400m", "128Mi", false, []string{AnnotationOriginalPod, AnnotationRecommendedPod}},
		{"no request before", "400m", "", `{"limits":{"cpu":"2"}}`, rec400, false, "300m", "", "128Mi", true, nil},
		// An injector that left the pod's request alone: 200m would be
		// under app's 100m and its 200m.
		{"containers' floor", "400m", "200m", `{"requests":{"cpu":"100m"},"limits":{"cpu":"2"}}`, rec400, false, "350m", "300m", "128Mi", true, nil},
		{"containers and pod", "400m", "", orig200, rec400, true, "300m", "200m", "64Mi", true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			anns := map[string]string{AnnotationMode: ModeEnforce, AnnotationOriginalPod: tc.orig, AnnotationRecommendedPod: tc.rec}
			if tc.appRecord {
				anns[AnnotationOriginal] = `{"app":{"requests":{"memory":"64Mi"}}}`
				anns[AnnotationRecommended] = `{"app":{"requests":{"memory":"128Mi"}}}`
			}
			pod := webPod(anns)
			pod.Spec.Containers[0].Resources = corev1.ResourceRequirements{Requests: rl("cpu", "100m", "memory", "128Mi")}
			if tc.injected != "" {
				pod.Spec.Containers = append(pod.Spec.Containers, container("injected", rl("cpu", tc.injected), nil))
			}
			pod.Spec.Resources = &corev1.ResourceRequirements{Requests: rl("cpu", tc.podCPU), Limits: rl("cpu", "2")}
			rec := &refRecorder{}
			h := newTestHandler(t, ModeEnforce, &staticCluster{wl: map[string]map[string]string{"team/Deployment/web": {}},
				constraints: map[string]Constraints{"team": {Quotas: []*corev1.ResourceQuota{quota(rl("requests.cpu", tc.quotaCPU), rl("requests.cpu", "0"))}}}})
			h.opts.Recorder = rec
			got := reviewAndApply(t, h, pod)
			cpu, ok := got.Spec.Resources.Requests[corev1.ResourceCPU]
			if gotCPU := map[bool]string{true: cpu.String()}[ok]; gotCPU != tc.wantCPU {
				t.Errorf("pod-level cpu request %q, want %q", gotCPU, tc.wantCPU)
			}
			if mem := got.Spec.Containers[0].Resources.Requests[corev1.ResourceMemory]; mem.String() != tc.wantAppMem {
				t.Errorf("app memory request %s, want %s", mem.String(), tc.wantAppMem)
			}
			var kept []string
			for _, k := range records {
				if _, ok := got.Annotations[k]; ok {
					kept = append(kept, k)
				}
			}
			if !slices.Equal(kept, tc.wantRecorded) {
				t.Errorf("records %v kept, want %v", kept, tc.wantRecorded)
			}
			taken := testutil.ToFloat64(h.decisions.WithLabelValues(OutcomeSkipped, "resource_quota")) == 1
			if evs := rec.events; taken != tc.takenBack || tc.takenBack != (len(evs) == 1 && strings.HasPrefix(evs[0], "Warning UPIDRightsizingTakenBack ")) {
				t.Errorf("taken back %v with Events %q, want %v", taken, evs, tc.takenBack)
			}
		})
	}
}

// TestPodLevelTakenBackUnder: a pod-level take-back for a LimitRange's Pod
// item (reason limit_range), whose bound the completed pod-level limit
// crosses once an injector has raised the pod's request past its
// containers' limits; and a take-back that leaves alone a pod-level
// request UPID never set, which another webhook added after it (found in
// review: it was removed, as if UPID had set it).
func TestPodLevelTakenBackUnder(t *testing.T) {
	for _, tc := range []struct {
		name      string
		cons      Constraints
		podLevel  corev1.ResourceRequirements // as the reinvocation finds it
		orig, rec string
		reason    string
		want      corev1.ResourceList // the pod-level requests taken back to
	}{
		// The containers' limits add up to 400m; with UPID's 400m and the
		// injector's 30m the API server completes the pod's limit to
		// 430m, over the Pod item's 400m. Without UPID: 230m, within.
		{"limit range", Constraints{LimitRanges: []*corev1.LimitRange{{Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{Type: corev1.LimitTypePod, Max: rl("cpu", "400m")}}}}}},
			corev1.ResourceRequirements{Requests: rl("cpu", "430m")}, `{"requests":{"cpu":"200m"}}`, `{"requests":{"cpu":"400m"}}`,
			"limit_range", rl("cpu", "230m")},
		// UPID set CPU alone; memory came after it.
		{"another webhook's request", Constraints{Quotas: []*corev1.ResourceQuota{quota(rl("requests.cpu", "300m"), rl("requests.cpu", "0"))}},
			corev1.ResourceRequirements{Requests: rl("cpu", "430m", "memory", "256Mi"), Limits: rl("cpu", "2")}, `{"requests":{"cpu":"200m"},"limits":{"cpu":"2"}}`, `{"requests":{"cpu":"400m"},"limits":{"cpu":"2"}}`,
			"resource_quota", rl("cpu", "230m", "memory", "256Mi")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := webPod(map[string]string{AnnotationMode: ModeEnforce, AnnotationOriginalPod: tc.orig, AnnotationRecommendedPod: tc.rec})
			pod.Spec.Containers = []corev1.Container{
				container("app", rl("cpu", "100m", "memory", "128Mi"), rl("cpu", "300m")),
				container("injected", rl("cpu", "30m"), rl("cpu", "100m")),
			}
			pod.Spec.Resources = &tc.podLevel
			rec := &refRecorder{}
			h := newTestHandler(t, ModeEnforce, &staticCluster{wl: map[string]map[string]string{"team/Deployment/web": {}},
				constraints: map[string]Constraints{"team": tc.cons}})
			h.opts.Recorder = rec
			got := reviewAndApply(t, h, pod)
			if !equality.Semantic.DeepEqual(got.Spec.Resources.Requests, tc.want) {
				t.Errorf("pod-level requests %v, want %v", got.Spec.Resources.Requests, tc.want)
			}
			if !equality.Semantic.DeepEqual(got.Spec.Resources.Limits, tc.podLevel.Limits) {
				t.Errorf("pod-level limits %v, want %v, which UPID never changes", got.Spec.Resources.Limits, tc.podLevel.Limits)
			}
			for _, k := range []string{AnnotationOriginalPod, AnnotationRecommendedPod} {
				if _, ok := got.Annotations[k]; ok {
					t.Errorf("%s kept on a pod UPID took its change back from", k)
				}
			}
			if n := testutil.ToFloat64(h.decisions.WithLabelValues(OutcomeSkipped, tc.reason)); n != 1 {
				t.Errorf("decisions{skipped,%s} = %g, want 1", tc.reason, n)
			}
			if evs := rec.events; len(evs) != 1 || !strings.HasPrefix(evs[0], "Warning UPIDRightsizingTakenBack ") {
				t.Errorf("Events %q, want UPIDRightsizingTakenBack", evs)
			}
		})
	}
}
