package scaler

import (
	"context"
	"errors"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
)

// TestNoWakePathNoSleep: a queue consumer has no Service, so once asleep
// no request could ever raise UPIDSleepingWorkloadRequested for it
// (upid_scaler_sleeping_workload_service_info has no series to join), and
// only upid wake would bring it back. The idle alert must not put it to
// sleep; a Service selecting it gives it the wake path (found in review).
func TestNoWakePathNoSleep(t *testing.T) {
	for _, tc := range []struct {
		name   string
		objs   []runtime.Object
		result string
		reason string
	}{
		{name: "no Service", result: ResultSkipped, reason: "no_wake_path"},
		{name: "a Service selects it", objs: []runtime.Object{service("shop", "payment-consumer")}, result: ResultSuccess},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := deployment("shop", "payment-consumer", 2, time.Now().Add(-30*24*time.Hour))
			c, apps := newFakeCluster(append(tc.objs, namespace("shop", optedIn), d)...)
			s := newTestScaler(t, c, testConfig(t), record.NewFakeRecorder(10))
			w := Workload{Namespace: "shop", Kind: KindDeployment, Name: "payment-consumer"}
			res := s.Handle(context.Background(), Notification{Alerts: []Alert{alert("UPIDWorkloadIdle", "firing", w)}})
			if len(res) != 1 || res[0].Result != tc.result || res[0].Reason != tc.reason {
				t.Fatalf("got %v, want %s (%s)", res, tc.result, tc.reason)
			}
			if got, want := *apps.get("shop", "payment-consumer").Spec.Replicas, map[bool]int32{true: 0, false: 2}[tc.result == ResultSuccess]; got != want {
				t.Errorf("replicas %d, want %d", got, want)
			}
		})
	}
}

// TestWakePathFromTheCache: once Run has synced, the wake-path check reads
// the Service informer the sleeping-workload metrics keep, not the API
// server, so a storm of idle alerts costs no Service list per alert.
func TestWakePathFromTheCache(t *testing.T) {
	c, apps := newFakeCluster(namespace("shop", optedIn), deployment("shop", "web", 3, time.Now().Add(-72*time.Hour)), service("shop", "web"))
	s := newTestScaler(t, c, testConfig(t), record.NewFakeRecorder(10))
	apps.fillCaches(s)
	c.PrependReactor("list", "services", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("the API server was asked")
	})
	if res := s.Sleep(context.Background(), Request{Workload: web, Cause: "test"}); res.Result != ResultSuccess {
		t.Errorf("got %s, want success from the cached Service", res)
	}
}
