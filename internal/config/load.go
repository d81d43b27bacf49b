package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/upid-dev/upid/exporter/history"
	"github.com/upid-dev/upid/internal/spelling"
)

// MaxFileBytes bounds a configuration file: it is untrusted input, and a
// real one is a few kilobytes.
const MaxFileBytes = 1 << 20

var (
	yamlUnmarshalerType     = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()
	obsoleteUnmarshalerType = reflect.TypeOf((*interface {
		UnmarshalYAML(func(any) error) error
	})(nil)).Elem()
)

// Override is a value given on the command line or in the environment.
type Override struct {
	Key    string
	Raw    string
	Source string // "flag --log.level" or "env UPID_LOG_LEVEL"
}

// Error is one problem with one setting, located as precisely as its source allows.
type Error struct {
	Source string // "upid.yaml:12", "flag --log.level", "env UPID_LOG_LEVEL" or "default"
	Key    string
	Msg    string
}

func (e *Error) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("%s: %s", e.Source, e.Msg)
	}
	return fmt.Sprintf("%s: %s: %s", e.Source, e.Key, e.Msg)
}

// Load builds the configuration from defaults, then the file at path (if
// not empty), then overrides in order, and validates the result. The
// returned error joins every problem found, each an *Error.
func Load(path string, overrides ...Override) (Config, error) {
	cfg := Default()
	err := load(reflect.ValueOf(&cfg), Settings(), path, overrides)
	return cfg, err
}

// Parse is Load for a file already in memory; name is used in messages.
func Parse(name string, data []byte) (Config, error) {
	cfg := Default()
	sources := map[string]string{}
	settings := Settings()
	root := reflect.ValueOf(&cfg)
	err := decodeFile(root, settings, name, data, sources)
	return cfg, errors.Join(err, validate(root, settings, sources))
}

func load(root reflect.Value, settings []Setting, path string, overrides []Override) error {
	sources := map[string]string{}
	var errs []error
	if path != "" {
		data, err := readBounded(path)
		if err != nil {
			return err
		}
		if err := decodeFile(root, settings, path, data, sources); err != nil {
			errs = append(errs, err)
		}
	}
	byKey := map[string]Setting{}
	for _, s := range settings {
		byKey[s.Key] = s
	}
	for _, o := range overrides {
		s, ok := byKey[o.Key]
		if !ok {
			errs = append(errs, &Error{Source: o.Source, Key: o.Key, Msg: "unknown setting"})
			continue
		}
		if err := setRaw(s.field(root), o.Raw); err != nil {
			errs = append(errs, &Error{Source: o.Source, Key: o.Key, Msg: err.Error()})
			continue
		}
		sources[o.Key] = o.Source
	}
	return errors.Join(append(errs, validate(root, settings, sources))...)
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	if len(data) > MaxFileBytes {
		return nil, &Error{Source: path, Msg: fmt.Sprintf("file is larger than %d bytes", MaxFileBytes)}
	}
	return data, nil
}

// decodeFile walks the YAML tree against the settings rather than decoding
// it wholesale, so that every unknown key and bad value is reported with its
// own line, all at once.
func decodeFile(root reflect.Value, settings []Setting, name string, data []byte, sources map[string]string) error {
	if len(data) > MaxFileBytes {
		return &Error{Source: name, Msg: fmt.Sprintf("file is larger than %d bytes", MaxFileBytes)}
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file means all defaults
		}
		return &Error{Source: name, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return &Error{Source: fmt.Sprintf("%s:%d", name, extra.Line), Msg: "more than one YAML document; the configuration is a single document"}
	}
	if len(doc.Content) == 0 || isNull(doc.Content[0]) {
		return nil
	}
	top := doc.Content[0]
	if top.Kind != yaml.MappingNode {
		return &Error{Source: fmt.Sprintf("%s:%d", name, top.Line), Msg: "the configuration must be a mapping of sections such as log: and web:"}
	}
	leaves := map[string]Setting{}
	sections := map[string]bool{}
	for _, s := range settings {
		leaves[s.Key] = s
		parts := strings.Split(s.Key, ".")
		for i := 1; i < len(parts); i++ {
			sections[strings.Join(parts[:i], ".")] = true
		}
	}
	var errs []error
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			key := k.Value
			if prefix != "" {
				key = prefix + "." + k.Value
			}
			at := fmt.Sprintf("%s:%d", name, k.Line)
			if k.Kind != yaml.ScalarNode {
				errs = append(errs, &Error{Source: at, Msg: "keys must be plain strings"})
				continue
			}
			if first, dup := seen[k.Value]; dup {
				errs = append(errs, &Error{Source: at, Key: key, Msg: fmt.Sprintf("duplicate key (first set on line %d)", first)})
				continue
			}
			seen[k.Value] = k.Line
			switch {
			case sections[key]:
				if isNull(v) {
					continue
				}
				if v.Kind != yaml.MappingNode {
					errs = append(errs, &Error{Source: at, Key: key, Msg: "must be a mapping (a section of settings)"})
					continue
				}
				walk(v, key)
			case leaves[key].Key != "":
				if isNull(v) {
					continue // "key:" with no value keeps the default
				}
				s := leaves[key]
				if err := decodeLeaf(v, s.field(root)); err != nil {
					errs = append(errs, &Error{Source: fmt.Sprintf("%s:%d", name, v.Line), Key: key, Msg: err.Error()})
					continue
				}
				sources[key] = fmt.Sprintf("%s:%d", name, v.Line)
			default:
				errs = append(errs, &Error{Source: at, Key: key, Msg: "unknown key" + suggest(key, leaves, sections)})
			}
		}
	}
	walk(top, "")
	return errors.Join(errs...)
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func decodeLeaf(n *yaml.Node, field reflect.Value) error {
	if field.Kind() == reflect.String && n.Kind != yaml.ScalarNode {
		return fmt.Errorf("want %s", describe(field.Type()))
	}
	if err := checkKnown(n, field.Type(), ""); err != nil {
		return err
	}
	// Decoding into a fresh value keeps a failed decode from leaving the
	// field half-written.
	v := reflect.New(field.Type())
	if err := n.Decode(v.Interface()); err != nil {
		if field.Kind() == reflect.Slice && field.Type().Elem().Kind() == reflect.Struct {
			return fmt.Errorf("invalid value: %s", strings.TrimPrefix(err.Error(), "yaml: unmarshal errors:\n  "))
		}
		if field.Kind() == reflect.Struct && n.Kind == yaml.MappingNode {
			// A structure that checks itself says what is wrong with it.
			return fmt.Errorf("invalid value %s: %v", quoteNode(n), err)
		}
		return fmt.Errorf("invalid value %s: want %s", quoteNode(n), describe(field.Type()))
	}
	field.Set(v.Elem())
	return nil
}

// checkKnown rejects unknown keys inside structured leaves (lists of
// request sources, say), which a plain yaml.v3 decode would silently drop.
func checkKnown(n *yaml.Node, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if (reflect.PointerTo(t).Implements(yamlUnmarshalerType) || reflect.PointerTo(t).Implements(obsoleteUnmarshalerType)) &&
		!(t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode) {
		return nil // a scalar or list the type reads its own way
	}
	// A struct that decodes itself from a mapping (prometheus/common's
	// HTTPClientConfig, TLSConfig, ...) still reads its fields' keys, and
	// drops any other without a word: a misspelt bearer_token_file would
	// leave Prometheus without auth. Its keys are checked here.
	switch {
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, item := range n.Content {
			if err := checkKnown(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := checkKnown(n.Content[i+1], t.Elem(), path+"."+n.Content[i].Value); err != nil {
				return err
			}
		}
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		known := map[string]reflect.Type{}
		knownKeys(t, known)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			ft, ok := known[k.Value]
			if !ok {
				names := make([]string, 0, len(known))
				for name := range known {
					names = append(names, name)
				}
				sort.Strings(names)
				where := ""
				if p := strings.TrimPrefix(path, "."); p != "" {
					where = " in " + p
				}
				return fmt.Errorf("line %d: unknown key %q%s (known: %s)", k.Line, k.Value, where, strings.Join(names, ", "))
			}
			if err := checkKnown(n.Content[i+1], ft, path+"."+k.Value); err != nil {
				return err
			}
		}
	}
	return nil
}

// knownKeys adds the YAML keys of struct t's fields to known, those of
// inlined structs included.
func knownKeys(t reflect.Type, known map[string]reflect.Type) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if _, opts, _ := strings.Cut(f.Tag.Get("yaml"), ","); strings.Contains(opts, "inline") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				knownKeys(ft, known)
			}
			continue
		}
		if name := yamlName(f); name != "" {
			known[name] = f.Type
		}
	}
}

func quoteNode(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return strconv.Quote(n.Value)
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "(a mapping)"
	case yaml.SequenceNode:
		return "(a list)"
	}
	return "(this value)"
}

// setRaw parses a flag or environment value with the same rules as the file.
func setRaw(field reflect.Value, raw string) error {
	if field.Kind() == reflect.String {
		field.SetString(raw)
		return nil
	}
	text := raw
	if field.Kind() == reflect.Slice && !strings.HasPrefix(strings.TrimSpace(raw), "[") {
		text = "[" + raw + "]"
	}
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(text), &n); err != nil || len(n.Content) == 0 {
		return fmt.Errorf("invalid value %q: want %s", raw, describe(field.Type()))
	}
	if err := decodeLeaf(n.Content[0], field); err != nil {
		return fmt.Errorf("invalid value %q: want %s", raw, describe(field.Type()))
	}
	return nil
}

// validate checks enums and ranges; the message names the source of the
// offending value so the user knows which of file, env or flag to fix.
func validate(root reflect.Value, settings []Setting, sources map[string]string) error {
	var errs []error
	// One bad value makes one error: a key refused here is left out of
	// the sections' own checks below, which would word it again.
	refused := map[string]bool{}
	for _, s := range settings {
		src := sources[s.Key]
		if src == "" {
			src = "default"
		}
		f := s.field(root)
		if len(s.Enum) > 0 {
			if !contains(s.Enum, f.String()) {
				errs = append(errs, &Error{Source: src, Key: s.Key, Msg: fmt.Sprintf("invalid value %q: want one of %s", f.String(), strings.Join(s.Enum, ", "))})
			}
		}
		if msg := s.outOfRange(f); msg != "" {
			errs = append(errs, &Error{Source: src, Key: s.Key, Msg: msg})
			refused[s.Key] = true
		}
	}
	if cfg, ok := root.Interface().(*Config); ok {
		source := func(key string) string {
			if src := sources[key]; src != "" {
				return src
			}
			return "default"
		}
		for _, err := range cfg.Exporter.Recommend.validate("exporter.recommend", source) {
			var e *Error
			if errors.As(err, &e) && refused[e.Key] {
				continue
			}
			errs = append(errs, err)
		}
		_, health := cfg.Exporter.CheckHealthMatchers()
		for _, p := range health {
			list, _, _ := strings.Cut(p.Key, "[")
			p.Source = source(list)
			errs = append(errs, p)
		}
		for _, p := range history.CheckSources(cfg.Exporter.RequestSources) {
			errs = append(errs, &Error{Source: source("exporter.request_sources"), Key: "exporter." + p.Key, Msg: p.Msg})
		}
		if _, err := history.ParseSelector(cfg.Prometheus.Selector); err != nil {
			errs = append(errs, &Error{Source: source("prometheus.selector"), Key: "prometheus.selector", Msg: err.Error()})
		}
	}
	return errors.Join(errs...)
}

// outOfRange checks f against the setting's min and max tags, and a float
// for being finite.
func (s Setting) outOfRange(f reflect.Value) string {
	switch {
	case f.Type() == durationType:
		m, err := model.ParseDuration(s.Min)
		if err == nil && time.Duration(f.Int()) < time.Duration(m) {
			return fmt.Sprintf("invalid value %s: must be at least %s", model.Duration(f.Int()), s.Min)
		}
	case f.CanInt():
		m, err := strconv.ParseInt(s.Min, 10, 64)
		if err == nil && f.Int() < m {
			return fmt.Sprintf("invalid value %d: must be at least %s", f.Int(), s.Min)
		}
	case f.CanFloat():
		return s.floatOutOfRange(f.Float())
	}
	return ""
}

// floatOutOfRange writes every comparison so that NaN fails it, besides
// refusing NaN and infinities outright.
func (s Setting) floatOutOfRange(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Sprintf("invalid value %g: want a finite number", v)
	}
	if m, err := strconv.ParseFloat(s.Min, 64); err == nil && !(v >= m) {
		return fmt.Sprintf("invalid value %g: must be at least %s", v, s.Min)
	}
	if below, ok := strings.CutPrefix(s.Max, "<"); ok {
		if m, err := strconv.ParseFloat(below, 64); err == nil && !(v < m) {
			return fmt.Sprintf("invalid value %g: must be below %s", v, below)
		}
	} else if m, err := strconv.ParseFloat(s.Max, 64); err == nil && !(v <= m) {
		return fmt.Sprintf("invalid value %g: must be at most %s", v, s.Max)
	}
	return ""
}

// CheckFloat checks v as the value of the float setting key, by the same
// rules as a file, for components that take the value from code.
func CheckFloat(key string, v float64) error {
	for _, s := range Settings() {
		if s.Key == key && s.Type.Kind() == reflect.Float64 {
			if msg := s.floatOutOfRange(v); msg != "" {
				return fmt.Errorf("%s: %s", key, msg)
			}
			return nil
		}
	}
	return fmt.Errorf("%s: not a float setting", key)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// suggest points at the likely intended key, because a typo in a YAML key is
// the commonest configuration mistake.
func suggest(key string, leaves map[string]Setting, sections map[string]bool) string {
	var names []string
	for k := range leaves {
		names = append(names, k)
	}
	for k := range sections {
		names = append(names, k)
	}
	sort.Strings(names)
	if best := spelling.Closest(key, names, 3); best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return ""
}
