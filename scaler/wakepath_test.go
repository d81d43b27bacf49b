package scaler

import (
	"context"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
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
