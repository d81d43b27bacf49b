package scaler

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/util/retry"

	"github.com/upid-dev/upid/internal/argorollouts"
)

// RunOptions configure Run.
type RunOptions struct {
	// Identity names this replica in the Lease; empty means the host name
	// (the pod name in Kubernetes).
	Identity string
	// WindowCheck is how often wake windows are checked; 0 means 30s.
	WindowCheck time.Duration
	// RolloutRetry is how often the scaler tries again to list Argo
	// Rollouts when it cannot (not installed yet, an error); 0 means 1m.
	RolloutRetry time.Duration
	// Ready is called once the caches are synced and the scaler may serve.
	Ready func()
}

// Run watches workloads and Services for the sleeping-workload metrics,
// takes part in leader election and, while leader, wakes sleeping
// workloads inside wake windows. It returns when ctx is cancelled.
func (s *Scaler) Run(ctx context.Context, opts RunOptions) error {
	if s.ownNS == "" {
		level.Warn(s.log).Log("msg", "own namespace unknown (set POD_NAMESPACE): only scaler.protected_namespaces and the namespace holding its Lease keep the scaler from putting itself to sleep")
	}
	factory := informers.NewSharedInformerFactory(s.kube.c, 10*time.Minute)
	s.deployments = factory.Apps().V1().Deployments().Lister()
	s.statefulSets = factory.Apps().V1().StatefulSets().Lister()
	s.services = factory.Core().V1().Services().Lister()
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("scaler: cache of %v did not sync", typ)
		}
	}
	if opts.RolloutRetry <= 0 {
		opts.RolloutRetry = time.Minute
	}
	if s.kube.dyn != nil {
		// Tried once before serving, so that a new leader counts sleeping
		// Rollouts too; then again in the background until it works.
		if stop, err := s.watchRollouts(ctx); err == nil {
			defer stop()
		} else {
			go s.retryRollouts(ctx, err, opts.RolloutRetry)
		}
	}
	s.synced.Store(true)
	if opts.Ready != nil {
		opts.Ready()
	}
	if opts.WindowCheck <= 0 {
		opts.WindowCheck = 30 * time.Second
	}
	lead := func(ctx context.Context) { s.windowLoop(ctx, opts.WindowCheck) }
	if !s.cfg.LeaderElection.Enabled {
		s.countRecentSleeps()
		lead(ctx)
		return nil
	}
	id := opts.Identity
	if id == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("scaler: leader election identity: %w", err)
		}
		id = h
	}
	le := s.cfg.LeaderElection
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metaNamed(leaseNamespace(le.Namespace, s.ownNS), le.Name),
		Client:     s.kube.c.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: id},
	}
	// A replica that loses the Lease goes back to being a candidate
	// rather than exiting: it holds no state that could be stale.
	for ctx.Err() == nil {
		elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:          lock,
			LeaseDuration: time.Duration(le.LeaseDuration),
			RenewDeadline: time.Duration(le.RenewDeadline),
			RetryPeriod:   time.Duration(le.RetryPeriod),
			// Not ReleaseOnCancel: client-go releases the Lease before it
			// ends the leading context, and a release waits up to
			// renew_deadline for an API server that may not answer, so
			// this replica would go on acting past the moment another may
			// take the Lease over (TestLeaseLostMidActionAgainstAPIServer).
			// releaseLease gives it up on shutdown instead, once the
			// leading context has cancelled what this replica was doing.
			ReleaseOnCancel: false,
			Name:            le.Name,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(ctx context.Context) {
					level.Info(s.log).Log("msg", "leading: acting on notifications", "identity", id)
					s.leadTerm(ctx, lead)
				},
				OnStoppedLeading: func() {
					s.stoppedLeading()
					level.Info(s.log).Log("msg", "not leading: answering 503", "identity", id)
				},
			},
		})
		if err != nil {
			return fmt.Errorf("scaler.leader_election: %w", err)
		}
		elector.Run(ctx)
	}
	if err := releaseLease(lock, id, time.Duration(le.RenewDeadline)); err != nil {
		level.Warn(s.log).Log("msg", "cannot release the leader Lease; another replica leads once it expires", "err", err)
	}
	return nil
}

// releaseLease gives the Lease up if it names this replica, so that
// another leads at once rather than after lease_duration; as client-go's
// own release, it leaves no holder and a duration of a second. The
// update is guarded by the resourceVersion just read: a Lease another
// replica took meanwhile is left alone. A conflict is read again: the
// renewal client-go was making when it stopped may reach the API server
// after the read.
func releaseLease(lock *resourcelock.LeaseLock, id string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		rec, _, err := lock.Get(ctx)
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if rec.HolderIdentity != id {
			return nil
		}
		now := metav1.Now()
		return lock.Update(ctx, resourcelock.LeaderElectionRecord{LeaderTransitions: rec.LeaderTransitions, LeaseDurationSeconds: 1, RenewTime: now, AcquireTime: now})
	})
}

// stoppedLeading unmarks this replica at the end of a term, which client-go
// cancels first. The lock orders it with leadTerm's marking: a term that
// found its context live as it ended does not mark after this unmarks.
func (s *Scaler) stoppedLeading() {
	s.term.Lock()
	defer s.term.Unlock()
	s.leader.Store(false)
}

// leadTerm is one term as leader, ctx the term's: it marks this replica
// the leader, runs lead and unmarks it once the term is over. client-go
// runs it in a goroutine of its own, which may start after the term is
// over, or end after the next has begun (lead still returning from a
// cancelled call when the Lease, still this replica's, is taken again at
// once). Either would leave the next term with this one's ended context,
// every notification failing with errLeaseLost, or unmarked, answering
// 503 while it holds the Lease: a term only marks while its context is
// live and only unmarks its own.
func (s *Scaler) leadTerm(ctx context.Context, lead func(context.Context)) {
	s.term.Lock()
	live := ctx.Err() == nil
	if live {
		s.countRecentSleeps()
		s.lease.Store(&ctx)
		s.leader.Store(true)
	}
	s.term.Unlock()
	if !live {
		return
	}
	// client-go ends the term with a bare cancel: a wake the window loop
	// has in flight would fail with only "context canceled". The loop's
	// context ends with the term, a goroutine's start later, saying why.
	leading, stop := context.WithCancelCause(context.WithoutCancel(ctx))
	defer context.AfterFunc(ctx, func() { stop(errLeaseLost) })()
	lead(leading)
	<-ctx.Done()
	s.term.Lock()
	defer s.term.Unlock()
	if s.lease.Load() == &ctx {
		s.leader.Store(false)
	}
}

// watchRollouts starts the informer of Argo Rollouts once the scaler may
// list them: an informer on a resource that is not served, or not allowed,
// would never sync. Until it runs, sleeping Rollouts are not listed (so
// neither reported for the wake alert nor woken in wake windows); alerts
// still act on them.
func (s *Scaler) watchRollouts(ctx context.Context) (stop func(), err error) {
	if _, err := s.kube.dyn.Resource(rollouts).List(ctx, metav1.ListOptions{Limit: 1}); err != nil {
		return nil, err
	}
	rf := dynamicinformer.NewDynamicSharedInformerFactory(s.kube.dyn, 10*time.Minute)
	lister := rf.ForResource(rollouts).Lister()
	rf.Start(ctx.Done())
	for typ, ok := range rf.WaitForCacheSync(ctx.Done()) {
		if !ok {
			rf.Shutdown()
			return nil, fmt.Errorf("cache of %v did not sync", typ)
		}
	}
	s.rollouts.Store(&lister)
	return rf.Shutdown, nil
}

// retryRollouts tries watchRollouts every interval until it works (Argo
// Rollouts installed later, a failed list at start) or ctx ends.
func (s *Scaler) retryRollouts(ctx context.Context, err error, interval time.Duration) {
	if !apierrors.IsNotFound(err) {
		level.Warn(s.log).Log("msg", "cannot list Argo Rollouts; sleeping ones are not listed until it can", "err", err, "retry", interval)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
		stop, err := s.watchRollouts(ctx)
		if err == nil {
			level.Info(s.log).Log("msg", "watching Argo Rollouts")
			<-ctx.Done()
			stop()
			return
		}
	}
}

// countRecentSleeps puts the sleeps of the last action_interval that the
// workloads record into the rate limit, so that a new leader, or a
// restarted process, does not start with a fresh window: a failover in a
// storm of idle alerts would otherwise let through twice max_actions.
func (s *Scaler) countRecentSleeps() {
	now := s.now()
	var recent []time.Time
	for _, w := range s.Sleeping() {
		if age := now.Sub(w.Since); !w.Since.IsZero() && age >= 0 && age < s.limiter.interval {
			recent = append(recent, w.Since)
		}
	}
	s.limiter.seed(recent)
	if len(recent) > 0 {
		level.Info(s.log).Log("msg", "rate limit counts the sleeps the workloads record", "sleeps", len(recent), "interval", s.limiter.interval)
	}
}

// leaseNamespace falls back to the scaler's own namespace, then "default".
func leaseNamespace(configured, own string) string {
	if configured != "" {
		return configured
	}
	if own != "" {
		return own
	}
	return "default"
}

// podNamespace is the namespace of the pod this process runs in, or "".
func podNamespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	if b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace"); err == nil {
		return strings.TrimSpace(string(b))
	}
	return ""
}

// windowLoop wakes every workload put to sleep before the wake window now
// open opened. It only runs on the leader.
func (s *Scaler) windowLoop(ctx context.Context, every time.Duration) {
	if len(s.windows) == 0 {
		<-ctx.Done()
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if opened, ok := OpenedAt(s.windows, s.now()); ok {
			s.wakeOpened(ctx, opened)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// wakeOpened wakes every workload put to sleep before the wake window
// that opened at opened.
func (s *Scaler) wakeOpened(ctx context.Context, opened time.Time) {
	for _, w := range s.Sleeping() {
		if ctx.Err() != nil {
			return
		}
		if !w.Since.Before(opened) {
			// Put to sleep while the window was open, which only
			// an operator's upid sleep does: their call stands.
			continue
		}
		s.Wake(ctx, Request{Workload: w.Workload, Cause: "wake_window"})
	}
	// A dry run's sleeps, which no annotation lists: woken here, they take
	// a place again when next idle, as real ones would.
	for _, w := range s.dry.before(opened) {
		if ctx.Err() != nil {
			return
		}
		s.Wake(ctx, Request{Workload: w, Cause: "wake_window"})
	}
}

// SleepingWorkload is a workload carrying the sleep annotations, as the
// informer caches see it.
type SleepingWorkload struct {
	Workload
	Since    time.Time
	Saved    float64
	Services []string
}

// Sleeping lists the workloads asleep now; empty until Run has synced.
func (s *Scaler) Sleeping() []SleepingWorkload {
	if !s.synced.Load() {
		return nil
	}
	ds, _ := s.deployments.List(labels.Everything())
	ss, _ := s.statefulSets.List(labels.Everything())
	svcs, _ := s.services.List(labels.Everything())
	var rs []runtime.Object
	if l := s.rollouts.Load(); l != nil {
		rs, _ = (*l).List(labels.Everything())
	}
	return sleeping(ds, ss, rs, svcs)
}

// ListSleeping reads the workloads asleep now straight from the API, in one
// namespace or all (""), for `upid status`: a terminal command has no
// informers to wait for. Rollouts are read through dyn, unless it is nil or
// the cluster does not serve them; when the user may not list them, the
// others come with an error that wraps ErrRolloutsNotListed.
func ListSleeping(ctx context.Context, kube kubernetes.Interface, dyn dynamic.Interface, namespace string) ([]SleepingWorkload, error) {
	dl, err := kube.AppsV1().Deployments(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing Deployments: %w", err)
	}
	sl, err := kube.AppsV1().StatefulSets(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing StatefulSets: %w", err)
	}
	vl, err := kube.CoreV1().Services(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing Services: %w", err)
	}
	ds := make([]*appsv1.Deployment, len(dl.Items))
	for i := range dl.Items {
		ds[i] = &dl.Items[i]
	}
	ss := make([]*appsv1.StatefulSet, len(sl.Items))
	for i := range sl.Items {
		ss[i] = &sl.Items[i]
	}
	svcs := make([]*corev1.Service, len(vl.Items))
	for i := range vl.Items {
		svcs[i] = &vl.Items[i]
	}
	var rs []runtime.Object
	if dyn != nil {
		rl, err := dyn.Resource(rollouts).Namespace(namespace).List(ctx, metav1.ListOptions{})
		switch {
		case err == nil:
			for i := range rl.Items {
				rs = append(rs, &rl.Items[i])
			}
		case apierrors.IsForbidden(err):
			return sleeping(ds, ss, nil, svcs), fmt.Errorf("%w: %v", ErrRolloutsNotListed, err)
		case !apierrors.IsNotFound(err):
			return nil, fmt.Errorf("listing Rollouts: %w", err)
		}
	}
	return sleeping(ds, ss, rs, svcs), nil
}

// ErrRolloutsNotListed says that ListSleeping listed the other workloads
// but was not allowed to list Argo Rollouts.
var ErrRolloutsNotListed = errors.New("sleeping Argo Rollouts not listed")

// sleeping picks the workloads with a valid sleep state and the Services
// that select their pods, sorted by workload.
func sleeping(ds []*appsv1.Deployment, ss []*appsv1.StatefulSet, rs []runtime.Object, svcs []*corev1.Service) []SleepingWorkload {
	byNS := map[string][]*corev1.Service{}
	for _, svc := range svcs {
		byNS[svc.Namespace] = append(byNS[svc.Namespace], svc)
	}
	var out []SleepingWorkload
	add := func(o *object, kind string) {
		// Asleep is at zero with the spec it was put to sleep with: one
		// scaled back up by hand or by a GitOps tool, or caught between a
		// wake's two writes, is awake whatever its annotations say.
		st, asleep := readState(o)
		if !asleep || o.replicas != 0 || !st.unchanged(o) {
			return
		}
		sw := SleepingWorkload{Workload: Workload{Namespace: o.meta.Namespace, Kind: kind, Name: o.meta.Name}, Since: st.since, Saved: st.saved}
		for _, svc := range byNS[o.meta.Namespace] {
			if selects(svc, o.template, o.rollout.hashes) {
				sw.Services = append(sw.Services, svc.Name)
			}
		}
		sort.Strings(sw.Services)
		out = append(out, sw)
	}
	for _, d := range ds {
		add(wrapDeployment(d), KindDeployment)
	}
	for _, st := range ss {
		add(wrapStatefulSet(st), KindStatefulSet)
	}
	for _, r := range rs {
		if u, ok := r.(*unstructured.Unstructured); ok {
			if o, err := wrapRollout(u); err == nil {
				add(o, KindRollout)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// selects says whether the Service routes to the template's pods; a
// Service without a selector routes to hand-made endpoints, not to them.
// The Services Argo Rollouts manages (blue-green active and preview,
// canary stable and canary) also select rollouts-pod-template-hash, which
// only a revision's ReplicaSet puts on its pods, never the Rollout's own
// template: a Service selecting one of the Rollout's own hashes (from its
// status) is matched without it; one selecting another's is not.
func selects(svc *corev1.Service, t *corev1.PodTemplateSpec, hashes []string) bool {
	sel := svc.Spec.Selector
	if h, ok := sel[argorollouts.HashLabel]; ok && slices.Contains(hashes, h) {
		sel = maps.Clone(sel)
		delete(sel, argorollouts.HashLabel)
	}
	if len(sel) == 0 {
		return false
	}
	return labels.SelectorFromSet(sel).Matches(labels.Set(t.Labels))
}

var (
	sleepingDesc = prometheus.NewDesc("upid_scaler_sleeping_workloads",
		"Workloads asleep now, from their annotations; only the leader reports it.", nil, nil)
	savedDesc = prometheus.NewDesc("upid_scaler_sleeping_workload_saved_dollars_per_hour",
		"What a sleeping workload cost per hour when it was put to sleep, so saves while asleep.",
		[]string{"namespace", "workload", "kind"}, nil)
	sinceDesc = prometheus.NewDesc("upid_scaler_sleeping_workload_since_timestamp_seconds",
		"When the workload was put to sleep.", []string{"namespace", "workload", "kind"}, nil)
	serviceDesc = prometheus.NewDesc("upid_scaler_sleeping_workload_service_info",
		"Always 1: a Service whose selector matches a sleeping workload's pods, to join request rates to it for the wake alert.",
		[]string{"namespace", "workload", "kind", "service"}, nil)
)

// sleepCollector reports sleeping workloads. Only the leader reports, so
// that sums over replicas count each workload once.
type sleepCollector struct{ s *Scaler }

// SleepCollector is the collector of the sleeping-workload metrics; it
// reports once Run has synced, on the leader.
func (s *Scaler) SleepCollector() prometheus.Collector { return sleepCollector{s} }

func (c sleepCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- sleepingDesc
	ch <- savedDesc
	ch <- sinceDesc
	ch <- serviceDesc
}

func (c sleepCollector) Collect(ch chan<- prometheus.Metric) {
	if !c.s.IsLeader() || !c.s.synced.Load() {
		return
	}
	all := c.s.Sleeping()
	ch <- prometheus.MustNewConstMetric(sleepingDesc, prometheus.GaugeValue, float64(len(all)))
	for _, w := range all {
		ch <- prometheus.MustNewConstMetric(savedDesc, prometheus.GaugeValue, w.Saved, w.Namespace, w.Name, w.Kind)
		if !w.Since.IsZero() {
			ch <- prometheus.MustNewConstMetric(sinceDesc, prometheus.GaugeValue, float64(w.Since.Unix()), w.Namespace, w.Name, w.Kind)
		}
		for _, svc := range w.Services {
			ch <- prometheus.MustNewConstMetric(serviceDesc, prometheus.GaugeValue, 1, w.Namespace, w.Name, w.Kind, svc)
		}
	}
}

// Listers are filled by Run; kept here so the collector and the window
// loop share one cache.
type caches struct {
	deployments  appslisters.DeploymentLister
	statefulSets appslisters.StatefulSetLister
	services     corelisters.ServiceLister
	rollouts     atomic.Pointer[cache.GenericLister] // nil until the scaler can list Rollouts
}
