// Package manifest reads the workloads out of Kubernetes manifests as CI
// sees them (files, directories, `helm template` or `kustomize build`
// output): multi-document YAML, each problem reported as file:line.
package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/upid-dev/upid/internal/argorollouts"
)

// MaxBytes bounds one input: manifests come from pull requests, and the
// largest rendered charts are a few megabytes.
const MaxBytes = 32 << 20

// Workload is one workload of a manifest with what its pods request.
type Workload struct {
	File      string `json:"file"`
	Line      int    `json:"line"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	// Replicas is spec.replicas; nil when the manifest leaves it to the
	// cluster (or the kind has none).
	Replicas   *int64      `json:"replicas,omitempty"`
	Containers []Container `json:"containers"`
	// Pod holds the pod-level requests and limits (spec.resources), with
	// no name; nil when the pod spec sets none.
	Pod *Container `json:"pod,omitempty"`
}

// Container is what one container requests and is limited to; nil is "not set".
type Container struct {
	Name          string   `json:"name"`
	Line          int      `json:"line"`
	CPURequest    *float64 `json:"cpu_request_cores,omitempty"`
	CPULimit      *float64 `json:"cpu_limit_cores,omitempty"`
	MemoryRequest *float64 `json:"memory_request_bytes,omitempty"`
	MemoryLimit   *float64 `json:"memory_limit_bytes,omitempty"`
}

// Skipped is a document of a kind that runs no pods of its own (a Service,
// a ConfigMap) or that this package does not know.
type Skipped struct {
	File string `json:"file"`
	Line int    `json:"line"`
	Kind string `json:"kind"`
	Name string `json:"name,omitempty"`
	// ref is a Rollout's workloadRef, which Load resolves.
	ref *workloadRef
}

// workloadRef is a Rollout that runs a Deployment's template: Argo makes
// the pods, and the cluster sizes them under the Rollout.
type workloadRef struct {
	namespace, deployment string
	replicas              *int64
}

// Error is one problem at one line of one file.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// podSpecPath is where each kind keeps its pod spec.
var podSpecPath = map[string][]string{
	"Deployment":  {"spec", "template", "spec"},
	"StatefulSet": {"spec", "template", "spec"},
	"DaemonSet":   {"spec", "template", "spec"},
	"ReplicaSet":  {"spec", "template", "spec"},
	"Job":         {"spec", "template", "spec"},
	"CronJob":     {"spec", "jobTemplate", "spec", "template", "spec"},
	"Pod":         {"spec"},
	"Rollout":     {"spec", "template", "spec"}, // Argo Rollouts
}

// Kinds are the workload kinds read, in a stable order.
var Kinds = []string{"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod", "Rollout"}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// Read parses every document of r, named file in messages. Problems do
// not stop the reading: every one found is returned, joined, each an
// *Error; a syntax error ends the file, as the parser cannot resync.
func Read(file string, r io.Reader) ([]Workload, []Skipped, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxBytes+1))
	if err != nil {
		return nil, nil, &Error{File: file, Msg: err.Error()}
	}
	if len(data) > MaxBytes {
		return nil, nil, &Error{File: file, Msg: fmt.Sprintf("larger than %d MiB", MaxBytes>>20)}
	}
	return Parse(file, data)
}

// Parse is Read for input already in memory.
func Parse(file string, data []byte) ([]Workload, []Skipped, error) {
	p := &parser{file: file}
	if objs := jsonStream(data); objs != nil {
		for _, o := range objs {
			p.decode(o.data, o.line-1)
		}
	} else {
		p.decode(data, 0)
	}
	return p.workloads, p.skipped, errors.Join(p.errs...)
}

// decode reads YAML documents; offset is the line of data's first line
// less one, for a JSON object of a stream.
func (p *parser) decode(data []byte, offset int) {
	p.offset = offset
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			p.syntax(err)
			break
		}
		if offset > 0 {
			shiftLines(&doc, offset, map[*yaml.Node]bool{})
		}
		p.document(&doc)
	}
}

func shiftLines(n *yaml.Node, by int, seen map[*yaml.Node]bool) {
	if n == nil || seen[n] {
		return
	}
	seen[n] = true
	n.Line += by
	for _, c := range n.Content {
		shiftLines(c, by, seen)
	}
}

// jsonObject is one object of a JSON stream and the line it starts at.
type jsonObject struct {
	data []byte
	line int
}

// jsonStream splits a stream of two or more JSON objects, one after
// another as kubectl reads them, which a YAML decoder refuses. Anything
// else is nil and read as YAML, which a single JSON object is.
func jsonStream(data []byte) []jsonObject {
	trimmed := bytes.TrimLeft(data, " \t\r\n\ufeff")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var out []jsonObject
	for dec.More() {
		start := int(dec.InputOffset())
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil
		}
		for start < len(data) && strings.ContainsRune(" \t\r\n", rune(data[start])) {
			start++
		}
		out = append(out, jsonObject{data: raw, line: 1 + bytes.Count(data[:start], []byte("\n"))})
	}
	if len(out) < 2 {
		return nil
	}
	return out
}

type parser struct {
	file      string
	workloads []Workload
	skipped   []Skipped
	errs      []error
	// offset is added to the lines of syntax errors, for a JSON object
	// of a stream (node lines are shifted as decoded).
	offset int
}

func (p *parser) errorf(line int, format string, args ...any) {
	p.errs = append(p.errs, &Error{File: p.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

func (p *parser) syntax(err error) {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		for _, e := range te.Errors {
			p.syntaxLine(e)
		}
		return
	}
	p.syntaxLine(err.Error())
}

func (p *parser) syntaxLine(msg string) {
	msg = strings.TrimPrefix(msg, "yaml: ")
	if m := yamlLine.FindStringSubmatch("yaml: " + msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		p.errorf(n+p.offset, "%s", m[2])
		return
	}
	if strings.HasPrefix(msg, "line ") {
		if i := strings.Index(msg, ": "); i > 0 {
			if n, err := strconv.Atoi(msg[len("line "):i]); err == nil {
				p.errorf(n+p.offset, "%s", msg[i+2:])
				return
			}
		}
	}
	p.errorf(0, "%s", msg)
}

func (p *parser) document(doc *yaml.Node) {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return // an empty document between two ---
	}
	p.object(root, 0)
}

// object reads one Kubernetes object; depth bounds nested Lists.
func (p *parser) object(n *yaml.Node, depth int) {
	if n.Kind != yaml.MappingNode {
		p.errorf(n.Line, "a Kubernetes object must be a mapping, not a %s", nodeKind(n))
		return
	}
	kind, ok := p.scalar(get(n, "kind"), "kind")
	if !ok {
		return
	}
	if kind == "" {
		p.errorf(n.Line, "object has no kind")
		return
	}
	name, _ := p.scalar(get(n, "metadata", "name"), "metadata.name")
	if strings.HasSuffix(kind, "List") {
		items := get(n, "items")
		if items == nil {
			return
		}
		if items.Kind != yaml.SequenceNode || depth > 2 {
			p.errorf(items.Line, "items: want a list of objects")
			return
		}
		for _, it := range items.Content {
			p.object(deref(it), depth+1)
		}
		return
	}
	path, known := podSpecPath[kind]
	// A Rollout with a workloadRef runs the referenced Deployment's
	// template, which is read where that Deployment is.
	if ref := get(n, "spec", "workloadRef"); kind == argorollouts.Kind && ref != nil {
		sk := Skipped{File: p.file, Line: n.Line, Kind: kind, Name: name}
		if k, _ := p.scalar(get(ref, "kind"), "spec.workloadRef.kind"); k == "Deployment" {
			ns, _ := p.scalar(get(n, "metadata", "namespace"), "metadata.namespace")
			dep, _ := p.scalar(get(ref, "name"), "spec.workloadRef.name")
			sk.ref = &workloadRef{namespace: ns, deployment: dep, replicas: p.replicas(n, kind, name)}
		}
		p.skipped = append(p.skipped, sk)
		return
	}
	if !known {
		p.skipped = append(p.skipped, Skipped{File: p.file, Line: n.Line, Kind: kind, Name: name})
		return
	}
	if name == "" {
		p.errorf(n.Line, "%s has no metadata.name", kind)
		return
	}
	ns, _ := p.scalar(get(n, "metadata", "namespace"), "metadata.namespace")
	w := Workload{File: p.file, Line: n.Line, Kind: kind, Namespace: ns, Name: name, Containers: []Container{}}
	if kind != "Pod" {
		w.Replicas = p.replicas(n, kind, name)
	}
	spec := get(n, path...)
	where := strings.Join(path, ".")
	if spec == nil {
		p.errorf(n.Line, "%s %s: %s is missing", kind, name, where)
		return
	}
	cs := get(spec, "containers")
	if cs == nil || cs.Kind != yaml.SequenceNode {
		line := spec.Line
		if cs != nil {
			line = cs.Line
		}
		p.errorf(line, "%s %s: %s.containers: want a list of containers", kind, name, where)
		return
	}
	// Native sidecars (init containers with restartPolicy Always) run
	// beside the containers for the pod's life: they cost, and the exporter
	// sizes them. Other init containers finish before the containers start.
	var sidecars []*yaml.Node
	if ics := get(spec, "initContainers"); ics != nil && ics.Kind == yaml.SequenceNode {
		for _, c := range ics.Content {
			if rp := get(c, "restartPolicy"); rp != nil && rp.Value == "Always" {
				sidecars = append(sidecars, c)
			}
		}
	}
	for _, c := range append(slices.Clone(cs.Content), sidecars...) {
		if ct, ok := p.container(deref(c), kind, name); ok {
			w.Containers = append(w.Containers, ct)
		}
	}
	if r := get(spec, "resources"); r != nil {
		pod := Container{Line: r.Line}
		p.resources(spec, &pod, kind+" "+name+": "+where+".resources")
		if pod.CPURequest != nil || pod.CPULimit != nil || pod.MemoryRequest != nil || pod.MemoryLimit != nil {
			w.Pod = &pod
		}
	}
	p.workloads = append(p.workloads, w)
}

func (p *parser) container(c *yaml.Node, kind, name string) (Container, bool) {
	if c.Kind != yaml.MappingNode {
		p.errorf(c.Line, "%s %s: a container must be a mapping, not a %s", kind, name, nodeKind(c))
		return Container{}, false
	}
	cn, ok := p.scalar(get(c, "name"), "name")
	if !ok {
		return Container{}, false
	}
	if cn == "" {
		p.errorf(c.Line, "%s %s: container has no name", kind, name)
		return Container{}, false
	}
	ct := Container{Name: cn, Line: c.Line}
	p.resources(c, &ct, kind+" "+name+": container "+cn+": resources")
	return ct, true
}

// replicas reads spec.replicas; nil when unset, or null (a Helm value
// left unset), which the cluster defaults.
func (p *parser) replicas(n *yaml.Node, kind, name string) *int64 {
	r := get(n, "spec", "replicas")
	if r == nil || (r.Kind == yaml.ScalarNode && r.Tag == "!!null") {
		return nil
	}
	v, err := strconv.ParseInt(r.Value, 10, 32)
	if r.Kind != yaml.ScalarNode || err != nil || v < 0 {
		p.errorf(r.Line, "%s %s: spec.replicas: want a whole number, got %q", kind, name, r.Value)
		return nil
	}
	return &v
}

// resources reads the CPU and memory requests and limits under n's
// resources into ct; where names them in errors.
func (p *parser) resources(n *yaml.Node, ct *Container, where string) {
	for _, q := range []struct {
		section, res string
		dst          **float64
	}{
		{"requests", "cpu", &ct.CPURequest}, {"limits", "cpu", &ct.CPULimit},
		{"requests", "memory", &ct.MemoryRequest}, {"limits", "memory", &ct.MemoryLimit},
	} {
		v := get(n, "resources", q.section, q.res)
		if v == nil {
			continue
		}
		if v.Kind != yaml.ScalarNode {
			p.errorf(v.Line, "%s.%s.%s: want a quantity, not a %s", where, q.section, q.res, nodeKind(v))
			continue
		}
		qty, err := resource.ParseQuantity(v.Value)
		if err != nil {
			p.errorf(v.Line, "%s.%s.%s: %q is not a quantity", where, q.section, q.res, v.Value)
			continue
		}
		// The API server refuses these; counted, a negative request hid
		// the waste of the rest and an infinite one made it NaN, and both
		// passed the gate.
		f := qty.AsApproximateFloat64()
		if qty.Sign() < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
			p.errorf(v.Line, "%s.%s.%s: %q is not a quantity a pod can request (negative or too large)", where, q.section, q.res, v.Value)
			continue
		}
		*q.dst = &f
	}
}

// scalar reads a string field; a missing field is "" and fine, a field
// of the wrong shape is an error.
func (p *parser) scalar(n *yaml.Node, field string) (string, bool) {
	if n == nil {
		return "", true
	}
	if n.Kind != yaml.ScalarNode {
		p.errorf(n.Line, "%s: want a string, not a %s", field, nodeKind(n))
		return "", false
	}
	return n.Value, true
}

// get follows keys through nested mappings; nil when any is missing. An
// alias is followed to what it names, and a key a mapping lacks is looked
// up in what it merges (`<<: *base`), as kubectl's YAML reader does.
func get(n *yaml.Node, keys ...string) *yaml.Node {
	for _, k := range keys {
		n = lookup(deref(n), k, 0)
	}
	return deref(n)
}

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// lookup finds key k in mapping n: its own entry (the last, as kubectl
// keeps), else the first merged mapping that has it. depth bounds merges
// of merges, which an alias can make cyclic.
func lookup(n *yaml.Node, k string, depth int) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode || depth > 8 {
		return nil
	}
	var own *yaml.Node
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		switch key := n.Content[i]; {
		case key.Value == k && key.Tag != "!!merge":
			own = n.Content[i+1]
		case key.Tag == "!!merge":
			v := deref(n.Content[i+1])
			if v != nil && v.Kind == yaml.SequenceNode {
				merges = append(merges, v.Content...)
			} else {
				merges = append(merges, v)
			}
		}
	}
	if own != nil {
		return own
	}
	for _, m := range merges {
		if v := lookup(deref(m), k, depth+1); v != nil {
			return v
		}
	}
	return nil
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "scalar"
	case yaml.AliasNode:
		return "alias"
	}
	return "document"
}
