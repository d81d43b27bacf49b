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

	"github.com/prometheus/client_golang/prometheus/testutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"

	"github.com/upid-dev/upid/exporter"
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

// TestEventsOfDeploymentsTheInformerHasNot races the webhook's live
// informers against new Deployments on a real API server and
// kube-controller-manager: their watches of Deployments and ReplicaSets
// are held back, so each Deployment's pod is admitted, and rightsized,
// before the informers have the Deployment or its ReplicaSet. The Event
// still lands on the Deployment, with its UID, through the owner lookup of
// the pod's ReplicaSet, also when that lookup's first read fails
// transiently (503, 429, NotFound, no answer within its timeout), which
// is then read again.
func TestEventsOfDeploymentsTheInformerHasNot(t *testing.T) {
	k := testenv.StartKube(t, testenv.KubeOptions{ControllerManager: true})
	ctx := context.Background()
	const ns = "t-race"
	createNamespace(t, k, ns, map[string]string{AnnotationMode: ModeEnforce})
	noAnswer := func(req *http.Request) (*http.Response, error) {
		<-req.Context().Done() // the lookup's timeout
		return nil, req.Context().Err()
	}
	cases := []struct {
		name      string
		firstRead func(*http.Request) (*http.Response, error) // nil: it succeeds
	}{
		{"plain", nil},
		{"unavailable", statusAnswer(http.StatusServiceUnavailable, metav1.StatusReasonServiceUnavailable)},
		{"throttled", statusAnswer(http.StatusTooManyRequests, metav1.StatusReasonTooManyRequests)},
		{"not-readable-yet", statusAnswer(http.StatusNotFound, metav1.StatusReasonNotFound)},
		{"no-answer", noAnswer},
	}
	fails := &firstReadFails{failures: map[string]func(*http.Request) (*http.Response, error){}, failed: map[string]int{}, reads: map[string]int{}}
	var recs []exporter.WorkloadResult
	for _, tc := range cases {
		fails.failures[tc.name] = tc.firstRead
		recs = append(recs, workloadResult(ns, "Deployment", tc.name, 0.25, 128<<20, 100<<20, 1))
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

	deployments := map[string]*appsv1.Deployment{}
	for _, tc := range cases {
		d, err := k.Clientset.AppsV1().Deployments(ns).Create(ctx, deployment(ns, tc.name, nil, rl("cpu", "1", "memory", "1Gi"), nil), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		deployments[tc.name] = d
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := deployments[tc.name]
			if pod := waitPod(t, k, ns, tc.name); !strings.Contains(requestsOf(pod), "req.cpu=250m") {
				t.Errorf("pod %s: %s, want cpu 250m set by the webhook", pod.Name, requestsOf(pod))
			}
			deadline := time.Now().Add(40 * time.Second)
			for {
				// kubectl describe's search: name, namespace, kind and UID.
				evs, err := k.Clientset.CoreV1().Events(ns).Search(scheme.Scheme, d)
				if err != nil {
					t.Fatal(err)
				}
				var ours []corev1.Event // the deployment controller has its own
				for _, ev := range evs.Items {
					if ev.Source.Component == "upid-webhook" {
						ours = append(ours, ev)
					}
				}
				if len(ours) > 0 {
					ev := ours[0]
					if len(ours) != 1 || ev.InvolvedObject.UID != d.UID || ev.Reason != "UPIDRightsized" || !strings.Contains(ev.Message, "app: requests cpu 250m, memory 128Mi") {
						t.Errorf("the webhook's Events of the Deployment: %+v", ours)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no Event on Deployment %s within 40s", d.Name)
				}
				time.Sleep(100 * time.Millisecond)
			}
			fails.mu.Lock()
			failed, reads := fails.failed[tc.name], fails.reads[tc.name]
			fails.mu.Unlock()
			if want := map[bool]int{true: 1, false: 0}[tc.firstRead != nil]; failed != want || reads != 1+want {
				t.Errorf("%d reads of the ReplicaSet, %d failed; want %d and %d", reads, failed, 1+want, want)
			}
		})
	}
	// Each Event was found through the ReplicaSet, none in the held cache.
	lookup := func(result string) float64 {
		return testutil.ToFloat64(mustCounter(reg, "upid_webhook_event_owner_lookups_total", result))
	}
	if found, cached, retried := lookup("found"), lookup("cached"), lookup("retried"); found != float64(len(cases)) || cached != 0 || retried != float64(len(cases)-1) {
		t.Errorf("lookups found %g, cached %g, retried %g; want %d found through the API server, none cached, %d retried", found, cached, retried, len(cases), len(cases)-1)
	}
}
