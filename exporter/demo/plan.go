package demo

import (
	"crypto/sha256"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/upid-dev/upid/internal/series"
)

// node is a machine of the demo cluster.
type node struct {
	name, ip, providerID    string
	instanceType, zone      string
	capacityType            string // karpenter.sh/capacity-type
	cpu, memory             float64
	index                   int
	freeCPU                 float64
	pods                    int
	cpuHourly, ramGiBHourly float64 // OpenCost's rates; 0 when OpenCost does not price the node
}

const region = "eu-west-1"

func nodes() []*node {
	ns := []*node{
		// OpenCost prices this node; its rates add up to the m6i.2xlarge on-demand
		// price in eu-west-1, $0.428 an hour. The others fall back to the pricing file
		// or UPID's defaults.
		{ip: "10.0.1.23", zone: "eu-west-1a", instanceType: "m6i.2xlarge", capacityType: "on-demand", cpu: 8, memory: 32 * gi,
			providerID: "aws:///eu-west-1a/i-0a5f3c9e1d2b47a61", cpuHourly: 0.0356, ramGiBHourly: 0.00447},
		{ip: "10.0.2.47", zone: "eu-west-1b", instanceType: "m6i.2xlarge", capacityType: "on-demand", cpu: 8, memory: 32 * gi,
			providerID: "aws:///eu-west-1b/i-07c2e81fb3a96d0e4"},
		{ip: "10.0.3.81", zone: "eu-west-1c", instanceType: "m6i.xlarge", capacityType: "spot", cpu: 4, memory: 16 * gi,
			providerID: "aws:///eu-west-1c/i-0d94b1a7e5f2c3086"},
	}
	for i, n := range ns {
		n.index = i
		n.name = fmt.Sprintf("ip-%s.%s.compute.internal", strings.ReplaceAll(n.ip, ".", "-"), region)
		// What kubelet reserves for itself and the system.
		n.freeCPU = n.cpu - 0.09
	}
	return ns
}

// pod is one pod over its life. created..deleted is the life of the Pod object, and so of
// kube-state-metrics' series; running is the life of its containers, and so of cAdvisor's,
// kubelet's and the application's series. A zero end is still open at the demo's end.
type pod struct {
	w       *workload
	index   int // replica index, also shifts the traces so replicas differ
	ref     series.PodRef
	owner   series.OwnerRef
	node    *node
	created time.Time
	running [2]time.Time
	deleted time.Time
	// final is the phase between the end of running and deletion; a pod deleted while
	// running stays Running until it is gone.
	final string
	phase time.Duration
	job   *job
}

func (p *pod) phaseAt(t time.Time) string {
	switch {
	case t.Before(p.running[0]):
		return "Pending"
	case p.running[1].IsZero() || !t.After(p.running[1]) || p.final == "":
		return "Running"
	default:
		return p.final
	}
}

type replicaSet struct {
	w        *workload
	name     string
	hash     string
	created  time.Time
	replicas int32
}

type job struct {
	w                        *workload
	name                     string
	scheduled, done, deleted time.Time
	pod                      *pod
}

// plan is the demo cluster over the whole history.
type plan struct {
	now, start  time.Time
	nodes       []*node
	workloads   []*workload
	pods        []*pod
	replicaSets []*replicaSet
	jobs        []*job
}

// nameChars are the characters Kubernetes uses in generated name suffixes.
const nameChars = "bcdfghjklmnpqrstvwxz2456789"

// suffix derives a generated-name suffix from the names, so the demo is the same on every
// run.
func suffix(n int, parts ...string) string {
	sum := sha256.Sum256([]byte(fmt.Sprint(parts)))
	out := make([]byte, n)
	for i := range out {
		out[i] = nameChars[int(sum[i])%len(nameChars)]
	}
	return string(out)
}

func makePlan(now, start time.Time, ws []*workload) *plan {
	pl := &plan{now: now, start: start, nodes: nodes(), workloads: ws}
	// Pods that run through the whole history were started before it, after the
	// nodes were last replaced.
	longAgo := start.Add(-2 * 24 * time.Hour)
	for _, w := range ws {
		switch {
		case w.cron != nil:
			pl.planCron(w)
		case w.Kind == "StatefulSet":
			for i := 0; i < w.replicas; i++ {
				pl.addPod(w, i, fmt.Sprintf("%s-%d", w.Name, i), series.OwnerRef{Kind: "StatefulSet", Name: w.Name}, longAgo, nil)
			}
		case w.Kind == "DaemonSet":
			w.replicas = len(pl.nodes)
			for i, n := range pl.nodes {
				name := w.Name + "-" + suffix(5, w.Namespace, w.Name, n.name)
				pl.addPod(w, i, name, series.OwnerRef{Kind: "DaemonSet", Name: w.Name}, longAgo, n)
			}
		default:
			pl.planDeployment(w, longAgo)
		}
	}
	return pl
}

func (pl *plan) planDeployment(w *workload, longAgo time.Time) {
	newRS := func(revision int, created time.Time, replicas int) *replicaSet {
		hash := suffix(10, w.Namespace, w.Name, strconv.Itoa(revision))
		rs := &replicaSet{w: w, name: w.Name + "-" + hash, hash: hash, created: created, replicas: int32(replicas)}
		pl.replicaSets = append(pl.replicaSets, rs)
		return rs
	}
	if w.rolledOut == 0 {
		rs := newRS(1, pl.now.Add(-w.age/2), w.replicas)
		for i := 0; i < w.replicas; i++ {
			pl.addPod(w, i, rs.name+"-"+suffix(5, rs.name, strconv.Itoa(i)), series.OwnerRef{Kind: "ReplicaSet", Name: rs.name}, longAgo, nil)
		}
		return
	}
	// A rolling update: the new ReplicaSet's pods start, become ready a minute later,
	// and the old pods go; the old ReplicaSet stays, scaled to zero, for rollbacks.
	at := pl.now.Add(-w.rolledOut)
	old := newRS(1, pl.now.Add(-w.age/2), 0)
	cur := newRS(2, at, w.replicas)
	for i := 0; i < w.replicas; i++ {
		p := pl.addPod(w, i, cur.name+"-"+suffix(5, cur.name, strconv.Itoa(i)), series.OwnerRef{Kind: "ReplicaSet", Name: cur.name}, at, nil)
		p.running[0] = at.Add(time.Minute)
		o := pl.addPod(w, i, old.name+"-"+suffix(5, old.name, strconv.Itoa(i)), series.OwnerRef{Kind: "ReplicaSet", Name: old.name}, longAgo, p.node)
		o.running[1] = at.Add(time.Duration(i+2) * time.Minute)
		o.deleted = o.running[1].Add(30 * time.Second)
	}
}

// planCron runs the CronJob on its schedule through the history. The controller keeps the
// last successful Jobs, so a Job and its pod are deleted when the keep-th later run is done.
func (pl *plan) planCron(w *workload) {
	s := w.cron
	first := pl.start.Add(-time.Duration(s.keep+1) * s.every).Truncate(s.every)
	var runs []*job
	for t := first; !t.After(pl.now); t = t.Add(s.every) {
		j := &job{w: w, name: fmt.Sprintf("%s-%d", w.Name, t.Unix()/60), scheduled: t, done: t.Add(time.Minute + s.runFor)}
		runs = append(runs, j)
	}
	for i, j := range runs {
		if i+s.keep < len(runs) && !runs[i+s.keep].done.After(pl.now) {
			j.deleted = runs[i+s.keep].done.Add(time.Second)
		}
		if !j.deleted.IsZero() && j.deleted.Before(pl.start) {
			continue
		}
		p := pl.addPod(w, 0, j.name+"-"+suffix(5, j.name), series.OwnerRef{Kind: "Job", Name: j.name}, j.scheduled, nil)
		p.running = [2]time.Time{j.scheduled.Add(time.Minute), j.done}
		p.deleted, p.final, p.job = j.deleted, "Succeeded", j
		j.pod = p
		pl.jobs = append(pl.jobs, j)
	}
}

// addPod places a pod on n, or on the node with the most unrequested CPU. Only pods
// that still exist use up capacity: the scheduler never saw the others together.
func (pl *plan) addPod(w *workload, index int, name string, owner series.OwnerRef, created time.Time, n *node) *pod {
	if n == nil {
		sorted := append([]*node{}, pl.nodes...)
		sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].freeCPU > sorted[j].freeCPU })
		n = sorted[0]
	}
	cpu := 0.0
	for _, c := range w.containers {
		cpu += c.cpuReq
	}
	if r := w.podResources; r != nil && r.cpuReq > 0 {
		cpu = r.cpuReq // the scheduler reserves the pod's own request
	}
	if w.cron == nil {
		n.freeCPU -= cpu
	}
	n.pods++
	p := &pod{w: w, index: index, owner: owner, node: n, created: created,
		running: [2]time.Time{created}, phase: time.Duration(index) * 47 * time.Minute,
		ref: series.PodRef{Namespace: w.Namespace, Pod: name, Node: n.name, HostIP: n.ip,
			PodIP: fmt.Sprintf("10.244.%d.%d", n.index+1, n.pods+1)},
	}
	p.ref.QOSClass = w.qosClass()
	pl.pods = append(pl.pods, p)
	return p
}

// alive reports whether the pod exists at t.
func (p *pod) alive(t time.Time) bool {
	return !t.Before(p.created) && (p.deleted.IsZero() || t.Before(p.deleted))
}

// qosClass is the pod QoS class Kubernetes derives from the containers' resources; it
// picks the cgroup in cAdvisor's id label.
func (w *workload) qosClass() string {
	if r := w.podResources; r != nil {
		// Pod-level resources decide alone (ComputePodQOS); the demo's set
		// a CPU request without a limit.
		return "Burstable"
	}
	guaranteed, set := true, false
	for _, c := range w.containers {
		set = set || c.cpuReq > 0 || c.memReq > 0 || c.cpuLim > 0 || c.memLim > 0
		guaranteed = guaranteed && c.cpuLim > 0 && c.cpuLim == c.cpuReq && c.memLim > 0 && c.memLim == c.memReq
	}
	switch {
	case !set:
		return "BestEffort"
	case guaranteed:
		return "Guaranteed"
	default:
		return "Burstable"
	}
}
