// Package scaler puts idle workloads to sleep (scale to zero) and wakes
// them, restoring exactly what it changed. Its only state is a set of
// annotations on each sleeping workload, so every action is idempotent and
// any replica can undo what another did. See docs/scaler.md.
package scaler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/retry"

	"github.com/upid-dev/upid/internal/config"
)

// Actions and their results, the label values of upid_scaler_actions_total.
const (
	ActionSleep = "sleep"
	ActionWake  = "wake"

	ResultSuccess    = "success"
	ResultFailure    = "failure"
	ResultDryRun     = "dry_run"
	ResultSkipped    = "skipped"
	ResultUserChange = "conflict_user_change"
)

// Options configure a Scaler.
type Options struct {
	Kube kubernetes.Interface
	// Dynamic reads and writes Argo Rollouts; nil leaves them unsupported
	// (unsupported_kind).
	Dynamic dynamic.Interface
	Config  config.Scaler
	Logger  log.Logger
	// Recorder receives the Events; nil sends them to Kube as core/v1 Events.
	Recorder record.EventRecorder
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Namespace is the one the scaler runs in, never put to sleep: there
	// it would put itself to sleep, or what its alerts come from, and
	// nothing would be woken again. Empty means the pod's (POD_NAMESPACE,
	// else its service account's); outside a pod it is unknown.
	Namespace string
}

// Scaler carries out sleep and wake requests.
type Scaler struct {
	kube     kube
	cfg      config.Scaler
	log      log.Logger
	recorder record.EventRecorder
	stopRec  func()
	now      func() time.Time
	ownNS    string
	windows  []Window
	actions  []config.ScalerAction
	limiter  *limiter
	dry      drySleeps
	leader   atomic.Bool
	// lease ends when this replica stops leading; nil without leader
	// election.
	lease atomic.Pointer[context.Context]
	// term orders the start and end of terms as leader (leadTerm).
	term   sync.Mutex
	synced atomic.Bool
	caches

	actionsTotal       *prometheus.CounterVec
	notificationsTotal *prometheus.CounterVec
	leaderGauge        prometheus.GaugeFunc
}

// New checks the configuration and builds a Scaler. The error names every
// bad setting.
func New(opts Options) (*Scaler, error) {
	if opts.Kube == nil {
		return nil, errors.New("scaler: no Kubernetes client")
	}
	var errs []error
	windows, err := ParseWindows(opts.Config.WakeWindows)
	if err != nil {
		errs = append(errs, err)
	}
	for i, a := range opts.Config.Actions {
		if a.Alert == "" {
			errs = append(errs, fmt.Errorf("scaler.actions[%d].alert: must not be empty", i))
		}
		if a.Action != ActionSleep && a.Action != ActionWake {
			errs = append(errs, fmt.Errorf("scaler.actions[%d].action: invalid value %q: want sleep or wake", i, a.Action))
		}
	}
	if le := opts.Config.LeaderElection; le.Enabled {
		// A leader cut off from the Lease tries to renew a retry period
		// after its last renewal and gives up, cancelling what it does,
		// renew_deadline later; another replica may take the Lease over
		// lease_duration after that last renewal.
		if le.RenewDeadline+le.RetryPeriod >= le.LeaseDuration {
			errs = append(errs, fmt.Errorf("scaler.leader_election.renew_deadline: %s plus retry_period %s must be below lease_duration %s, or a leader that cannot renew may still act when another leads",
				le.RenewDeadline, le.RetryPeriod, le.LeaseDuration))
		}
		// client-go's own rule: renewals must fit retries with jitter.
		if float64(le.RenewDeadline) <= leaderelection.JitterFactor*float64(le.RetryPeriod) {
			errs = append(errs, fmt.Errorf("scaler.leader_election.retry_period: %s must be below renew_deadline %s / %.1f", le.RetryPeriod, le.RenewDeadline, leaderelection.JitterFactor))
		}
		if le.Name == "" {
			errs = append(errs, errors.New("scaler.leader_election.name: must not be empty"))
		}
	}
	if opts.Config.BearerTokenFile != "" {
		if _, err := readToken(opts.Config.BearerTokenFile); err != nil {
			errs = append(errs, err)
		}
	}
	if opts.Config.MaxActions < 1 {
		errs = append(errs, fmt.Errorf("scaler.max_actions: invalid value %d: must be at least 1", opts.Config.MaxActions))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	s := &Scaler{
		kube:     kube{opts.Kube, opts.Dynamic},
		cfg:      opts.Config,
		log:      opts.Logger,
		recorder: opts.Recorder,
		now:      opts.Now,
		ownNS:    opts.Namespace,
		windows:  windows,
		actions:  slices.Clone(opts.Config.Actions),
		limiter:  &limiter{max: opts.Config.MaxActions, interval: time.Duration(opts.Config.ActionInterval)},
		actionsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "upid_scaler_actions_total",
			Help: "Sleep and wake actions by result: success, failure, dry_run, skipped, conflict_user_change.",
		}, []string{"action", "result"}),
		notificationsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "upid_scaler_notifications_total",
			Help: "Alertmanager notifications received, by result: accepted, unauthorized, malformed, too_large.",
		}, []string{"result"}),
	}
	s.leaderGauge = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "upid_scaler_leader",
		Help: "1 on the replica that holds the leader Lease and acts, else 0.",
	}, func() float64 {
		if s.leader.Load() {
			return 1
		}
		return 0
	})
	// Every series exists from the start, so rate() and alerts see a zero
	// rather than nothing.
	for _, a := range []string{ActionSleep, ActionWake} {
		for _, r := range []string{ResultSuccess, ResultFailure, ResultDryRun, ResultSkipped, ResultUserChange} {
			s.actionsTotal.WithLabelValues(a, r)
		}
	}
	for _, r := range []string{"accepted", "unauthorized", "malformed", "too_large"} {
		s.notificationsTotal.WithLabelValues(r)
	}
	if s.log == nil {
		s.log = log.NewNopLogger()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.ownNS == "" {
		s.ownNS = podNamespace()
	}
	if s.recorder == nil {
		b := record.NewBroadcaster()
		b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: opts.Kube.CoreV1().Events("")})
		s.recorder = b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: fieldManager})
		s.stopRec = b.Shutdown
	}
	// Without leader election the single process always acts.
	s.leader.Store(!opts.Config.LeaderElection.Enabled)
	return s, nil
}

// Close flushes and stops the Event recorder.
func (s *Scaler) Close() {
	if s.stopRec != nil {
		s.stopRec()
	}
}

// Collectors are the scaler's own metrics.
func (s *Scaler) Collectors() []prometheus.Collector {
	return []prometheus.Collector{s.actionsTotal, s.notificationsTotal, s.leaderGauge}
}

// IsLeader says whether this replica acts.
func (s *Scaler) IsLeader() bool { return s.leader.Load() }

// Request is one sleep or wake.
type Request struct {
	Workload Workload
	// SavedDollarsPerHour is what sleeping saves, from the alert's
	// dollars_per_hour annotation; it is recorded for the metrics.
	SavedDollarsPerHour float64
	// Cause says who asked, for Events and logs: an alert name, "cli" or
	// "wake_window".
	Cause string
	// Manual requests come from an operator (upid sleep/wake): they are not
	// held back by the namespace scope, grace period, rate limit or wake
	// windows, but still by protected namespaces, opt-out and HPAs.
	Manual bool
	// DryRun records what would be done and changes nothing; the
	// configured dry_run forces it.
	DryRun bool
}

// Result says what an action did.
type Result struct {
	Action   string
	Workload Workload
	Result   string // one of the Result* constants
	Reason   string // why, in snake_case: already_asleep, opted_out, ...
	Replicas int32  // the count saved at sleep or restored at wake
	// Detail is which alert label made it skip, for an alert that cannot
	// act, or a warning about an operator's sleep that went ahead (one
	// only upid wake will undo: no_wake_path).
	Detail string
	Err    error // set with ResultFailure
}

func (r Result) String() string {
	s := fmt.Sprintf("%s %s: %s", r.Action, r.Workload, r.Result)
	if r.Reason != "" {
		s += " (" + r.Reason + ")"
	}
	if r.Err != nil {
		s += ": " + r.Err.Error()
	}
	if r.Detail != "" {
		s += "; " + r.Detail
	}
	return s
}

// Sleep scales the workload to zero after saving its replica count in
// annotations. Repeating it is harmless.
func (s *Scaler) Sleep(ctx context.Context, req Request) (res Result) {
	res = Result{Action: ActionSleep, Workload: req.Workload}
	dry := req.DryRun || s.cfg.DryRun
	var target *object
	saved := false // this call wrote the state
	// token is when this sleep took its place in the rate limit, if it
	// did; a retry after a conflict keeps it.
	var token time.Time
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		// A retry decides afresh, its warning too.
		res.Detail = ""
		o, err := s.kube.get(ctx, req.Workload)
		if err != nil {
			return err
		}
		target = o
		st, asleep := readState(o)
		// leftover: the state of a wake cut short after its restore,
		// cleared here in memory; whatever this sleep writes removes it.
		leftover := false
		if asleep {
			matches := st.unchanged(o)
			switch {
			case matches && o.replicas == 0:
				res.Result, res.Reason, res.Replicas = ResultSkipped, "already_asleep", st.replicas
				return nil
			case st.wokenByUs(o):
				// Awake by the scaler's own restore, not by an edit to
				// honour: a sleep like any other (policy, rate limit),
				// whose state replaces what the wake left. Before the
				// sleep cut short, which a state without a generation
				// (an older scaler's) cannot tell from this.
				level.Info(s.log).Log("msg", "finishing a wake cut short after its restore", "workload", req.Workload, "replicas", st.replicas)
				clearState(o)
				asleep, leftover = false, true
			case matches && o.replicas == st.replicas && st.cutShort(o):
				// Saved but not yet scaled: a sleep cut short by a crash
				// or a conflict. Finish it unless policy now forbids.
				// Scaled back to the saved count since (by hand, by a
				// GitOps tool), it is awake: the default case forgets the
				// state.
				if reason, err := s.policy(ctx, o, req, &res.Detail); err != nil {
					res.Reason = reason
					return err
				} else if reason != "" {
					res.Result, res.Reason = ResultSkipped, reason
					if dry {
						return nil
					}
					clearState(o)
					_, err := s.kube.update(ctx, o)
					return err
				}
			default:
				return s.userChanged(ctx, o, &res, dry)
			}
		}
		// A sleep that writes no state of its own still finishes the wake.
		forgetLeftover := func() error {
			if !leftover || dry {
				return nil
			}
			_, err := s.kube.update(ctx, o)
			return err
		}
		if !asleep {
			// Before the policy, as a real run's already_asleep is.
			if dry && s.drySlept(o, &res, false) {
				return nil
			}
			if reason, err := s.policy(ctx, o, req, &res.Detail); err != nil {
				res.Reason = reason
				return err
			} else if reason != "" {
				res.Result, res.Reason = ResultSkipped, reason
				return forgetLeftover()
			}
			if o.replicas == 0 {
				res.Result, res.Reason = ResultSkipped, "already_zero"
				return nil
			}
			if !req.Manual && token.IsZero() {
				at := s.now()
				if !s.limiter.allow(at) {
					res.Result, res.Reason = ResultSkipped, "rate_limited"
					return forgetLeftover()
				}
				token = at
			}
			if dry {
				res.Result, res.Replicas = ResultDryRun, o.replicas
				s.dry.put(req.Workload, o, s.now())
				return nil
			}
			writeState(o, o.replicas, s.now(), req.SavedDollarsPerHour)
			if o, err = s.kube.update(ctx, o); err != nil {
				return err
			}
			saved = true
			st, _ = readState(o)
		}
		if dry {
			res.Result, res.Replicas = ResultDryRun, st.replicas
			return nil
		}
		if err := s.kube.scale(ctx, o, 0); err != nil {
			return err
		}
		res.Result, res.Reason, res.Replicas = ResultSuccess, "", st.replicas
		return nil
	})
	if !token.IsZero() && (err == nil && res.Result == ResultSkipped || err != nil && !saved) {
		// A retry found nothing to do after all (another replica or a
		// person scaled it, a policy changed), or a write failed before
		// anything was saved: the place goes back, or sleeps that acted on
		// nothing would hold back real ones, and a resend of one failing
		// workload would take a place each time. A saved state the scale
		// did not follow keeps it: the resend finishes that sleep.
		s.limiter.release(token)
	}
	s.finish(ctx, &res, target, req, err)
	return res
}

// Wake restores the saved replica count, then clears the annotations. A
// workload edited while asleep is left as its editor made it.
func (s *Scaler) Wake(ctx context.Context, req Request) (res Result) {
	res = Result{Action: ActionWake, Workload: req.Workload}
	dry := req.DryRun || s.cfg.DryRun
	var target *object
	// restored is the generation this call's own restore left, so that a
	// retry does not take that write for a user's edit: the generation
	// proof of unchanged counts only the scale to zero.
	var restored int64
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		o, err := s.kube.get(ctx, req.Workload)
		if err != nil {
			return err
		}
		target = o
		st, asleep := readState(o)
		if !asleep {
			if dry && s.drySlept(o, &res, true) {
				return nil
			}
			res.Result, res.Reason = ResultSkipped, "not_asleep"
			return nil
		}
		// Restored already, by this call or by a wake cut short since
		// (wokenByUs): the generation then counts the restore too.
		matches := st.unchanged(o) || restored != 0 && o.meta.Generation == restored && o.replicas == st.replicas || st.wokenByUs(o)
		switch {
		case !matches || (o.replicas != 0 && o.replicas != st.replicas):
			return s.userChanged(ctx, o, &res, dry)
		case dry:
			res.Result, res.Replicas = ResultDryRun, st.replicas
			return nil
		case o.replicas == 0:
			// Marked first: a wake stopped after the restore is then told
			// from a workload scaled back by hand (wokenByUs).
			o.meta.Annotations[AnnotationWaking] = strconv.FormatInt(o.meta.Generation, 10)
			if o, err = s.kube.update(ctx, o); err != nil {
				return err
			}
			target = o
			if err := s.kube.scale(ctx, o, st.replicas); err != nil {
				return err
			}
			// The scale wrote the object, so the annotations are cleared
			// on a fresh read; a conflict there comes back here and is
			// finished by the case below.
			if o, err = s.kube.get(ctx, req.Workload); err != nil {
				return err
			}
			target = o
			if o.replicas != st.replicas {
				return apierrors.NewConflict(appsResource(req.Workload), req.Workload.Name, errors.New("replicas changed right after the restore"))
			}
			restored = o.meta.Generation
		}
		// Restored (now or by an earlier attempt): forget the state.
		clearState(o)
		if _, err := s.kube.update(ctx, o); err != nil {
			return err
		}
		res.Result, res.Reason, res.Replicas = ResultSuccess, "", st.replicas
		return nil
	})
	s.finish(ctx, &res, target, req, err)
	return res
}

// userChanged handles a workload edited while asleep: the edit wins, and
// the scaler forgets what it had saved.
func (s *Scaler) userChanged(ctx context.Context, o *object, res *Result, dry bool) error {
	st, _ := readState(o)
	res.Result, res.Reason, res.Replicas = ResultUserChange, "edited_while_asleep", st.replicas
	if dry {
		res.Result = ResultDryRun
		return nil
	}
	clearState(o)
	_, err := s.kube.update(ctx, o)
	return err
}

// drySlept answers for a workload an earlier dry run put to sleep as a
// real run would find it: asleep (already_asleep to a sleep, restored by a
// wake), or edited since (edited_while_asleep) and so awake. Only a sleep
// of it unchanged keeps it asleep in the dry run.
func (s *Scaler) drySlept(o *object, res *Result, wake bool) bool {
	d, ok := s.dry.get(res.Workload)
	if !ok {
		return false
	}
	res.Result, res.Replicas = ResultDryRun, d.replicas
	switch {
	case !dryUnchanged(d, o):
		res.Reason = "edited_while_asleep"
	case !wake:
		res.Reason = "already_asleep"
		return true
	}
	s.dry.forget(res.Workload)
	return true
}

// finish turns the outcome into a metric, a log line and an Event.
func (s *Scaler) finish(ctx context.Context, res *Result, o *object, req Request, err error) {
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) && !errors.Is(err, context.Cause(ctx)) {
		// Cut short for a reason (the Lease lost): the cancelled call
		// says only "context canceled".
		err = fmt.Errorf("%w: %w", context.Cause(ctx), err)
	}
	switch {
	case apierrors.IsNotFound(err):
		res.Result, res.Reason, err = ResultSkipped, "not_found", nil
	case err != nil:
		res.Result, res.Err = ResultFailure, err
		if res.Reason == "" {
			res.Reason = "error"
		}
	}
	if res.Result == "" {
		res.Result, res.Reason = ResultFailure, "no_outcome"
	}
	if res.Result != ResultSuccess && res.Result != ResultDryRun {
		// The policy's warning is about a sleep made, or that a dry run
		// would make: one that did nothing has nothing to warn about.
		res.Detail = ""
	}
	s.actionsTotal.WithLabelValues(res.Action, res.Result).Inc()
	kv := []any{"msg", "scaler action", "action", res.Action, "result", res.Result, "namespace", req.Workload.Namespace,
		"kind", req.Workload.Kind, "workload", req.Workload.Name, "cause", req.Cause}
	if res.Reason != "" {
		kv = append(kv, "reason", res.Reason)
	}
	if res.Replicas != 0 {
		kv = append(kv, "replicas", res.Replicas)
	}
	if res.Err != nil {
		kv = append(kv, "err", res.Err)
	}
	if res.Detail != "" {
		kv = append(kv, "detail", res.Detail)
	}
	switch {
	case res.Result == ResultFailure:
		level.Error(s.log).Log(kv...)
	case res.Result == ResultUserChange, res.Detail != "":
		// A sleep made despite a warning is one to look at, as an edit
		// that won over a sleep is.
		level.Warn(s.log).Log(kv...)
	case res.Result == ResultSkipped && quietSkip(res):
		level.Debug(s.log).Log(kv...)
	default:
		level.Info(s.log).Log(kv...)
	}
	if o == nil || quietSkip(res) {
		return
	}
	typ, reason, msg := corev1.EventTypeNormal, "", ""
	switch res.Result {
	case ResultSuccess:
		if res.Action == ActionSleep {
			reason, msg = "UPIDSleep", fmt.Sprintf("Scaled to 0 from %d replicas (%s); upid wake restores it", res.Replicas, req.Cause)
		} else {
			reason, msg = "UPIDWake", fmt.Sprintf("Restored %d replicas (%s)", res.Replicas, req.Cause)
		}
	case ResultDryRun:
		reason, msg = "UPIDDryRun", fmt.Sprintf("Dry run: would %s (%s, %d replicas saved or restored)", res.Action, req.Cause, res.Replicas)
		if res.Reason == "already_asleep" {
			msg = fmt.Sprintf("Dry run: asleep since an earlier dry run (%s, %d replicas saved); a real run would do nothing", req.Cause, res.Replicas)
		} else if res.Reason != "" {
			msg += "; " + res.Reason
		}
	case ResultUserChange:
		typ, reason, msg = corev1.EventTypeWarning, "UPIDUserChange", fmt.Sprintf("Changed while asleep; left as changed and the saved count (%d) forgotten", res.Replicas)
	case ResultSkipped:
		reason, msg = "UPIDSkipped", fmt.Sprintf("Not %s: %s (%s)", gerund(res.Action), res.Reason, req.Cause)
	case ResultFailure:
		typ, reason, msg = corev1.EventTypeWarning, "UPIDFailed", fmt.Sprintf("Could not %s: %v", res.Action, res.Err)
	}
	if res.Detail != "" {
		// The workload's Events are where its owner looks for why it
		// never came back.
		typ, msg = corev1.EventTypeWarning, msg+"; "+res.Detail
	}
	s.recorder.Event(o.obj, typ, reason, msg)
}

// quietSkip is a repeat that finds the work done: no Event, so duplicate
// deliveries do not flood the workload's Events.
func quietSkip(r *Result) bool {
	return r.Result == ResultSkipped && (r.Reason == "already_asleep" || r.Reason == "not_asleep" || r.Reason == "already_zero")
}

func gerund(action string) string {
	if action == ActionSleep {
		return "put to sleep"
	}
	return "woken"
}

// holdsLease reports whether ns is the scaler's own namespace by the only
// sign left when the process cannot know it (`upid sleep` on a laptop, a
// pod without POD_NAMESPACE): the leader election Lease is there. Only a
// Lease that is found counts; one that cannot be read (a user or replica
// without access to Leases there) proves nothing either way, and the
// configured protected namespaces still apply.
func (s *Scaler) holdsLease(ctx context.Context, ns string) bool {
	if s.ownNS != "" {
		return false
	}
	le := s.cfg.LeaderElection
	if le.Namespace != "" {
		return ns == le.Namespace
	}
	if le.Name == "" {
		return false
	}
	_, err := s.kube.c.CoordinationV1().Leases(ns).Get(ctx, le.Name, metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		level.Debug(s.log).Log("msg", "cannot tell whether the namespace holds the scaler's Lease", "namespace", ns, "err", err)
	}
	return err == nil
}

// policy returns why the workload may not be put to sleep, or "". A
// namespace, HPA or Service list it cannot read is an error, with the
// reason it stands for: the answer is unknown, and a failure is what
// Alertmanager retries. An operator's sleep that only the wake-path check
// would refuse goes ahead with that check's finding in warning.
func (s *Scaler) policy(ctx context.Context, o *object, req Request, warning *string) (string, error) {
	ns := o.meta.Namespace
	// Its own namespace whatever the setting, which lists others' (as the
	// webhook never mutates its own pods).
	if ns == s.ownNS || slices.Contains(s.cfg.ProtectedNamespaces, ns) || s.holdsLease(ctx, ns) {
		return "protected_namespace", nil
	}
	if o.meta.Annotations[AnnotationOptOut] == "disabled" {
		return "opted_out", nil
	}
	if o.rollout.workloadRef {
		// Its template, and so the Services of its pods and any edit made
		// while it slept, are the Deployment's.
		return "workload_ref", nil
	}
	if ref := metav1.GetControllerOf(o.meta); ref != nil {
		// An operator's (a database's, a message broker's): it sets the
		// replicas itself and would undo the sleep, which the next alert
		// would redo, each round a user change and a rate-limit place.
		return "controller_owned", nil
	}
	if r := o.rollout; r.phase != "" && (!r.settled() || r.observedGeneration != strconv.FormatInt(o.meta.Generation, 10)) {
		// Mid-canary (Paused, Progressing) Argo keeps canary pods at zero
		// replicas (setCanaryScale) and a promotion at zero can wedge:
		// only a settled Rollout sleeps, one whose state is about its
		// current spec, not one Argo has yet to see.
		return "rollout_not_healthy", nil
	}
	if ss, ok := o.obj.(*appsv1.StatefulSet); ok {
		if p := ss.Spec.PersistentVolumeClaimRetentionPolicy; p != nil && p.WhenScaled == appsv1.DeletePersistentVolumeClaimRetentionPolicyType {
			// Scaled to zero, the StatefulSet controller deletes every
			// claim: a wake would bring the pods back on empty volumes.
			return "pvc_deleted_when_scaled", nil
		}
	}
	n, err := s.kube.c.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err != nil {
		// Unknown namespace labels must not count as consent.
		return "namespace_unreadable", fmt.Errorf("reading namespace %s: %w", ns, err)
	}
	switch n.Labels[LabelOptIn] {
	case "disabled":
		return "namespace_opted_out", nil
	case "enabled":
	default:
		if s.cfg.Scope != "cluster" && !req.Manual {
			return "namespace_not_opted_in", nil
		}
	}
	if !req.Manual {
		if age := s.now().Sub(o.meta.CreationTimestamp.Time); age < time.Duration(s.cfg.GracePeriod) {
			return "grace_period", nil
		}
		if InWindow(s.windows, s.now()) {
			return "wake_window", nil
		}
	}
	if !s.cfg.IncludeHPA {
		hpas, err := s.kube.c.AutoscalingV2().HorizontalPodAutoscalers(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return "hpa_unreadable", fmt.Errorf("listing the HorizontalPodAutoscalers of %s: %w", ns, err)
		}
		for _, h := range hpas.Items {
			ref := h.Spec.ScaleTargetRef
			if ref.Kind == req.Workload.Kind && ref.Name == o.meta.Name {
				return "hpa_managed", nil
			}
		}
	}
	if s.cfg.SleepWithoutWakePath || len(s.windows) > 0 {
		// Allowed, or the next wake window wakes every sleeping workload.
		return "", nil
	}
	woken, err := s.wakeableOnDemand(ctx, o)
	switch {
	case err != nil && req.Manual:
		// A person chose this sleep: an unreadable Service list is no
		// reason to refuse it, but they should know the check was not made.
		*warning = "wake path unknown: " + err.Error()
	case err != nil:
		return "service_unreadable", err
	case woken:
	case req.Manual:
		*warning = noWakePathWarning
	default:
		// The wake alert joins request rates through the Services that
		// select a sleeping workload's pods: without one no request can
		// raise it, and only upid wake would bring the workload back.
		return "no_wake_path", nil
	}
	return "", nil
}

// noWakePathWarning is what an operator's sleep of a workload the scaler
// itself would not put to sleep (no_wake_path) is told.
const noWakePathWarning = "no_wake_path: no Service selects its pods and no wake window is set, so no request wakes it; only upid wake does"

// wakeableOnDemand says whether a Service selects the workload's pods, so
// that requests to it raise the wake alert once it sleeps: the same match
// that upid_scaler_sleeping_workload_service_info reports.
// The server reads its Service informer, which the sleeping-workload
// metrics keep anyway; `upid sleep`, which runs none, asks the API server.
func (s *Scaler) wakeableOnDemand(ctx context.Context, o *object) (bool, error) {
	var svcs []*corev1.Service
	if s.services != nil && s.synced.Load() {
		var err error
		if svcs, err = s.services.Services(o.meta.Namespace).List(labels.Everything()); err != nil {
			return false, fmt.Errorf("listing the Services of %s: %w", o.meta.Namespace, err)
		}
	} else {
		l, err := s.kube.c.CoreV1().Services(o.meta.Namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, fmt.Errorf("listing the Services of %s: %w", o.meta.Namespace, err)
		}
		for i := range l.Items {
			svcs = append(svcs, &l.Items[i])
		}
	}
	return slices.ContainsFunc(svcs, func(svc *corev1.Service) bool { return selects(svc, o.template, o.rollout.hashes) }), nil
}

// limiter allows at most max actions in any interval: a sliding log, so a
// burst at the end of one interval cannot double up with the next.
type limiter struct {
	mu       sync.Mutex
	max      int
	interval time.Duration
	times    []time.Time
}

// seed adds sleeps another process made (their upid.io/sleep-since) to
// the window. One within two seconds of a sleep this process counted is
// that sleep: the annotation holds the second its state was written.
func (l *limiter) seed(times []time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	own := slices.Clone(l.times) // others' sleeps can share a second
	for _, t := range times {
		if !slices.ContainsFunc(own, func(o time.Time) bool { return o.Sub(t).Abs() < 2*time.Second }) {
			l.times = append(l.times, t)
		}
	}
	slices.SortFunc(l.times, func(a, b time.Time) int { return a.Compare(b) })
}

// release gives back the place allow gave at t.
func (l *limiter) release(t time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if i := slices.Index(l.times, t); i >= 0 {
		l.times = slices.Delete(l.times, i, i+1)
	}
}

func (l *limiter) allow(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	cut := 0
	for cut < len(l.times) && now.Sub(l.times[cut]) >= l.interval {
		cut++
	}
	l.times = l.times[cut:]
	if len(l.times) >= l.max {
		return false
	}
	l.times = append(l.times, now)
	return true
}

// drySleeps are the workloads a dry run would have put to sleep. Nothing
// records them on the workloads, and their idle alert keeps firing, so
// without them every resend would take a new rate-limit place where a real
// run finds the workload asleep and takes none: the dry run would then
// predict rate_limited for sleeps a real run makes. They are kept until
// woken (by a wake alert or a wake window) or edited, as a real sleep is,
// and, like the rate limit, only in this process's memory.
type drySleeps struct {
	mu sync.Mutex
	m  map[Workload]sleepState // what a real sleep's state would hold
}

// dryUnchanged is sleepState.unchanged for a sleep that wrote nothing:
// the count not scaled since, and the same fingerprint or no write at all.
func dryUnchanged(st sleepState, o *object) bool {
	return o.replicas == st.replicas && (fingerprint(o) == st.fingerprint || o.meta.Generation == st.generation)
}

func (ds *drySleeps) put(w Workload, o *object, since time.Time) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if ds.m == nil {
		ds.m = map[Workload]sleepState{}
	}
	ds.m[w] = sleepState{since: since, replicas: o.replicas, fingerprint: fingerprint(o), generation: o.meta.Generation, valid: true}
}

func (ds *drySleeps) get(w Workload) (sleepState, bool) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	d, ok := ds.m[w]
	return d, ok
}

func (ds *drySleeps) forget(w Workload) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	delete(ds.m, w)
}

// before lists the dry run's sleeps made before t, in a stable order.
func (ds *drySleeps) before(t time.Time) []Workload {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	var out []Workload
	for w, d := range ds.m {
		if d.since.Before(t) {
			out = append(out, w)
		}
	}
	slices.SortFunc(out, func(a, b Workload) int { return strings.Compare(a.String(), b.String()) })
	return out
}
