package deploy

import (
	"bytes"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Op is one JSON patch (RFC 6902) operation.
type Op struct {
	Op    string `yaml:"op"`
	Path  string `yaml:"path"`
	Value any    `yaml:"value,omitempty"`
}

// Diff returns the operations that turn from into to: maps are compared key by key so that a
// patch names exactly the fields that differ; lists and scalars are replaced whole.
func Diff(from, to map[string]any) []Op {
	var ops []Op
	diffMaps("", from, to, &ops)
	return ops
}

func diffMaps(prefix string, from, to map[string]any, ops *[]Op) {
	keys := map[string]bool{}
	for k := range from {
		keys[k] = true
	}
	for k := range to {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		p := prefix + "/" + strings.NewReplacer("~", "~0", "/", "~1").Replace(k)
		a, inFrom := from[k]
		b, inTo := to[k]
		switch {
		case !inTo:
			*ops = append(*ops, Op{Op: "remove", Path: p})
		case !inFrom:
			*ops = append(*ops, Op{Op: "add", Path: p, Value: b})
		default:
			am, aok := a.(map[string]any)
			bm, bok := b.(map[string]any)
			if aok && bok {
				diffMaps(p, am, bm, ops)
			} else if !reflect.DeepEqual(a, b) {
				*ops = append(*ops, Op{Op: "replace", Path: p, Value: b})
			}
		}
	}
}

// Overlay is a kustomize overlay that turns the rendering base into the rendering of other values.
type Overlay struct {
	// Files are the overlay's files by name, kustomization.yaml included.
	Files map[string][]byte
}

// NewOverlay computes the overlay from base to target: objects only in target become resources,
// objects only in base are deleted with a strategic-merge `$patch: delete`, and objects in both
// get a JSON patch of the fields that differ. header starts every generated file.
func NewOverlay(base, target Manifests, baseDir, header string) (*Overlay, error) {
	from := base.ByKey()
	to := target.ByKey()
	files := map[string][]byte{}
	var resources []string
	var added Manifests
	type patchRef struct {
		Path   string         `yaml:"path"`
		Target map[string]any `yaml:"target,omitempty"`
	}
	var patches []patchRef
	for _, o := range target {
		k := KeyOf(o)
		b, ok := from[k]
		if !ok {
			added = append(added, o)
			continue
		}
		ops := Diff(b.Object, o.Object)
		if len(ops) == 0 {
			continue
		}
		name := patchFileName(k)
		data, err := marshalYAML(ops)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		files[name] = append([]byte(header), data...)
		gvk := o.GroupVersionKind()
		tgt := map[string]any{"version": gvk.Version, "kind": gvk.Kind, "name": k.Name}
		if gvk.Group != "" {
			tgt["group"] = gvk.Group
		}
		if k.Namespace != "" {
			tgt["namespace"] = k.Namespace
		}
		patches = append(patches, patchRef{Path: name, Target: tgt})
	}
	for _, o := range base {
		k := KeyOf(o)
		if _, ok := to[k]; ok {
			continue
		}
		del := map[string]any{"apiVersion": o.GetAPIVersion(), "kind": o.GetKind(), "metadata": map[string]any{"name": k.Name}, "$patch": "delete"}
		if k.Namespace != "" {
			del["metadata"].(map[string]any)["namespace"] = k.Namespace
		}
		data, err := marshalYAML(del)
		if err != nil {
			return nil, err
		}
		name := "delete-" + patchFileName(k)
		files[name] = append([]byte(header), data...)
		patches = append(patches, patchRef{Path: name})
	}
	resources = append(resources, baseDir)
	if len(added) > 0 {
		var buf strings.Builder
		buf.WriteString(header)
		for i, o := range added {
			if i > 0 {
				buf.WriteString("---\n")
			}
			data, err := marshalYAML(o.Object)
			if err != nil {
				return nil, err
			}
			buf.Write(data)
		}
		files["resources.yaml"] = []byte(buf.String())
		resources = append(resources, "resources.yaml")
	}
	k := struct {
		APIVersion string     `yaml:"apiVersion"`
		Kind       string     `yaml:"kind"`
		Resources  []string   `yaml:"resources"`
		Patches    []patchRef `yaml:"patches,omitempty"`
	}{"kustomize.config.k8s.io/v1beta1", "Kustomization", resources, patches}
	data, err := marshalYAML(k)
	if err != nil {
		return nil, err
	}
	files["kustomization.yaml"] = append([]byte(header), data...)
	return &Overlay{Files: files}, nil
}

// marshalYAML writes YAML indented as kubectl and helm write it.
func marshalYAML(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func patchFileName(k Key) string {
	return strings.ToLower(k.Kind) + "-" + k.Name + ".yaml"
}

// Equal reports the differences between two renderings, by object, as readable lines.
func Equal(want, got Manifests) []string {
	var out []string
	w, g := want.ByKey(), got.ByKey()
	for _, k := range want.Keys() {
		o, ok := g[k]
		if !ok {
			out = append(out, fmt.Sprintf("%s: missing", k))
			continue
		}
		for _, op := range Diff(o.Object, w[k].Object) {
			v, _ := marshalYAML(op.Value)
			out = append(out, fmt.Sprintf("%s: %s %s (want %s)", k, op.Op, op.Path, strings.TrimSpace(string(v))))
		}
	}
	for _, k := range got.Keys() {
		if _, ok := w[k]; !ok {
			out = append(out, fmt.Sprintf("%s: unexpected", k))
		}
	}
	return out
}
