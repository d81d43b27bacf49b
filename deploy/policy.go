package deploy

import (
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Violation is one breach of Policy, naming the object and the field.
type Violation struct {
	Object Key
	Field  string
	Reason string
}

func (v Violation) String() string { return fmt.Sprintf("%s: %s: %s", v.Object, v.Field, v.Reason) }

// secretVerbs are all a named Secret may be granted: read it and write it back.
var secretVerbs = []string{"get", "update", "patch"}

// escalatingVerbs let a subject grant itself more than it has.
var escalatingVerbs = []string{"escalate", "bind", "impersonate"}

// Policy checks what a reviewer of UPID's manifests checks by hand: RBAC without wildcards or
// escalation, Secrets only by name and only in a namespace, and pods that satisfy the restricted
// Pod Security profile and request resources.
func Policy(ms Manifests) []Violation {
	var out []Violation
	for _, o := range ms {
		k := KeyOf(o)
		switch {
		case k.Group == "rbac.authorization.k8s.io" && (k.Kind == "ClusterRole" || k.Kind == "Role"):
			out = append(out, checkRules(o, k)...)
		default:
			if spec, path, ok := podSpec(o); ok {
				out = append(out, checkPod(k, spec, path)...)
			}
		}
	}
	return out
}

func checkRules(o *unstructured.Unstructured, k Key) []Violation {
	var out []Violation
	if _, ok := o.Object["aggregationRule"]; ok {
		out = append(out, Violation{k, "aggregationRule", "aggregated roles grant whatever other roles add"})
	}
	rules, _, _ := unstructured.NestedSlice(o.Object, "rules")
	for i, r := range rules {
		rule, _ := r.(map[string]any)
		field := fmt.Sprintf("rules[%d]", i)
		list := func(name string) []string {
			v, _, _ := unstructured.NestedStringSlice(rule, name)
			return v
		}
		groups, resources, verbs, names := list("apiGroups"), list("resources"), list("verbs"), list("resourceNames")
		for _, part := range []struct {
			name   string
			values []string
		}{{"apiGroups", groups}, {"resources", resources}, {"verbs", verbs}, {"resourceNames", names}, {"nonResourceURLs", list("nonResourceURLs")}} {
			for _, v := range part.values {
				if v == "*" || (part.name == "resources" && len(v) > 1 && v[len(v)-2:] == "/*") {
					out = append(out, Violation{k, field + "." + part.name, fmt.Sprintf("wildcard %q", v)})
				}
			}
		}
		if len(list("nonResourceURLs")) > 0 {
			out = append(out, Violation{k, field + ".nonResourceURLs", "UPID needs no non-resource URLs"})
		}
		for _, v := range verbs {
			if slices.Contains(escalatingVerbs, v) {
				out = append(out, Violation{k, field + ".verbs", fmt.Sprintf("verb %q escalates privileges", v)})
			}
		}
		if !slices.Contains(groups, "") && !slices.Contains(groups, "*") {
			continue
		}
		for _, res := range resources {
			if res != "secrets" && res != "*" {
				continue
			}
			switch {
			case k.Kind == "ClusterRole":
				out = append(out, Violation{k, field, "Secrets granted cluster-wide; use a Role in the release namespace"})
			case len(names) == 0:
				out = append(out, Violation{k, field, "Secrets granted without resourceNames"})
			}
			for _, v := range verbs {
				if !slices.Contains(secretVerbs, v) {
					out = append(out, Violation{k, field + ".verbs", fmt.Sprintf("verb %q on Secrets; only %v of named ones", v, secretVerbs)})
				}
			}
		}
	}
	return out
}

// podSpec returns the pod template's spec of a workload object and its field path.
func podSpec(o *unstructured.Unstructured) (map[string]any, string, bool) {
	var path []string
	switch o.GetKind() {
	case "Pod":
		path = []string{"spec"}
	case "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job":
		path = []string{"spec", "template", "spec"}
	case "CronJob":
		path = []string{"spec", "jobTemplate", "spec", "template", "spec"}
	default:
		return nil, "", false
	}
	spec, ok, _ := unstructured.NestedMap(o.Object, path...)
	return spec, joinPath(path), ok
}

func joinPath(p []string) string {
	s := ""
	for i, e := range p {
		if i > 0 {
			s += "."
		}
		s += e
	}
	return s
}

func checkPod(k Key, spec map[string]any, path string) []Violation {
	var out []Violation
	bad := func(field, reason string) { out = append(out, Violation{k, path + "." + field, reason}) }
	for _, f := range []string{"hostNetwork", "hostPID", "hostIPC"} {
		if v, _, _ := unstructured.NestedBool(spec, f); v {
			bad(f, "host namespaces are not allowed by the restricted profile")
		}
	}
	vols, _, _ := unstructured.NestedSlice(spec, "volumes")
	for i, v := range vols {
		if vm, ok := v.(map[string]any); ok {
			if _, ok := vm["hostPath"]; ok {
				bad(fmt.Sprintf("volumes[%d].hostPath", i), "hostPath volumes are not allowed")
			}
		}
	}
	podNonRoot, _, _ := unstructured.NestedBool(spec, "securityContext", "runAsNonRoot")
	podSeccomp, _, _ := unstructured.NestedString(spec, "securityContext", "seccompProfile", "type")
	if u, ok, _ := unstructured.NestedInt64(spec, "securityContext", "runAsUser"); ok && u == 0 {
		bad("securityContext.runAsUser", "runs as root")
	}
	for _, list := range []string{"initContainers", "containers"} {
		cs, _, _ := unstructured.NestedSlice(spec, list)
		for i, c := range cs {
			cm, _ := c.(map[string]any)
			name, _, _ := unstructured.NestedString(cm, "name")
			field := fmt.Sprintf("%s[%d](%s)", list, i, name)
			sc, _, _ := unstructured.NestedMap(cm, "securityContext")
			nonRoot, set, _ := unstructured.NestedBool(sc, "runAsNonRoot")
			if !(nonRoot || (!set && podNonRoot)) {
				bad(field+".securityContext.runAsNonRoot", "must be true (here or in the pod's securityContext)")
			}
			if u, ok, _ := unstructured.NestedInt64(sc, "runAsUser"); ok && u == 0 {
				bad(field+".securityContext.runAsUser", "runs as root")
			}
			if ro, _, _ := unstructured.NestedBool(sc, "readOnlyRootFilesystem"); !ro {
				bad(field+".securityContext.readOnlyRootFilesystem", "must be true")
			}
			if ape, set, _ := unstructured.NestedBool(sc, "allowPrivilegeEscalation"); !set || ape {
				bad(field+".securityContext.allowPrivilegeEscalation", "must be false")
			}
			if p, _, _ := unstructured.NestedBool(sc, "privileged"); p {
				bad(field+".securityContext.privileged", "must not be privileged")
			}
			if drop, _, _ := unstructured.NestedStringSlice(sc, "capabilities", "drop"); !slices.Contains(drop, "ALL") {
				bad(field+".securityContext.capabilities.drop", "must drop ALL")
			}
			if add, _, _ := unstructured.NestedStringSlice(sc, "capabilities", "add"); len(add) > 0 {
				bad(field+".securityContext.capabilities.add", fmt.Sprintf("adds %v", add))
			}
			seccomp, _, _ := unstructured.NestedString(sc, "seccompProfile", "type")
			if seccomp == "" {
				seccomp = podSeccomp
			}
			if seccomp != "RuntimeDefault" && seccomp != "Localhost" {
				bad(field+".securityContext.seccompProfile", "must be RuntimeDefault (here or in the pod's securityContext)")
			}
			for _, r := range []string{"cpu", "memory"} {
				if v, ok, _ := unstructured.NestedFieldNoCopy(cm, "resources", "requests", r); !ok || v == nil || fmt.Sprint(v) == "" {
					bad(field+".resources.requests."+r, "must be set")
				}
			}
		}
	}
	return out
}
