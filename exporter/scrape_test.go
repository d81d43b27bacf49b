package exporter

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/upid-dev/upid/exporter/forecast"
	"github.com/upid-dev/upid/exporter/history"
	"github.com/upid-dev/upid/internal/config"
)

// TestScrapeReadsOneCycle checks that the families of one scrape report one
// cycle and one forecast run, even when both end while the scrape is being
// written, and that the next scrape reports the new ones.
func TestScrapeReadsOneCycle(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	// No cycle runs here: the querier is never asked.
	svc, err := New(Options{Exporter: config.Default().Exporter, Kube: fake.NewClientset(), Querier: struct{ history.Querier }{}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	cycle := func(replicas, p50 float64) {
		svc.mu.Lock()
		svc.last = &Results{At: now, Workloads: []WorkloadResult{{Namespace: "a", Kind: "Deployment", Name: "web", Replicas: replicas}}}
		svc.mu.Unlock()
		svc.forecasts.mu.Lock()
		svc.forecasts.forecastRun = forecastRun{ran: true, ok: true, at: now, byKey: map[history.Key]workloadForecast{
			{Namespace: "a", Kind: "Deployment", Workload: "web"}: {CPU: []forecast.Summary{{Horizon: 24 * time.Hour, P10: p50, P50: p50, P90: p50}}},
		}}
		svc.forecasts.mu.Unlock()
	}
	// value gathers cs and returns the one series of each family.
	value := func(cs ...prometheus.Collector) (replicas, p50 float64) {
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(cs...)
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		found := 0
		for _, mf := range mfs {
			switch mf.GetName() {
			case "upid_workload_replicas":
				replicas, found = mf.GetMetric()[0].GetGauge().GetValue(), found+1
			case "upid_workload_forecast_cpu_usage_cores":
				for _, m := range mf.GetMetric() {
					for _, l := range m.GetLabel() {
						if l.GetName() == "stat" && l.GetValue() == "p50" {
							p50, found = m.GetGauge().GetValue(), found+1
						}
					}
				}
			}
		}
		if found != 2 {
			t.Fatalf("gathered %d of the 2 series", found)
		}
		return replicas, p50
	}

	cycle(3, 0.5)
	scrape := svc.Collectors()
	// The cycle and the forecast run end between the scrape's families.
	cycle(7, 0.9)
	if r, p := value(scrape...); r != 3 || p != 0.5 {
		t.Errorf("one scrape read replicas %v and forecast p50 %v, want 3 and 0.5, from when it began", r, p)
	}
	if r, p := value(svc.Collector()); r != 7 || p != 0.9 {
		t.Errorf("the next scrape read replicas %v and forecast p50 %v, want the new 7 and 0.9", r, p)
	}

	// The stored families' version moves with a cycle, and not on its
	// own: web.Server serves the bytes it encoded for as long as it stays.
	v := svc.Scrape().Version
	if again := svc.Scrape().Version; again != v {
		t.Errorf("the version moved without a cycle or a forecast run: %v, then %v", v, again)
	}
	svc.mu.Lock()
	svc.last = &Results{At: now}
	svc.mu.Unlock()
	afterCycle := svc.Scrape().Version
	if afterCycle == v {
		t.Error("a cycle left the version as it was")
	}
	// A forecast run's is checked by checkForecasts, on a real Prometheus.
	if svc.Scrape().Version != afterCycle {
		t.Error("the version moved without a cycle or a forecast run")
	}
}
