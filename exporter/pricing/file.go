package pricing

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/upid-dev/upid/internal/spelling"
)

// MaxFileBytes bounds a pricing file, as internal/config bounds the
// configuration: it is untrusted input, and a real one is a few kilobytes.
const MaxFileBytes = 1 << 20

// maxErrors bounds the errors reported for one file; past that the file is
// probably not a pricing file at all and more lines would bury the first.
const maxErrors = 50

// File is a parsed pricing file; see the package documentation for its
// format. The yaml tags document the keys; ParseFile does its own decoding
// so that it can name the line of every mistake.
type File struct {
	Default *Rates `yaml:"default,omitempty"`
	Rules   []Rule `yaml:"rules,omitempty"`
}

// Rule gives rates to the nodes its match selects.
type Rule struct {
	Name  string `yaml:"name"` // never empty after ParseFile
	Match Match  `yaml:"match"`
	Rates `yaml:",inline"`
}

// Match is the conditions of a rule; all that are not empty must hold.
type Match struct {
	InstanceType string `yaml:"instance_type,omitempty"`
	Region       string `yaml:"region,omitempty"`
	CapacityType string `yaml:"capacity_type,omitempty"` // normalised by ParseFile
	Selector     string `yaml:"selector,omitempty"`      // a Kubernetes label selector
}

func (m Match) empty() bool {
	return m == Match{}
}

// Error is one problem in a pricing file. It is shaped and formatted like
// internal/config's Error, "pricing.yaml:12: rules[0].gpu_hour: message",
// without importing that package, which may one day want to import this one.
type Error struct {
	Source string // "pricing.yaml:12", or the file name alone when there is no line
	Key    string // "rules[0].match.selector"; "" for the file as a whole
	Msg    string
}

func (e *Error) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("%s: %s", e.Source, e.Msg)
	}
	return fmt.Sprintf("%s: %s: %s", e.Source, e.Key, e.Msg)
}

// LoadFile reads and parses the pricing file at path.
func LoadFile(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("pricing file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("pricing file %s: %w", path, err)
	}
	return ParseFile(path, data)
}

// ParseFile parses and checks a pricing file; name is used in messages. An
// empty file is valid and prices everything at the built-in defaults. The
// error, if any, joins every problem found, each an *Error; the file is
// then not returned, since a half-read price list would misprice silently.
func ParseFile(name string, data []byte) (*File, error) {
	if len(data) > MaxFileBytes {
		return nil, &Error{Source: name, Msg: fmt.Sprintf("file is larger than %d bytes", MaxFileBytes)}
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return &File{}, nil
		}
		return nil, &Error{Source: name, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, &Error{Source: fmt.Sprintf("%s:%d", name, extra.Line), Msg: "more than one YAML document; a pricing file is a single document"}
	}
	p := &parser{name: name}
	f := &File{}
	if len(doc.Content) > 0 && !isNull(doc.Content[0]) {
		p.file(doc.Content[0], f)
	}
	if len(p.errs) > 0 {
		return nil, errors.Join(p.sorted()...)
	}
	return f, nil
}

type parser struct {
	name  string
	errs  []error
	lines []int // of errs, to report them top to bottom
}

func (p *parser) errorf(n *yaml.Node, key, format string, args ...any) {
	switch {
	case len(p.errs) < maxErrors:
		p.errs = append(p.errs, &Error{Source: fmt.Sprintf("%s:%d", p.name, n.Line), Key: key, Msg: fmt.Sprintf(format, args...)})
		p.lines = append(p.lines, n.Line)
	case len(p.errs) == maxErrors:
		p.errs = append(p.errs, &Error{Source: p.name, Msg: fmt.Sprintf("more than %d errors; stopped reporting", maxErrors)})
		p.lines = append(p.lines, math.MaxInt)
	}
}

// sorted returns the errors in line order; some checks, such as duplicate
// rule names, run after the lines below them have been read.
func (p *parser) sorted() []error {
	idx := make([]int, len(p.errs))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return p.lines[idx[a]] < p.lines[idx[b]] })
	out := make([]error, len(idx))
	for i, j := range idx {
		out[i] = p.errs[j]
	}
	return out
}

var (
	fileKeys  = []string{"default", "rules"}
	rateKeys  = []string{"cpu_core_hour", "memory_gib_hour", "gpu_hour"}
	ruleKeys  = append([]string{"name", "match"}, rateKeys...)
	matchKeys = []string{"instance_type", "region", "capacity_type", "selector"}
)

func (p *parser) file(n *yaml.Node, f *File) {
	if !p.kind(n, "", yaml.MappingNode, "the pricing file must be a mapping with default: and rules:") {
		return
	}
	p.fields(n, "", fileKeys, func(key string, v *yaml.Node) {
		switch key {
		case "default":
			if p.kind(v, key, yaml.MappingNode, "must be a mapping of rates") {
				f.Default = &Rates{}
				p.fields(v, key, rateKeys, func(k string, v *yaml.Node) {
					p.rate(v, key+"."+k, k, f.Default)
				})
			}
		case "rules":
			if p.kind(v, key, yaml.SequenceNode, "must be a list of rules") {
				p.rules(v, f)
			}
		}
	})
}

func (p *parser) rules(n *yaml.Node, f *File) {
	names := map[string]int{}
	for i, rn := range n.Content {
		path := defaultRuleName(i)
		if !p.kind(rn, path, yaml.MappingNode, "must be a mapping with match: and rates") {
			continue
		}
		r := Rule{Name: path}
		nameAt := rn
		var matchSeen bool
		p.fields(rn, path, ruleKeys, func(key string, v *yaml.Node) {
			at := path + "." + key
			switch key {
			case "name":
				if s, ok := p.str(v, at); ok {
					r.Name, nameAt = s, v
				}
			case "match":
				matchSeen = true
				p.match(v, at, &r.Match)
			default:
				p.rate(v, at, key, &r.Rates)
			}
		})
		if !matchSeen {
			p.errorf(rn, path+".match", "missing; a rule needs a match with at least one of %s (default: covers every node)", strings.Join(matchKeys, ", "))
		}
		if first, dup := names[r.Name]; dup {
			p.errorf(nameAt, path+".name", "duplicate rule name %q (first used on line %d); names tell rules apart in metrics", r.Name, first)
		} else {
			names[r.Name] = nameAt.Line
		}
		f.Rules = append(f.Rules, r)
	}
}

func (p *parser) match(n *yaml.Node, path string, m *Match) {
	if !p.kind(n, path, yaml.MappingNode, "must be a mapping of conditions") {
		return
	}
	given := 0
	p.fields(n, path, matchKeys, func(key string, v *yaml.Node) {
		given++
		at := path + "." + key
		s, ok := p.str(v, at)
		if !ok {
			return
		}
		switch key {
		case "instance_type":
			m.InstanceType = s
		case "region":
			m.Region = s
		case "capacity_type":
			c := normalizeCapacityType(s)
			if c == "" {
				p.errorf(v, at, "invalid value %q: want one of %s, %s, %s", s, Spot, OnDemand, Reserved)
				return
			}
			m.CapacityType = c
		case "selector":
			sel, err := labels.Parse(s)
			if err != nil {
				p.errorf(v, at, "invalid label selector %q: %v", s, err)
				return
			}
			if sel.Empty() {
				p.errorf(v, at, "selector %q selects every node; use default: for that", s)
				return
			}
			m.Selector = s
		}
	})
	if given == 0 {
		p.errorf(n, path, "no conditions; give at least one of %s (default: covers every node)", strings.Join(matchKeys, ", "))
	}
}

// rate decodes one price into the field of r named by key.
func (p *parser) rate(n *yaml.Node, path, key string, r *Rates) {
	var slot **float64
	switch key {
	case "cpu_core_hour":
		slot = &r.CPUCoreHour
	case "memory_gib_hour":
		slot = &r.MemoryGiBHour
	case "gpu_hour":
		slot = &r.GPUHour
	}
	if n.Kind == yaml.AliasNode {
		p.alias(n, path)
		return
	}
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") {
		p.errorf(n, path, "invalid value %s: want a number of dollars per %s", describe(n), unitOf(key))
		return
	}
	var v float64
	if err := n.Decode(&v); err != nil {
		p.errorf(n, path, "invalid value %s: want a number of dollars per %s", describe(n), unitOf(key))
		return
	}
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		p.errorf(n, path, "invalid value %s: want a finite number", describe(n))
	case v < 0:
		p.errorf(n, path, "invalid value %s: prices cannot be negative", describe(n))
	case v > MaxRate:
		p.errorf(n, path, "invalid value %s: more than %g per %s; check the unit", describe(n), float64(MaxRate), unitOf(key))
	default:
		*slot = &v
	}
}

func unitOf(key string) string {
	switch key {
	case "cpu_core_hour":
		return "vCPU-hour"
	case "memory_gib_hour":
		return "GiB-hour"
	}
	return "GPU-hour"
}

// str decodes a non-empty scalar as a string; numbers are accepted as
// written, since an instance type or region could look like one.
func (p *parser) str(n *yaml.Node, path string) (string, bool) {
	if n.Kind == yaml.AliasNode {
		p.alias(n, path)
		return "", false
	}
	if n.Kind != yaml.ScalarNode {
		p.errorf(n, path, "invalid value %s: want a string", describe(n))
		return "", false
	}
	s := strings.TrimSpace(n.Value)
	if s == "" {
		p.errorf(n, path, "empty; leave the key out instead")
		return "", false
	}
	return s, true
}

// kind reports whether n has the wanted kind, reporting an error if not.
func (p *parser) kind(n *yaml.Node, path string, want yaml.Kind, msg string) bool {
	if n.Kind == yaml.AliasNode {
		p.alias(n, path)
		return false
	}
	if n.Kind != want {
		p.errorf(n, path, "%s, not %s", msg, describe(n))
		return false
	}
	return true
}

// alias rejects YAML aliases: following them while walking the tree would
// let a small file expand into an enormous one, and a price list is short
// enough to spell out.
func (p *parser) alias(n *yaml.Node, path string) {
	p.errorf(n, path, "YAML aliases (*name) are not supported in a pricing file; write the value out")
}

// fields calls fn for each key of mapping n whose value is not null,
// reporting keys that are not strings, repeated or not in known.
func (p *parser) fields(n *yaml.Node, path string, known []string, fn func(key string, v *yaml.Node)) {
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			p.errorf(k, path, "keys must be plain strings")
			continue
		}
		at := k.Value
		if path != "" {
			at = path + "." + k.Value
		}
		if first, dup := seen[k.Value]; dup {
			p.errorf(k, at, "duplicate key (first set on line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		if !contains(known, k.Value) {
			p.errorf(k, at, "unknown key%s", suggest(k.Value, known))
			continue
		}
		if isNull(v) {
			continue // "key:" with no value leaves it unset, as in internal/config
		}
		fn(k.Value, v)
	}
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!str":
			return strconv.Quote(n.Value) + " (a string)"
		case "!!int", "!!float", "!!bool":
			return n.Value
		}
		return strconv.Quote(n.Value)
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	return "this value"
}

func defaultRuleName(i int) string {
	return fmt.Sprintf("rules[%d]", i)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// suggest names the key most likely meant, or lists the keys allowed here
// when none is close, because a misspelt key is the commonest mistake in a
// hand-written YAML file.
func suggest(key string, known []string) string {
	if best := spelling.Closest(key, known, 3); best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return fmt.Sprintf(" (known keys here: %s)", strings.Join(known, ", "))
}
