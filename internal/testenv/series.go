package testenv

import (
	"io"
	"time"

	"github.com/upid-dev/upid/internal/series"
)

// The series builders live in internal/series so that production code (the demo) can use
// them without importing this package, which pulls in testing and envtest; internal/series
// documents them. The wrappers below keep tests written against testenv compiling
// unchanged. Sample, Series and PodRef are types of this package rather than aliases
// because its tests write unkeyed Sample literals, which go vet rejects for another
// package's struct, and read PodRef's derived UID through the unexported uid method.

// Sample is series.Sample.
type Sample series.Sample

// Series is series.Series with samples of this package's Sample type.
type Series struct {
	Name    string
	Type    string
	Help    string
	Labels  map[string]string
	Samples []Sample
}

// PodRef is series.PodRef.
type PodRef series.PodRef

func (r PodRef) uid() string { return series.PodUID(series.PodRef(r)) }

type (
	OwnerRef     = series.OwnerRef
	NodeRef      = series.NodeRef
	OpenCostNode = series.OpenCostNode
)

const (
	TypeCounter = series.TypeCounter
	TypeGauge   = series.TypeGauge
)

var (
	Const     = series.Const
	PodPhases = series.PodPhases
	NodeUID   = series.NodeUID
)

func toSamples(in []series.Sample) []Sample {
	if in == nil {
		return nil
	}
	out := make([]Sample, len(in))
	for i, s := range in {
		out[i] = Sample(s)
	}
	return out
}

func fromSamples(in []Sample) []series.Sample {
	if in == nil {
		return nil
	}
	out := make([]series.Sample, len(in))
	for i, s := range in {
		out[i] = series.Sample(s)
	}
	return out
}

func toSeries(s series.Series) Series {
	return Series{Name: s.Name, Type: s.Type, Help: s.Help, Labels: s.Labels, Samples: toSamples(s.Samples)}
}

func fromSeries(in []Series) []series.Series {
	out := make([]series.Series, len(in))
	for i, s := range in {
		out[i] = series.Series{Name: s.Name, Type: s.Type, Help: s.Help, Labels: s.Labels, Samples: fromSamples(s.Samples)}
	}
	return out
}

func toSeriesList(in []series.Series) []Series {
	out := make([]Series, len(in))
	for i, s := range in {
		out[i] = toSeries(s)
	}
	return out
}

func Generate(start, end time.Time, step time.Duration, f func(t time.Time) float64) []Sample {
	return toSamples(series.Generate(start, end, step, f))
}

func GenerateCounter(start, end time.Time, step time.Duration, perSecond func(t time.Time) float64) []Sample {
	return toSamples(series.GenerateCounter(start, end, step, perSecond))
}

func WithLabels(s []Series, extra map[string]string) []Series {
	return toSeriesList(series.WithLabels(fromSeries(s), extra))
}

func WriteOpenMetrics(w io.Writer, s []Series) error {
	return series.WriteOpenMetrics(w, fromSeries(s))
}

func seriesTimeRange(s []Series) (minT, maxT time.Time, n int) {
	return series.TimeRange(fromSeries(s))
}

func PodUID(ref PodRef) string { return ref.uid() }

func ContainerCPUUsageSeconds(ref PodRef, cumulative []Sample) Series {
	return toSeries(series.ContainerCPUUsageSeconds(series.PodRef(ref), fromSamples(cumulative)))
}

func ContainerMemoryWorkingSet(ref PodRef, bytes []Sample) Series {
	return toSeries(series.ContainerMemoryWorkingSet(series.PodRef(ref), fromSamples(bytes)))
}

func ContainerNetworkReceiveBytes(ref PodRef, cumulative []Sample) Series {
	return toSeries(series.ContainerNetworkReceiveBytes(series.PodRef(ref), fromSamples(cumulative)))
}

func ContainerCPUCFSThrottledPeriods(ref PodRef, cumulative []Sample) Series {
	return toSeries(series.ContainerCPUCFSThrottledPeriods(series.PodRef(ref), fromSamples(cumulative)))
}

func ContainerOOMEvents(ref PodRef, cumulative []Sample) Series {
	return toSeries(series.ContainerOOMEvents(series.PodRef(ref), fromSamples(cumulative)))
}

func KubePodContainerResourceRequests(ref PodRef, resource string, values []Sample) Series {
	return toSeries(series.KubePodContainerResourceRequests(series.PodRef(ref), resource, fromSamples(values)))
}

func KubePodContainerResourceLimits(ref PodRef, resource string, values []Sample) Series {
	return toSeries(series.KubePodContainerResourceLimits(series.PodRef(ref), resource, fromSamples(values)))
}

func KubePodOwner(ref PodRef, owner OwnerRef, values []Sample) Series {
	return toSeries(series.KubePodOwner(series.PodRef(ref), owner, fromSamples(values)))
}

func KubeReplicaSetOwner(namespace, replicaSet string, owner OwnerRef, values []Sample) Series {
	return toSeries(series.KubeReplicaSetOwner(namespace, replicaSet, owner, fromSamples(values)))
}

func KubeJobOwner(namespace, job string, owner OwnerRef, values []Sample) Series {
	return toSeries(series.KubeJobOwner(namespace, job, owner, fromSamples(values)))
}

func KubePodStatusPhase(ref PodRef, phase string, values []Sample) Series {
	return toSeries(series.KubePodStatusPhase(series.PodRef(ref), phase, fromSamples(values)))
}

func KubePodInfo(ref PodRef, createdBy OwnerRef, values []Sample) Series {
	return toSeries(series.KubePodInfo(series.PodRef(ref), createdBy, fromSamples(values)))
}

func KubeNodeInfo(node NodeRef, values []Sample) Series {
	return toSeries(series.KubeNodeInfo(node, fromSamples(values)))
}

func KubePodContainerStatusLastTerminatedReason(ref PodRef, reason string, values []Sample) Series {
	return toSeries(series.KubePodContainerStatusLastTerminatedReason(series.PodRef(ref), reason, fromSamples(values)))
}

func ProberProbeTotal(ref PodRef, probeType, result string, cumulative []Sample) Series {
	return toSeries(series.ProberProbeTotal(series.PodRef(ref), probeType, result, fromSamples(cumulative)))
}

func HTTPRequestsTotal(labels map[string]string, cumulative []Sample) Series {
	return toSeries(series.HTTPRequestsTotal(labels, fromSamples(cumulative)))
}

func NodeCPUHourlyCost(n OpenCostNode, values []Sample) Series {
	return toSeries(series.NodeCPUHourlyCost(n, fromSamples(values)))
}

func NodeRAMHourlyCost(n OpenCostNode, values []Sample) Series {
	return toSeries(series.NodeRAMHourlyCost(n, fromSamples(values)))
}

func NodeGPUHourlyCost(n OpenCostNode, values []Sample) Series {
	return toSeries(series.NodeGPUHourlyCost(n, fromSamples(values)))
}

func KubePodStatusPhases(ref PodRef, start, end time.Time, step time.Duration, phase func(time.Time) string) []Series {
	return toSeriesList(series.KubePodStatusPhases(series.PodRef(ref), start, end, step, phase))
}
