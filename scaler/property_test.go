package scaler

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"

	"github.com/upid-dev/upid/internal/config"
)

// step is one delivery in a random history.
type step int

const (
	stepSleep        step = iota // UPIDWorkloadIdle firing
	stepWake                     // UPIDSleepingWorkloadRequested firing
	stepIdleResolved             // must not wake
	stepWakeResolved             // must do nothing
	stepBoth                     // sleep and wake in one notification, in random order
	stepRestart                  // a new scaler process on the same cluster
	numSteps
)

func (s step) String() string {
	return [...]string{"sleep", "wake", "idle-resolved", "wake-resolved", "both", "restart"}[s]
}

// cluster is what the property needs from a cluster: the workload's
// replica count and annotations, read fresh.
type cluster interface {
	client() kubernetes.Interface
	dynamic() dynamic.Interface // nil without Rollouts
	read(t testing.TB) (replicas int32, annotations map[string]string)
}

// runHistory delivers a random history of notifications to a scaler that
// may be restarted between any two steps, retrying every 5xx as
// Alertmanager does, and checks after every step that the original count
// is never lost and that the state is the one the last action asked for.
func runHistory(t *testing.T, rng *rand.Rand, c cluster, cfg config.Scaler, w Workload, original int32, steps int, faults *faultPlan) []string {
	t.Helper()
	newScaler := func() *Scaler {
		s, err := New(Options{Kube: c.client(), Dynamic: c.dynamic(), Config: cfg, Recorder: record.NewFakeRecorder(1000)})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := newScaler()
	asleep := false
	var history []string
	for i := 0; i < steps; i++ {
		st := step(rng.IntN(int(numSteps)))
		var alerts []Alert
		switch st {
		case stepSleep:
			alerts = []Alert{alert("UPIDWorkloadIdle", "firing", w)}
			asleep = true
		case stepWake:
			alerts = []Alert{alert("UPIDSleepingWorkloadRequested", "firing", w)}
			asleep = false
		case stepIdleResolved:
			alerts = []Alert{alert("UPIDWorkloadIdle", "resolved", w)}
		case stepWakeResolved:
			alerts = []Alert{alert("UPIDSleepingWorkloadRequested", "resolved", w)}
		case stepBoth:
			alerts = []Alert{alert("UPIDWorkloadIdle", "firing", w), alert("UPIDSleepingWorkloadRequested", "firing", w)}
			asleep = false
			if rng.IntN(2) == 0 {
				alerts[0], alerts[1] = alerts[1], alerts[0]
				asleep = true
			}
		case stepRestart:
			s.Close()
			s = newScaler()
			history = append(history, st.String())
			continue
		}
		body := notification(alerts...)
		// Duplicates: Alertmanager may deliver the same notification again.
		deliveries := 1 + rng.IntN(3)
		for d := 0; d < deliveries; d++ {
			for attempt := 0; ; attempt++ {
				if faults != nil {
					faults.arm(rng)
				}
				code, resp := post(t, s, body, testToken)
				if faults != nil {
					faults.disarm()
				}
				if code == http.StatusOK {
					break
				}
				if code < 500 || attempt > 50 {
					t.Fatalf("step %d (%s): status %d %+v after %d attempts; history %v", i, st, code, resp, attempt, history)
				}
				if rng.IntN(3) == 0 {
					// The process died after the failure; another answers the retry.
					s.Close()
					s = newScaler()
				}
			}
		}
		history = append(history, fmt.Sprintf("%s×%d", st, deliveries))
		replicas, ann := c.read(t)
		if asleep {
			if replicas != 0 || ann[AnnotationReplicas] != strconv.Itoa(int(original)) {
				t.Fatalf("after %v: want asleep with %d saved, got replicas=%d annotations=%v", history, original, replicas, ann)
			}
		} else {
			if replicas != original || ann[AnnotationReplicas] != "" || ann[AnnotationState] != "" {
				t.Fatalf("after %v: want awake with %d replicas and no state, got replicas=%d annotations=%v", history, original, replicas, ann)
			}
		}
	}
	// Whatever happened, a final wake restores the original count and
	// leaves nothing of UPID's behind.
	if code, resp := post(t, s, notification(alert("UPIDSleepingWorkloadRequested", "firing", w)), testToken); code != http.StatusOK {
		t.Fatalf("final wake after %v: %d %+v", history, code, resp)
	}
	if replicas, ann := c.read(t); replicas != original || len(ann) != 0 {
		t.Fatalf("after %v and a final wake: replicas=%d annotations=%v, want %d and none", history, replicas, ann, original)
	}
	s.Close()
	return history
}

// faultPlan fails some Kubernetes writes: conflicts (retried inside the
// scaler) and server errors (answered 500, retried by Alertmanager), which
// also cut a sleep or wake between its two writes.
type faultPlan struct {
	apps *fakeApps
	rate float64
	rng  *rand.Rand
}

func (f *faultPlan) arm(rng *rand.Rand) {
	f.apps.mu.Lock()
	defer f.apps.mu.Unlock()
	f.rng = rng
	f.apps.fail = func(verb, sub string) error {
		if verb != "update" || f.rng.Float64() >= f.rate {
			return nil
		}
		if f.rng.IntN(2) == 0 {
			return apierrors.NewConflict(deploymentsGR, "x", errStale)
		}
		return apierrors.NewInternalError(fmt.Errorf("injected failure of %s %s", verb, sub))
	}
}

func (f *faultPlan) disarm() {
	f.apps.mu.Lock()
	defer f.apps.mu.Unlock()
	f.apps.fail = nil
}

type fakeClusterState struct {
	c    kubernetes.Interface
	apps *fakeApps
	w    Workload
}

func (f fakeClusterState) client() kubernetes.Interface { return f.c }
func (f fakeClusterState) dynamic() dynamic.Interface   { return nil }
func (f fakeClusterState) read(t testing.TB) (int32, map[string]string) {
	d := f.apps.get(f.w.Namespace, f.w.Name)
	if d == nil {
		t.Fatalf("%s vanished", f.w)
	}
	return *d.Spec.Replicas, d.Annotations
}

// TestPropertyNeverLosesTheCount runs many random histories on the fake
// clientset, with injected conflicts and failures between the scaler's two
// writes, and restarts anywhere.
func TestPropertyNeverLosesTheCount(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	for run := 0; run < 200; run++ {
		rng := rand.New(rand.NewPCG(seed, uint64(run)))
		w := Workload{Namespace: "shop", Kind: KindDeployment, Name: "web"}
		original := int32(1 + rng.IntN(5))
		c, apps := newFakeCluster(namespace("shop", optedIn), deployment("shop", "web", original, time.Now().Add(-72*time.Hour)), service("shop", "web"))
		var faults *faultPlan
		if run%2 == 1 {
			faults = &faultPlan{apps: apps, rate: 0.3}
		}
		h := runHistory(t, rng, fakeClusterState{c: c, apps: apps, w: w}, testConfig(t), w, original, 25, faults)
		if t.Failed() {
			t.Fatalf("run %d history %v", run, h)
		}
	}
}

var _ = appsv1.Deployment{}
