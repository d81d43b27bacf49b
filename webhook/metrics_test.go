package webhook

import (
	dto "github.com/prometheus/client_model/go"
)

// counterValue sums the series of a counter whose labels include want.
func counterValue(mfs []*dto.MetricFamily, name string, want map[string]string) float64 {
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.Metric {
			labels := map[string]string{}
			for _, l := range m.Label {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue metrics
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}
