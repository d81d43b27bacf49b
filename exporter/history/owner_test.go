package history_test

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/upid-dev/upid/exporter/history"
	"github.com/upid-dev/upid/internal/series"
	"github.com/upid-dev/upid/internal/testenv"
)

// TestOwnerExprAgainstPrometheus evaluates the pod-to-workload join on a
// real Prometheus for every owner shape, against what the inventory
// resolves the same pods to (inventory.TestOwnerResolution): the two must
// agree, or the recommender's state and the inventory's workloads never
// meet. Owners that changed within the lookback (a ReplicaSet adopted by
// another controller, a pod by another ReplicaSet) must not fail the join
// on many-to-many matching, which would fail every query of the cycle.
func TestOwnerExprAgainstPrometheus(t *testing.T) {
	from, mid, to := twoHours()
	pod := func(name string, o series.OwnerRef, a, b time.Time) series.Series {
		return series.KubePodOwner(series.PodRef{Namespace: "shop", Pod: name}, o, ones(a, b))
	}
	rs := func(name string, o series.OwnerRef, a, b time.Time) series.Series {
		return series.KubeReplicaSetOwner("shop", name, o, ones(a, b))
	}
	prom := testenv.StartPrometheus(t, testenv.PrometheusOptions{Series: []series.Series{
		pod("web-7d9f-a", series.OwnerRef{Kind: "ReplicaSet", Name: "web-7d9f"}, from, to),
		rs("web-7d9f", series.OwnerRef{Kind: "Deployment", Name: "web"}, from, to),
		pod("canary-6b8c-a", series.OwnerRef{Kind: "ReplicaSet", Name: "canary-6b8c"}, from, to),
		rs("canary-6b8c", series.OwnerRef{Kind: "Rollout", Name: "canary"}, from, to),
		pod("orphan-rs-a", series.OwnerRef{Kind: "ReplicaSet", Name: "orphan-rs"}, from, to),
		rs("orphan-rs", series.OwnerRef{}, from, to),
		pod("nightly-29000-q", series.OwnerRef{Kind: "Job", Name: "nightly-29000"}, from, to),
		series.KubeJobOwner("shop", "nightly-29000", series.OwnerRef{Kind: "CronJob", Name: "nightly"}, ones(from, to)),
		pod("etcd-n1", series.OwnerRef{Kind: "Node", Name: "n1"}, from, to),
		pod("debug", series.OwnerRef{}, from, to),
		pod("clone-a", series.OwnerRef{Kind: "CloneSet", Name: "clone"}, from, to),
		pod("adopted", series.OwnerRef{Kind: "ReplicaSet", Name: "web-7d9f", NotController: true}, from, to),
		// A Deployment's ReplicaSet orphaned and adopted by a Rollout of
		// the same name, within the lookback.
		pod("app-5d6c-a", series.OwnerRef{Kind: "ReplicaSet", Name: "app-5d6c"}, from, to),
		rs("app-5d6c", series.OwnerRef{Kind: "Deployment", Name: "app"}, from, mid),
		rs("app-5d6c", series.OwnerRef{Kind: "Rollout", Name: "app"}, mid.Add(time.Minute), to),
		// A pod released by one ReplicaSet and adopted by another.
		pod("moved-a", series.OwnerRef{Kind: "ReplicaSet", Name: "web-7d9f"}, from, mid),
		pod("moved-a", series.OwnerRef{Kind: "ReplicaSet", Name: "canary-6b8c"}, mid.Add(time.Minute), to),
	}})
	for _, lookback := range []string{"", "3h"} {
		got := map[string]string{}
		for _, s := range prom.Query(t, history.OwnerExpr(lookback), to) {
			p := string(s.Metric["pod"])
			if _, dup := got[p]; dup {
				t.Errorf("lookback %q: pod %s maps to two workloads", lookback, p)
			}
			got[p] = string(s.Metric["kind"]) + "/" + string(s.Metric["workload"])
		}
		want := map[string]string{
			"web-7d9f-a": "Deployment/web", "canary-6b8c-a": "Rollout/canary", "orphan-rs-a": "ReplicaSet/orphan-rs",
			"nightly-29000-q": "CronJob/nightly", "etcd-n1": "Pod/etcd-n1", "debug": "Pod/debug", "clone-a": "CloneSet/clone",
			"adopted": "Pod/adopted", "app-5d6c-a": "Rollout/app", "moved-a": "Rollout/canary",
		}
		if lookback != "" {
			// Over the lookback either owner is right: the pod had both.
			if w := got["app-5d6c-a"]; w == "Deployment/app" {
				want["app-5d6c-a"] = w
			}
			if w := got["moved-a"]; w == "Deployment/web" {
				want["moved-a"] = w
			}
		}
		for _, p := range slices.Sorted(maps.Keys(want)) {
			if got[p] != want[p] {
				t.Errorf("lookback %q: %s resolves to %q in PromQL, %q in the inventory", lookback, p, got[p], want[p])
			}
		}
	}
}

// twoHours is the span the tests load into Prometheus: from two hours
// before now to a minute before, with mid an hour in.
func twoHours() (from, mid, to time.Time) {
	now := time.Now().Truncate(time.Minute)
	return now.Add(-2 * time.Hour), now.Add(-time.Hour), now.Add(-time.Minute)
}

// ones is an info series' samples (kube-state-metrics' owners) from a to b.
func ones(a, b time.Time) []series.Sample {
	return series.Generate(a, b, time.Minute, series.Const(1))
}
