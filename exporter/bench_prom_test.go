package exporter_test

import (
	"bufio"
	"bytes"
	"cmp"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	upidhistory "github.com/upid-dev/upid/exporter/history"
)

// benchProm is a fake Prometheus HTTP API that answers every query of a
// cycle (history.Queries) with a canned instant vector sized like a real
// cluster's answer: one series per workload for the workload queries, per
// workload and path or user agent for the request counters, per workload
// (or Service) for the request counters' coverage, per node and rate for
// OpenCost.
//
// Answers are rendered once, gzipped (about a tenth of their size), and
// decompressed while served to a client that does not accept gzip, as the
// exporter's does not (prometheus/common's http_config disables
// compression): the client decodes the full JSON while the fixture holds
// only the compressed copy.
type benchProm struct {
	*httptest.Server
	bodies  map[string][]byte // query expression → gzipped JSON answer
	series  map[string]int    // query name → series in the answer
	bytes   map[string]int64  // query name → bytes of the answer, uncompressed
	raw     int64             // bytes of all answers, uncompressed
	missing []string          // queries the fixture has no data for; they answer an empty vector
	busy    atomic.Int64      // nanoseconds spent serving
}

func newBenchProm(c *benchCluster, p upidhistory.Params, at time.Time) *benchProm {
	bp := &benchProm{bodies: map[string][]byte{}, series: map[string]int{}, bytes: map[string]int64{}}
	ts := strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64)
	secs := p.Window.Seconds()
	for _, qu := range upidhistory.Queries(p) {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
		cw := &benchCounter{w: zw}
		v := &benchVector{w: bufio.NewWriterSize(cw, 64<<10), ts: ts}
		_, _ = v.w.WriteString(`{"status":"success","data":{"resultType":"vector","result":[`)
		if !c.render(v, qu.Name, secs) {
			bp.missing = append(bp.missing, qu.Name)
		}
		_, _ = v.w.WriteString("]}}")
		_ = v.w.Flush()
		_ = zw.Close()
		bp.bodies[qu.Expr] = buf.Bytes()
		bp.series[qu.Name] = v.n
		bp.bytes[qu.Name] = cw.n
		bp.raw += cw.n
	}
	bp.Server = httptest.NewServer(bp)
	return bp
}

func (bp *benchProm) totalSeries() int {
	n := 0
	for _, s := range bp.series {
		n += s
	}
	return n
}

// requestCoverage is the series and uncompressed bytes of the request
// sources' coverage queries, the cycle's newest, to tell their share.
func (bp *benchProm) requestCoverage() (series int, bytes int64) {
	for name, n := range bp.series {
		if strings.HasPrefix(name, "request_coverage_") {
			series += n
			bytes += bp.bytes[name]
		}
	}
	return series, bytes
}

func (bp *benchProm) gzipped() int {
	n := 0
	for _, b := range bp.bodies {
		n += len(b)
	}
	return n
}

func (bp *benchProm) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	defer func() { bp.busy.Add(int64(time.Since(start))) }()
	if r.URL.Path != "/api/v1/query" {
		http.Error(w, `{"status":"error","errorType":"not_found","error":"not found"}`, http.StatusNotFound)
		return
	}
	_ = r.ParseForm()
	body, ok := bp.bodies[r.Form.Get("query")]
	w.Header().Set("Content-Type", "application/json")
	if !ok {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"status":"error","errorType":"bad_data","error":"the benchmark has no answer for this query"}`)
		return
	}
	if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		w.Header().Set("Content-Encoding", "gzip")
		_, _ = w.Write(body)
		return
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		panic(err)
	}
	_, _ = io.Copy(w, zr)
}

// benchVector writes the samples of a JSON instant vector.
type benchVector struct {
	w   *bufio.Writer
	ts  string
	n   int
	num []byte
}

// add writes one sample; labels are name, value pairs in name order, as
// Prometheus sorts them.
func (v *benchVector) add(value float64, labels ...string) {
	if v.n > 0 {
		_ = v.w.WriteByte(',')
	}
	v.n++
	_, _ = v.w.WriteString(`{"metric":{`)
	for i := 0; i < len(labels); i += 2 {
		if i > 0 {
			_ = v.w.WriteByte(',')
		}
		_ = v.w.WriteByte('"')
		_, _ = v.w.WriteString(labels[i])
		_, _ = v.w.WriteString(`":"`)
		_, _ = v.w.WriteString(labels[i+1])
		_ = v.w.WriteByte('"')
	}
	_, _ = v.w.WriteString(`},"value":[`)
	_, _ = v.w.WriteString(v.ts)
	_, _ = v.w.WriteString(`,"`)
	v.num = strconv.AppendFloat(v.num[:0], value, 'f', -1, 64)
	_, _ = v.w.Write(v.num)
	_, _ = v.w.WriteString(`"]}`)
}

// render writes the answer to the query of that name; false when the
// fixture does not know the query.
func (c *benchCluster) render(v *benchVector, name string, secs float64) bool {
	switch name {
	case "opencost":
		for i := range c.nodes {
			cpu := 0.0316
			if i%3 == 0 {
				cpu = 0.0127 // spot
			}
			v.add(cpu, "__name__", "node_cpu_hourly_cost", "node", c.nodeName(i))
			v.add(0.00424, "__name__", "node_ram_hourly_cost", "node", c.nodeName(i))
		}
		return true
	}
	known := true
	for k := range c.workloads {
		w := &c.workloads[k]
		known = c.renderWorkload(v, name, secs, w) && known
	}
	return known
}

func (c *benchCluster) renderWorkload(v *benchVector, name string, secs float64, w *benchWorkload) bool {
	idle := w.verdict == benchIdle
	reps := float64(w.replicas)
	if !w.running() {
		reps = 0.02 // a one-minute job every hour
	}
	wl := func(value float64, extra ...string) {
		// kind, namespace, workload and the extra labels, in name order.
		labels := append([]string{"kind", w.kind, "namespace", w.ns, "workload", w.name}, extra...)
		pairs := make([][2]string, 0, len(labels)/2)
		for i := 0; i < len(labels); i += 2 {
			pairs = append(pairs, [2]string{labels[i], labels[i+1]})
		}
		sort.Slice(pairs, func(i, j int) bool { return pairs[i][0] < pairs[j][0] })
		labels = labels[:0]
		for _, p := range pairs {
			labels = append(labels, p[0], p[1])
		}
		v.add(value, labels...)
	}
	pick := func(active, idleV float64) float64 {
		if idle {
			return idleV
		}
		return active
	}
	switch name {
	case "cpu_usage_seconds":
		wl(pick(0.12, 0.002) * reps * secs)
	case "cpu_pod_p95_cores":
		wl(pick(0.25, 0.003))
	case "coverage":
		wl(w.coverage())
	case "network_receive_bytes":
		wl(pick(40000, 150) * reps * secs)
	case "probes":
		wl((0.1 + 0.2 + 1.0/15) * reps * secs)
	case "replicas":
		wl(reps)
	case "requests_http_requests_total":
		if w.app != benchHTTP {
			return true
		}
		wl(0.1*reps*secs, "handler", "/healthz", "user_agent", "kube-probe/1.33")
		wl(0.2*reps*secs, "handler", "/ready", "user_agent", "kube-probe/1.33")
		wl(secs/30, "handler", "/metrics", "user_agent", "Prometheus/3.5.0")
		if !idle {
			wl(5*secs, "handler", "/api/v1/items", "user_agent", "Mozilla/5.0 (X11; Linux x86_64; rv:139.0) Gecko/20100101 Firefox/139.0")
			wl(2*secs, "handler", "/api/v1/items", "user_agent", "okhttp/4.12.0")
		}
	case "requests_http_server_requests_seconds_count":
		if w.app != benchSpring {
			return true
		}
		wl(0.2*reps*secs, "uri", "/actuator/health")
		wl(secs/30, "uri", "/actuator/prometheus")
		if !idle {
			wl(3*secs, "uri", "/api/orders")
			wl(1*secs, "uri", "/api/orders/{id}")
		}
	case "requests_istio_requests_total":
		if w.app != benchIstio {
			return true
		}
		v.add(0.2*secs, "destination_workload", w.name, "destination_workload_namespace", w.ns, "request_user_agent", "ELB-HealthChecker/2.0")
		if !idle {
			v.add(4*secs, "destination_workload", w.name, "destination_workload_namespace", w.ns, "request_user_agent", "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5)")
			v.add(1*secs, "destination_workload", w.name, "destination_workload_namespace", w.ns, "request_user_agent", "grpc-go/1.72.0")
		}
	case "requests_nginx_ingress_controller_requests":
		if w.app != benchNginx || (w.kind != "Deployment" && w.kind != "StatefulSet") {
			return true
		}
		// By the ingress rule's path, for the workload's Service.
		if idle {
			v.add(0.1*secs, "exported_namespace", w.ns, "exported_service", w.name, "path", "/healthz")
		} else {
			v.add(3*secs, "exported_namespace", w.ns, "exported_service", w.name, "path", "/")
			v.add(1*secs, "exported_namespace", w.ns, "exported_service", w.name, "path", "/api")
		}
	// Each source's coverage of the window: one series per workload (or
	// Service) the source has series for. The request series live as long
	// as the pods that expose them, so they cover what the CPU series do:
	// a workload seen a fifth of the window has requests for that fifth.
	case "request_coverage_http_requests_total":
		if w.app == benchHTTP {
			wl(w.coverage())
		}
	case "request_coverage_http_server_requests_seconds_count":
		if w.app == benchSpring {
			wl(w.coverage())
		}
	case "request_coverage_istio_requests_total":
		if w.app == benchIstio {
			v.add(w.coverage(), "destination_workload", w.name, "destination_workload_namespace", w.ns)
		}
	case "request_coverage_nginx_ingress_controller_requests":
		if w.app == benchNginx && (w.kind == "Deployment" || w.kind == "StatefulSet") {
			v.add(w.coverage(), "exported_namespace", w.ns, "exported_service", w.name)
		}
	default:
		return false
	}
	return true
}

// coverage is the share of the window the workload's series cover: too
// little for a verdict when it is steered to unknown.
func (w *benchWorkload) coverage() float64 {
	if w.verdict == benchUnknown {
		return 0.2
	}
	return 1
}

// TestBenchPromRequestCoverage holds the fake to what a real Prometheus
// answers the request sources' coverage queries with: a series for each
// workload (or Service) the source's count query has series for and no
// other, since both read the same series, covering no more of the window
// than the workload's CPU series do. Else BenchmarkCycle and
// BenchmarkFetch would measure another load than the exporter's.
func TestBenchPromRequestCoverage(t *testing.T) {
	cl := newBenchCluster(3000)
	p := benchParams(benchConfig())
	prom := newBenchProm(cl, p, cl.created.Add(30*24*time.Hour))
	defer prom.Close()
	if len(prom.missing) > 0 {
		t.Fatalf("the fake has no answer for %v", prom.missing)
	}
	exprs := map[string]string{}
	for _, q := range upidhistory.Queries(p) {
		exprs[q.Name] = q.Expr
	}
	cpu := map[string]float64{} // namespace/workload → coverage
	for _, s := range benchAnswer(t, prom, exprs["coverage"]) {
		cpu[s.Metric["namespace"]+"/"+s.Metric["workload"]] = s.value(t)
	}
	partial := 0
	for _, src := range p.Sources {
		// The fake names each Service after its workload.
		ns, named := cmp.Or(src.NamespaceLabel, "namespace"), cmp.Or(src.ServiceLabel, src.WorkloadLabel, "workload")
		counted := map[string]bool{}
		for _, s := range benchAnswer(t, prom, exprs["requests_"+src.Metric]) {
			counted[s.Metric[ns]+"/"+s.Metric[named]] = true
		}
		covered := map[string]bool{}
		for _, s := range benchAnswer(t, prom, exprs["request_coverage_"+src.Metric]) {
			k, v := s.Metric[ns]+"/"+s.Metric[named], s.value(t)
			switch {
			case !counted[k]:
				t.Errorf("%s: coverage for %s, which has no request series", src.Metric, k)
			case covered[k]:
				t.Errorf("%s: two coverage series for %s", src.Metric, k)
			case v <= 0 || v > cpu[k]:
				t.Errorf("%s: %s covers %v of the window, its CPU series %v", src.Metric, k, v, cpu[k])
			}
			covered[k] = true
			if v < 1 {
				partial++
			}
		}
		if len(covered) != len(counted) || len(covered) == 0 {
			t.Errorf("%s: coverage for %d workloads or Services, request series for %d", src.Metric, len(covered), len(counted))
		}
	}
	if partial == 0 {
		t.Error("every request series covers the whole window: the benchmarks never take the partial coverage path")
	}
}

type benchSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func (s benchSample) value(t *testing.T) float64 {
	t.Helper()
	str, _ := s.Value[1].(string)
	v, err := strconv.ParseFloat(str, 64)
	if err != nil {
		t.Fatalf("value %v of %v: %v", s.Value[1], s.Metric, err)
	}
	return v
}

// benchAnswer decodes the fake's answer to expr.
func benchAnswer(t *testing.T, bp *benchProm, expr string) []benchSample {
	t.Helper()
	body, ok := bp.bodies[expr]
	if !ok {
		t.Fatalf("no answer for %q", expr)
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Data struct {
			Result []benchSample `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(zr).Decode(&r); err != nil {
		t.Fatal(err)
	}
	return r.Data.Result
}
