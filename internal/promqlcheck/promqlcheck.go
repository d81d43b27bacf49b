// Package promqlcheck checks the PromQL UPID ships in dashboards and rules:
// every expression parses with Prometheus's own parser and reads only
// metrics that exist (docs/metrics.md, the standard cAdvisor, kube-state-
// metrics and kubelet names in Standard, or UPID's recording rules).
package promqlcheck

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/prometheus/prometheus/promql/parser"
)

// Standard lists the metrics of other exporters that UPID's dashboards and
// rules read. Only names used belong here; the metric-existence tests fail
// for any other name, so a typo cannot hide behind a broad list.
var Standard = map[string]string{
	// cAdvisor (kubelet /metrics/cadvisor)
	"container_cpu_usage_seconds_total":         "cAdvisor",
	"container_memory_working_set_bytes":        "cAdvisor",
	"container_cpu_cfs_periods_total":           "cAdvisor",
	"container_cpu_cfs_throttled_periods_total": "cAdvisor",
	"container_oom_events_total":                "cAdvisor",
	// kube-state-metrics
	"kube_pod_owner":                                   "kube-state-metrics",
	"kube_replicaset_owner":                            "kube-state-metrics",
	"kube_job_owner":                                   "kube-state-metrics",
	"kube_pod_container_resource_requests":             "kube-state-metrics",
	"kube_pod_container_status_restarts_total":         "kube-state-metrics",
	"kube_pod_container_status_last_terminated_reason": "kube-state-metrics",
	// Prometheus itself: the scrape health of every target, and active alerts
	"up":     "Prometheus",
	"ALERTS": "Prometheus",
	// client_golang's process collector, on every UPID endpoint (docs/metrics.md)
	"process_start_time_seconds": "client_golang",
	// kube-apiserver: admissions it let through without calling a webhook
	"apiserver_admission_webhook_fail_open_count": "kube-apiserver",
	// Service traffic for the wake signal (contracts: ingress-nginx and Istio)
	"nginx_ingress_controller_requests": "ingress-nginx",
	"istio_requests_total":              "Istio",
}

// grafanaVariables replaces Grafana's macros and template variables with
// values the PromQL parser accepts; a selector `{namespace=~"$namespace"}`
// stays a valid matcher either way.
var grafanaVariables = strings.NewReplacer(
	"$__rate_interval", "5m",
	"${__rate_interval}", "5m",
	"$__interval", "1m",
	"${__interval}", "1m",
	"$__range", "1d",
	"${__range}", "1d",
)

var variableRef = regexp.MustCompile(`\$\{?[A-Za-z_][A-Za-z0-9_]*\}?`)

// Expand turns a Grafana query into plain PromQL.
func Expand(expr string) string {
	return variableRef.ReplaceAllString(grafanaVariables.Replace(expr), "x")
}

// Metrics parses expr (Grafana variables allowed) and returns the metric
// names it selects, sorted and unique.
func Metrics(expr string) ([]string, error) {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(Expand(expr))
	if err != nil {
		return nil, err
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		if name == "" {
			for _, m := range vs.LabelMatchers {
				if m.Name == "__name__" {
					name = m.Value
				}
			}
		}
		if name != "" {
			names = append(names, name)
		}
		return nil
	})
	sort.Strings(names)
	return slices.Compact(names), nil
}

var documentedName = regexp.MustCompile("`(upid_[a-z0-9_]+)`")

// Documented returns the upid_ metric names in the tables of docs/metrics.md.
func Documented(metricsMD string) (map[string]bool, error) {
	b, err := os.ReadFile(metricsMD)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "| `upid_") {
			continue
		}
		if m := documentedName.FindStringSubmatch(line); m != nil {
			out[m[1]] = true
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s documents no upid_ metric", metricsMD)
	}
	return out, nil
}

// Checker knows every metric name an expression may read.
type Checker struct {
	known map[string]string // name -> where it comes from
}

// NewChecker reads docs/metrics.md and adds the standard list
// and the given recording rule names.
func NewChecker(metricsMD string, recorded []string) (*Checker, error) {
	doc, err := Documented(metricsMD)
	if err != nil {
		return nil, err
	}
	c := &Checker{known: map[string]string{}}
	for n := range doc {
		c.known[n] = "docs/metrics.md"
	}
	for n, src := range Standard {
		c.known[n] = src
	}
	for _, n := range recorded {
		c.known[n] = "recording rule"
	}
	return c, nil
}

// histogramSuffixes are the series of a documented histogram.
var histogramSuffixes = []string{"_bucket", "_sum", "_count"}

// Source says where a metric name comes from, or "" if it is unknown.
func (c *Checker) Source(name string) string {
	if s, ok := c.known[name]; ok {
		return s
	}
	for _, suf := range histogramSuffixes {
		if base, ok := strings.CutSuffix(name, suf); ok {
			if s, ok := c.known[base]; ok {
				return s
			}
		}
	}
	return ""
}

// Check parses expr and returns an error naming every unknown metric.
func (c *Checker) Check(expr string) ([]string, error) {
	names, err := Metrics(expr)
	if err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	var unknown []string
	for _, n := range names {
		if c.Source(n) == "" {
			unknown = append(unknown, n)
		}
	}
	if len(unknown) > 0 {
		return names, fmt.Errorf("unknown metrics %v: not in docs/metrics.md, the standard allow-list or the recording rules", unknown)
	}
	return names, nil
}
