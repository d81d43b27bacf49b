package history

import (
	"cmp"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/upid-dev/upid/exporter/pricing"
)

// ownerExpr maps every pod seen in kube-state-metrics over the lookback to
// its top-level workload, as series {namespace, pod, workload, kind} = 1.
// It runs on the server so that every usage query returns one series per
// workload, not per pod: the result size is bounded by workloads, and a
// cycle is a fixed number of queries whatever the cluster size.
//
// Pods of ReplicaSets resolve to the ReplicaSet's controller (a Deployment,
// an Argo Rollout), so that a workload keeps its history across revisions;
// pods of Jobs owned by CronJobs resolve to the CronJob; other controllers
// are their own workload, and a pod without one, or a static pod (whose
// mirror the Node owns), is a workload of kind Pod.
// "or on (namespace, pod)" lets the more specific mapping win. A pod whose
// only owners are not controllers is its own workload too, as in the
// inventory.
//
// Each join keeps one owner per ReplicaSet, Job and pod (topk 1): over a
// lookback an object can have had two (a ReplicaSet orphaned by a deleted
// Deployment and adopted by a Rollout of the same name), and two would make
// every query of the cycle fail on many-to-many matching.
//
// matcher, when not empty, is added to every selector (namespace=~"a|b"), so
// that a query over some namespaces joins only their pods.
func ownerExpr(lookback, matcher string) string { return ownerExprBy("namespace", lookback, matcher) }

// ownerExprBy is ownerExpr with ns the labels that hold a pod's namespace:
// "cluster, namespace" where one Prometheus holds several clusters' series.
func ownerExprBy(ns, lookback, matcher string) string {
	over := func(sel string) string {
		if matcher != "" {
			sel = sel[:len(sel)-1] + "," + matcher + "}"
		}
		if lookback == "" {
			return sel
		}
		return fmt.Sprintf("max_over_time(%s[%s])", sel, lookback)
	}
	// NS in a format is ns; the arguments, which hold the matcher, are
	// left as they are.
	sprintf := func(format string, args ...any) string {
		return fmt.Sprintf(strings.ReplaceAll(format, "NS", ns), args...)
	}
	viaReplicaSet := sprintf(`max by (NS, pod, workload, kind) (
    label_replace(max by (NS, pod, owner_name) (%s), "replicaset", "$1", "owner_name", "(.+)")
    * on (NS, replicaset) group_left (workload, kind)
    topk by (NS, replicaset) (1, label_replace(label_replace(max by (NS, replicaset, owner_name, owner_kind) (%s), "workload", "$1", "owner_name", "(.+)"), "kind", "$1", "owner_kind", "(.+)"))
  )`,
		over(`kube_pod_owner{owner_kind="ReplicaSet",owner_is_controller="true"}`),
		over(`kube_replicaset_owner{owner_kind!="<none>",owner_kind!="",owner_is_controller="true"}`))
	viaCronJob := sprintf(`label_replace(
    max by (NS, pod, workload) (
      label_replace(max by (NS, pod, owner_name) (%s), "job_name", "$1", "owner_name", "(.+)")
      * on (NS, job_name) group_left (workload)
      topk by (NS, job_name) (1, label_replace(max by (NS, job_name, owner_name) (%s), "workload", "$1", "owner_name", "(.+)"))
    ), "kind", "CronJob", "", "")`,
		over(`kube_pod_owner{owner_kind="Job",owner_is_controller="true"}`),
		over(`kube_job_owner{owner_kind="CronJob",owner_is_controller="true"}`))
	direct := sprintf(`max by (NS, pod, workload, kind) (
    label_replace(label_replace(%s, "workload", "$1", "owner_name", "(.+)"), "kind", "$1", "owner_kind", "(.+)"))`,
		over(`kube_pod_owner{owner_kind!~"<none>|Node|",owner_is_controller="true"}`))
	bare := sprintf(`max by (NS, pod, workload, kind) (
    label_replace(label_replace(%s, "workload", "$1", "pod", "(.+)"), "kind", "Pod", "", ""))`,
		over(`kube_pod_owner{pod!=""}`))
	return sprintf("topk by (NS, pod) (1,\n  %s\n  or on (NS, pod)\n  %s\n  or on (NS, pod)\n  %s\n  or on (NS, pod)\n  %s\n)", viaReplicaSet, viaCronJob, direct, bare)
}

// byWorkload aggregates a per-pod expression to workloads with agg (sum, max).
// perPod is multiplied as written: an and, or or unless in it must be in
// parentheses, or the join binds to its last operand only.
func byWorkload(agg, perPod, owner string, extra ...string) string {
	by := append([]string{"namespace", "workload", "kind"}, extra...)
	return fmt.Sprintf("%s by (%s) (\n  %s\n  * on (namespace, pod) group_left (workload, kind)\n  %s\n)", agg, strings.Join(by, ", "), perPod, owner)
}

// Query is one PromQL query of a cycle.
type Query struct {
	Name string // stable, used as the label of upid_exporter_query_errors_total
	Expr string
}

// Params shape the queries.
type Params struct {
	Window time.Duration
	// Step is the resolution of subqueries over the window.
	Step time.Duration
	// RateWindow is the range of rate() for instantaneous usage.
	RateWindow time.Duration
	// Sources of request counts, health traffic is told apart in Go.
	Sources []RequestSource
}

// RequestSource is a request counter and how its series name a workload.
type RequestSource struct {
	Metric string `yaml:"metric" doc:"Name of a request counter, e.g. http_requests_total."`
	// Series carry namespace and pod labels (an app's own metrics scraped
	// through Kubernetes service discovery) unless WorkloadLabel is set.
	NamespaceLabel string   `yaml:"namespace_label,omitempty" doc:"Label holding the namespace; default namespace."`
	WorkloadLabel  string   `yaml:"workload_label,omitempty" doc:"Label naming the workload directly (istio's destination_workload); empty means join on the pod label."`
	ServiceLabel   string   `yaml:"service_label,omitempty" doc:"Label naming the Service the requests went to (an ingress controller's); the requests count for every workload the Service selects."`
	PathLabels     []string `yaml:"path_labels,omitempty" doc:"Labels that may hold the request path or handler; the first present is used."`
	UserAgentLabel string   `yaml:"user_agent_label,omitempty" doc:"Label holding the user agent, if the metric has one."`
	Matchers       string   `yaml:"matchers,omitempty" doc:"Extra label matchers inside the selector, e.g. reporter=\"destination\"."`
}

func dur(d time.Duration) string { return model.Duration(d).String() }

// Queries lists the queries of one cycle; the count does not depend on the
// cluster's size. Per-container usage is not among them: the recommender
// reads it incrementally (WindowQueries), since quantiles over the window
// would read every raw sample of every container each cycle.
func Queries(p Params) []Query {
	w, step, rw := dur(p.Window), dur(p.Step), dur(p.RateWindow)
	owner := ownerExpr(w, "")
	ownerNow := ownerExpr("", "")
	cpuSel := `container_cpu_usage_seconds_total{container!="",container!="POD"}`
	coverageStep := "1h"
	if p.Window < 24*time.Hour {
		coverageStep = step
	}
	// coverage is the share of the window's steps at which perStep had a
	// series: evaluated at each step with the owners of that moment, so
	// that pods replaced daily still cover the week.
	steps := max(int(p.Window/stepOr(coverageStep, p.Step)), 1)
	coverage := func(perStep string) string {
		return fmt.Sprintf("count_over_time(\n  (%s)[%s:%s]\n) / %d", perStep, w, coverageStep, steps)
	}
	qs := []Query{
		// A run of a container is the largest of its series (see
		// WindowQueries: sources repeat), a container's CPU the sum of its
		// runs (cAdvisor gives each run its own id: the max alone kept only
		// the longest run of a restarted container), a pod's the sum of its
		// containers'.
		{"cpu_usage_seconds", byWorkload("sum", fmt.Sprintf("sum by (namespace, pod) (max by (namespace, pod, container, id) (increase(%s[%s])))", cpuSel, w), owner)},
		{"cpu_pod_p95_cores", byWorkload("max", fmt.Sprintf("quantile_over_time(0.95, sum by (namespace, pod) (max by (namespace, pod, container) (rate(%s[%s])))[%s:%s])", cpuSel, rw, w, step), owner)},
		// The share of the window in which the workload had any usage sample.
		{"coverage", coverage(byWorkload("max", fmt.Sprintf("max by (namespace, pod) (rate(%s[%s]))", cpuSel, rw), ownerNow))},
		{"network_receive_bytes", byWorkload("sum", fmt.Sprintf(`sum by (namespace, pod) (increase(container_network_receive_bytes_total{pod!=""}[%s]))`, w), owner)},
		{"probes", byWorkload("sum", fmt.Sprintf("sum by (namespace, pod) (increase(prober_probe_total[%s]))", w), owner)},
		{"replicas", fmt.Sprintf("avg_over_time(\n  (%s)[%s:%s]\n)", byWorkload("count", fmt.Sprintf(`max by (namespace, pod) (kube_pod_status_phase{phase="Running"} == 1)`), ownerNow), w, "1h")},
		{"opencost", pricing.OpenCostQuery},
	}
	for _, s := range p.Sources {
		qs = append(qs, Query{Name: "requests_" + s.Metric, Expr: requestExpr(s, w, owner)})
	}
	// The request counts are increases over the window, which say nothing
	// of how much of it the series cover: a counter scraped for the last
	// 6 hours of a week reads as a quiet week. Each source's coverage is a
	// query of its own, at the CPU coverage's step, so that a workload
	// whose request data is partial is not judged idle on it: the union
	// over the workload's (or the Service's) series, whatever they counted.
	for _, s := range p.Sources {
		perStep := byWorkload("max", fmt.Sprintf("max by (namespace, pod) (%s)", s.selector()), ownerNow)
		if ns, named := s.names(); named != "" {
			perStep = fmt.Sprintf("max by (%s, %s) (%s)", ns, named, s.selector())
		}
		qs = append(qs, Query{Name: "request_coverage_" + s.Metric, Expr: coverage(perStep)})
	}
	return qs
}

// selector is the source's series selector.
func (s RequestSource) selector() string {
	if s.Matchers != "" {
		return s.Metric + "{" + s.Matchers + "}"
	}
	return s.Metric
}

// names are the labels of a source whose series name their workload or
// Service: the namespace label and the naming one; named is "" for a
// source joined to workloads through its pod label.
func (s RequestSource) names() (ns, named string) {
	ns = cmp.Or(s.NamespaceLabel, "namespace")
	return ns, cmp.Or(s.ServiceLabel, s.WorkloadLabel)
}

func stepOr(s string, d time.Duration) time.Duration {
	if v, err := model.ParseDuration(s); err == nil {
		return time.Duration(v)
	}
	return d
}

// requestExpr returns request counts over the window by workload and by the
// labels that tell health traffic from real traffic; the split happens in Go
// because the health paths differ per workload (each has its own probes).
func requestExpr(s RequestSource, w, owner string) string {
	keep := append([]string{}, s.PathLabels...)
	if s.UserAgentLabel != "" {
		keep = append(keep, s.UserAgentLabel)
	}
	if ns, named := s.names(); named != "" {
		by := append([]string{ns, named}, keep...)
		return fmt.Sprintf("sum by (%s) (increase(%s[%s]))", strings.Join(by, ", "), s.selector(), w)
	}
	by := append([]string{"namespace", "pod"}, keep...)
	return byWorkload("sum", fmt.Sprintf("sum by (%s) (increase(%s[%s]))", strings.Join(by, ", "), s.selector(), w), owner, keep...)
}

// SourceProblem is what is wrong with one request source: Key is the
// setting under exporter, as request_sources[1].metric.
type SourceProblem struct{ Key, Msg string }

// CheckSources finds the request sources whose queries could not parse, or
// would parse and silently match nothing.
func CheckSources(srcs []RequestSource) []SourceProblem {
	var out []SourceProblem
	first := map[string]int{}
	for i, s := range srcs {
		at := fmt.Sprintf("request_sources[%d]", i)
		add := func(key, format string, args ...any) {
			if key != "" {
				key = "." + key
			}
			out = append(out, SourceProblem{Key: at + key, Msg: fmt.Sprintf(format, args...)})
		}
		switch j, dup := first[s.Metric]; {
		case s.Metric == "":
			add("metric", "must not be empty")
		case !model.IsValidLegacyMetricName(s.Metric):
			add("metric", "%q is not a metric name", s.Metric)
		case dup:
			// Each source is one query, named after its metric.
			add("metric", "%s is already request_sources[%d]'s; give one source per metric, narrowed with matchers", s.Metric, j)
		default:
			first[s.Metric] = i
		}
		if s.WorkloadLabel != "" && s.ServiceLabel != "" {
			add("", "workload_label (%s) and service_label (%s) both set; a series names the workload or the Service it went to, set one", s.WorkloadLabel, s.ServiceLabel)
		}
		labels := [][2]string{{"namespace_label", s.NamespaceLabel}, {"workload_label", s.WorkloadLabel}, {"service_label", s.ServiceLabel}, {"user_agent_label", s.UserAgentLabel}}
		for k, l := range s.PathLabels {
			labels = append(labels, [2]string{fmt.Sprintf("path_labels[%d]", k), l})
		}
		for _, l := range labels {
			if l[1] != "" && !model.LabelName(l[1]).IsValidLegacy() {
				add(l[0], "%q is not a label name", l[1])
			}
		}
	}
	return out
}
