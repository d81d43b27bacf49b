package exporter

import (
	"math"
	"time"

	"github.com/upid-dev/upid/exporter/history"
	"github.com/upid-dev/upid/exporter/recommend"
)

// SeedRecommender gives every container of the inventory a state holding
// the recommender's whole window, observed every step up to at, and marks
// its namespaces read through at: what a finished backfill leaves. It is
// for benchmarks whose fake Prometheus cannot answer the window queries
// with two weeks of points per container. usage returns a container's CPU
// (cores) and memory peak (bytes) at sample i. It returns the states made.
func SeedRecommender(s *Service, at time.Time, step time.Duration, usage func(container, i int) (cpu, mem float64)) (int, error) {
	inv, err := s.inv.Snapshot()
	if err != nil {
		return 0, err
	}
	r := s.rec
	r.mu.Lock()
	defer r.mu.Unlock()
	end := at.Truncate(history.WindowStep)
	n := int(r.window / step)
	for _, w := range inv.Workloads {
		for _, c := range containerNames(w) {
			k := history.ContainerKey{Key: history.Key{Namespace: w.Namespace, Kind: w.Kind, Workload: w.Name}, Container: c}
			st := recommend.NewState(r.policy)
			id := len(r.states)
			for i := range n {
				cpu, mem := usage(id, i)
				if math.IsNaN(cpu) {
					continue
				}
				st.Observe(recommend.Sample{Time: end.Add(-time.Duration(n-i) * step), Duration: step, CPU: cpu, MemoryPeak: mem})
			}
			r.states[k] = st
			r.through[w.Namespace] = end
			r.caughtUp[w.Namespace] = true
		}
	}
	return len(r.states), nil
}
