package exporter_test

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/scheme"
)

// benchKube is a fake kube-apiserver for the resources the inventory
// watches. It answers the two ways client-go informers fill their caches:
//
//   - watch-list (client-go's default since 1.35, served by kube-apiserver
//     1.34 and later): a WATCH with sendInitialEvents=true streams every
//     object as an ADDED event, then a BOOKMARK marked
//     k8s.io/initial-events-end, and stays open;
//   - paged LIST (older servers): LIST with limit/continue, then a WATCH
//     that stays open. With watchList false the server refuses
//     sendInitialEvents with 422 Invalid as an older kube-apiserver does, and
//     client-go falls back to it.
//
// Objects are generated from the cluster model for each request and encoded
// with client-go's own codecs in the media type the client asks for: client-go's
// generated clients ask for protobuf unless configured with a content type,
// and the exporter's client is one of them. A resource the fixture does not
// know yet is served empty and reported, so that a new informer in the
// inventory does not hang the benchmark.
type benchKube struct {
	*httptest.Server
	watchList bool
	resources map[string]*benchResource
	codec     runtime.Encoder

	busy    atomic.Int64 // nanoseconds spent generating and writing objects
	mu      sync.Mutex
	unknown map[string]int // requests for paths not served, by path
}

type benchResource struct {
	gvk   schema.GroupVersionKind
	count int
	gen   func(i int) runtime.Object
	bytes atomic.Int64 // bytes of objects served, as encoded
	items atomic.Int64 // objects served
}

const benchListRV = "99999999"

func newBenchKube(c *benchCluster, watchList bool) *benchKube {
	k := &benchKube{
		watchList: watchList,
		codec:     scheme.Codecs.LegacyCodec(corev1.SchemeGroupVersion, appsv1.SchemeGroupVersion, batchv1.SchemeGroupVersion, autoscalingv2.SchemeGroupVersion),
		unknown:   map[string]int{},
	}
	k.resources = map[string]*benchResource{
		"/api/v1/namespaces": {gvk: corev1.SchemeGroupVersion.WithKind("Namespace"), count: len(c.namespaces), gen: func(i int) runtime.Object { return c.Namespace(i) }},
		"/api/v1/nodes":      {gvk: corev1.SchemeGroupVersion.WithKind("Node"), count: c.nodes, gen: func(i int) runtime.Object { return c.Node(i) }},
		"/api/v1/pods":       {gvk: corev1.SchemeGroupVersion.WithKind("Pod"), count: c.pods, gen: func(i int) runtime.Object { return c.Pod(i) }},
		"/api/v1/services":   {gvk: corev1.SchemeGroupVersion.WithKind("Service"), count: len(c.services), gen: func(i int) runtime.Object { return c.Service(i) }},
		"/apis/apps/v1/deployments": {gvk: appsv1.SchemeGroupVersion.WithKind("Deployment"), count: len(c.byKind["Deployment"]),
			gen: func(i int) runtime.Object { return c.Deployment(i) }},
		"/apis/apps/v1/replicasets": {gvk: appsv1.SchemeGroupVersion.WithKind("ReplicaSet"), count: len(c.byKind["Deployment"]) * (benchOldReplicaSets + 1),
			gen: func(i int) runtime.Object { return c.ReplicaSet(i) }},
		"/apis/apps/v1/statefulsets": {gvk: appsv1.SchemeGroupVersion.WithKind("StatefulSet"), count: len(c.byKind["StatefulSet"]),
			gen: func(i int) runtime.Object { return c.StatefulSet(i) }},
		"/apis/apps/v1/daemonsets": {gvk: appsv1.SchemeGroupVersion.WithKind("DaemonSet"), count: len(c.byKind["DaemonSet"]),
			gen: func(i int) runtime.Object { return c.DaemonSet(i) }},
		"/apis/batch/v1/jobs": {gvk: batchv1.SchemeGroupVersion.WithKind("Job"), count: c.jobs(), gen: func(i int) runtime.Object { return c.Job(i) }},
		"/apis/batch/v1/cronjobs": {gvk: batchv1.SchemeGroupVersion.WithKind("CronJob"), count: len(c.byKind["CronJob"]),
			gen: func(i int) runtime.Object { return c.CronJob(i) }},
		"/apis/autoscaling/v2/horizontalpodautoscalers": {gvk: autoscalingv2.SchemeGroupVersion.WithKind("HorizontalPodAutoscaler"), count: len(c.hpas),
			gen: func(i int) runtime.Object { return c.HPA(i) }},
	}
	k.Server = httptest.NewServer(k)
	return k
}

// only serves one resource; the others are empty.
func (k *benchKube) only(path string) {
	for p, r := range k.resources {
		if p != path {
			r.count = 0
		}
	}
}

// Close ends the open watches before closing the server.
func (k *benchKube) Close() {
	k.CloseClientConnections()
	k.Server.Close()
}

// unknownPaths lists requests the server could not answer: a resource the
// inventory started watching that the fixture does not serve yet.
func (k *benchKube) unknownPaths() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []string
	for p, n := range k.unknown {
		out = append(out, p+" ×"+strconv.Itoa(n))
	}
	sort.Strings(out)
	return out
}

func (k *benchKube) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	res := k.resources[r.URL.Path]
	if res == nil {
		k.mu.Lock()
		k.unknown[r.Method+" "+r.URL.Path]++
		k.mu.Unlock()
		gvk, ok := benchResolve(r.URL.Path)
		if !ok {
			k.status(w, http.StatusNotFound, metav1.StatusReasonNotFound, "the server could not find the requested resource")
			return
		}
		res = &benchResource{gvk: gvk}
	}
	q := r.URL.Query()
	// Label selectors are honoured, as the inventory asks for some resources
	// with one (ReplicaSets: only those no Deployment made).
	sel, err := labels.Parse(q.Get("labelSelector"))
	if err != nil {
		k.status(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, err.Error())
		return
	}
	if v := q.Get("watch"); v == "true" || v == "1" {
		k.watch(w, r, res, sel, q.Get("sendInitialEvents") == "true", q.Get("timeoutSeconds"))
		return
	}
	k.list(w, r, res, sel, q.Get("limit"), q.Get("continue"))
}

func benchSelected(sel labels.Selector, obj runtime.Object) bool {
	if sel.Empty() {
		return true
	}
	m, err := meta.Accessor(obj)
	return err == nil && sel.Matches(labels.Set(m.GetLabels()))
}

func (k *benchKube) status(w http.ResponseWriter, code int, reason metav1.StatusReason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = k.codec.Encode(&metav1.Status{Status: metav1.StatusFailure, Code: int32(code), Reason: reason, Message: msg}, w)
}

// counter counts the bytes written through it.
type benchCounter struct {
	w io.Writer
	n int64
}

func (c *benchCounter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func (k *benchKube) list(w http.ResponseWriter, r *http.Request, res *benchResource, sel labels.Selector, limitParam, continueParam string) {
	start := time.Now()
	defer func() { k.busy.Add(int64(time.Since(start))) }()
	from, _ := strconv.Atoi(continueParam)
	limit, _ := strconv.Atoi(limitParam)
	if limit <= 0 {
		limit = res.count
	}
	to := min(from+limit, res.count)
	list, err := scheme.Scheme.New(res.gvk.GroupVersion().WithKind(res.gvk.Kind + "List"))
	if err != nil {
		panic(err)
	}
	items := make([]runtime.Object, 0, to-from)
	for i := from; i < to; i++ {
		if obj := res.gen(i); benchSelected(sel, obj) {
			items = append(items, obj)
		}
	}
	if err := meta.SetList(list, items); err != nil {
		panic(err)
	}
	lm, _ := meta.ListAccessor(list)
	lm.SetResourceVersion(benchListRV)
	if to < res.count {
		lm.SetContinue(strconv.Itoa(to))
		left := int64(res.count - to)
		lm.SetRemainingItemCount(&left)
	}
	mediaType, enc := k.encoder(r, res.gvk.GroupVersion())
	w.Header().Set("Content-Type", mediaType)
	bw := bufio.NewWriterSize(w, 256<<10)
	cw := &benchCounter{w: bw}
	_ = enc.Encode(list, cw)
	_ = bw.Flush()
	res.bytes.Add(cw.n)
	res.items.Add(int64(len(items)))
}

const benchProtobuf = "application/vnd.kubernetes.protobuf"

// encoder negotiates the media type as kube-apiserver does for built-in
// types: protobuf when the client accepts it, which client-go's generated
// clients do unless told a content type, else JSON.
func (k *benchKube) encoder(r *http.Request, gv schema.GroupVersion) (string, runtime.Encoder) {
	if strings.Contains(r.Header.Get("Accept"), benchProtobuf) {
		info, ok := runtime.SerializerInfoForMediaType(scheme.Codecs.SupportedMediaTypes(), benchProtobuf)
		if !ok {
			panic("no protobuf serializer")
		}
		return benchProtobuf, scheme.Codecs.EncoderForVersion(info.Serializer, gv)
	}
	return "application/json", k.codec
}

func (k *benchKube) watch(w http.ResponseWriter, r *http.Request, res *benchResource, sel labels.Selector, initialEvents bool, timeout string) {
	if initialEvents && !k.watchList {
		k.status(w, http.StatusUnprocessableEntity, metav1.StatusReasonInvalid,
			"ListOptions.meta.k8s.io \"\" is invalid: sendInitialEvents: Forbidden: sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled")
		return
	}
	mediaType, objects := k.encoder(r, res.gvk.GroupVersion())
	info, _ := runtime.SerializerInfoForMediaType(scheme.Codecs.SupportedMediaTypes(), mediaType)
	w.Header().Set("Content-Type", mediaType+";stream=watch")
	w.Header().Set("Transfer-Encoding", "chunked")
	w.WriteHeader(http.StatusOK)
	if initialEvents {
		// As kube-apiserver streams them: frames (length-delimited for
		// protobuf, JSON documents otherwise) of WatchEvents whose object is
		// encoded on its own.
		start := time.Now()
		bw := bufio.NewWriterSize(w, 256<<10)
		frames := info.StreamSerializer.Framer.NewFrameWriter(bw)
		var buf bytes.Buffer
		send := func(typ string, obj runtime.Object) error {
			buf.Reset()
			if err := objects.Encode(obj, &buf); err != nil {
				return err
			}
			res.bytes.Add(int64(buf.Len()))
			return info.StreamSerializer.Serializer.Encode(&metav1.WatchEvent{Type: typ, Object: runtime.RawExtension{Raw: buf.Bytes()}}, frames)
		}
		for i := range res.count {
			obj := res.gen(i)
			if !benchSelected(sel, obj) {
				continue
			}
			if err := send(string(watch.Added), obj); err != nil {
				return // the client went away
			}
		}
		res.items.Add(int64(res.count))
		bookmark, err := scheme.Scheme.New(res.gvk)
		if err != nil {
			panic(err)
		}
		m, _ := meta.Accessor(bookmark)
		m.SetResourceVersion(benchListRV)
		m.SetAnnotations(map[string]string{metav1.InitialEventsAnnotationKey: "true"})
		_ = send(string(watch.Bookmark), bookmark)
		_ = bw.Flush()
		k.busy.Add(int64(time.Since(start)))
	}
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	// Nothing changes in the benchmark cluster: the watch stays open, empty,
	// until the client leaves or its timeout ends it.
	secs, _ := strconv.Atoi(timeout)
	if secs <= 0 {
		secs = 1800
	}
	select {
	case <-r.Context().Done():
	case <-time.After(time.Duration(secs) * time.Second):
	}
}

// benchResolve finds the kind a path of the API names, for resources the
// fixture does not serve.
func benchResolve(path string) (schema.GroupVersionKind, bool) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	var gv schema.GroupVersion
	var resource string
	switch {
	case len(parts) == 3 && parts[0] == "api":
		gv, resource = schema.GroupVersion{Version: parts[1]}, parts[2]
	case len(parts) == 4 && parts[0] == "apis":
		gv, resource = schema.GroupVersion{Group: parts[1], Version: parts[2]}, parts[3]
	default:
		return schema.GroupVersionKind{}, false
	}
	for kind := range scheme.Scheme.KnownTypes(gv) {
		gvk := gv.WithKind(kind)
		if plural, _ := meta.UnsafeGuessKindToResource(gvk); plural.Resource == resource {
			return gvk, true
		}
	}
	return schema.GroupVersionKind{}, false
}
