package pricing

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Normalised capacity types. Every label family's spelling is mapped to one
// of these so that one pricing rule covers EKS, Karpenter, GKE and AKS nodes.
const (
	Spot     = "spot"
	OnDemand = "on-demand"
	// Reserved is capacity paid for in advance: Karpenter's "reserved"
	// (on-demand capacity reservations) and EKS's CAPACITY_BLOCK.
	Reserved = "reserved"
)

// Labels that say how a node is bought, by the component that sets them.
const (
	LabelKarpenterCapacityType = "karpenter.sh/capacity-type"            // spot, on-demand, reserved
	LabelEKSCapacityType       = "eks.amazonaws.com/capacityType"        // SPOT, ON_DEMAND, CAPACITY_BLOCK
	LabelGKESpot               = "cloud.google.com/gke-spot"             // "true"
	LabelGKEPreemptible        = "cloud.google.com/gke-preemptible"      // "true"
	LabelAKSScaleSetPriority   = "kubernetes.azure.com/scalesetpriority" // spot, regular

	// These mark a node as GKE's or AKS's, whose spot labels are set by the
	// platform itself: on such a node, no spot label means on-demand.
	labelGKENodePool  = "cloud.google.com/gke-nodepool"
	labelAKSAgentPool = "kubernetes.azure.com/agentpool"
)

// GPU resource names whose counts are priced at the GPU rate.
var gpuResources = []corev1.ResourceName{"nvidia.com/gpu", "amd.com/gpu"}

// Node is what pricing needs to know about a Kubernetes node.
type Node struct {
	Name         string
	InstanceType string // "" when the node has no instance-type label
	Region       string // "" when the node has no region label
	CapacityType string // Spot, OnDemand, Reserved or "" for unknown
	// Labels is the node's label map for rule selectors; NodeFromObject
	// shares it with the Node object rather than copying it, so it must not
	// be modified.
	Labels      map[string]string
	CPUCores    float64
	MemoryBytes float64
	GPUs        float64
}

// NodeFromObject reads a Node object's well-known labels and its capacity.
// Capacity is used rather than allocatable because the bill is for the whole
// machine; allocatable is only consulted for a resource missing from capacity.
func NodeFromObject(n *corev1.Node) Node {
	if n == nil {
		return Node{}
	}
	l := n.Labels
	node := Node{
		Name:         n.Name,
		InstanceType: firstLabel(l, corev1.LabelInstanceTypeStable, corev1.LabelInstanceType),
		Region:       firstLabel(l, corev1.LabelTopologyRegion, corev1.LabelFailureDomainBetaRegion),
		CapacityType: CapacityType(l),
		Labels:       l,
		CPUCores:     amount(n, corev1.ResourceCPU),
		MemoryBytes:  amount(n, corev1.ResourceMemory),
	}
	for _, r := range gpuResources {
		node.GPUs += amount(n, r)
	}
	return node
}

func firstLabel(l map[string]string, keys ...string) string {
	for _, k := range keys {
		if v := strings.TrimSpace(l[k]); v != "" {
			return v
		}
	}
	return ""
}

func amount(n *corev1.Node, name corev1.ResourceName) float64 {
	q, ok := n.Status.Capacity[name]
	if !ok {
		q, ok = n.Status.Allocatable[name]
	}
	if !ok {
		return 0
	}
	// A negative quantity is a broken object; pricing it would make a node
	// earn money.
	return max(q.AsApproximateFloat64(), 0)
}

// CapacityType returns how a node with these labels is bought: Spot,
// OnDemand, Reserved, or "" when the labels do not say. The label families
// are tried in the order Karpenter, EKS managed node groups, GKE, AKS,
// because Karpenter's label is the most precise where several are present.
// GKE and AKS label only their spot nodes, so their other nodes are on-demand.
func CapacityType(labels map[string]string) string {
	if c := normalizeCapacityType(labels[LabelKarpenterCapacityType]); c != "" {
		return c
	}
	if c := normalizeCapacityType(labels[LabelEKSCapacityType]); c != "" {
		return c
	}
	if isTrue(labels[LabelGKESpot]) || isTrue(labels[LabelGKEPreemptible]) {
		return Spot // preemptible VMs are priced as spot VMs are
	}
	switch strings.ToLower(strings.TrimSpace(labels[LabelAKSScaleSetPriority])) {
	case "spot":
		return Spot
	case "regular":
		return OnDemand
	}
	if _, gke := labels[labelGKENodePool]; gke {
		return OnDemand
	}
	if _, aks := labels[labelAKSAgentPool]; aks {
		return OnDemand
	}
	return ""
}

// normalizeCapacityType maps the spellings of Karpenter, EKS and the pricing
// file to a normalised capacity type, or "" for anything else.
func normalizeCapacityType(s string) string {
	switch strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), "_", "-") {
	case "spot":
		return Spot
	case "on-demand", "ondemand":
		return OnDemand
	case "reserved", "capacity-block":
		return Reserved
	}
	return ""
}

func isTrue(s string) bool {
	return strings.EqualFold(strings.TrimSpace(s), "true")
}
