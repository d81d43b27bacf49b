package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	krt "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"

	"github.com/upid-dev/upid/exporter"
	"github.com/upid-dev/upid/internal/argorollouts"
	"github.com/upid-dev/upid/internal/testenv"
)

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// watchGate holds back what the watches of some resources deliver while
// it is held, as an informer behind the API server would be; it lets the
// list at start through.
type watchGate struct {
	resources map[string]bool // "deployments"
	mu        sync.Mutex
	open      chan struct{} // closed while not held
}

func newWatchGate(resources ...string) *watchGate {
	g := &watchGate{resources: map[string]bool{}, open: make(chan struct{})}
	for _, r := range resources {
		g.resources[r] = true
	}
	close(g.open)
	return g
}

func (g *watchGate) hold() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open = make(chan struct{})
}

func (g *watchGate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.open:
	default:
		close(g.open)
	}
}

func (g *watchGate) wait(ctx context.Context) error {
	g.mu.Lock()
	open := g.open
	g.mu.Unlock()
	select {
	case <-open:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *watchGate) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
		resp, err := rt.RoundTrip(req)
		if w := req.URL.Query().Get("watch"); err != nil || w != "true" && w != "1" || !g.resources[path.Base(req.URL.Path)] {
			return resp, err
		}
		resp.Body = &heldBody{ReadCloser: resp.Body, gate: g, ctx: req.Context()}
		return resp, nil
	})
}

// heldBody is a watch's stream, whose events arriving while the gate is
// held wait for its release; the informer's shutdown ends the wait.
type heldBody struct {
	io.ReadCloser
	gate *watchGate
	ctx  context.Context
}

func (b *heldBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if werr := b.gate.wait(b.ctx); werr != nil {
		return 0, werr
	}
	return n, err
}

// firstReadFails answers the first read of the ReplicaSet of each
// Deployment it names (the ReplicaSet's name is the Deployment's, a dash
// and a hash) with the Deployment's failure, and counts them.
type firstReadFails struct {
	failures map[string]func(*http.Request) (*http.Response, error)
	mu       sync.Mutex
	failed   map[string]int
	reads    map[string]int
}

func (f *firstReadFails) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
		dir, name := path.Split(req.URL.Path)
		if req.Method != http.MethodGet || !strings.HasSuffix(dir, "/replicasets/") {
			return rt.RoundTrip(req)
		}
		f.mu.Lock()
		var fail func(*http.Request) (*http.Response, error)
		for d, fn := range f.failures {
			if strings.HasPrefix(name, d+"-") {
				f.reads[d]++
				if f.failed[d] == 0 && fn != nil {
					f.failed[d]++
					fail = fn
				}
			}
		}
		f.mu.Unlock()
		if fail != nil {
			return fail(req)
		}
		return rt.RoundTrip(req)
	})
}

// statusAnswer is the API server's answer of a failure, without
// Retry-After, which client-go would wait for and retry itself.
func statusAnswer(code int32, reason metav1.StatusReason) func(*http.Request) (*http.Response, error) {
	return func(req *http.Request) (*http.Response, error) {
		body, _ := json.Marshal(metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
			Status: metav1.StatusFailure, Code: code, Reason: reason, Message: "injected by the test"})
		return &http.Response{StatusCode: int(code), Status: fmt.Sprintf("%d %s", code, reason), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(strings.NewReader(string(body))), Request: req}, nil
	}
}

// TestWorkloadsTheInformersHaveNot races the webhook's live informers
// against new Deployments and Argo Rollouts on a real API server with
// kube-controller-manager and Argo Rollouts' own controller: the watches
// of Deployments and ReplicaSets are held back, so each pod is admitted
// before the informers have its workload or ReplicaSet. The webhook reads
// them at admission: a Deployment's or a Rollout's opt-out holds (Argo
// copies the Rollout's annotations to its ReplicaSet), the others' pods
// are rightsized with the Event on the workload, UID included, and a
// first read that fails (503, 429, NotFound, no answer within the
// budget) admits the pod unchanged, without reading again.
func TestWorkloadsTheInformersHaveNot(t *testing.T) {
	k := testenv.StartKube(t, testenv.KubeOptions{ControllerManager: true})
	k.StartArgoRollouts(t)
	ctx := context.Background()
	const ns = "t-race"
	createNamespace(t, k, ns, map[string]string{AnnotationMode: ModeEnforce})
	noAnswer := func(req *http.Request) (*http.Response, error) {
		<-req.Context().Done() // the lookup's budget
		return nil, req.Context().Err()
	}
	optOut := map[string]string{AnnotationOptOut: optOutValue}
	const unchanged = "req.cpu=1 req.memory=1Gi"
	cases := []struct {
		name        string
		rollout     bool
		annotations map[string]string
		firstRead   func(*http.Request) (*http.Response, error) // of the ReplicaSet; nil: it succeeds
		want        string                                      // the pod's requests
		event       bool
	}{
		{"plain", false, nil, nil, "req.cpu=250m req.memory=128Mi", true},
		{"quiet", false, optOut, nil, unchanged, false},
		{"ro-plain", true, nil, nil, "req.cpu=250m req.memory=128Mi", true},
		{"ro-quiet", true, optOut, nil, unchanged, false},
		{"unavailable", false, nil, statusAnswer(http.StatusServiceUnavailable, metav1.StatusReasonServiceUnavailable), unchanged, false},
		{"throttled", false, nil, statusAnswer(http.StatusTooManyRequests, metav1.StatusReasonTooManyRequests), unchanged, false},
		{"not-readable-yet", false, nil, statusAnswer(http.StatusNotFound, metav1.StatusReasonNotFound), unchanged, false},
		{"no-answer", false, nil, noAnswer, unchanged, false},
	}
	fails := &firstReadFails{failures: map[string]func(*http.Request) (*http.Response, error){}, failed: map[string]int{}, reads: map[string]int{}}
	var recs []exporter.WorkloadResult
	for _, tc := range cases {
		fails.failures[tc.name] = tc.firstRead
		kind := "Deployment"
		if tc.rollout {
			kind = argorollouts.Kind
		}
		recs = append(recs, workloadResult(ns, kind, tc.name, 0.25, 128<<20, 100<<20, 1))
	}
	gate := newWatchGate("deployments", "replicasets")
	defer gate.release()
	informersConfig := rest.CopyConfig(k.Config)
	informersConfig.Wrap(gate.wrap)
	meta, err := metadata.NewForConfig(informersConfig)
	if err != nil {
		t.Fatal(err)
	}
	lookupsConfig := OwnerLookupConfig(k.Config)
	lookupsConfig.Wrap(fails.wrap)
	lookups, err := metadata.NewForConfig(lookupsConfig)
	if err != nil {
		t.Fatal(err)
	}
	cert := testenv.NewServingCert(t)
	port := testenv.FreePort(t)
	stop, reg := startWebhookWith(t, k, testConfig(port, cert.Dir, recsServer(t, recs...)), "upid-system", meta, lookups)
	defer stop()
	k.RegisterMutatingWebhook(t, testenv.MutatingWebhookSpec{Name: "pods.webhook.upid.io", URL: fmt.Sprintf("https://127.0.0.1:%d%s", port, Path), CAPEM: cert.CAPEM})
	gate.hold()

	rollouts, err := dynamic.NewForConfig(k.Config)
	if err != nil {
		t.Fatal(err)
	}
	workloads := map[string]krt.Object{}
	for _, tc := range cases {
		if !tc.rollout {
			d := deployment(ns, tc.name, tc.annotations, rl("cpu", "1", "memory", "1Gi"), nil)
			if d, err = k.Clientset.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			workloads[tc.name] = d
			continue
		}
		labels := map[string]any{"app": tc.name}
		spec := map[string]any{
			"replicas": int64(1),
			"selector": map[string]any{"matchLabels": labels},
			"template": map[string]any{"metadata": map[string]any{"labels": labels}, "spec": map[string]any{"containers": []any{map[string]any{
				"name": "app", "image": "registry.invalid/app", "resources": map[string]any{"requests": map[string]any{"cpu": "1", "memory": "1Gi"}}}}}},
			"strategy": map[string]any{"canary": map[string]any{"steps": []any{map[string]any{"setWeight": int64(20)}}}},
		}
		r := &unstructured.Unstructured{Object: map[string]any{"apiVersion": argorollouts.APIVersion, "kind": argorollouts.Kind, "spec": spec}}
		r.SetName(tc.name)
		r.SetAnnotations(tc.annotations)
		if r, err = rollouts.Resource(argorollouts.Resource).Namespace(ns).Create(ctx, r, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		workloads[tc.name] = r
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := workloads[tc.name]
			if pod := waitPod(t, k, ns, tc.name); requestsOf(pod) != tc.want {
				t.Errorf("pod %s: %s, want %s", pod.Name, requestsOf(pod), tc.want)
			}
			deadline := time.Now().Add(40 * time.Second)
			for {
				// kubectl describe's search: name, namespace, kind and UID.
				evs, err := k.Clientset.CoreV1().Events(ns).Search(scheme.Scheme, w)
				if err != nil {
					t.Fatal(err)
				}
				var ours []corev1.Event // the controllers have their own
				for _, ev := range evs.Items {
					if ev.Source.Component == "upid-webhook" {
						ours = append(ours, ev)
					}
				}
				if !tc.event {
					if len(ours) != 0 {
						t.Errorf("Events of a pod admitted unchanged: %+v", ours)
					}
					break
				}
				if len(ours) > 0 {
					ev := ours[0]
					uid := w.(metav1.Object).GetUID()
					if len(ours) != 1 || ev.InvolvedObject.UID != uid || ev.Reason != "UPIDRightsized" || !strings.Contains(ev.Message, "app: requests cpu 250m, memory 128Mi") {
						t.Errorf("the webhook's Events of the workload: %+v", ours)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no Event on %s within 40s", tc.name)
				}
				time.Sleep(100 * time.Millisecond)
			}
			fails.mu.Lock()
			failed, reads := fails.failed[tc.name], fails.reads[tc.name]
			fails.mu.Unlock()
			if want := map[bool]int{true: 1, false: 0}[tc.firstRead != nil]; failed != want || reads != 1 {
				t.Errorf("%d reads of the ReplicaSet, %d failed; want 1 read, %d failed", reads, failed, want)
			}
		})
	}
	// Every pod was decided on the lookup, none on the held cache.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"upid_webhook_owner_lookups_total", map[string]string{"result": "found"}, 4},
		{"upid_webhook_owner_lookups_total", map[string]string{"result": "not_found"}, 1},
		{"upid_webhook_owner_lookups_total", map[string]string{"result": "timeout"}, 1},
		{"upid_webhook_owner_lookups_total", map[string]string{"result": "error"}, 2},
		{"upid_webhook_decisions_total", map[string]string{"outcome": OutcomeMutated, "reason": ModeEnforce}, 2},
		{"upid_webhook_decisions_total", map[string]string{"outcome": OutcomeSkipped, "reason": "opted_out"}, 2},
		{"upid_webhook_decisions_total", map[string]string{"outcome": OutcomeSkipped, "reason": "workload_unknown"}, 4},
	} {
		if got := counterValue(mfs, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %g, want %g", c.name, c.labels, got, c.want)
		}
	}
}
