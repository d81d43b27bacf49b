package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/alecthomas/kingpin/v2"
	"go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"

	"github.com/upid-dev/upid/exporter"
	"github.com/upid-dev/upid/exporter/inventory"
	"github.com/upid-dev/upid/internal/cli"
	"github.com/upid-dev/upid/internal/quantity"

	"github.com/upid-dev/upid/internal/argorollouts"
)

const recommendHelp = `Print UPID's per-container resource recommendations: requests and limits
sized from the window's usage quantiles, OOM kills and throttling, with their
confidence and the monthly savings of applying them.

-o patch writes one kustomize strategic-merge patch per workload (only the
containers whose change is worth a restart, APPLY=yes), ready for a GitOps pull
request; -o commands prints the equivalent kubectl patch commands. A
recommendation without a CPU limit removes the CPU limit (cpu: null in the
patch): UPID sizes CPU requests and leaves bursting to the scheduler.

A resource an HPA scales on by utilization has no recommendation of its own:
a new request alone only changes how many replicas the HPA runs. UPID pairs
new requests with a new HPA target that keeps the HPA scaling at the same usage
per pod; the table lists the pairs after the recommendations, -o json and -o yaml
give each container's side (hpa_pairs), -o patch adds the requests with the HPA
change as a kustomize JSON patch to copy, and -o commands prints both, the HPA's
as a kubectl patch that fails if its target moved.

A resource a workload's pods set at pod level (spec.resources) is sized for the
pod, not its containers: the table lists those requests last, -o json and -o yaml
give them with each container (pod_requests), -o patch sets them in the pod
template's resources, and -o commands prints a kubectl patch.

Examples:
  upid recommend --demo
  upid recommend shop/deployment/checkout
  upid recommend -n shop deploy/checkout -o wide
  upid recommend -n shop -o patch > overlays/prod/upid-resources.yaml
  upid recommend -o commands | sh
`

const (
	formatPatch    = "patch"
	formatCommands = "commands"
)

// recommendation is one container's recommendation, as -o json prints it:
// the exporter's own, with where it belongs.
type recommendation struct {
	Namespace string `json:"namespace"`
	Kind      string `json:"kind"`
	Name      string `json:"workload"`
	Container string `json:"container"`
	// Sidecar: a native sidecar, an init container with restartPolicy
	// Always; a patch names it under initContainers.
	Sidecar bool `json:"sidecar,omitempty"`
	exporter.Recommendation
	// HPAPairs are the container's requests that go with a new HPA
	// target, for a resource the HPA scales on by utilization.
	HPAPairs []pairedRequest `json:"hpa_pairs,omitempty"`
	// PodRequests are the workload's pod-level requests, for a resource its
	// pods set at pod level, where the container has no figure.
	PodRequests []exporter.PodAdvice `json:"pod_requests,omitempty"`
}

// pairedRequest is one container's side of an HPA pair.
type pairedRequest struct {
	HPA               string  `json:"hpa"`
	Resource          string  `json:"resource"`
	Request           float64 `json:"request"` // cores or bytes
	TargetUtilization float64 `json:"target_utilization"`
	Apply             bool    `json:"apply"`
}

// target is the NAMESPACE/KIND/NAME argument.
type target struct{ namespace, kind, name string }

// parseTarget reads NAMESPACE/KIND/NAME, or KIND/NAME in namespace (-n's,
// "" under -A, which names no single namespace).
func parseTarget(arg, namespace string) (*target, error) {
	if arg == "" {
		return nil, nil
	}
	parts := strings.Split(arg, "/")
	var t target
	switch len(parts) {
	case 3:
		t = target{namespace: parts[0], kind: parts[1], name: parts[2]}
	case 2:
		if namespace == "" {
			return nil, usageErrorf("%q: want NAMESPACE/KIND/NAME, or KIND/NAME with -n and without -A", arg)
		}
		t = target{namespace: namespace, kind: parts[0], name: parts[1]}
	default:
		return nil, usageErrorf("%q: want NAMESPACE/KIND/NAME, or KIND/NAME with -n", arg)
	}
	if t.namespace == "" || t.kind == "" || t.name == "" {
		return nil, usageErrorf("%q: namespace, kind and name must not be empty", arg)
	}
	// Another kind may be an operator's (CloneSet, StrimziPodSet), whose
	// workloads UPID sizes too: it is matched, in any case, against the
	// results.
	if k, ok := parseKind(t.kind); ok {
		t.kind = k
	}
	return &t, nil
}

// matches tells whether w is the target. Kinds compare in any case: an
// operator's kind is matched as the user typed it.
func (t *target) matches(w exporter.WorkloadResult) bool {
	return w.Namespace == t.namespace && strings.EqualFold(w.Kind, t.kind) && w.Name == t.name
}

func recommendations(ws []exporter.WorkloadResult) []recommendation {
	var out []recommendation
	for _, w := range ws {
		for _, c := range w.Containers {
			r := c.Recommendation
			if r == nil {
				continue
			}
			rec := recommendation{
				Namespace: w.Namespace, Kind: w.Kind, Name: w.Name, Container: c.Name, Sidecar: c.Sidecar,
				Recommendation: *r,
			}
			for _, p := range w.HPA {
				if v, ok := p.Requests[c.Name]; ok {
					rec.HPAPairs = append(rec.HPAPairs, pairedRequest{HPA: p.HPA, Resource: p.Resource, Request: v, TargetUtilization: p.TargetUtilization, Apply: p.Apply})
				}
			}
			rec.PodRequests = w.Pod
			out = append(out, rec)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].MonthlySavings != out[j].MonthlySavings {
			return out[i].MonthlySavings > out[j].MonthlySavings
		}
		a, b := out[i], out[j]
		return a.Namespace+"/"+a.Kind+"/"+a.Name+"/"+a.Container < b.Namespace+"/"+b.Kind+"/"+b.Name+"/"+b.Container
	})
	return out
}

// hpaPair is one HPA target's paired change, with its workload.
type hpaPair struct {
	Namespace, Kind, Name string
	exporter.HPAAdvice
	// sidecars are the workload's native sidecars, which a patch names
	// under initContainers: a container the pair changes may have no
	// recommendation of its own to say so.
	sidecars []string
}

// podChange is one pod-level request, with its workload.
type podChange struct {
	Namespace, Kind, Name string
	exporter.PodAdvice
}

// pairsAndPods lists the workloads' HPA pairs and pod-level requests in a
// stable order: by workload, then by resource.
func pairsAndPods(ws []exporter.WorkloadResult) (pairs []hpaPair, pods []podChange) {
	byID := slices.SortedStableFunc(slices.Values(ws), func(a, b exporter.WorkloadResult) int { return strings.Compare(workloadID(a), workloadID(b)) })
	for _, w := range byID {
		hpa := slices.SortedStableFunc(slices.Values(w.HPA), func(a, b exporter.HPAAdvice) int { return strings.Compare(a.Resource, b.Resource) })
		var sidecars []string
		for _, c := range w.Containers {
			if c.Sidecar {
				sidecars = append(sidecars, c.Name)
			}
		}
		for _, a := range hpa {
			pairs = append(pairs, hpaPair{w.Namespace, w.Kind, w.Name, a, sidecars})
		}
		// podAdvice makes them in order, CPU then memory.
		for _, a := range w.Pod {
			pods = append(pods, podChange{w.Namespace, w.Kind, w.Name, a})
		}
	}
	return pairs, pods
}

// hpaJSONPatch is the JSON patch that moves the HPA's target: a test of
// the current value first, so that it fails rather than overwrite a target
// someone changed since; an HPA without metrics gets its default metric
// spelled out with the new target.
func hpaJSONPatch(p hpaPair) string {
	_, fwd, _ := hpaPatches([]hpaPair{p})
	return fwd
}

// hpaOps are the operations of hpaJSONPatch, or with back those that take
// its change back, tested against the new target.
func hpaOps(p hpaPair, back bool) []string {
	pct := func(x float64) int { return int(math.Round(100 * x)) }
	if p.MetricIndex < 0 {
		if back {
			return []string{`{"op":"remove","path":"/spec/metrics"}`}
		}
		return []string{fmt.Sprintf(`{"op":"add","path":"/spec/metrics","value":[{"type":"Resource","resource":{"name":"cpu","target":{"type":"Utilization","averageUtilization":%d}}}]}`, pct(p.TargetUtilization))}
	}
	source := "resource"
	if p.Container != "" {
		source = "containerResource"
	}
	path := fmt.Sprintf("/spec/metrics/%d/%s/target/averageUtilization", p.MetricIndex, source)
	from, to := pct(p.CurrentTargetUtilization), pct(p.TargetUtilization)
	if back {
		from, to = to, from
	}
	return []string{fmt.Sprintf(`{"op":"test","path":"%s","value":%d}`, path, from), fmt.Sprintf(`{"op":"replace","path":"%s","value":%d}`, path, to)}
}

// formatPaired formats a paired request in its resource's unit.
func formatPaired(resource string, v float64) string {
	if resource == "memory" {
		return cli.Memory(v)
	}
	return cli.CPU(v)
}

func runRecommend(env *environment, sc *scope, arg string) int {
	t, err := parseTarget(arg, sc.only())
	if err != nil {
		return finish(env, "recommend", err)
	}
	snap, err := analyse(env, *sc.demo, false)
	if err != nil {
		return finish(env, "recommend", err)
	}
	ws := snap.workloads(sc)
	if t != nil {
		ws = nil
		for _, w := range snap.results.Workloads {
			if t.matches(w) {
				ws = append(ws, w)
			}
		}
		if len(ws) == 0 {
			if _, known := parseKind(t.kind); !known {
				return finish(env, "recommend", failuref("%s/%s/%s not found in the cluster (kinds: %s, or an operator's controller such as CloneSet; upid recommend -n %s lists them)", t.namespace, t.kind, t.name, kindList, t.namespace))
			}
			return finish(env, "recommend", failuref("%s/%s/%s not found in the cluster", t.namespace, t.kind, t.name))
		}
	}
	pairs, pods := pairsAndPods(ws)
	return finish(env, "recommend", writeRecommendations(env.stdout, *sc.output, cli.StyleFor(env.stdout), recommendations(ws), pairs, pods))
}

func writeRecommendations(w io.Writer, format string, style cli.Style, recs []recommendation, pairs []hpaPair, pods []podChange) error {
	switch format {
	case cli.JSON, cli.YAML:
		if recs == nil {
			recs = []recommendation{}
		}
		return cli.Encode(w, format, recs)
	case formatPatch:
		return writePatches(w, workloadChanges(recs, pairs, pods))
	case formatCommands:
		return writeCommands(w, workloadChanges(recs, pairs, pods))
	}
	if format == cli.CSV {
		return recommendationCSV(recs).Write(w, cli.CSV, style)
	}
	wide := format == cli.Wide
	r := &cli.Rows{Header: []string{"NAMESPACE", "KIND", "WORKLOAD", "CONTAINER", "CPU REQUEST", "MEMORY REQUEST", "MEMORY LIMIT", "SAVINGS $/MONTH", "CONFIDENCE", "APPLY"}}
	if wide {
		r.Header = append(r.Header, "CPU LIMIT", "REASONS")
	}
	for _, x := range recs {
		apply := "no"
		if x.Apply {
			apply = "yes"
		}
		savings := "-"
		if x.OK {
			savings = cli.Dollars(x.MonthlySavings)
		}
		row := []string{x.Namespace, x.Kind, x.Name, x.Container, orDash(x.CPURequestCores, cli.CPU), orDash(x.MemoryRequestBytes, cli.Memory),
			orDash(x.MemoryLimitBytes, cli.Memory), savings, fmt.Sprintf("%.2f", x.Confidence), apply}
		if wide {
			cpuLimit := orDash(x.CPULimitCores, cli.CPU)
			if x.CPURequestCores != nil && x.CPULimitCores == nil {
				cpuLimit = "none"
			}
			row = append(row, cpuLimit, strings.Join(x.Reasons, ","))
		}
		r.Add(row...)
		if x.Apply {
			r.Paint(9, style.Green)
		}
	}
	if format == cli.Table || format == cli.Wide {
		if len(recs) == 0 {
			_, err := fmt.Fprintln(w, "No recommendations: no container has usage history in the window.")
			return err
		}
	}
	if err := r.Write(w, format, style); err != nil {
		return err
	}
	if format != cli.Table && format != cli.Wide {
		return nil
	}
	if err := writePairsTable(w, format, style, pairs); err != nil {
		return err
	}
	if len(pods) == 0 {
		return nil
	}
	fmt.Fprintln(w, "\nPod-level requests (spec.resources), sized for the whole pod:")
	pr := &cli.Rows{Header: []string{"NAMESPACE", "KIND", "WORKLOAD", "RESOURCE", "REQUEST", "SAVINGS $/MONTH", "APPLY"}}
	for _, p := range pods {
		apply := "no"
		if p.Apply {
			apply = "yes"
		}
		pr.Add(p.Namespace, p.Kind, p.Name, p.Resource, formatPaired(p.Resource, p.CurrentRequest)+" → "+formatPaired(p.Resource, p.Request),
			cli.Dollars(p.MonthlySavings), apply)
	}
	return pr.Write(w, format, style)
}

// writePairsTable lists the HPA pairs, which have columns of their own,
// after the recommendations.
func writePairsTable(w io.Writer, format string, style cli.Style, pairs []hpaPair) error {
	if len(pairs) == 0 {
		return nil
	}
	fmt.Fprintln(w, "\nHPA pairs: set the requests and the HPA's target together (alone, new requests only change the replicas):")
	hr := &cli.Rows{Header: []string{"NAMESPACE", "KIND", "WORKLOAD", "HPA", "RESOURCE", "TARGET", "REQUESTS", "SAVINGS $/MONTH", "APPLY"}}
	for _, p := range pairs {
		var reqs []string
		for _, c := range slices.Sorted(maps.Keys(p.Requests)) {
			reqs = append(reqs, c+"="+formatPaired(p.Resource, p.Requests[c]))
		}
		resource := p.Resource
		if p.Container != "" {
			resource += " of " + p.Container
		}
		apply := "no"
		if p.Apply {
			apply = "yes"
		}
		hr.Add(p.Namespace, p.Kind, p.Name, p.HPA, resource, cli.Percent(p.CurrentTargetUtilization)+" → "+cli.Percent(p.TargetUtilization),
			strings.Join(reqs, ","), cli.Dollars(p.MonthlySavings), apply)
	}
	return hr.Write(w, format, style)
}

// recommendationCSV has plain numbers in base units, for spreadsheets.
func recommendationCSV(recs []recommendation) *cli.Rows {
	r := &cli.Rows{Header: []string{"namespace", "kind", "workload", "container", "ok", "apply", "confidence", "cpu_request_cores", "cpu_limit_cores",
		"memory_request_bytes", "memory_limit_bytes", "monthly_savings_dollars", "reasons"}}
	num := func(v *float64, prec int) string {
		if v == nil {
			return ""
		}
		return strconv.FormatFloat(*v, 'f', prec, 64)
	}
	for _, x := range recs {
		r.Add(x.Namespace, x.Kind, x.Name, x.Container, strconv.FormatBool(x.OK), strconv.FormatBool(x.Apply), strconv.FormatFloat(x.Confidence, 'f', 2, 64),
			num(x.CPURequestCores, 3), num(x.CPULimitCores, 3), num(x.MemoryRequestBytes, 0), num(x.MemoryLimitBytes, 0),
			strconv.FormatFloat(x.MonthlySavings, 'f', 2, 64), strings.Join(x.Reasons, " "))
	}
	return r
}

// orDash formats v with f, or a dash when it is unknown.
func orDash(v *float64, f func(float64) string) string {
	if v == nil {
		return "-"
	}
	return f(*v)
}

// workloadChange is what -o patch and -o commands write for one workload.
type workloadChange struct {
	Namespace, Kind, Name string
	// containers are those with a recommendation worth applying, and those
	// an HPA pair changes, by name.
	containers []recommendation
	pairs      []hpaPair
	pods       []podChange
}

func (c *workloadChange) id() string { return c.Namespace + "/" + c.Kind + "/" + c.Name }

// workloadChanges groups what is worth a rollout (the recommendations and
// HPA pairs with Apply, the pod-level requests with Apply) by workload, in
// a stable order: workloads by id, containers by name. A container an HPA
// pair changes without a recommendation of its own has only its name.
func workloadChanges(recs []recommendation, pairs []hpaPair, pods []podChange) []*workloadChange {
	byID := map[string]*workloadChange{}
	get := func(ns, kind, name string) *workloadChange {
		c := &workloadChange{Namespace: ns, Kind: kind, Name: name}
		if old, ok := byID[c.id()]; ok {
			return old
		}
		byID[c.id()] = c
		return c
	}
	for _, r := range recs {
		if r.OK && r.Apply && (r.CPURequestCores != nil || r.MemoryRequestBytes != nil) {
			c := get(r.Namespace, r.Kind, r.Name)
			c.containers = append(c.containers, r)
		}
	}
	for _, p := range pairs {
		if !p.Apply {
			continue
		}
		c := get(p.Namespace, p.Kind, p.Name)
		c.pairs = append(c.pairs, p)
		for _, name := range slices.Sorted(maps.Keys(p.Requests)) {
			if !slices.ContainsFunc(c.containers, func(r recommendation) bool { return r.Container == name }) {
				c.containers = append(c.containers, recommendation{Namespace: p.Namespace, Kind: p.Kind, Name: p.Name, Container: name, Sidecar: slices.Contains(p.sidecars, name)})
			}
		}
	}
	for _, p := range pods {
		if p.Apply {
			c := get(p.Namespace, p.Kind, p.Name)
			c.pods = append(c.pods, p)
		}
	}
	out := slices.Collect(maps.Values(byID))
	sort.Slice(out, func(i, j int) bool { return out[i].id() < out[j].id() })
	for _, c := range out {
		sort.Slice(c.containers, func(i, j int) bool { return c.containers[i].Container < c.containers[j].Container })
	}
	return out
}

// resources is what the change sets in container r, formatted: its side of
// the HPA pairs and its recommendation worth applying. A nil limit removes
// the limit (a recommendation without a CPU limit).
func (c *workloadChange) resources(r recommendation) (requests, limits map[string]any) {
	requests, limits = map[string]any{}, map[string]any{}
	for _, p := range c.pairs {
		if v, ok := p.Requests[r.Container]; ok {
			requests[p.Resource] = formatPaired(p.Resource, v)
		}
	}
	if r.CPURequestCores != nil {
		requests["cpu"] = cli.CPU(*r.CPURequestCores)
		limits["cpu"] = nil
		if r.CPULimitCores != nil {
			limits["cpu"] = cli.CPU(*r.CPULimitCores)
		}
	}
	if r.MemoryRequestBytes != nil {
		requests["memory"] = cli.Memory(*r.MemoryRequestBytes)
		if r.MemoryLimitBytes != nil {
			limits["memory"] = cli.Memory(*r.MemoryLimitBytes)
		}
	}
	return requests, limits
}

// podSpec is the change as a strategic-merge patch of the pod spec: each
// container's requests and limits (a nil limit removes it), and the pod's
// own requests. Both container lists merge by name; a native sidecar named
// under containers would be added as a second container without an image.
func (c *workloadChange) podSpec() map[string]any {
	podSpec := map[string]any{}
	for _, r := range c.containers {
		requests, limits := c.resources(r)
		res := map[string]any{"requests": requests}
		if len(limits) > 0 {
			res["limits"] = limits
		}
		list := "containers"
		if r.Sidecar {
			list = "initContainers"
		}
		podSpec[list] = append(asList(podSpec[list]), map[string]any{"name": r.Container, "resources": res})
	}
	if len(c.pods) > 0 {
		podSpec["resources"] = map[string]any{"requests": c.podRequests()}
	}
	return podSpec
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// podRequests is what the change sets in the pod's own requests,
// formatted at most at the pod's limit: rounded up to a whole Mi, a
// request the exporter held at a limit of 1G would pass it (954Mi), and
// the API server would refuse the patch.
func (c *workloadChange) podRequests() map[string]any {
	requests := map[string]any{}
	for _, p := range c.pods {
		q := quantity.Request(corev1.ResourceName(p.Resource), p.Request, p.Limit)
		requests[p.Resource] = q.String()
	}
	return requests
}

var apiVersions = map[string]string{
	inventory.KindDeployment: "apps/v1", inventory.KindStatefulSet: "apps/v1", inventory.KindDaemonSet: "apps/v1",
	inventory.KindReplicaSet: "apps/v1", inventory.KindJob: "batch/v1", inventory.KindCronJob: "batch/v1", inventory.KindPod: "v1",
	inventory.KindRollout: argorollouts.APIVersion,
}

// rolloutNote heads a Rollout's patch: a strategic merge needs the schema
// of what it patches, which kustomize has for a custom resource only when
// told; without it, the containers list would be replaced whole.
const rolloutNote = "# upid: a Rollout is a custom resource: kustomize merges its containers by name only with Argo Rollouts' openapi schema\n" +
	"#   (openapi: in kustomization.yaml, https://argo-rollouts.readthedocs.io/en/stable/features/kustomize/); without it, it replaces them\n"

// writePatches writes one strategic-merge patch per workload. Containers
// merge by name, so only the named containers' resources change. An HPA
// pair's requests join their workload's patch, and its HPA change follows
// as a comment holding the kustomize JSON patch: the HPA's metrics are an
// atomic list, which a strategic-merge patch would replace whole.
// Pod-level requests go in the pod spec's resources, which merge by key.
func writePatches(w io.Writer, changes []*workloadChange) error {
	if len(changes) == 0 {
		_, err := fmt.Fprintln(w, "# upid: no recommendation is worth applying")
		return err
	}
	for i, c := range changes {
		podSpec := c.podSpec()
		if i > 0 {
			fmt.Fprintln(w, "---")
		}
		var savings float64
		for _, r := range c.containers {
			if r.OK && r.Apply {
				savings += r.MonthlySavings
			}
		}
		for _, p := range c.pods {
			savings += p.MonthlySavings
		}
		var hpaNotes []string
		for _, p := range c.pairs {
			savings += p.MonthlySavings
			hpaNotes = append(hpaNotes, fmt.Sprintf("# upid: in the same change, move HorizontalPodAutoscaler %s/%s's %s target from %s to %s (alone, the %s requests only change the replicas):\n"+
				"#   - target: {kind: HorizontalPodAutoscaler, name: %s, namespace: %s}\n#     patch: '%s'\n",
				p.Namespace, p.HPA, p.Resource, cli.Percent(p.CurrentTargetUtilization), cli.Percent(p.TargetUtilization), p.Resource, p.HPA, p.Namespace, hpaJSONPatch(p)))
		}
		fmt.Fprintf(w, "# upid: %s saves %s/month\n", c.id(), cli.Dollars(savings))
		if c.Kind == inventory.KindRollout {
			fmt.Fprint(w, rolloutNote)
		}
		for _, n := range hpaNotes {
			fmt.Fprint(w, n)
		}
		if _, ok := apiVersions[c.Kind]; !ok {
			if err := writeUnknownKind(w, c, podSpec); err != nil {
				return err
			}
			continue
		}
		doc := yaml.Node{}
		if err := doc.Encode(map[string]any{
			"apiVersion": apiVersions[c.Kind],
			"kind":       c.Kind,
			"metadata":   map[string]any{"name": c.Name, "namespace": c.Namespace},
			"spec":       specWith(c.Kind, podSpec),
		}); err != nil {
			return err
		}
		orderKeys(&doc)
		enc := yaml.NewEncoder(w)
		enc.SetIndent(2)
		if err := enc.Encode(&doc); err != nil {
			return err
		}
		if err := enc.Close(); err != nil {
			return err
		}
	}
	return nil
}

// writeUnknownKind writes the change to a workload of a controller UPID
// knows only by its kind (an operator's): where it keeps its pod template,
// and so what a patch would look like, is its own; the pod spec's changes
// go out as a comment, for its manifest or the webhook.
func writeUnknownKind(w io.Writer, c *workloadChange, podSpec map[string]any) error {
	doc := yaml.Node{}
	if err := doc.Encode(podSpec); err != nil {
		return err
	}
	orderKeys(&doc)
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	// Nor does the webhook change an operator's pods (docs/webhook.md).
	fmt.Fprintf(w, "# upid: no patch: UPID does not know where a %s keeps its pod template; set these in it:\n", c.Kind)
	for _, l := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
		fmt.Fprintf(w, "#   %s\n", l)
	}
	return nil
}

// orWebhook offers the webhook as the other way to apply c, unless c pairs
// requests with an HPA target: the webhook cannot move the target, so it
// leaves those requests alone.
func orWebhook(c *workloadChange) string {
	if len(c.pairs) > 0 {
		return ""
	}
	return ", or let the webhook set it at admission"
}

// specWith is the spec of a workload of kind whose pod spec is podSpec.
func specWith(kind string, podSpec map[string]any) map[string]any {
	switch kind {
	case inventory.KindPod:
		return podSpec
	case inventory.KindCronJob:
		return map[string]any{"jobTemplate": map[string]any{"spec": map[string]any{"template": map[string]any{"spec": podSpec}}}}
	}
	return map[string]any{"template": map[string]any{"spec": podSpec}}
}

// orderKeys puts apiVersion, kind, metadata, spec first and name before
// resources, as people write manifests; yaml sorts map keys otherwise.
func orderKeys(n *yaml.Node) {
	rank := map[string]int{"apiVersion": 0, "kind": 1, "metadata": 2, "spec": 3, "name": 0, "namespace": 1, "requests": 0, "limits": 1}
	if n.Kind == yaml.MappingNode {
		type pair struct{ k, v *yaml.Node }
		var ps []pair
		for i := 0; i+1 < len(n.Content); i += 2 {
			ps = append(ps, pair{n.Content[i], n.Content[i+1]})
		}
		sort.SliceStable(ps, func(i, j int) bool {
			ri, iok := rank[ps[i].k.Value]
			rj, jok := rank[ps[j].k.Value]
			if iok && jok {
				return ri < rj
			}
			return iok && !jok
		})
		n.Content = n.Content[:0]
		for _, p := range ps {
			n.Content = append(n.Content, p.k, p.v)
		}
	}
	for _, c := range n.Content {
		orderKeys(c)
	}
}

// kubectlPatches says whether kubectl can strategic-merge a workload of
// kind: not a custom resource (a Rollout, an operator's), whose schema the
// API server does not have.
func kubectlPatches(kind string) bool {
	_, known := apiVersions[kind]
	return known && kind != inventory.KindRollout
}

// writeCommands prints one kubectl patch per workload, with what -o patch
// holds; Pods and Jobs are skipped, as their owners recreate them with the
// old resources and a Job's template cannot change. An HPA pair's HPA is
// patched first, so that the HPA never divides the new requests by the old
// target.
func writeCommands(w io.Writer, changes []*workloadChange) error {
	if len(changes) == 0 {
		_, err := fmt.Fprintln(w, "# upid: no recommendation is worth applying")
		return err
	}
	for _, c := range changes {
		if kubectlPatches(c.Kind) {
			continue // on the workload's own line, below
		}
		for _, p := range c.pairs {
			// Without the requests' patch, the new target alone would
			// change the replicas: both go in by hand.
			fmt.Fprintf(w, "# only together with its %s requests from -o patch: kubectl patch hpa %s -n %s --type=json -p '%s'\n", p.Resource, p.HPA, p.Namespace, hpaJSONPatch(p))
		}
	}
	for _, c := range changes {
		switch c.Kind {
		case inventory.KindPod:
			fmt.Fprintf(w, "# %s/pod/%s: change its owner's template instead\n", c.Namespace, c.Name)
			continue
		case inventory.KindJob:
			// A Job's template is immutable once created.
			fmt.Fprintf(w, "# %s/job/%s: its template cannot change; change the manifest that creates it\n", c.Namespace, c.Name)
			continue
		}
		// kubectl refuses a strategic merge of a custom resource, and a
		// merge patch would replace the containers list whole.
		if c.Kind == inventory.KindRollout {
			fmt.Fprintf(w, "# %s/rollout/%s: a custom resource, which kubectl cannot strategic-merge; apply -o patch with kustomize%s\n", c.Namespace, c.Name, orWebhook(c))
			continue
		}
		if _, ok := apiVersions[c.Kind]; !ok {
			fmt.Fprintf(w, "# %s/%s/%s: a custom resource UPID knows only by its kind; set what -o patch lists in its manifest\n",
				c.Namespace, strings.ToLower(c.Kind), c.Name)
			continue
		}
		saves := 0.0
		for _, r := range c.containers {
			if r.OK && r.Apply {
				saves += r.MonthlySavings
			}
			for _, p := range c.pairs {
				if _, ok := p.Requests[r.Container]; ok {
					saves += p.MonthlySavings / float64(len(p.Requests))
				}
			}
		}
		for _, p := range c.pods {
			saves += p.MonthlySavings
		}
		// One strategic-merge patch per workload, one rollout: kubectl set
		// resources can neither remove a CPU limit (a request raised past
		// it is refused) nor set the pod's own requests.
		patch, err := json.Marshal(map[string]any{"spec": specWith(c.Kind, c.podSpec())})
		if err != nil {
			return err
		}
		cmd := fmt.Sprintf("kubectl patch %s/%s -n %s --type=strategic -p '%s'", strings.ToLower(c.Kind), c.Name, c.Namespace, patch)
		hpa, fwd, back := hpaPatches(c.pairs)
		if hpa == "" && len(c.pairs) > 0 {
			// Two HPAs on one workload fight over its replicas; the
			// paired requests alone would change them too.
			fmt.Fprintf(w, "# %s/%s/%s: several HPAs target it; apply -o patch by hand\n", c.Namespace, strings.ToLower(c.Kind), c.Name)
			continue
		}
		if hpa != "" {
			// The HPA first, so that it never divides the new requests by
			// the old target, and on one line: the requests only if the
			// HPA moved (its test fails when someone moved it since), the
			// HPA back if the requests' patch fails.
			hpaCmd := func(ops string) string {
				return fmt.Sprintf("kubectl patch hpa %s -n %s --type=json -p '%s'", hpa, c.Namespace, ops)
			}
			cmd = fmt.Sprintf("%s && { %s || %s; }", hpaCmd(fwd), cmd, hpaCmd(back))
		}
		fmt.Fprintf(w, "%s  # saves %s/month\n", cmd, cli.Dollars(saves))
	}
	return nil
}

// hpaPatches is one JSON patch of a workload's HPA for all its pairs (one
// per resource it scales on), and the patch that takes it back; hpa is ""
// without pairs.
func hpaPatches(pairs []hpaPair) (hpa, fwd, back string) {
	var f, b []string
	for _, p := range pairs {
		if hpa != "" && p.HPA != hpa {
			return "", "", "" // several HPAs: no one patch moves them together
		}
		hpa = p.HPA
		f = append(f, hpaOps(p, false)...)
		b = append(b, hpaOps(p, true)...)
	}
	return hpa, "[" + strings.Join(f, ",") + "]", "[" + strings.Join(b, ",") + "]"
}

func registerRecommend(app *kingpin.Application, add func(*kingpin.CmdClause, command)) {
	cmd := app.Command("recommend", recommendHelp)
	sc := addScope(cmd, append(append([]string{}, cli.Formats...), formatPatch, formatCommands), cli.Table)
	arg := cmd.Arg("workload", "NAMESPACE/KIND/NAME (or KIND/NAME with -n) of one workload; all in scope when absent.").String()
	add(cmd, func(env *environment) int { return runRecommend(env, sc, *arg) })
}
