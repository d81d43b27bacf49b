package exporter_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes/fake"

	"github.com/upid-dev/upid/exporter"
	"github.com/upid-dev/upid/exporter/demo"
	"github.com/upid-dev/upid/exporter/idle"
	"github.com/upid-dev/upid/internal/config"
)

// TestDemoCasesReachTheirVerdicts runs the embedded demo cluster through the
// exporter exactly as `upid exporter --demo` does, with the default
// configuration, and holds every case to the verdict it was built for.
func TestDemoCasesReachTheirVerdicts(t *testing.T) {
	now := time.Now().Truncate(time.Minute)
	cfg := config.Default()
	d, err := demo.New(now, time.Duration(cfg.Exporter.Window))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	svc, err := exporter.New(exporter.Options{
		Exporter: cfg.Exporter, Prometheus: cfg.Prometheus,
		Kube: fake.NewClientset(d.Objects...), Querier: d.Querier,
		Now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer svc.Shutdown()
	if err := svc.Cycle(ctx); err != nil {
		t.Fatal(err)
	}
	got := map[[3]string]exporter.WorkloadResult{}
	for _, w := range svc.Last().Workloads {
		got[[3]string{w.Namespace, w.Kind, w.Name}] = w
	}
	for _, c := range d.Cases {
		t.Run(c.Name, func(t *testing.T) {
			w, ok := got[[3]string{c.Namespace, c.Kind, c.Name}]
			if !ok {
				t.Fatalf("%s/%s/%s not in the results", c.Namespace, c.Kind, c.Name)
			}
			v := w.Idle
			t.Logf("%s: score %.3f confidence %.2f reasons %v", v.State, v.Score, v.Confidence, v.Reasons)
			if v.State != c.Expect {
				t.Errorf("verdict %s, the case promises %s (%s)", v.State, c.Expect, c.Why)
			}
			if c.Expect == demo.ExpectIdle {
				if low := v.Confidence < 0.8; low != c.LowConfidence {
					t.Errorf("confidence %.2f, the case promises low confidence: %v", v.Confidence, c.LowConfidence)
				}
				if slices.Contains(v.Reasons, idle.ReasonProbeMismatch) {
					t.Errorf("probes disagree with the spec: %v", v.Reasons)
				}
			}
		})
	}
}
