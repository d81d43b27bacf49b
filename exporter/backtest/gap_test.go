package backtest

import (
	"math"
	"testing"
	"time"

	"github.com/upid-dev/upid/exporter/history"
)

// TestTraceBuilderKSMGap: a window without any request or limit series is
// a gap in kube-state-metrics, which keeps the last ones known, across the
// chunks the history is read in too; with one of them present, a missing
// one is not set; a container never seen with any keeps none.
func TestTraceBuilderKSMGap(t *testing.T) {
	nan := math.NaN()
	type spec [4]float64 // CPU and memory requests, CPU and memory limits
	gap := spec{nan, nan, nan, nan}
	cases := []struct {
		name   string
		chunks [][]spec // windows, read chunk by chunk
		want   []spec
	}{
		{name: "a gap keeps the last known",
			chunks: [][]spec{{{1, 2, 3, 4}, gap, gap, {1, 2, 3, 4}}},
			want:   []spec{{1, 2, 3, 4}, {1, 2, 3, 4}, {1, 2, 3, 4}, {1, 2, 3, 4}}},
		{name: "across chunks",
			chunks: [][]spec{{{1, 2, 3, 4}}, {gap, {1, 2, 3, 4}}},
			want:   []spec{{1, 2, 3, 4}, {1, 2, 3, 4}, {1, 2, 3, 4}}},
		{name: "unknown from the start stays unknown",
			chunks: [][]spec{{gap, gap, {1, 2, 3, 4}}},
			want:   []spec{{}, {}, {1, 2, 3, 4}}},
		{name: "a resize after a gap",
			chunks: [][]spec{{{1, 2, 0, 0}, gap, {0.5, 2, 0, 0}}},
			want:   []spec{{1, 2, 0, 0}, {1, 2, 0, 0}, {0.5, 2, 0, 0}}},
		// kube-state-metrics exports a pod's resources in one scrape: with
		// the requests there, no limit series is no limit.
		{name: "a limit removed",
			chunks: [][]spec{{{1, 2, 3, 4}, {1, 2, nan, nan}}},
			want:   []spec{{1, 2, 3, 4}, {1, 2, 0, 0}}},
		{name: "requests removed, limits kept",
			chunks: [][]spec{{{1, 2, 3, 4}, {nan, nan, 3, 4}}},
			want:   []spec{{1, 2, 3, 4}, {0, 0, 3, 4}}},
		{name: "BestEffort",
			chunks: [][]spec{{gap, gap}},
			want:   []spec{{}, {}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			k := history.ContainerKey{Key: history.Key{Namespace: "a", Kind: "Deployment", Workload: "api"}, Container: "app"}
			var b traceBuilder
			i := 0
			for _, chunk := range c.chunks {
				var ws []history.ReplayWindow
				for _, sp := range chunk {
					i++
					ws = append(ws, history.ReplayWindow{
						Window:     history.Window{End: origin.Add(time.Duration(i) * history.WindowStep), CPU: 0.5, MemoryPeak: 100, Throttled: nan, Periods: nan, OOMKills: nan, OOMMemoryLimit: nan},
						MemoryMean: 80, CPURequest: sp[0], MemoryRequest: sp[1], CPULimit: sp[2], MemoryLimit: sp[3],
					})
				}
				b.add(k, ws)
			}
			got := b.traces()[0].Samples
			if len(got) != len(c.want) {
				t.Fatalf("%d samples, want %d", len(got), len(c.want))
			}
			for j, s := range got {
				if g := (spec{s.CPURequest, s.MemoryRequest, s.CPULimit, s.MemoryLimit}); g != c.want[j] {
					t.Errorf("sample %d: requests and limits %v, want %v", j, g, c.want[j])
				}
			}
		})
	}
}

// TestHandSetChanges: the hand-set's changes are those of the trace's own
// known requests; a request unknown (0) for a while, from the start or in
// between, is no change, to it or back.
func TestHandSetChanges(t *testing.T) {
	type req struct{ cpu, mem float64 }
	cases := []struct {
		name string
		// the requests from each hour on, of a three-day trace
		from map[int]req
		want int
	}{
		{name: "never changed", from: map[int]req{0: {1, 2}}, want: 0},
		{name: "unknown for an hour", from: map[int]req{0: {1, 2}, 40: {0, 0}, 41: {1, 2}}, want: 0},
		{name: "CPU unknown for an hour", from: map[int]req{0: {1, 2}, 40: {0, 2}, 41: {1, 2}}, want: 0},
		{name: "unknown until the scored days", from: map[int]req{0: {0, 0}, 30: {1, 2}}, want: 0},
		{name: "resized", from: map[int]req{0: {1, 2}, 40: {0.5, 2}}, want: 1},
		{name: "resized while unknown", from: map[int]req{0: {1, 2}, 40: {0, 0}, 41: {0.5, 2}}, want: 1},
		{name: "both at once is one change", from: map[int]req{0: {1, 2}, 40: {0.5, 3}}, want: 1},
		{name: "memory, then CPU", from: map[int]req{0: {1, 2}, 40: {1, 3}, 50: {0.5, 3}}, want: 2},
		// The first scored sample compares with the one before.
		{name: "resized on the first scored sample", from: map[int]req{0: {1, 2}, 24: {0.5, 2}}, want: 1},
		{name: "resized before the scored days", from: map[int]req{0: {1, 2}, 12: {0.5, 2}}, want: 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := synthetic(3)
			var r req
			for i := range tr.Samples {
				s := &tr.Samples[i]
				if x, ok := c.from[int(s.Time.Sub(origin)/time.Hour)]; ok && s.Time.Sub(origin)%time.Hour == 0 {
					r = x
				}
				s.CPURequest, s.MemoryRequest = r.cpu, r.mem
			}
			rep, err := Run([]Trace{tr}, DefaultOptions())
			if err != nil {
				t.Fatal(err)
			}
			if hs := rep.Traces[0].Scores[0]; hs.Changes != c.want {
				t.Errorf("hand-set changes %d, want %d", hs.Changes, c.want)
			}
		})
	}
}
