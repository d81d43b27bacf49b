package scaler

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"

	"github.com/upid-dev/upid/internal/config"
)

// leaseGate stands between one replica and the API server. It holds one
// workload call until the call's context ends, as a slow API server would,
// and, once cut, keeps the replica from its Lease: every Lease call hangs
// until its context ends (an API server that no longer answers that
// replica in time) or fails at once (one it cannot reach).
type leaseGate struct {
	next http.RoundTripper
	// hold is "METHOD path" of the call to hold, the first time it is made.
	hold string
	// through lets the held call reach the server, which acts on it; only
	// its answer is held.
	through bool
	// hang makes Lease calls hang rather than fail, once cut.
	hang bool
	// peerLeads says whether the replica that is to take over leads.
	peerLeads func() bool

	held       chan struct{} // closed once the call is held
	ended      chan heldEnd  // what ended the held call
	once       atomic.Bool
	cut        atomic.Bool
	lateWrites atomic.Int32 // workload writes sent after the cut
}

type heldEnd struct {
	cause error
	// peerLed: the next leader already led when the held call ended, so
	// both replicas acted at once.
	peerLed bool
}

func newLeaseGate(hold string, through, hang bool) *leaseGate {
	return &leaseGate{hold: hold, through: through, hang: hang, peerLeads: func() bool { return false },
		held: make(chan struct{}), ended: make(chan heldEnd, 1)}
}

// client is a clientset for the replica behind the gate.
func (g *leaseGate) client(t testing.TB, cfg *rest.Config) kubernetes.Interface {
	t.Helper()
	cfg = rest.CopyConfig(cfg)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { g.next = rt; return g })
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (g *leaseGate) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	if g.cut.Load() {
		if strings.Contains(req.URL.Path, "/apis/coordination.k8s.io/") {
			if g.hang {
				<-ctx.Done()
				return nil, ctx.Err()
			}
			return nil, errors.New("test: the Lease is out of reach")
		}
		if req.Method != http.MethodGet && strings.Contains(req.URL.Path, "/apis/apps/") {
			g.lateWrites.Add(1)
		}
	}
	if req.Method+" "+req.URL.Path != g.hold || !g.once.CompareAndSwap(false, true) {
		return g.next.RoundTrip(req)
	}
	if g.through {
		resp, err := g.next.RoundTrip(req.WithContext(context.WithoutCancel(ctx)))
		if err != nil {
			return nil, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	close(g.held)
	select {
	case <-ctx.Done():
		g.ended <- heldEnd{cause: context.Cause(ctx), peerLed: g.peerLeads()}
		return nil, ctx.Err()
	case <-time.After(2 * time.Minute):
		// Bounded, so that a call never cancelled fails the test rather
		// than hangs it.
		g.ended <- heldEnd{cause: errors.New("not cancelled within 2m")}
		return nil, errors.New("test: held call never cancelled")
	}
}

// leaseTimings make a replica cut off from its Lease stop acting (after a
// retry period and the renew deadline, 4.5s) well before another may take
// the Lease over (7s after the last renewal), and make one that waited for
// anything more (such as a release of the Lease, up to another renew
// deadline) still act when the other leads.
func leaseTimings(cfg config.Scaler, name string) config.Scaler {
	cfg.LeaderElection = config.LeaderElection{Enabled: true, Namespace: "default", Name: name,
		LeaseDuration: model.Duration(7 * time.Second), RenewDeadline: model.Duration(4 * time.Second), RetryPeriod: model.Duration(500 * time.Millisecond)}
	return cfg
}

// deliver posts a notification over HTTP, as Alertmanager does.
func deliver(url string, body []byte) (int, response, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, response{}, err
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 2 * time.Minute}).Do(req)
	if err != nil {
		return 0, response{}, err
	}
	defer resp.Body.Close()
	var r response
	err = json.NewDecoder(resp.Body).Decode(&r)
	return resp.StatusCode, r, err
}

// TestLeaseLostMidActionAgainstAPIServer runs two replicas through Run's
// leader election on a real kube-apiserver. The leader is cut off from its
// Lease while one of its Kubernetes calls is held: it must stop acting
// before the other replica can lead (its held call cancelled, the alerts
// it did not reach failed as not_attempted, a 500), having recorded the
// original count of whatever it touched; the new leader then finishes the
// same notification, once, and the workloads wake to their counts.
func TestLeaseLostMidActionAgainstAPIServer(t *testing.T) {
	kube, cfg := startLab(t)
	c := kube.Clientset
	ctx := context.Background()
	create := func(t *testing.T, name string, replicas int32) Workload {
		t.Helper()
		return createDeployment(t, c, "lab", name, replicas)
	}
	get := func(t *testing.T, w Workload) *appsv1.Deployment {
		t.Helper()
		return getDeployment(t, c, w)
	}
	scalePath := func(w Workload) string {
		return "PUT /apis/apps/v1/namespaces/" + w.Namespace + "/deployments/" + w.Name + "/scale"
	}
	// replicas starts a and b, a behind g, and returns once a leads and b
	// is a synced candidate.
	replicas := func(t *testing.T, le config.Scaler, g *leaseGate) (a, b *Scaler) {
		t.Helper()
		a = newTestScaler(t, g.client(t, kube.Config), le, record.NewFakeRecorder(100))
		b = newTestScaler(t, c, le, record.NewFakeRecorder(100))
		g.peerLeads = b.IsLeader
		t.Cleanup(running(ctx, a, "a"))
		// A cut replica gives nothing back when stopped: the Lease is b's.
		t.Cleanup(func() { g.cut.Store(false) })
		waitFor(t, 30*time.Second, "a to lead", a.IsLeader)
		t.Cleanup(running(ctx, b, "b"))
		waitFor(t, 30*time.Second, "b to sync", b.synced.Load)
		return a, b
	}
	// loseLease cuts a off once its call is held and returns what ended the
	// call; it checks that b did not lead before then.
	loseLease := func(t *testing.T, g *leaseGate, b *Scaler) heldEnd {
		t.Helper()
		select {
		case <-g.held:
		case <-time.After(time.Minute):
			t.Fatal("the call to hold was never made")
		}
		if b.IsLeader() {
			t.Fatal("b leads while a holds the Lease")
		}
		g.cut.Store(true)
		var end heldEnd
		select {
		case end = <-g.ended:
		case <-time.After(3 * time.Minute):
			t.Fatal("the held call did not end")
		}
		if end.peerLed {
			t.Errorf("b led before a's held call was cancelled: both acted at once")
		}
		return end
	}

	for _, tc := range []struct {
		name          string
		through, hang bool
	}{
		// The scale never reached the server: a recorded the count and
		// left the workload at it, a sleep cut short.
		{name: "scale held before the server, Lease calls hang", hang: true},
		// The server scaled to zero; a never heard: asleep.
		{name: "answer to the scale held, Lease unreachable", through: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prefix := map[bool]string{false: "held-", true: "through-"}[tc.through]
			web, api := create(t, prefix+"web", 3), create(t, prefix+"api", 2)
			apiBefore := get(t, api).ResourceVersion
			g := newLeaseGate(scalePath(web), tc.through, tc.hang)
			a, b := replicas(t, leaseTimings(cfg, "upid-scaler-"+prefix+"lost"), g)
			srvA, srvB := httptest.NewServer(a), httptest.NewServer(b)
			defer srvA.Close()
			defer srvB.Close()

			body := notification(alert("UPIDWorkloadIdle", "firing", web), alert("UPIDWorkloadIdle", "firing", api))
			type answer struct {
				code int
				resp response
				err  error
			}
			answered := make(chan answer, 1)
			go func() {
				code, resp, err := deliver(srvA.URL, body)
				answered <- answer{code, resp, err}
			}()
			end := loseLease(t, g, b)
			if !errors.Is(end.cause, errLeaseLost) {
				t.Errorf("the held call ended by %v, want the lost Lease (%v)", end.cause, errLeaseLost)
			}
			var ans answer
			select {
			case ans = <-answered:
			case <-time.After(time.Minute):
				t.Fatal("a did not answer after its call was cancelled")
			}
			if ans.err != nil {
				t.Fatal(ans.err)
			}
			t.Logf("a answered %d %+v", ans.code, ans.resp)
			if ans.code != http.StatusInternalServerError || len(ans.resp.Results) != 2 {
				t.Fatalf("a answered %d %+v, want 500 with both alerts' results", ans.code, ans.resp)
			}
			if r := ans.resp.Results[0]; r.Workload != web.String() || r.Result != ResultFailure || !strings.Contains(r.Error, errLeaseLost.Error()) {
				t.Errorf("the alert in flight: %+v, want a failure of %s saying the Lease was lost", r, web)
			}
			if r := ans.resp.Results[1]; r.Workload != api.String() || r.Result != ResultFailure || r.Reason != "not_attempted" || !strings.Contains(r.Error, errLeaseLost.Error()) {
				t.Errorf("the alert not reached: %+v, want %s failed as not_attempted, saying the Lease was lost", r, api)
			}
			waitFor(t, 30*time.Second, "a to stop leading", func() bool { return !a.IsLeader() })
			if code, _, err := deliver(srvA.URL, body); err != nil || code != http.StatusServiceUnavailable {
				t.Errorf("a, no longer leading, answered %d (%v), want 503", code, err)
			}

			// Nothing lost: web records its count, at it or asleep; api
			// was never written.
			d := get(t, web)
			cutShort := d.Annotations
			wantReplicas := map[bool]int32{false: 3, true: 0}[tc.through]
			if *d.Spec.Replicas != wantReplicas || d.Annotations[AnnotationReplicas] != "3" {
				t.Errorf("web after a stopped: replicas %d, annotations %v; want %d and its count of 3 recorded", *d.Spec.Replicas, d.Annotations, wantReplicas)
			}
			if d := get(t, api); d.ResourceVersion != apiBefore {
				t.Errorf("api was written by a replica that had lost its Lease: replicas %d, annotations %v", *d.Spec.Replicas, d.Annotations)
			}

			// Alertmanager delivers again, to the new leader.
			waitFor(t, 30*time.Second, "b to lead", b.IsLeader)
			code, resp, err := deliver(srvB.URL, body)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("b answered %d %+v", code, resp)
			wantWeb := map[bool]string{false: ResultSuccess, true: ResultSkipped}[tc.through]
			if code != http.StatusOK || len(resp.Results) != 2 || resp.Results[0].Result != wantWeb || resp.Results[0].Replicas != 3 ||
				resp.Results[1].Result != ResultSuccess || resp.Results[1].Replicas != 2 {
				t.Fatalf("b answered %d %+v, want 200: web %s with 3 replicas, api success with 2", code, resp, wantWeb)
			}
			for w, n := range map[Workload]string{web: "3", api: "2"} {
				if d := get(t, w); *d.Spec.Replicas != 0 || d.Annotations[AnnotationReplicas] != n {
					t.Errorf("%s after b: replicas %d, annotations %v; want asleep with %s recorded", w, *d.Spec.Replicas, d.Annotations, n)
				}
			}
			if got := get(t, web).Annotations; got[AnnotationSince] != cutShort[AnnotationSince] || got[AnnotationGeneration] != cutShort[AnnotationGeneration] {
				t.Errorf("b wrote web's state again (%v), rather than finishing a's (%v)", got, cutShort)
			}

			// Once more: nothing left to do, nothing written.
			before := map[Workload]string{web: get(t, web).ResourceVersion, api: get(t, api).ResourceVersion}
			if code, resp, err := deliver(srvB.URL, body); err != nil || code != http.StatusOK || resp.Results[0].Reason != "already_asleep" || resp.Results[1].Reason != "already_asleep" {
				t.Errorf("second delivery to b: %d %+v %v, want 200, both already_asleep", code, resp, err)
			}
			for w, rv := range before {
				if got := get(t, w).ResourceVersion; got != rv {
					t.Errorf("%s written by a repeated delivery: resourceVersion %s -> %s", w, rv, got)
				}
			}

			wake := notification(alert("UPIDSleepingWorkloadRequested", "firing", web), alert("UPIDSleepingWorkloadRequested", "firing", api))
			if code, resp, err := deliver(srvB.URL, wake); err != nil || code != http.StatusOK {
				t.Fatalf("wake: %d %+v %v", code, resp, err)
			}
			for w, n := range map[Workload]int32{web: 3, api: 2} {
				d := get(t, w)
				if *d.Spec.Replicas != n {
					t.Errorf("%s woken to %d replicas, want %d", w, *d.Spec.Replicas, n)
				}
				if left := stateLeft(d.Annotations); len(left) > 0 {
					t.Errorf("%s woken with %v left", w, left)
				}
			}
			if n := g.lateWrites.Load(); n != 0 {
				t.Errorf("a wrote %d times to workloads after it was cut off from its Lease", n)
			}
		})
	}

	// The wake-window loop runs on the leader's Lease and stops with it. A
	// wake cut before its restore leaves the workload asleep, for the new
	// leader's loop to wake; one cut after leaves it restored with its
	// state, which is no longer asleep to the new leader, and which the
	// next sleep takes for that wake's, not for a person's scale.
	for _, through := range []bool{false, true} {
		name := map[bool]string{false: "office", true: "office-restored"}[through]
		t.Run("wake window, "+name, func(t *testing.T) {
			w := create(t, name, 2)
			s := newTestScaler(t, c, cfg, record.NewFakeRecorder(10))
			if res := s.Sleep(ctx, Request{Workload: w, Manual: true}); res.Result != ResultSuccess {
				t.Fatal(res)
			}
			// Put to sleep before the window opened (an always-open window
			// opened, as far as the loop looks, 8 days ago).
			since := time.Now().Add(-9 * 24 * time.Hour).UTC().Format(time.RFC3339)
			patch := []byte(`{"metadata":{"annotations":{"` + AnnotationSince + `":"` + since + `"}}}`)
			if _, err := c.AppsV1().Deployments(w.Namespace).Patch(ctx, w.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
				t.Fatal(err)
			}
			le := leaseTimings(cfg, "upid-scaler-"+name)
			le.WakeWindows = []string{"* 00:00-24:00"}
			g := newLeaseGate(scalePath(w), through, true)
			_, b := replicas(t, le, g)
			end := loseLease(t, g, b)
			if !errors.Is(end.cause, errLeaseLost) {
				t.Errorf("the held wake ended by %v, want the lost Lease (%v)", end.cause, errLeaseLost)
			}
			// Read before b leads, which loseLease leaves seconds away: b's
			// window wakes it as soon as it does.
			want := map[bool]int32{false: 0, true: 2}[through]
			if d := get(t, w); !b.IsLeader() && (*d.Spec.Replicas != want || d.Annotations[AnnotationReplicas] != "2") {
				t.Errorf("after a's wake was cut short: replicas %d, annotations %v; want %d with 2 recorded", *d.Spec.Replicas, d.Annotations, want)
			}
			waitFor(t, 30*time.Second, "b to lead", b.IsLeader)
			if through {
				waitFor(t, 30*time.Second, "b to see it restored", func() bool {
					d, err := b.deployments.Deployments(w.Namespace).Get(w.Name)
					return err == nil && *d.Spec.Replicas == 2
				})
				for _, sw := range b.Sleeping() {
					if sw.Workload == w {
						t.Errorf("restored, %s is listed asleep: %+v", w, sw)
					}
				}
				// Not a person's scale: upid sleep finishes a's wake and
				// puts it to sleep afresh, saving the same count.
				if res := b.Sleep(ctx, Request{Workload: w, Manual: true}); res.Result != ResultSuccess || res.Replicas != 2 {
					t.Errorf("sleep of the restored workload: %s, want success saving 2", res)
				}
				if res := b.Wake(ctx, Request{Workload: w, Manual: true}); res.Result != ResultSuccess || res.Replicas != 2 {
					t.Errorf("wake: %s", res)
				}
			}
			waitFor(t, 30*time.Second, "it to be awake with no state", func() bool {
				d := get(t, w)
				return *d.Spec.Replicas == 2 && len(stateLeft(d.Annotations)) == 0
			})
			if n := g.lateWrites.Load(); n != 0 {
				t.Errorf("a wrote %d times to workloads after it was cut off from its Lease", n)
			}
		})
	}
}

// stateLeft lists the scaler's state annotations among a.
func stateLeft(a map[string]string) []string {
	var left []string
	for _, k := range stateAnnotations {
		if _, ok := a[k]; ok {
			left = append(left, k)
		}
	}
	return left
}
