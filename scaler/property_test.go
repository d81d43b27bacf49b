package scaler

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
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
	cutDry                           // a dry-run sleep or wake, which must write nothing
	cutOldState                      // the state as a scaler before upid.io/sleep-generation wrote it
	cutRestart
	numCutSteps
)

func (s cutStep) String() string {
	return [...]string{"sleep", "wake", "sleep-cut", "wake-cut", "kubectl-scale", "kubectl-edit", "kubectl-annotate", "kubectl-set-image", "dry-run", "old-state", "restart"}[s]
}

// cutLab is a workload a cut history runs on, and what a person does to it.
type cutLab interface {
	// newScaler is a scaler whose workload writes fail once failAfter
	// has let n through.
	newScaler(t *testing.T) *Scaler
	failAfter(n int) // n < 0: none fail
	read(t *testing.T) (replicas int32, generation int64, annotations map[string]string)
	kubectlScale(t *testing.T, n int32)
	kubectlEditReplicas(t *testing.T, n int32)
	kubectlAnnotate(t *testing.T, v string)
	kubectlSetImage(t *testing.T, v string)
	workload() Workload
	// bumps: an annotation is a new generation (a Deployment).
	bumps() bool
	// forgetGeneration removes upid.io/sleep-generation, if the workload
	// carries a state, without a write the API server would count; false
	// when the lab cannot.
	forgetGeneration() bool
}

// runCuts runs a random history in which a sleep or a wake may die after
// any of its writes (the state, the scale; the mark, the restore) and stay
// so, with a person's writes between any two steps. The invariants: the
// count a person last set (or the original, want) is never lost, UPID
// never sets any count but zero or that one, no step takes a person's
// count for UPID's restore, a wake delivered until it succeeds leaves the
// workload running that count with no state, and a sleep delivered until
// it succeeds, twice, leaves it asleep saving that count.
func runCuts(t *testing.T, rng *rand.Rand, lab cutLab, want int32, steps int) {
	t.Helper()
	ctx := context.Background()
	w := lab.workload()
	s := lab.newScaler(t)
	defer func() { s.Close() }()
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
		t.Fatalf("%s never handled; history %v", action, history)
		return Result{}
	}
	awake := func(what string) {
		t.Helper()
		if n, _, ann := lab.read(t); n != want || len(stateLeft(ann)) > 0 {
			t.Fatalf("after %v: %s left replicas %d, annotations %v; want %d and no state", history, what, n, ann, want)
		}
	}
	// pending: a person changed the count since the state now on the
	// workload was written, so no step may take the workload for one UPID
	// woke and sleep it afresh. Not set in the one case docs/scaler.md
	// gives up: a kubectl scale to the saved count right after a wake's
	// mark, the same write as its restore.
	pending := false
	for i := 0; i < steps; i++ {
		st := cutStep(rng.IntN(int(numCutSteps)))
		label := st.String()
		replicas, generation, ann := lab.read(t)
		switch st {
		case cutSleep:
			res := deliver(ActionSleep)
			label += "=" + res.Result
			if res.Result == ResultUserChange {
				// The state was forgotten; the next alert sleeps it.
				awake("a sleep that found a change")
				pending = false
				replicas, generation, ann = lab.read(t)
				res = deliver(ActionSleep)
				label += "," + res.Result
			}
			if n, _, a := lab.read(t); n != 0 || a[AnnotationReplicas] != strconv.Itoa(int(want)) {
				t.Fatalf("after %v %s: replicas %d, annotations %v; want asleep saving %d", history, label, n, a, want)
			}
		case cutWake:
			label += "=" + deliver(ActionWake).Result
		case cutSleepAfter, cutWakeAfter:
			n := rng.IntN(3)
			lab.failAfter(n)
			if st == cutSleepAfter {
				s.Sleep(ctx, Request{Workload: w, Cause: "test"})
			} else {
				s.Wake(ctx, Request{Workload: w, Cause: "test"})
			}
			lab.failAfter(-1)
			label += strconv.Itoa(n)
		case cutPersonScale, cutPersonEdit:
			if rng.IntN(2) == 0 {
				want = int32(1 + rng.IntN(5))
			}
			if replicas != 0 && rng.IntN(2) == 0 {
				// The count it runs at: a write that changes nothing.
				want = replicas
			}
			label += "=" + strconv.Itoa(int(want))
			if want != replicas && len(stateLeft(ann)) > 0 {
				waking, _ := strconv.ParseInt(ann[AnnotationWaking], 10, 64)
				marked := waking
				if lab.bumps() {
					marked++
				}
				restoreLike := st == cutPersonScale && replicas == 0 && waking != 0 && generation == marked && ann[AnnotationReplicas] == strconv.Itoa(int(want))
				pending = pending || !restoreLike
			}
			if st == cutPersonScale {
				lab.kubectlScale(t, want)
			} else {
				lab.kubectlEditReplicas(t, want)
			}
		case cutPersonAnnotate:
			lab.kubectlAnnotate(t, strconv.Itoa(i))
		case cutPersonImage:
			if replicas == 0 {
				// A spec edited while asleep stays at zero by design
				// (docs/scaler.md, Limits): no count to keep.
				continue
			}
			lab.kubectlSetImage(t, strconv.Itoa(i))
		case cutDry:
			req := Request{Workload: w, Cause: "test", DryRun: true}
			if rng.IntN(2) == 0 {
				label += "-sleep=" + s.Sleep(ctx, req).Result
			} else {
				label += "-wake=" + s.Wake(ctx, req).Result
			}
			if n, g, a := lab.read(t); n != replicas || g != generation || !maps.Equal(a, ann) {
				t.Fatalf("after %v %s: replicas %d, generation %d, annotations %v; a dry run wrote (was %d, %d, %v)", history, label, n, g, a, replicas, generation, ann)
			}
		case cutOldState:
			if ann[AnnotationGeneration] == "" || !lab.forgetGeneration() {
				continue
			}
			// Read again: the step wrote no state of UPID's own.
			_, _, ann = lab.read(t)
		case cutRestart:
			s.Close()
			s = lab.newScaler(t)
		}
		history = append(history, label)
		n, _, after := lab.read(t)
		// A state without a generation and without a mark at its count
		// is a sleep cut short for all anyone can tell (docs/scaler.md,
		// Limits): a sleep finishing it leaves no person's count to honour.
		limit := ann[AnnotationGeneration] == "" && ann[AnnotationWaking] == "" && replicas != 0 && n == 0
		switch {
		case n == 0 && after[AnnotationReplicas] != strconv.Itoa(int(want)):
			t.Fatalf("after %v: at zero saving %q, want %d saved; annotations %v", history, after[AnnotationReplicas], want, after)
		case n != 0 && n != want:
			t.Fatalf("after %v: %d replicas, want %d (the person's or the original); annotations %v", history, n, want, after)
		case pending && ann[AnnotationSince] != "" && after[AnnotationReplicas] != "" && after[AnnotationGeneration] != ann[AnnotationGeneration]:
			t.Fatalf("after %v: a person's count taken for UPID's: the state went from %v to %v", history, ann, after)
		case pending && !limit && replicas != 0 && n == 0 && after[AnnotationReplicas] != "" && after[AnnotationGeneration] == ann[AnnotationGeneration]:
			t.Fatalf("after %v: a person's count taken for a sleep cut short: scaled to zero under the state %v", history, after)
		}
		if st == cutWake {
			awake("a wake")
		}
		if len(stateLeft(after)) == 0 || after[AnnotationGeneration] != ann[AnnotationGeneration] || limit {
			pending = false
		}
	}
	res := deliver(ActionWake)
	history = append(history, "final-wake="+res.Result)
	awake("the final wake")
}

// fakeCutLab is the web Deployment on the fake clientset.
type fakeCutLab struct {
	c    kubernetes.Interface
	apps *fakeApps
}

func (f fakeCutLab) newScaler(t *testing.T) *Scaler {
	return newTestScaler(t, f.c, testConfig(t), record.NewFakeRecorder(1000))
}

func (f fakeCutLab) failAfter(n int) {
	if n < 0 {
		f.apps.fail = nil
		return
	}
	writes := 0
	f.apps.fail = func(verb, sub string) error {
		if verb != "patch" && verb != "update" {
			return nil
		}
		if writes++; writes > n {
			return apierrors.NewInternalError(errors.New("test: the process died"))
		}
		return nil
	}
}

func (f fakeCutLab) read(t *testing.T) (int32, int64, map[string]string) {
	d := f.apps.get("shop", "web")
	return *d.Spec.Replicas, d.Generation, d.Annotations
}

func (f fakeCutLab) kubectlScale(t *testing.T, n int32) {
	sc := &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"}, Spec: autoscalingv1.ScaleSpec{Replicas: n}}
	if _, err := f.c.AppsV1().Deployments("shop").UpdateScale(context.Background(), "web", sc, metav1.UpdateOptions{FieldManager: "kubectl"}); err != nil {
		t.Fatal(err)
	}
}

func (f fakeCutLab) kubectlEditReplicas(t *testing.T, n int32) {
	f.apps.edit("shop", "web", scaleTo(n))
}

func (f fakeCutLab) kubectlAnnotate(t *testing.T, v string) {
	f.apps.edit("shop", "web", func(d *appsv1.Deployment) {
		if d.Annotations == nil {
			d.Annotations = map[string]string{}
		}
		d.Annotations["team"] = v
	})
}

func (f fakeCutLab) kubectlSetImage(t *testing.T, v string) {
	f.apps.edit("shop", "web", func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "web:" + v })
}

func (f fakeCutLab) forgetGeneration() bool {
	f.apps.mu.Lock()
	defer f.apps.mu.Unlock()
	delete(f.apps.objects["shop/web"].Annotations, AnnotationGeneration)
	return true
}

func (f fakeCutLab) workload() Workload {
	return Workload{Namespace: "shop", Kind: KindDeployment, Name: "web"}
}
func (f fakeCutLab) bumps() bool { return true }

// TestPropertyCutsLeftInPlace runs runCuts on the fake clientset.
func TestPropertyCutsLeftInPlace(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	for run := 0; run < 300; run++ {
		rng := rand.New(rand.NewPCG(seed, uint64(run)))
		want := int32(1 + rng.IntN(5))
		c, apps := newFakeCluster(namespace("shop", optedIn), deployment("shop", "web", want, time.Now().Add(-72*time.Hour)), service("shop", "web"))
		t.Run(strconv.Itoa(run), func(t *testing.T) { runCuts(t, rng, fakeCutLab{c: c, apps: apps}, want, 30) })
	}
}

// diesAfter lets n writes of a workload through, then fails the rest, as
// a process that died or lost its Lease there would; n < 0: none fail.
type diesAfter struct {
	next http.RoundTripper
	mu   sync.Mutex
	n    int
}

func (d *diesAfter) RoundTrip(req *http.Request) (*http.Response, error) {
	if (req.Method == http.MethodPatch || req.Method == http.MethodPut) && (strings.Contains(req.URL.Path, "/apis/apps/") || strings.Contains(req.URL.Path, "/apis/argoproj.io/")) {
		d.mu.Lock()
		n := d.n
		if n > 0 {
			d.n--
		}
		d.mu.Unlock()
		if n == 0 {
			return nil, errors.New("test: the process died")
		}
	}
	return d.next.RoundTrip(req)
}

// realCutLab is a Deployment, StatefulSet or Rollout on a real kube-apiserver,
// written by a person through the API server as kubectl would, each
// command under kubectl's field manager.
type realCutLab struct {
	person, dying       kubernetes.Interface
	personDyn, dyingDyn dynamic.Interface // for a Rollout
	dies                *diesAfter
	cfg                 config.Scaler
	w                   Workload
}

func (r realCutLab) newScaler(t *testing.T) *Scaler {
	s, err := New(Options{Kube: r.dying, Dynamic: r.dyingDyn, Config: r.cfg, Recorder: record.NewFakeRecorder(1000)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (r realCutLab) failAfter(n int) {
	r.dies.mu.Lock()
	defer r.dies.mu.Unlock()
	r.dies.n = n
}

func (r realCutLab) read(t *testing.T) (int32, int64, map[string]string) {
	t.Helper()
	ctx := context.Background()
	if r.w.Kind == KindRollout {
		u, err := r.personDyn.Resource(rollouts).Namespace(r.w.Namespace).Get(ctx, r.w.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n, _, _ := unstructured.NestedInt64(u.Object, "spec", "replicas")
		return int32(n), u.GetGeneration(), u.GetAnnotations()
	}
	if r.w.Kind == KindStatefulSet {
		s, err := r.person.AppsV1().StatefulSets(r.w.Namespace).Get(ctx, r.w.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return *s.Spec.Replicas, s.Generation, s.Annotations
	}
	d := getDeployment(t, r.person, r.w)
	return *d.Spec.Replicas, d.Generation, d.Annotations
}

func (r realCutLab) kubectlScale(t *testing.T, n int32) {
	t.Helper()
	ctx := context.Background()
	sc := &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: r.w.Name, Namespace: r.w.Namespace}, Spec: autoscalingv1.ScaleSpec{Replicas: n}}
	var err error
	switch r.w.Kind {
	case KindRollout:
		u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "autoscaling/v1", "kind": "Scale",
			"metadata": map[string]any{"name": r.w.Name, "namespace": r.w.Namespace}, "spec": map[string]any{"replicas": int64(n)}}}
		_, err = r.personDyn.Resource(rollouts).Namespace(r.w.Namespace).Update(ctx, u, metav1.UpdateOptions{FieldManager: "kubectl"}, "scale")
	case KindStatefulSet:
		_, err = r.person.AppsV1().StatefulSets(r.w.Namespace).UpdateScale(ctx, r.w.Name, sc, metav1.UpdateOptions{FieldManager: "kubectl"})
	default:
		_, err = r.person.AppsV1().Deployments(r.w.Namespace).UpdateScale(ctx, r.w.Name, sc, metav1.UpdateOptions{FieldManager: "kubectl"})
	}
	if err != nil {
		t.Fatal(err)
	}
}

// patch sends a merge patch under manager, as kubectl edit, annotate and
// set image do.
func (r realCutLab) patch(t *testing.T, manager, patch string) {
	t.Helper()
	ctx := context.Background()
	opts := metav1.PatchOptions{FieldManager: manager}
	var err error
	switch r.w.Kind {
	case KindRollout:
		_, err = r.personDyn.Resource(rollouts).Namespace(r.w.Namespace).Patch(ctx, r.w.Name, types.MergePatchType, []byte(patch), opts)
	case KindStatefulSet:
		_, err = r.person.AppsV1().StatefulSets(r.w.Namespace).Patch(ctx, r.w.Name, types.MergePatchType, []byte(patch), opts)
	default:
		_, err = r.person.AppsV1().Deployments(r.w.Namespace).Patch(ctx, r.w.Name, types.MergePatchType, []byte(patch), opts)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func (r realCutLab) kubectlEditReplicas(t *testing.T, n int32) {
	r.patch(t, "kubectl-edit", fmt.Sprintf(`{"spec":{"replicas":%d}}`, n))
}

func (r realCutLab) kubectlAnnotate(t *testing.T, v string) {
	r.patch(t, "kubectl-annotate", fmt.Sprintf(`{"metadata":{"annotations":{"team":%q}}}`, v))
}

func (r realCutLab) kubectlSetImage(t *testing.T, v string) {
	// The template's only container, as deployment() makes it.
	r.patch(t, "kubectl-set", fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"web:%s"}]}}}}`, v))
}

// forgetGeneration: a Deployment counts any annotation write.
func (r realCutLab) forgetGeneration() bool { return false }

func (r realCutLab) workload() Workload { return r.w }
func (r realCutLab) bumps() bool        { return r.w.Kind == KindDeployment }

// TestPropertyCutsAgainstAPIServer runs runCuts on a real kube-apiserver,
// whose generations (an annotation is one of a Deployment, not of a
// StatefulSet nor of a Rollout, a custom resource with a status
// subresource) and managedFields are what tell UPID's restore from a
// person's writes.
func TestPropertyCutsAgainstAPIServer(t *testing.T) {
	kube, cfg := startLab(t)
	c := kube.Clientset
	dies := &diesAfter{n: -1}
	restCfg := rest.CopyConfig(kube.Config)
	restCfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { dies.next = rt; return dies })
	dying, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		t.Fatal(err)
	}
	dyingDyn, err := dynamic.NewForConfig(restCfg)
	if err != nil {
		t.Fatal(err)
	}
	personDyn, err := dynamic.NewForConfig(kube.Config)
	if err != nil {
		t.Fatal(err)
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	for run := 0; run < 15; run++ {
		rng := rand.New(rand.NewPCG(seed, uint64(run)))
		want := int32(1 + rng.IntN(5))
		name := fmt.Sprintf("cuts-%d", run)
		w := createDeployment(t, c, "lab", name, want)
		switch run % 3 {
		case 2:
			kube.CreateRollout(context.Background(), t, "lab", name+"-ro", rolloutSpec(name, int64(want)))
			w = Workload{Namespace: "lab", Kind: KindRollout, Name: name + "-ro"}
		case 1:
			d := getDeployment(t, c, w)
			ss := &appsv1.StatefulSet{ObjectMeta: metaNamed("lab", name+"-db"), Spec: appsv1.StatefulSetSpec{Replicas: d.Spec.Replicas, Selector: d.Spec.Selector, Template: d.Spec.Template}}
			if _, err := c.AppsV1().StatefulSets("lab").Create(context.Background(), ss, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			w = Workload{Namespace: "lab", Kind: KindStatefulSet, Name: name + "-db"}
		}
		t.Run(w.Kind+"/"+w.Name, func(t *testing.T) {
			runCuts(t, rng, realCutLab{person: c, dying: dying, personDyn: personDyn, dyingDyn: dyingDyn, dies: dies, cfg: cfg, w: w}, want, 25)
		})
	}
}
