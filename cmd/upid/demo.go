package main

import (
	"fmt"
	"io"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/prometheus/common/model"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/upid-dev/upid/exporter"
	"github.com/upid-dev/upid/exporter/demo"
)

// clock is the time the demo's history ends at; golden tests pin it so that
// the demo's numbers, which follow the time of day, are reproducible.
var clock = time.Now

// startDemo points the exporter at the embedded cluster: a fake clientset
// seeded with the demo objects and Prometheus's own engine over the demo
// series. Everything after that is the production code path.
func startDemo(env *environment, opts *exporter.Options) (io.Closer, error) {
	now := clock().Truncate(time.Minute)
	d, closer, err := newDemo(now, time.Duration(env.cfg.Exporter.Window))
	if err != nil {
		return nil, err
	}
	opts.Kube = fake.NewClientset(d.Objects...)
	opts.Querier = d.Querier
	// The demo's history ends at its start; later cycles see the same window.
	opts.Now = func() time.Time { return now }
	if env.cfg.Web.ListenAddress == "" {
		env.cfg.Web.ListenAddress = "127.0.0.1" + exporterDefaultAddress
	}
	return closer, nil
}

// newDemo builds the embedded cluster; tests that run many commands over the
// same pinned clock share one, as it is read-only.
var newDemo = func(now time.Time, window time.Duration) (*demo.Demo, io.Closer, error) {
	d, err := demo.New(now, window)
	return d, d, err
}

func printDemoSummary(w io.Writer, r *exporter.Results) {
	ws := append([]exporter.WorkloadResult{}, r.Workloads...)
	sort.Slice(ws, func(i, j int) bool { return ws[i].Cost.Total > ws[j].Cost.Total })
	var cost, idleCost, waste float64
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKLOAD\tSTATE\tSCORE\tCONFIDENCE\tHEALTH SHARE\tREAL REQ/S\t$/MONTH\tWASTE $/MONTH")
	for _, x := range ws {
		wst := 0.0
		if x.Waste.CPU != nil {
			wst += *x.Waste.CPU
		}
		if x.Waste.Memory != nil {
			wst += *x.Waste.Memory
		}
		cost += x.Cost.Total
		idleCost += x.IdleCostPerHr
		waste += wst
		share := "-"
		if x.Idle.HasRequestMetrics {
			share = fmt.Sprintf("%.0f%%", 100*x.Idle.HealthShare)
		}
		fmt.Fprintf(tw, "%s/%s/%s\t%s\t%.2f\t%.2f\t%s\t%.3f\t%.2f\t%.2f\n", x.Namespace, x.Kind, x.Name, x.Idle.State, x.Idle.Score, x.Idle.Confidence, share, x.Idle.RealRequestsPerSecond, x.Cost.Total*730, wst*730)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\nTotal: $%.2f/month requested, $%.2f/month idle, $%.2f/month waste (window %s ending %s)\n",
		cost*730, idleCost*730, waste*730, model.Duration(r.Window), r.At.UTC().Format(time.RFC3339))
}
