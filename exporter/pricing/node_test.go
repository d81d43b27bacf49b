package pricing

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestCapacityType(t *testing.T) {
	tests := []struct {
		name   string
		labels map[string]string
		want   string
	}{
		{"no labels", nil, ""},
		{"unrelated labels", map[string]string{"kubernetes.io/os": "linux"}, ""},

		{"karpenter spot", map[string]string{LabelKarpenterCapacityType: "spot"}, Spot},
		{"karpenter on-demand", map[string]string{LabelKarpenterCapacityType: "on-demand"}, OnDemand},
		{"karpenter reserved", map[string]string{LabelKarpenterCapacityType: "reserved"}, Reserved},
		{"karpenter unknown value falls through", map[string]string{LabelKarpenterCapacityType: "weird", LabelEKSCapacityType: "SPOT"}, Spot},
		{"karpenter wins over eks", map[string]string{LabelKarpenterCapacityType: "spot", LabelEKSCapacityType: "ON_DEMAND"}, Spot},

		{"eks ON_DEMAND", map[string]string{LabelEKSCapacityType: "ON_DEMAND"}, OnDemand},
		{"eks SPOT", map[string]string{LabelEKSCapacityType: "SPOT"}, Spot},
		{"eks CAPACITY_BLOCK", map[string]string{LabelEKSCapacityType: "CAPACITY_BLOCK"}, Reserved},

		{"gke spot", map[string]string{labelGKENodePool: "spot-pool", LabelGKESpot: "true"}, Spot},
		{"gke preemptible", map[string]string{labelGKENodePool: "old-pool", LabelGKEPreemptible: "true"}, Spot},
		{"gke spot false", map[string]string{labelGKENodePool: "pool", LabelGKESpot: "false"}, OnDemand},
		{"gke node without spot label", map[string]string{labelGKENodePool: "default-pool"}, OnDemand},

		{"aks spot", map[string]string{labelAKSAgentPool: "spotpool", LabelAKSScaleSetPriority: "spot"}, Spot},
		{"aks regular", map[string]string{LabelAKSScaleSetPriority: "regular"}, OnDemand},
		{"aks node without priority label", map[string]string{labelAKSAgentPool: "nodepool1"}, OnDemand},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := CapacityType(tc.labels); got != tc.want {
				t.Errorf("CapacityType(%v) = %q, want %q", tc.labels, got, tc.want)
			}
		})
	}
}

func TestNormalizeCapacityType(t *testing.T) {
	for in, want := range map[string]string{
		"spot": Spot, "SPOT": Spot, " Spot ": Spot,
		"on-demand": OnDemand, "ON_DEMAND": OnDemand, "OnDemand": OnDemand, "on_demand": OnDemand,
		"reserved": Reserved, "CAPACITY_BLOCK": Reserved,
		"": "", "preemptible": "", "regular": "",
	} {
		if got := normalizeCapacityType(in); got != want {
			t.Errorf("normalizeCapacityType(%q) = %q, want %q", in, got, want)
		}
	}
}

func rl(pairs ...string) corev1.ResourceList {
	l := corev1.ResourceList{}
	for i := 0; i+1 < len(pairs); i += 2 {
		l[corev1.ResourceName(pairs[i])] = resource.MustParse(pairs[i+1])
	}
	return l
}

func TestNodeFromObject(t *testing.T) {
	tests := []struct {
		name string
		node *corev1.Node
		want Node
	}{
		{
			name: "nil",
			want: Node{},
		},
		{
			name: "eks managed node group",
			node: &corev1.Node{
				ObjectMeta: metav1.ObjectMeta{Name: "ip-10-0-1-23.ec2.internal", Labels: map[string]string{
					"node.kubernetes.io/instance-type":         "m5.xlarge",
					"beta.kubernetes.io/instance-type":         "m5.xlarge",
					"topology.kubernetes.io/region":            "us-east-1",
					"failure-domain.beta.kubernetes.io/region": "us-east-1",
					"topology.kubernetes.io/zone":              "us-east-1a",
					"eks.amazonaws.com/capacityType":           "ON_DEMAND",
					"eks.amazonaws.com/nodegroup":              "general",
				}},
				Status: corev1.NodeStatus{
					Capacity:    rl("cpu", "4", "memory", "15896988Ki", "pods", "58", "ephemeral-storage", "83873772Ki"),
					Allocatable: rl("cpu", "3920m", "memory", "14880156Ki", "pods", "58"),
				},
			},
			want: Node{
				Name: "ip-10-0-1-23.ec2.internal", InstanceType: "m5.xlarge", Region: "us-east-1", CapacityType: OnDemand,
				CPUCores: 4, MemoryBytes: 15896988 * 1024,
			},
		},
		{
			name: "legacy labels only",
			node: &corev1.Node{
				ObjectMeta: metav1.ObjectMeta{Name: "old", Labels: map[string]string{
					"beta.kubernetes.io/instance-type":         "n1-standard-2",
					"failure-domain.beta.kubernetes.io/region": "europe-west1",
					"cloud.google.com/gke-nodepool":            "default-pool",
					"cloud.google.com/gke-preemptible":         "true",
				}},
				Status: corev1.NodeStatus{Capacity: rl("cpu", "2", "memory", "7657Mi")},
			},
			want: Node{
				Name: "old", InstanceType: "n1-standard-2", Region: "europe-west1", CapacityType: Spot,
				CPUCores: 2, MemoryBytes: 7657 << 20,
			},
		},
		{
			name: "karpenter gpu node",
			node: &corev1.Node{
				ObjectMeta: metav1.ObjectMeta{Name: "gpu-1", Labels: map[string]string{
					"node.kubernetes.io/instance-type": "g5.12xlarge",
					"topology.kubernetes.io/region":    "us-west-2",
					"karpenter.sh/capacity-type":       "spot",
					"pool":                             "gpu",
				}},
				Status: corev1.NodeStatus{
					Capacity:    rl("cpu", "48", "memory", "192Gi", "nvidia.com/gpu", "4"),
					Allocatable: rl("cpu", "47810m", "memory", "186Gi", "nvidia.com/gpu", "4"),
				},
			},
			want: Node{
				Name: "gpu-1", InstanceType: "g5.12xlarge", Region: "us-west-2", CapacityType: Spot,
				CPUCores: 48, MemoryBytes: 192 << 30, GPUs: 4,
			},
		},
		{
			name: "allocatable when capacity lacks a resource, amd gpus, milli-cpu",
			node: &corev1.Node{
				ObjectMeta: metav1.ObjectMeta{Name: "virtual"},
				Status: corev1.NodeStatus{
					Capacity:    rl("cpu", "1500m"),
					Allocatable: rl("cpu", "1", "memory", "1Gi", "amd.com/gpu", "2"),
				},
			},
			want: Node{Name: "virtual", CPUCores: 1.5, MemoryBytes: 1 << 30, GPUs: 2},
		},
		{
			name: "negative capacity is clamped",
			node: &corev1.Node{
				ObjectMeta: metav1.ObjectMeta{Name: "broken"},
				Status:     corev1.NodeStatus{Capacity: rl("cpu", "-2", "memory", "-1Gi")},
			},
			want: Node{Name: "broken"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := NodeFromObject(tc.node)
			if tc.node != nil {
				if len(got.Labels) != len(tc.node.Labels) {
					t.Errorf("Labels = %v, want the node's %v", got.Labels, tc.node.Labels)
				}
				got.Labels = nil
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}
