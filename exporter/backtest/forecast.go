package backtest

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/upid-dev/upid/exporter/forecast"
)

// ForecastGroup is one resource of one source's traces as series for
// forecast.Evaluate, which scores UPID's forecaster and the baselines on
// held-out days (docs/forecasting.md). Rightsizing and forecasting are
// scored from the same traces, so `upid backtest` reads them once.
type ForecastGroup struct {
	Source   string // "borg" or "azure"
	Resource string // "cpu" or "memory": the window means, in cores or bytes
	// Max caps forecasts: the whole VM for Azure CPU; 0 means no cap.
	Max float64
	// TrainDays is the history before the first held-out day: 14 days
	// for traces that span 15 or more, 2 for shorter ones (Borg job 382's
	// instances last 3 days; 2 is the least on which UPID fits a daily
	// profile). Short and long traces are separate groups, so each
	// report keeps one protocol.
	TrainDays int
	Series    []forecast.Series
}

const (
	forecastStep   = 300 * time.Second
	longTrainDays  = 14
	shortTrainDays = 2
	azurePercent   = 100 // Azure CPU is a percent of the VM
)

// ForecastSet groups the traces' usage for forecast.Evaluate by source,
// resource and train days: CPU for every trace, memory for traces that
// have it, as series on the 5-minute grid from each trace's first sample.
// It takes the traces batch by batch, each series resampled to Step (zero
// keeps the 5-minute grid) as it comes in, so that a long history is held
// at Evaluate's hourly resolution rather than as raw windows.
type ForecastSet struct {
	Step   time.Duration
	groups []ForecastGroup
	index  map[forecastKey]int
}

type forecastKey struct {
	src, res string
	train    int
}

// Add appends the traces' series.
func (fs *ForecastSet) Add(traces []Trace) error {
	if fs.index == nil {
		fs.index = map[forecastKey]int{}
	}
	for _, tr := range traces {
		if len(tr.Samples) == 0 {
			continue
		}
		resources := []string{"cpu"}
		if !math.IsNaN(tr.Samples[0].Memory) {
			resources = append(resources, "memory")
		}
		for _, res := range resources {
			s := series(tr, res)
			k := forecastKey{tr.Source, res, shortTrainDays}
			if time.Duration(len(s.Values))*s.Step >= (longTrainDays+1)*24*time.Hour {
				k.train = longTrainDays
			}
			if fs.Step > 0 && fs.Step != s.Step {
				var err error
				if s, err = s.Resample(fs.Step); err != nil {
					return fmt.Errorf("backtest: forecast series of %s: %w", tr.Name, err)
				}
			}
			i, ok := fs.index[k]
			if !ok {
				i = len(fs.groups)
				fs.index[k] = i
				fs.groups = append(fs.groups, ForecastGroup{Source: k.src, Resource: k.res, Max: forecastCap(tr, res), TrainDays: k.train})
			}
			g := &fs.groups[i]
			if forecastCap(tr, res) != g.Max {
				g.Max = 0 // traces of different sizes: no common cap
			}
			g.Series = append(g.Series, s)
		}
	}
	return nil
}

// Groups returns the groups by source, resource and train days (longest
// first).
func (fs *ForecastSet) Groups() []ForecastGroup {
	out := slices.Clone(fs.groups)
	slices.SortStableFunc(out, func(a, b ForecastGroup) int {
		return cmp.Or(cmp.Compare(a.Source, b.Source), cmp.Compare(a.Resource, b.Resource), cmp.Compare(b.TrainDays, a.TrainDays))
	})
	return out
}

func forecastCap(tr Trace, resource string) float64 {
	if tr.Source == "azure" && resource == "cpu" {
		return azurePercent * tr.CoresPerUnit
	}
	return 0
}

// series puts one resource of a trace on the 5-minute grid from its first
// sample, NaN where a window is missing.
func series(tr Trace, resource string) forecast.Series {
	t0 := tr.Samples[0].Time
	last := tr.Samples[len(tr.Samples)-1].Time
	n := int(last.Sub(t0)/forecastStep) + 1
	out := forecast.Series{Name: tr.Name, Start: t0, Step: forecastStep, Values: make([]float64, n)}
	for i := range out.Values {
		out.Values[i] = math.NaN()
	}
	for _, s := range tr.Samples {
		// Windows off the grid (restarts) go to the nearest slot.
		i := int((s.Time.Sub(t0) + forecastStep/2) / forecastStep)
		if i >= 0 && i < n {
			v := s.CPU
			if resource == "memory" {
				v = s.Memory
			}
			out.Values[i] = v
		}
	}
	return out
}
