package scaler

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"
)

// TestPolicyReadFailureIsRetried: a namespace or HPA that cannot be read
// leaves the policy unknown, a failure Alertmanager retries, not a 200
// (found in review).
func TestPolicyReadFailureIsRetried(t *testing.T) {
	for _, tc := range []struct{ verb, resource string }{{"get", "namespaces"}, {"list", "horizontalpodautoscalers"}} {
		t.Run(tc.resource, func(t *testing.T) {
			c, apps := newFakeCluster(namespace("shop", optedIn), deployment("shop", "web", 3, time.Now().Add(-72*time.Hour)), service("shop", "web"))
			c.PrependReactor(tc.verb, tc.resource, func(k8stesting.Action) (bool, runtime.Object, error) {
				return true, nil, apierrors.NewServiceUnavailable("etcd is away")
			})
			s := newTestScaler(t, c, testConfig(t), record.NewFakeRecorder(10))
			code, resp := post(t, s, notification(alert("UPIDWorkloadIdle", "firing", web)), testToken)
			if code != 500 {
				t.Errorf("a failed %s %s answered %d %+v; want 500 so that Alertmanager retries", tc.verb, tc.resource, code, resp)
			}
			if d := apps.get("shop", "web"); *d.Spec.Replicas != 3 {
				t.Fatalf("replicas %d", *d.Spec.Replicas)
			}
		})
	}
}

// TestWakeConflictAfterRestore: a conflict on clearing the state after the
// wake restored the count, on a workload whose fingerprint no longer proves
// it unchanged, finishes the wake instead of taking the restore for a
// user's edit (found in review).
func TestWakeConflictAfterRestore(t *testing.T) {
	c, apps := newFakeCluster(namespace("shop", optedIn), deployment("shop", "web", 3, time.Now().Add(-72*time.Hour)), service("shop", "web"))
	rec := record.NewFakeRecorder(10)
	s := newTestScaler(t, c, testConfig(t), rec)
	if res := s.Sleep(context.Background(), Request{Workload: web}); res.Result != ResultSuccess {
		t.Fatal(res)
	}
	// The spec now reads differently though nobody wrote it (what
	// TestAgainstAPIServer's "spec that reads differently after an upgrade"
	// does with a transport): same generation, another fingerprint.
	apps.mu.Lock()
	apps.objects["shop/web"].Annotations[AnnotationState] = "sha256:00000000000000000000000000000000"
	apps.mu.Unlock()
	drain(rec)
	scaled, conflicted := false, false
	apps.fail = func(verb, sub string) error {
		if verb == "update" && sub == "scale" {
			scaled = true
		}
		if verb == "patch" && scaled && !conflicted {
			// The deployment controller updated the status between the
			// wake's re-read and its clearing patch.
			conflicted = true
			d := apps.objects["shop/web"]
			apps.rv++
			d.ResourceVersion = strconv.Itoa(apps.rv)
			return apierrors.NewConflict(deploymentsGR, "web", errStale)
		}
		return nil
	}
	res := s.Wake(context.Background(), Request{Workload: web})
	d := apps.get("shop", "web")
	t.Logf("after wake: replicas %d, annotations %v, events %v", *d.Spec.Replicas, d.Annotations, drain(rec))
	if *d.Spec.Replicas != 3 {
		t.Fatalf("replicas %d, want 3", *d.Spec.Replicas)
	}
	if res.Result != ResultSuccess {
		t.Errorf("wake restored 3 replicas itself and nobody edited the workload, but reports %s", res)
	}
}

// TestReviewPlanSkipsLeaveNoTrace: an alert the scaler was configured to
// act on but drops before acting (missing or invalid workload labels,
// unsupported kind, other cluster) leaves no log line, no Event and no
// metric: notify.go:143-145 only appends a result to the HTTP body, which
// Alertmanager does not log on a 200. An operator whose idle alert lacks
// the kind label sees nothing anywhere.

// TestLeaseLostMidNotification: a replica that stops leading while it
// handles a notification acts on none of its remaining alerts and answers
// 500, so that Alertmanager retries them with the new leader, which may
// already be acting (found in review).
func TestLeaseLostMidNotification(t *testing.T) {
	old := time.Now().Add(-72 * time.Hour)
	c, apps := newFakeCluster(namespace("shop", optedIn), deployment("shop", "web", 3, old), deployment("shop", "api", 2, old), service("shop", "web"), service("shop", "api"))
	cfg := testConfig(t)
	cfg.LeaderElection.Enabled = true
	s := newTestScaler(t, c, cfg, record.NewFakeRecorder(10))
	lease, lose := context.WithCancel(context.Background())
	defer lose()
	s.lease.Store(&lease)
	s.leader.Store(true)
	apps.fail = func(verb, sub string) error {
		if verb == "update" && sub == "scale" {
			// The Lease is lost while web is put to sleep; run.go's
			// OnStartedLeading clears the flag when its context ends.
			lose()
			s.leader.Store(false)
		}
		return nil
	}
	api := Workload{Namespace: "shop", Kind: KindDeployment, Name: "api"}
	code, resp := post(t, s, notification(alert("UPIDWorkloadIdle", "firing", web), alert("UPIDWorkloadIdle", "firing", api)), testToken)
	if code != 500 || len(resp.Results) != 2 {
		t.Fatalf("answered %d %+v, want 500 with both alerts' results", code, resp)
	}
	if r := resp.Results[1]; r.Result != ResultFailure || !strings.Contains(r.Error, "stopped leading") {
		t.Errorf("api's result %+v, want a failure saying this replica stopped leading", r)
	}
	if d := apps.get("shop", "api"); *d.Spec.Replicas != 2 || len(d.Annotations) != 0 {
		t.Errorf("api was acted on after the Lease was lost: replicas %d, annotations %v", *d.Spec.Replicas, d.Annotations)
	}
}

// TestLeaderTermsDoNotOverlap: client-go runs each term as leader in a
// goroutine of its own. One that ends after the next term began (its
// lead still returning from a cancelled call when the Lease, still this
// replica's, was taken again at once), or that starts after its term was
// over, must leave the next term marked the leader with its own context:
// unmarked, it would answer 503 while holding the Lease; with the ended
// context, every notification would fail as not_attempted.
func TestLeaderTermsDoNotOverlap(t *testing.T) {
	c, _ := newFakeCluster()
	cfg := testConfig(t)
	cfg.LeaderElection.Enabled = true
	s := newTestScaler(t, c, cfg, record.NewFakeRecorder(10))
	first, endFirst := context.WithCancel(context.Background())
	second, endSecond := context.WithCancel(context.Background())
	defer endSecond()
	leading, returning, firstOver := startTerm(s, first)
	<-leading
	endFirst()
	secondLeads := make(chan struct{})
	go s.leadTerm(second, func(context.Context) { close(secondLeads) })
	<-secondLeads
	close(returning)
	<-firstOver
	if !s.IsLeader() || *s.lease.Load() != second {
		t.Errorf("the first term, ending late, unmarked the second: leader %v, its context the second's %v", s.IsLeader(), *s.lease.Load() == second)
	}
	s.leadTerm(first, func(context.Context) { t.Error("a term started after its end leads") })
	if !s.IsLeader() || *s.lease.Load() != second {
		t.Errorf("the first term, starting late, took the second's place: leader %v, its context the second's %v", s.IsLeader(), *s.lease.Load() == second)
	}
}

// TestTermEndingAsItStarts: client-go ends a term (cancels its context,
// then calls OnStoppedLeading) whenever renewing fails, which may be while
// the term's goroutine is still marking this replica the leader. The end
// must win: marked after it, the replica would count as leader, accepting
// notifications only to fail them and reporting upid_scaler_leader 1,
// until lead returned.
func TestTermEndingAsItStarts(t *testing.T) {
	c, _ := newFakeCluster()
	cfg := testConfig(t)
	cfg.LeaderElection.Enabled = true
	s := newTestScaler(t, c, cfg, record.NewFakeRecorder(10))
	marking, mark := make(chan struct{}), make(chan struct{})
	var once sync.Once
	s.now = func() time.Time {
		// countRecentSleeps reads the clock between the term's check of
		// its context and its marking: hold it there.
		once.Do(func() { close(marking); <-mark })
		return time.Now()
	}
	term, end := context.WithCancel(context.Background())
	leading, returning, over := startTerm(s, term)
	<-marking
	end()
	stopped := make(chan struct{})
	go func() { s.stoppedLeading(); close(stopped) }()
	close(mark)
	<-stopped
	<-leading
	if s.IsLeader() {
		t.Error("marked the leader after its term ended, while lead returns")
	}
	close(returning)
	<-over
	if s.IsLeader() {
		t.Error("marked the leader after its term's goroutine returned")
	}
}

// startTerm runs a term as client-go does, in a goroutine of its own; its
// lead closes leading and waits for returning to be closed, and over is
// closed once the term's goroutine has returned.
func startTerm(s *Scaler, term context.Context) (leading, returning, over chan struct{}) {
	leading, returning, over = make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() {
		s.leadTerm(term, func(context.Context) { close(leading); <-returning })
		close(over)
	}()
	return leading, returning, over
}

// TestReleaseLeaseAfterARacingRenewal: on shutdown the renewal client-go
// was making when its context was cancelled may still reach the API
// server after releaseLease has read the Lease, and the release's update
// then conflicts (client-go's own release retries for this). The release
// must read again and give the Lease up, unless the write it lost to was
// another replica taking it over, whose Lease it leaves alone; given up,
// another replica leads at once rather than lease_duration later.
func TestReleaseLeaseAfterARacingRenewal(t *testing.T) {
	for _, tc := range []struct {
		name, racer, want string // who wrote between the read and the update; the holder after
	}{
		{"own renewal", "a", ""},
		{"another replica's takeover", "b", "b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			held := lease("upid", "upid-scaler")
			held.Spec.HolderIdentity = ptr.To("a")
			c, _ := newFakeCluster(held)
			raced := false
			c.PrependReactor("update", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
				if raced {
					return false, nil, nil
				}
				raced = true
				won := held.DeepCopy()
				won.Spec.HolderIdentity = ptr.To(tc.racer)
				if err := c.Tracker().Update(coordinationv1.SchemeGroupVersion.WithResource("leases"), won, "upid"); err != nil {
					t.Error(err)
				}
				return true, nil, apierrors.NewConflict(coordinationv1.Resource("leases"), "upid-scaler", errors.New("the object has been modified"))
			})
			lock := &resourcelock.LeaseLock{LeaseMeta: metaNamed("upid", "upid-scaler"), Client: c.CoordinationV1(),
				LockConfig: resourcelock.ResourceLockConfig{Identity: "a"}}
			if err := releaseLease(lock, "a", 10*time.Second); err != nil {
				t.Errorf("release: %v", err)
			}
			got, err := c.CoordinationV1().Leases("upid").Get(context.Background(), "upid-scaler", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if h := ptr.Deref(got.Spec.HolderIdentity, ""); h != tc.want {
				t.Errorf("holder %q after the release, want %q", h, tc.want)
			}
		})
	}
}

// TestWindowWakeCutByLostLease: a wake the wake-window loop is making when
// the replica stops leading fails saying so, as a notification's does,
// not with a bare "context canceled": client-go ends a term with a plain
// cancel.
func TestWindowWakeCutByLostLease(t *testing.T) {
	c, apps := newFakeCluster(namespace("shop", optedIn), deployment("shop", "web", 3, time.Now().Add(-72*time.Hour)), service("shop", "web"))
	cfg := testConfig(t)
	cfg.LeaderElection.Enabled = true
	cfg.WakeWindows = []string{"* 00:00-24:00"}
	rec := record.NewFakeRecorder(10)
	s := newTestScaler(t, c, cfg, rec)
	if res := s.Sleep(context.Background(), Request{Workload: web, Manual: true}); res.Result != ResultSuccess {
		t.Fatal(res)
	}
	// Put to sleep before the window opened (an always-open window opened,
	// as far as the loop looks, 8 days ago).
	apps.mu.Lock()
	apps.objects["shop/web"].Annotations[AnnotationSince] = time.Now().Add(-9 * 24 * time.Hour).UTC().Format(time.RFC3339)
	apps.mu.Unlock()
	apps.fillCaches(s)
	drain(rec)
	term, lose := context.WithCancel(context.Background())
	var leading context.Context
	apps.fail = func(verb, sub string) error {
		if verb == "update" && sub == "scale" {
			// The term ends while the restore is in flight, and the call
			// fails as a cancelled one does.
			lose()
			<-leading.Done()
			return leading.Err()
		}
		return nil
	}
	s.leadTerm(term, func(ctx context.Context) { leading = ctx; s.windowLoop(ctx, time.Hour) })
	events := drain(rec)
	if len(events) != 1 || !strings.HasPrefix(events[0], "Warning UPIDFailed") || !strings.Contains(events[0], errLeaseLost.Error()) {
		t.Errorf("events %q, want one UPIDFailed saying %q", events, errLeaseLost)
	}
}
