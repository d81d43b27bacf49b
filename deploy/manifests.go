package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// Key names an object uniquely within a rendering.
type Key struct {
	Group, Kind, Namespace, Name string
}

func (k Key) String() string {
	gk := k.Kind
	if k.Group != "" {
		gk += "." + k.Group
	}
	if k.Namespace != "" {
		return gk + " " + k.Namespace + "/" + k.Name
	}
	return gk + " " + k.Name
}

// KeyOf returns the key of obj.
func KeyOf(obj *unstructured.Unstructured) Key {
	gvk := obj.GroupVersionKind()
	return Key{Group: gvk.Group, Kind: gvk.Kind, Namespace: obj.GetNamespace(), Name: obj.GetName()}
}

// Manifests are the objects of one rendering, in document order.
type Manifests []*unstructured.Unstructured

// Parse reads a stream of YAML documents (helm template or kustomize build output). Empty
// documents are dropped; a document without kind or name, or an object given twice, is an error
// naming the document, since kubectl would reject or silently merge it.
func Parse(data []byte) (Manifests, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out Manifests
	seen := map[Key]int{}
	for doc := 1; ; doc++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("document %d: %w", doc, err)
		}
		if t := bytes.TrimSpace(raw); len(t) == 0 || bytes.Equal(t, []byte("null")) || bytes.Equal(t, []byte("{}")) {
			continue
		}
		// Unstructured's own decoding, so that integers are int64 as in every other client.
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(raw); err != nil {
			return nil, fmt.Errorf("document %d: %w", doc, err)
		}
		if obj.GetKind() == "" || obj.GetAPIVersion() == "" || obj.GetName() == "" {
			return nil, fmt.Errorf("document %d: apiVersion, kind and metadata.name are required", doc)
		}
		k := KeyOf(obj)
		if prev, ok := seen[k]; ok {
			return nil, fmt.Errorf("document %d: %s was already given in document %d", doc, k, prev)
		}
		seen[k] = doc
		out = append(out, obj)
	}
}

// Append returns the manifests with more objects after them.
func (ms Manifests) Append(objs ...*unstructured.Unstructured) Manifests {
	return append(append(Manifests(nil), ms...), objs...)
}

// ByKey indexes the objects.
func (ms Manifests) ByKey() map[Key]*unstructured.Unstructured {
	out := make(map[Key]*unstructured.Unstructured, len(ms))
	for _, o := range ms {
		out[KeyOf(o)] = o
	}
	return out
}

// Keys lists the objects' keys, sorted.
func (ms Manifests) Keys() []Key {
	out := make([]Key, 0, len(ms))
	for _, o := range ms {
		out = append(out, KeyOf(o))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// Get returns the object of kind (in group) named name, or nil.
func (ms Manifests) Get(group, kind, namespace, name string) *unstructured.Unstructured {
	return ms.ByKey()[Key{Group: group, Kind: kind, Namespace: namespace, Name: name}]
}

// OfKind returns the objects of one kind, in document order.
func (ms Manifests) OfKind(gk schema.GroupKind) Manifests {
	var out Manifests
	for _, o := range ms {
		if o.GroupVersionKind().GroupKind() == gk {
			out = append(out, o)
		}
	}
	return out
}
