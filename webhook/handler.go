// Package webhook is upid's mutating admission webhook: it sets Pod requests
// (and limits, by policy) from the exporter's recommendations at creation.
// It fails open by construction: every outcome, including internal errors
// and panics, admits the pod, at worst unchanged.
package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	jsoniter "github.com/json-iterator/go"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/upid-dev/upid/internal/config"
)

// Outcomes of upid_webhook_decisions_total.
const (
	OutcomeMutated     = "mutated"
	OutcomeRecommended = "recommended"
	OutcomeSkipped     = "skipped"
	OutcomeFailedOpen  = "failed_open"
)

// Lookup finds a workload's recommendations in memory.
type Lookup interface {
	Lookup(ns string, candidates []Workload) (*WorkloadRecs, Workload, string)
}

// HandlerOptions configure a Handler.
type HandlerOptions struct {
	DefaultMode     string
	Policy          Policy
	OwnNamespace    string // never mutated, so the webhook cannot block its own recovery
	Recommendations Lookup
	Cluster         Cluster
	MaxRequestBytes int64
	Logger          *slog.Logger
	// Recorder records the decisions that change a pod, or would in
	// recommend mode, as Events of the owning workload; nil records none.
	Recorder record.EventRecorder
	// GetWorkload reads, within lookupBudget, a workload the cache does
	// not hold yet (a Deployment created an instant before its first
	// pod); nil reads none, and such a pod is admitted unchanged as
	// workload_unknown.
	GetWorkload GetWorkload
}

// Handler is an admission.Handler that never denies, plus the HTTP endpoint
// serving it.
type Handler struct {
	opts      HandlerOptions
	protected map[string]bool
	duration  prometheus.Histogram
	decisions *prometheus.CounterVec
	owners    *ownerLookups
}

var _ admission.Handler = (*Handler)(nil)

// NewHandler checks opts and builds a handler.
func NewHandler(opts HandlerOptions) (*Handler, error) {
	var errs []error
	switch opts.DefaultMode {
	case ModeOff, ModeRecommend, ModeEnforce:
	default:
		errs = append(errs, fmt.Errorf("webhook.mode: %q is not one of off, recommend, enforce", opts.DefaultMode))
	}
	switch opts.Policy.LimitPolicy {
	case LimitKeepRatio, LimitRecommended, LimitUnchanged:
	default:
		errs = append(errs, fmt.Errorf("webhook.limit_policy: %q is not one of keep_ratio, recommended, unchanged", opts.Policy.LimitPolicy))
	}
	// The configuration's own ranges, so that code and file cannot
	// disagree, and NaN, which < and > let through, is refused.
	errs = append(errs,
		config.CheckFloat("webhook.change_threshold", opts.Policy.ChangeThreshold),
		config.CheckFloat("webhook.memory_margin", opts.Policy.MemoryMargin))
	if opts.Recommendations == nil || opts.Cluster == nil {
		errs = append(errs, errors.New("webhook: recommendations and cluster are required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if opts.MaxRequestBytes <= 0 {
		opts.MaxRequestBytes = 3 << 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	h := &Handler{
		opts:      opts,
		protected: map[string]bool{metav1.NamespaceSystem: true, corev1.NamespaceNodeLease: true},
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "upid_webhook_admission_duration_seconds",
			Help:    "Time to decide one admission request, from decoded request to encoded response.",
			Buckets: []float64{.000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .1, 1},
		}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "upid_webhook_decisions_total",
			Help: "Admission decisions by outcome (mutated, recommended, skipped, failed_open) and reason.",
		}, []string{"outcome", "reason"}),
	}
	h.owners = newOwnerLookups(opts.Cluster, opts.GetWorkload)
	if opts.OwnNamespace != "" {
		h.protected[opts.OwnNamespace] = true
	}
	for _, o := range []string{OutcomeMutated, OutcomeRecommended, OutcomeSkipped} {
		h.decisions.WithLabelValues(o, firstReason(o))
	}
	// Every way of failing open exists from the start: increase() reads a
	// series born at 1 as no increase, so the first panic would not alert.
	for _, reason := range failedOpenReasons {
		h.decisions.WithLabelValues(OutcomeFailedOpen, reason)
	}
	return h, nil
}

// failedOpenReasons are the reasons of upid_webhook_decisions_total{outcome="failed_open"}.
var failedOpenReasons = []string{"error", "panic", "decode_error", "too_large", "read_error"}

// firstReason pre-creates one series per outcome so that rates start at 0.
func firstReason(outcome string) string {
	switch outcome {
	case OutcomeMutated:
		return ModeEnforce
	case OutcomeRecommended:
		return ModeRecommend
	default:
		return "no_recommendation"
	}
}

// Collectors are the handler's self metrics.
func (h *Handler) Collectors() []prometheus.Collector {
	return []prometheus.Collector{h.duration, h.decisions, h.owners.results, h.owners.reads}
}

func (h *Handler) count(outcome, reason string) {
	h.decisions.WithLabelValues(outcome, reason).Inc()
}

// Handle decides one admission request. It always allows.
func (h *Handler) Handle(ctx context.Context, req admission.Request) admission.Response {
	return h.handle(ctx, requestMeta{UID: req.UID, Kind: req.Kind, SubResource: req.SubResource, Namespace: req.Namespace, Operation: req.Operation, DryRun: req.DryRun},
		func() (*podFields, error) { return decodePod(req.Object.Raw) })
}

// requestMeta is what the decision reads of an AdmissionRequest besides
// the object.
type requestMeta struct {
	UID         types.UID               `json:"uid"`
	Kind        metav1.GroupVersionKind `json:"kind"`
	SubResource string                  `json:"subResource"`
	Namespace   string                  `json:"namespace"`
	Operation   admissionv1.Operation   `json:"operation"`
	// DryRun requests must have no side effects: no Events.
	DryRun *bool `json:"dryRun"`
}

// note is an Event to record about a decision, on ref.
type note struct {
	ref                     *corev1.ObjectReference
	eventType, reason, text string
}

func (h *Handler) handle(ctx context.Context, req requestMeta, pod func() (*podFields, error)) (resp admission.Response) {
	resp = admission.Allowed("")
	outcome, reason := OutcomeFailedOpen, "error"
	defer func() {
		if p := recover(); p != nil {
			h.opts.Logger.Error("panic in admission; pod admitted unchanged", "panic", fmt.Sprint(p), "namespace", req.Namespace, "uid", req.UID)
			resp = admission.Allowed("")
			outcome, reason = OutcomeFailedOpen, "panic"
		}
		resp.UID = req.UID
		h.count(outcome, reason)
	}()
	var n *note
	resp, outcome, reason = h.decide(ctx, req, pod, &n)
	if n != nil && n.ref != nil {
		// Identical Events of a workload are counted on one by the
		// recorder's correlator, and a burst of them is rate limited.
		h.opts.Recorder.Event(n.ref, n.eventType, n.reason, n.text)
	}
	return resp
}

func (h *Handler) decide(ctx context.Context, req requestMeta, decoded func() (*podFields, error), n **note) (admission.Response, string, string) {
	allowed := admission.Allowed("")
	if req.Kind.Kind != "Pod" || req.Kind.Group != "" || req.Operation != admissionv1.Create || req.SubResource != "" {
		return allowed, OutcomeSkipped, "not_a_pod"
	}
	ns := req.Namespace
	if h.protected[ns] {
		return allowed, OutcomeSkipped, "protected_namespace"
	}
	pod, err := decoded()
	if err != nil {
		h.opts.Logger.Warn("cannot decode pod; admitted unchanged", "namespace", ns, "err", err)
		return allowed, OutcomeFailedOpen, "decode_error"
	}
	candidates := workloadCandidates(pod)
	if len(candidates) == 0 {
		return allowed, OutcomeSkipped, "no_workload"
	}
	nsLabels, known := h.opts.Cluster.NamespaceLabels(ns)
	if !known {
		// A namespace created an instant ago may carry an opt-out the
		// cache has not seen: unknown consent is no consent.
		return allowed, OutcomeSkipped, "namespace_unknown"
	}
	anns := pod.Metadata.Annotations
	optOut, _ := anns.get(AnnotationOptOut)
	podMode, _ := anns.get(AnnotationMode)
	if optOut == optOutValue || nsLabels[AnnotationOptOut] == optOutValue {
		return allowed, OutcomeSkipped, "opted_out"
	}
	wl, cached := cachedWorkload(h.opts.Cluster, ns, candidates)
	if !cached {
		// Created an instant before the pod, or still on its way to the
		// informers. Read only for a pod the webhook would size: a new
		// workload's name rarely has recommendations.
		if recs, _, why := h.opts.Recommendations.Lookup(ns, candidates); recs == nil {
			return allowed, OutcomeSkipped, why
		}
		var err error
		if wl, err = h.owners.lookup(ctx, ns, pod.controller(), candidates); err != nil {
			// Its opt-out is unknown: unknown consent is no consent.
			h.opts.Logger.Debug("cannot read the workload of a pod; admitted unchanged", "namespace", ns, "workload", candidates[0], "err", err)
			return allowed, OutcomeSkipped, "workload_unknown"
		}
	}
	wlAnns := wl.annotations
	if wlAnns[AnnotationOptOut] == optOutValue {
		return allowed, OutcomeSkipped, "opted_out"
	}
	// Events only where a recorder is, and never for a dry run, which
	// must have no side effects; the message is built only then.
	events := h.opts.Recorder != nil && (req.DryRun == nil || !*req.DryRun)
	tell := func(eventType, reason string, text func() string) {
		if !events {
			return
		}
		ref := wl.ref
		if ref == nil && cached {
			ref = h.opts.Cluster.Reference(ns, wl.candidates[0])
		}
		if ref != nil {
			*n = &note{ref: ref, eventType: eventType, reason: reason, text: text()}
		}
	}
	mode := h.opts.DefaultMode
	for _, m := range []string{nsLabels[AnnotationMode], wlAnns[AnnotationMode], podMode} {
		if m == ModeOff || m == ModeRecommend || m == ModeEnforce {
			mode = m
		}
	}
	if mode == ModeOff {
		return allowed, OutcomeSkipped, "mode_off"
	}
	recs, _, why := h.opts.Recommendations.Lookup(ns, wl.candidates)
	if recs == nil {
		return allowed, OutcomeSkipped, why
	}
	cons := h.opts.Cluster.Constraints(ns)
	plan := decide(pod, recs, cons, h.opts.Policy)
	if back := undo(pod, plan, cons); back != nil {
		ops, err := back.patch(anns, mode)
		if err != nil {
			return allowed, OutcomeFailedOpen, "error"
		}
		resp := admission.Allowed("")
		resp.Patches = ops
		tell(corev1.EventTypeWarning, "UPIDRightsizingTakenBack", func() string {
			return "UPID's raises of a pod's requests were taken back (" + back.Reason + "): a container added by another webhook after UPID left no room for them; the pod is admitted as its owner made it"
		})
		return resp, OutcomeSkipped, back.Reason
	}
	if !plan.Changed() {
		return allowed, OutcomeSkipped, plan.Reason
	}
	ops, err := plan.patch(anns, mode)
	if errors.Is(err, errAnnotationsTooLarge) {
		return allowed, OutcomeSkipped, "annotations_too_large"
	}
	if err != nil {
		return allowed, OutcomeFailedOpen, "error"
	}
	resp := admission.Allowed("")
	resp.Patches = ops
	if mode == ModeEnforce {
		tell(corev1.EventTypeNormal, "UPIDRightsized", func() string { return "Pod admitted with UPID's resources: " + plan.summary() })
		return resp, OutcomeMutated, ModeEnforce
	}
	tell(corev1.EventTypeNormal, "UPIDRecommended", func() string { return "Pod admitted unchanged (mode recommend); enforce would set " + plan.summary() })
	return resp, OutcomeRecommended, ModeRecommend
}

// ServeHTTP is the admission endpoint. Unlike controller-runtime's
// admission.Webhook, which answers undecodable or oversized requests with a
// denial, it answers them with an HTTP error, which the API server treats as
// a failed call and, under failurePolicy Ignore, admits.
// admissionReadTimeout bounds reading an AdmissionReview's body; a
// variable for the tests.
var admissionReadTimeout = 30 * time.Second

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	defer func() { h.duration.Observe(time.Since(start).Seconds()) }()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	// controller-runtime's server has no read timeout: a client that
	// stalls mid-body held up to max_request_bytes of buffer for ever
	// (found in review: 30 such clients, 123 MiB). The API server gives
	// up on a webhook after 30 s at most.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(admissionReadTimeout))
	buf := bodyBuffers.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= maxPooledBody {
			buf.Reset()
			bodyBuffers.Put(buf)
		}
	}()
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, h.opts.MaxRequestBytes))
	body := buf.Bytes()
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			h.count(OutcomeFailedOpen, "too_large")
			http.Error(w, fmt.Sprintf("request larger than %d bytes", h.opts.MaxRequestBytes), http.StatusRequestEntityTooLarge)
			return
		}
		h.count(OutcomeFailedOpen, "read_error")
		http.Error(w, "reading request: "+err.Error(), http.StatusBadRequest)
		return
	}
	out, err := h.Review(r.Context(), body)
	if err != nil {
		h.count(OutcomeFailedOpen, "decode_error")
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
}

// bodyBuffers keep request bodies between requests: reading a 4 KB pod
// into a fresh slice grows it five times. Nothing decoded from a body
// refers to it once Review returns.
var bodyBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBody keeps a rare huge pod from pinning its buffer.
const maxPooledBody = 256 << 10

// fastJSON is json-iterator in its encoding/json-compatible mode, as
// Kubernetes itself used it: the admission path spends most of its time
// decoding the review, and it does so about three times faster.
var fastJSON = jsoniter.ConfigCompatibleWithStandardLibrary

// reviewJSON decodes reviews on the fast path. Unlike encoding/json it
// matches field names case-sensitively, as the API server's own decoding
// (sigs.k8s.io/json) does, and reads them without copying; a review it
// cannot take goes through the full encoding/json decoding instead.
var reviewJSON = jsoniter.Config{
	EscapeHTML:                    true,
	SortMapKeys:                   true,
	ValidateJsonRawMessage:        true,
	CaseSensitive:                 true,
	ObjectFieldMustBeSimpleString: true,
}.Froze()

// patchOp is a JSON patch operation as the API server reads it. Encoding
// these instead of jsonpatch.Operation skips its MarshalJSON, which runs
// encoding/json once per operation.
type patchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}

// Review decodes an admission.k8s.io/v1 AdmissionReview, decides it and
// encodes the response review.
func (h *Handler) Review(ctx context.Context, body []byte) ([]byte, error) {
	var resp admission.Response
	// One pass over the body that decodes only what the decision reads.
	// Anything it cannot take (a non-pod object of another shape, say)
	// goes through the full AdmissionReview decoding instead.
	var fast struct {
		APIVersion string `json:"apiVersion"`
		Request    *struct {
			requestMeta
			Object *podFields `json:"object"`
		} `json:"request"`
	}
	if err := reviewJSON.Unmarshal(body, &fast); err == nil && fast.Request != nil && fast.Request.Object != nil && fast.APIVersion == admissionv1.SchemeGroupVersion.String() {
		resp = h.handle(ctx, fast.Request.requestMeta, func() (*podFields, error) { return fast.Request.Object, nil })
	} else {
		var review admissionv1.AdmissionReview
		if err := json.Unmarshal(body, &review); err != nil {
			return nil, fmt.Errorf("decoding AdmissionReview: %w", err)
		}
		if review.Request == nil {
			return nil, errors.New("AdmissionReview has no request")
		}
		if review.APIVersion != "" && review.APIVersion != admissionv1.SchemeGroupVersion.String() {
			return nil, fmt.Errorf("AdmissionReview apiVersion %q: only %s is served", review.APIVersion, admissionv1.SchemeGroupVersion)
		}
		resp = h.Handle(ctx, admission.Request{AdmissionRequest: *review.Request})
	}
	if len(resp.Patches) > 0 {
		ops := make([]patchOp, len(resp.Patches))
		for i, o := range resp.Patches {
			ops[i] = patchOp{Op: o.Operation, Path: o.Path, Value: o.Value}
		}
		patch, err := fastJSON.Marshal(ops)
		if err != nil {
			return nil, fmt.Errorf("encoding patch: %w", err)
		}
		pt := admissionv1.PatchTypeJSONPatch
		resp.Patch, resp.PatchType = patch, &pt
	}
	out := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: admissionv1.SchemeGroupVersion.String(), Kind: "AdmissionReview"},
		Response: &resp.AdmissionResponse,
	}
	return fastJSON.Marshal(out)
}

// decodePod reads the object of a review that took the slow path. Field
// names match case-sensitively, as on the fast path and in the API server:
// labels and annotations are map keys even where podFields has structs.
func decodePod(raw []byte) (*podFields, error) {
	var f podFields
	if err := reviewJSON.Unmarshal(raw, &f); err != nil {
		return nil, err
	}
	return &f, nil
}
