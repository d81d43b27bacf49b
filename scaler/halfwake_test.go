package scaler

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"

	"github.com/upid-dev/upid/internal/config"
)

// cutWakeAfterRestore wakes web and stops the wake between its restore and
// the removal of its state, as a crash or a lost Lease there would.
func cutWakeAfterRestore(t *testing.T, s *Scaler, apps *fakeApps) {
	t.Helper()
	restored := false
	apps.fail = func(verb, sub string) error {
		restored = restored || verb == "update" && sub == "scale"
		if verb == "patch" && restored {
			return apierrors.NewInternalError(errors.New("test: the process died"))
		}
		return nil
	}
	res := s.Wake(context.Background(), Request{Workload: web})
	apps.fail = nil
	if d := apps.get("shop", "web"); res.Result != ResultFailure || *d.Spec.Replicas != 3 || d.Annotations[AnnotationReplicas] != "3" {
		t.Fatalf("cut wake: %s, replicas %d, annotations %v; want a failure leaving 3 replicas and the state", res, *d.Spec.Replicas, d.Annotations)
	}
}

// TestWakeCutAfterRestore: a wake that restored the count and stopped
// before it cleared the state leaves a workload awake with UPID's
// annotations. The next sleep or wake finishes that wake (the state goes,
// the count is the saved one) rather than taking UPID's own restore for
// a person's edit; a person's scale or edit still wins.
func TestWakeCutAfterRestore(t *testing.T) {
	tests := []struct {
		name string
		cfg  func(*config.Scaler)
		// after are a person's writes once the wake was cut.
		after []func(*appsv1.Deployment)
		// upgraded: the spec reads differently, with no write (a field a
		// newer Kubernetes defaults): another fingerprint, the same
		// generation.
		upgraded, nsOptOut bool
		// oldState: the sleep wrote no generation, as before it existed.
		oldState bool
		// scaled are a person's writes of the scale subresource (kubectl
		// scale), which record no owner.
		scaled      []int32
		action      string
		manual, dry bool
		// want is the result, reason and replicas left; asleep says the
		// workload carries a state (saving 3) after the action.
		want, reason string
		replicas     int32
		asleep       bool
	}{
		{name: "idle alert sleeps it afresh", action: ActionSleep, want: ResultSuccess, replicas: 0, asleep: true},
		{name: "upid sleep sleeps it afresh", action: ActionSleep, manual: true, want: ResultSuccess, replicas: 0, asleep: true},
		{name: "wake clears the state", action: ActionWake, want: ResultSuccess, replicas: 3},
		// An annotation is a new generation of a Deployment, which could
		// as well be a person's scale: taken for an edit, as before.
		{name: "annotated since: an edit for all the scaler knows", after: edits(func(d *appsv1.Deployment) { d.Annotations["team"] = "shop" }),
			action: ActionSleep, want: ResultUserChange, reason: "edited_while_asleep", replicas: 3},
		{name: "namespace opted out since: refused, and the state cleared", nsOptOut: true,
			action: ActionSleep, want: ResultSkipped, reason: "namespace_opted_out", replicas: 3},
		// The first sleep took the only place: the fresh sleep needs one.
		{name: "rate limited: refused, and the state cleared", cfg: func(c *config.Scaler) { c.MaxActions = 1; c.ActionInterval = model.Duration(time.Hour) },
			action: ActionSleep, want: ResultSkipped, reason: "rate_limited", replicas: 3},
		// The state of an older scaler's sleep, without a generation, is
		// no sleep cut short to finish without a rate-limit place.
		{name: "state without a generation, rate limited", oldState: true, cfg: func(c *config.Scaler) { c.MaxActions = 1; c.ActionInterval = model.Duration(time.Hour) },
			action: ActionSleep, want: ResultSkipped, reason: "rate_limited", replicas: 3},
		{name: "dry run writes nothing", dry: true, action: ActionSleep, want: ResultDryRun, replicas: 3, asleep: true},
		// The generation proves no write but the scale to zero and the
		// restore.
		{name: "fingerprint changed, generation proves it: sleep", upgraded: true,
			action: ActionSleep, want: ResultSuccess, replicas: 0, asleep: true},
		{name: "fingerprint changed, generation proves it: wake", upgraded: true,
			action: ActionWake, want: ResultSuccess, replicas: 3},
		// What a person's hand looks like, after the restore.
		{name: "image changed since: an edit", after: edits(func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "registry.example/app:2" }),
			action: ActionSleep, want: ResultUserChange, reason: "edited_while_asleep", replicas: 3},
		{name: "kubectl edit since, back to the saved count: an edit", after: edits(scaleTo(1), scaleTo(3)),
			action: ActionSleep, want: ResultUserChange, reason: "edited_while_asleep", replicas: 3},
		{name: "kubectl scale since, back to the saved count: an edit", scaled: []int32{1, 3},
			action: ActionSleep, want: ResultUserChange, reason: "edited_while_asleep", replicas: 3},
		// A state without a generation cannot tell a sleep cut short from a
		// workload scaled back by hand, but the wake's mark says the sleep
		// had scaled it to zero: a person's count, not a sleep to finish.
		{name: "state without a generation, kubectl edit since, back to the saved count: an edit", oldState: true, after: edits(scaleTo(1), scaleTo(3)),
			action: ActionSleep, want: ResultUserChange, reason: "edited_while_asleep", replicas: 3},
		{name: "state without a generation, kubectl scale since, back to the saved count: an edit", oldState: true, scaled: []int32{1, 3},
			action: ActionSleep, want: ResultUserChange, reason: "edited_while_asleep", replicas: 3},
		{name: "kubectl scale since, back to the saved count, then wake", scaled: []int32{1, 3},
			action: ActionWake, want: ResultSuccess, replicas: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, apps := newFakeCluster(namespace("shop", optedIn), deployment("shop", "web", 3, time.Now().Add(-72*time.Hour)), service("shop", "web"))
			cfg := testConfig(t)
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			rec := record.NewFakeRecorder(20)
			s := newTestScaler(t, c, cfg, rec)
			if res := s.Sleep(context.Background(), Request{Workload: web}); res.Result != ResultSuccess {
				t.Fatalf("sleep: %s", res)
			}
			cutWakeAfterRestore(t, s, apps)
			for _, edit := range tc.after {
				apps.edit("shop", "web", edit)
			}
			for _, n := range tc.scaled {
				sc := &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: web.Name, Namespace: web.Namespace}, Spec: autoscalingv1.ScaleSpec{Replicas: n}}
				if _, err := c.AppsV1().Deployments(web.Namespace).UpdateScale(context.Background(), web.Name, sc, metav1.UpdateOptions{FieldManager: "kubectl"}); err != nil {
					t.Fatal(err)
				}
			}
			if tc.nsOptOut {
				if _, err := c.CoreV1().Namespaces().Update(context.Background(), namespace("shop", map[string]string{LabelOptIn: "disabled"}), metav1.UpdateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			if tc.oldState {
				apps.mu.Lock()
				delete(apps.objects["shop/web"].Annotations, AnnotationGeneration)
				apps.mu.Unlock()
			}
			if tc.upgraded {
				apps.mu.Lock()
				apps.objects["shop/web"].Annotations[AnnotationState] = "sha256:00000000000000000000000000000000"
				apps.mu.Unlock()
			}
			before := apps.get("shop", "web")
			drain(rec)
			req := Request{Workload: web, Manual: tc.manual, DryRun: tc.dry, Cause: "test"}
			var res Result
			if tc.action == ActionWake {
				res = s.Wake(context.Background(), req)
			} else {
				res = s.Sleep(context.Background(), req)
			}
			d := apps.get("shop", "web")
			events := drain(rec)
			t.Logf("%s: %s; replicas %d, annotations %v, events %v", tc.action, res, *d.Spec.Replicas, d.Annotations, events)
			if res.Result != tc.want || res.Reason != tc.reason || res.Replicas != 3 && tc.want != ResultSkipped {
				t.Errorf("%s of the half-woken workload: %s, want %s (%s) about 3 replicas", tc.action, res, tc.want, tc.reason)
			}
			if *d.Spec.Replicas != tc.replicas {
				t.Errorf("replicas %d, want %d", *d.Spec.Replicas, tc.replicas)
			}
			switch {
			case tc.want == ResultDryRun:
				if d.ResourceVersion != before.ResourceVersion {
					t.Errorf("a dry run wrote the workload: %v", d.Annotations)
				}
			case tc.asleep:
				if d.Annotations[AnnotationReplicas] != "3" || d.Annotations[AnnotationGeneration] == before.Annotations[AnnotationGeneration] {
					t.Errorf("annotations %v, want a fresh state saving 3 (the cut wake's was %v)", d.Annotations, before.Annotations)
				}
			default:
				if left := stateLeft(d.Annotations); len(left) > 0 {
					t.Errorf("%v left on an awake workload", left)
				}
			}
			for _, e := range events {
				if strings.Contains(e, "UPIDUserChange") != (tc.want == ResultUserChange) {
					t.Errorf("event %q for a %s", e, tc.want)
				}
			}

			// Once more: the work is done, and a repeat says so.
			again := map[string]string{ActionSleep: "already_asleep", ActionWake: "not_asleep"}[tc.action]
			if tc.want != ResultSuccess && tc.want != ResultDryRun {
				return
			}
			if tc.action == ActionWake {
				res = s.Wake(context.Background(), req)
			} else {
				res = s.Sleep(context.Background(), req)
			}
			if res.Reason != again || res.Replicas != map[bool]int32{true: 3, false: 0}[tc.action == ActionSleep] {
				t.Errorf("repeated %s: %s, want %s", tc.action, res, again)
			}
		})
	}
}

func edits(e ...func(*appsv1.Deployment)) []func(*appsv1.Deployment) { return e }

func scaleTo(n int32) func(*appsv1.Deployment) {
	return func(d *appsv1.Deployment) { d.Spec.Replicas = &n }
}

// TestScaledByOthers reads from managedFields whether anyone but the
// scaler set spec.replicas: the API server records the owner of a write
// of the main resource, none for one of the scale subresource.
func TestScaledByOthers(t *testing.T) {
	replicas := &metav1.FieldsV1{Raw: []byte(`{"f:spec":{"f:replicas":{}}}`)}
	template := &metav1.FieldsV1{Raw: []byte(`{"f:spec":{"f:template":{"f:spec":{}}}}`)}
	entry := func(manager, sub string, f *metav1.FieldsV1) metav1.ManagedFieldsEntry {
		return metav1.ManagedFieldsEntry{Manager: manager, Operation: metav1.ManagedFieldsOperationUpdate, Subresource: sub, FieldsType: "FieldsV1", FieldsV1: f}
	}
	for _, tc := range []struct {
		name   string
		fields []metav1.ManagedFieldsEntry
		want   bool
	}{
		{name: "nobody: scaled through the scale subresource", fields: []metav1.ManagedFieldsEntry{entry("kubectl-create", "", template), entry(fieldManager, "", &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{"f:annotations":{}}}`)})}},
		{name: "the scaler's scale, should a server record it", fields: []metav1.ManagedFieldsEntry{entry(fieldManager, "scale", replicas)}},
		{name: "managedFields stripped"},
		{name: "kubectl edit", fields: []metav1.ManagedFieldsEntry{entry("kubectl-edit", "", replicas)}, want: true},
		{name: "an apply sharing the count", fields: []metav1.ManagedFieldsEntry{entry("argocd-controller", "", replicas), entry(fieldManager, "scale", replicas)}, want: true},
		{name: "kubectl scale, should a server record it", fields: []metav1.ManagedFieldsEntry{entry("kubectl", "scale", replicas)}, want: true},
		{name: "unreadable fields", fields: []metav1.ManagedFieldsEntry{entry("kubectl-edit", "", &metav1.FieldsV1{Raw: []byte(`{"f:spec":`)})}, want: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := scaledByOthers(&metav1.ObjectMeta{ManagedFields: tc.fields}); got != tc.want {
				t.Errorf("scaledByOthers = %v, want %v", got, tc.want)
			}
		})
	}
}
