package scaler

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

// cutStep is one event in a history whose failures are left in place, as
// a crash or a lost Lease leaves them when nobody redelivers the alert.
type cutStep int

const (
	cutSleep          cutStep = iota // delivered until it succeeds
	cutWake                          // delivered until it succeeds
	cutSleepAfter                    // a sleep that dies after 0 or 1 of its writes
	cutWakeAfter                     // a wake that dies after 0, 1 (mark) or 2 (restore) of its writes
	cutPersonScale                   // kubectl scale, to the count it runs at or another
	cutPersonEdit                    // kubectl edit of spec.replicas
	cutPersonAnnotate                // kubectl annotate: a Deployment's new generation
	cutPersonImage                   // kubectl set image, only while running
	cutRestart
	numCutSteps
)

func (s cutStep) String() string {
	return [...]string{"sleep", "wake", "sleep-cut", "wake-cut", "kubectl-scale", "kubectl-edit", "kubectl-annotate", "kubectl-set-image", "restart"}[s]
}

// TestPropertyCutsLeftInPlace runs random histories in which a sleep or a
// wake may die after any of its writes (the state, the scale; the mark,
// the restore) and stay so, with a person's writes between any two steps.
// The invariants: the count a person last set (or the original) is never
// lost, UPID never sets any count but zero or that one, a wake delivered
// until it succeeds leaves the workload running that count with no state,
// and a sleep delivered until it succeeds, twice, leaves it asleep saving
// that count.
func TestPropertyCutsLeftInPlace(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	ctx := context.Background()
	for run := 0; run < 300; run++ {
		rng := rand.New(rand.NewPCG(seed, uint64(run)))
		w := Workload{Namespace: "shop", Kind: KindDeployment, Name: "web"}
		want := int32(1 + rng.IntN(5))
		c, apps := newFakeCluster(namespace("shop", optedIn), deployment("shop", "web", want, time.Now().Add(-72*time.Hour)), service("shop", "web"))
		s := newTestScaler(t, c, testConfig(t), record.NewFakeRecorder(1000))
		var history []string
		// deliver retries an action as Alertmanager does until it is
		// handled, and returns the last result.
		deliver := func(action string) Result {
			for attempt := 0; attempt < 20; attempt++ {
				var res Result
				if action == ActionSleep {
					res = s.Sleep(ctx, Request{Workload: w, Cause: "test"})
				} else {
					res = s.Wake(ctx, Request{Workload: w, Cause: "test"})
				}
				if res.Result != ResultFailure {
					return res
				}
			}
			t.Fatalf("run %d: %s never handled; history %v", run, action, history)
			return Result{}
		}
		check := func() {
			t.Helper()
			d := apps.get("shop", "web")
			ann := d.Annotations
			switch n := *d.Spec.Replicas; {
			case n == 0 && ann[AnnotationReplicas] != strconv.Itoa(int(want)):
				t.Fatalf("run %d after %v: at zero saving %q, want %d saved; annotations %v", run, history, ann[AnnotationReplicas], want, ann)
			case n != 0 && n != want:
				t.Fatalf("run %d after %v: %d replicas, want %d (the person's or the original); annotations %v", run, history, n, want, ann)
			}
		}
		awake := func(what string) {
			t.Helper()
			if d := apps.get("shop", "web"); *d.Spec.Replicas != want || len(stateLeft(d.Annotations)) > 0 {
				t.Fatalf("run %d after %v: %s left replicas %d, annotations %v; want %d and no state", run, history, what, *d.Spec.Replicas, d.Annotations, want)
			}
		}
		// pending: a person changed the count since the state now on the
		// workload was written, so no step may take the workload for one
		// UPID woke and sleep it afresh. Not set in the one case
		// docs/scaler.md gives up: a kubectl scale to the saved count right
		// after a wake's mark, the same write as its restore.
		pending := false
		for i := 0; i < 30; i++ {
			st := cutStep(rng.IntN(int(numCutSteps)))
			label := st.String()
			before := apps.get("shop", "web")
			switch st {
			case cutSleep:
				res := deliver(ActionSleep)
				label += "=" + res.Result
				if res.Result == ResultUserChange {
					// The state was forgotten; the next alert sleeps it.
					awake("a sleep that found a change")
					pending, before = false, apps.get("shop", "web")
					res = deliver(ActionSleep)
					label += "," + res.Result
				}
				if d := apps.get("shop", "web"); *d.Spec.Replicas != 0 || d.Annotations[AnnotationReplicas] != strconv.Itoa(int(want)) {
					t.Fatalf("run %d after %v %s: replicas %d, annotations %v; want asleep saving %d", run, history, label, *d.Spec.Replicas, d.Annotations, want)
				}
			case cutWake:
				res := deliver(ActionWake)
				label += "=" + res.Result
				history = append(history, label)
				awake("a wake")
			case cutSleepAfter, cutWakeAfter:
				n := rng.IntN(3)
				writes := 0
				apps.fail = func(verb, sub string) error {
					if verb != "patch" && verb != "update" {
						return nil
					}
					if writes++; writes > n {
						return apierrors.NewInternalError(errors.New("test: the process died"))
					}
					return nil
				}
				if st == cutSleepAfter {
					s.Sleep(ctx, Request{Workload: w, Cause: "test"})
				} else {
					s.Wake(ctx, Request{Workload: w, Cause: "test"})
				}
				apps.fail = nil
				label += strconv.Itoa(n)
			case cutPersonScale, cutPersonEdit:
				if rng.IntN(2) == 0 {
					want = int32(1 + rng.IntN(5))
				}
				if d := apps.get("shop", "web"); *d.Spec.Replicas != 0 && rng.IntN(2) == 0 {
					// The count it runs at: a write that changes nothing.
					want = *d.Spec.Replicas
				}
				label += "=" + strconv.Itoa(int(want))
				if want != *before.Spec.Replicas && len(stateLeft(before.Annotations)) > 0 {
					waking, _ := strconv.ParseInt(before.Annotations[AnnotationWaking], 10, 64)
					restoreLike := st == cutPersonScale && *before.Spec.Replicas == 0 && waking != 0 && before.Generation == waking+1 &&
						before.Annotations[AnnotationReplicas] == strconv.Itoa(int(want))
					pending = pending || !restoreLike
				}
				if st == cutPersonScale {
					sc := &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"}, Spec: autoscalingv1.ScaleSpec{Replicas: want}}
					if _, err := c.AppsV1().Deployments("shop").UpdateScale(ctx, "web", sc, metav1.UpdateOptions{FieldManager: "kubectl"}); err != nil {
						t.Fatal(err)
					}
				} else {
					apps.edit("shop", "web", scaleTo(want))
				}
			case cutPersonAnnotate:
				apps.edit("shop", "web", func(d *appsv1.Deployment) {
					if d.Annotations == nil {
						d.Annotations = map[string]string{}
					}
					d.Annotations["team"] = strconv.Itoa(i)
				})
			case cutPersonImage:
				if d := apps.get("shop", "web"); *d.Spec.Replicas == 0 {
					// A spec edited while asleep stays at zero by design
					// (docs/scaler.md, Limits): no count to keep.
					continue
				}
				apps.edit("shop", "web", func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "web:" + strconv.Itoa(i) })
			case cutRestart:
				s.Close()
				s = newTestScaler(t, c, testConfig(t), record.NewFakeRecorder(1000))
			}
			if st != cutWake {
				history = append(history, label)
			}
			check()
			after := apps.get("shop", "web")
			if pending && before.Annotations[AnnotationSince] != "" && after.Annotations[AnnotationReplicas] != "" &&
				after.Annotations[AnnotationGeneration] != before.Annotations[AnnotationGeneration] {
				t.Fatalf("run %d after %v: a person's count taken for UPID's: the state went from %v to %v", run, history, before.Annotations, after.Annotations)
			}
			if len(stateLeft(after.Annotations)) == 0 || after.Annotations[AnnotationGeneration] != before.Annotations[AnnotationGeneration] {
				pending = false
			}
		}
		res := deliver(ActionWake)
		history = append(history, "final-wake="+res.Result)
		awake("the final wake")
		s.Close()
	}
}
