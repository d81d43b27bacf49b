package pricing

import "github.com/prometheus/common/model"

// OpenCost holds the rates OpenCost published, by node name. A nil rate
// means OpenCost had no series for it, so the pricing file or a default
// prices that resource.
type OpenCost map[string]Rates

// OpenCost's node price metrics. Their units are those of this package:
// dollars per vCPU-hour, per GiB-hour and per GPU-hour.
const (
	MetricOpenCostCPU    = "node_cpu_hourly_cost"
	MetricOpenCostMemory = "node_ram_hourly_cost"
	MetricOpenCostGPU    = "node_gpu_hourly_cost"
)

// OpenCostQuery fetches all three of OpenCost's rates for every node in one
// instant query. Aggregating by node collapses duplicate series, such as
// those of two OpenCost replicas or of a node whose provider_id label
// changed, which would otherwise give one node two prices; __name__ is kept
// so OpenCostFromVector can tell the rates apart.
const OpenCostQuery = `max by (node, __name__) ({__name__=~"` +
	MetricOpenCostCPU + `|` + MetricOpenCostMemory + `|` + MetricOpenCostGPU + `"})`

// OpenCostFromVector reads the result of OpenCostQuery, or any vector of
// OpenCost's series with their metric names. Nodes are identified by the
// node label only: OpenCost also sets instance to the node name, but
// Prometheus replaces instance with the scrape target unless honor_labels
// is on. Samples without a node label, of other metrics, or whose value is
// negative, NaN or above MaxRate are skipped; where a node still has two
// samples of one metric, the larger is kept so the result does not depend
// on their order.
func OpenCostFromVector(v model.Vector) OpenCost {
	oc := OpenCost{}
	for _, s := range v {
		if s == nil {
			continue
		}
		node := string(s.Metric["node"])
		value := float64(s.Value)
		if node == "" || !valid(&value) {
			continue
		}
		r := oc[node]
		var slot **float64
		switch s.Metric[model.MetricNameLabel] {
		case MetricOpenCostCPU:
			slot = &r.CPUCoreHour
		case MetricOpenCostMemory:
			slot = &r.MemoryGiBHour
		case MetricOpenCostGPU:
			slot = &r.GPUHour
		default:
			continue
		}
		if *slot == nil || value > **slot {
			*slot = &value
		}
		oc[node] = r
	}
	return oc
}
