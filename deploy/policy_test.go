package deploy

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestPolicy checks every rendering users can get: each chart case and each kustomize directory.
func TestPolicy(t *testing.T) {
	type target struct {
		name   string
		render func(t *testing.T) Manifests
	}
	var targets []target
	for _, c := range chartCases {
		targets = append(targets, target{"helm/" + c.name, func(t *testing.T) Manifests {
			ms, _ := renderHelm(t, releaseName, releaseNamespace, valuesFile(t, c.values)...)
			return ms
		}})
	}
	for _, kt := range append([]kustomizeTarget{baseTarget}, kustomizeOverlays...) {
		targets = append(targets, target{"kustomize/" + filepath.Base(kt.dir), func(t *testing.T) Manifests {
			return renderKustomize(t, kt.dir)
		}})
	}
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			ms := tg.render(t)
			pods, roles := 0, 0
			for _, o := range ms {
				if _, _, ok := podSpec(o); ok {
					pods++
				}
				if o.GetKind() == "Role" || o.GetKind() == "ClusterRole" {
					roles++
				}
			}
			if pods == 0 || roles == 0 {
				t.Fatalf("%d workloads and %d roles rendered: nothing to check", pods, roles)
			}
			for _, v := range Policy(ms) {
				t.Error(v)
			}
		})
	}
}

// TestPolicyFindsViolations feeds Policy manifests that break each rule once, so that a check
// that silently stopped working fails here.
func TestPolicyFindsViolations(t *testing.T) {
	const goodPod = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: ok, namespace: upid-system}
spec:
  template:
    spec:
      securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
      containers:
        - name: c
          resources: {requests: {cpu: 10m, memory: 10Mi}}
          securityContext:
            readOnlyRootFilesystem: true
            allowPrivilegeEscalation: false
            capabilities: {drop: [ALL]}
`
	cases := []struct {
		name     string
		manifest string
		want     []string // substrings of the violations, in any order; empty means none
	}{
		{name: "compliant", manifest: goodPod + `---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: tls, namespace: upid-system}
rules:
  - {apiGroups: [""], resources: [secrets], resourceNames: [upid-webhook-tls], verbs: [get, update]}
`},
		{name: "wildcard verb", manifest: `
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: r}
rules: [{apiGroups: [apps], resources: [deployments], verbs: ["*"]}]
`, want: []string{`rules[0].verbs: wildcard "*"`}},
		{name: "wildcard resource and group", manifest: `
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: r}
rules: [{apiGroups: ["*"], resources: ["*"], verbs: [get]}]
`, want: []string{`apiGroups: wildcard`, `resources: wildcard`, "Secrets granted cluster-wide"}},
		{name: "wildcard subresource", manifest: `
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: r}
rules: [{apiGroups: [apps], resources: ["deployments/*"], verbs: [get]}]
`, want: []string{`wildcard "deployments/*"`}},
		{name: "secrets cluster-wide by name", manifest: `
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: r}
rules: [{apiGroups: [""], resources: [secrets], resourceNames: [x], verbs: [get]}]
`, want: []string{"Secrets granted cluster-wide"}},
		{name: "secrets without names", manifest: `
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: r, namespace: upid-system}
rules: [{apiGroups: [""], resources: [secrets], verbs: [get, list]}]
`, want: []string{"without resourceNames", `verb "list" on Secrets`}},
		{name: "escalation", manifest: `
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: r}
rules: [{apiGroups: [rbac.authorization.k8s.io], resources: [clusterroles], verbs: [bind, escalate]}]
`, want: []string{`verb "bind"`, `verb "escalate"`}},
		{name: "insecure container", manifest: `
apiVersion: apps/v1
kind: Deployment
metadata: {name: bad, namespace: upid-system}
spec:
  template:
    spec:
      hostNetwork: true
      volumes: [{name: h, hostPath: {path: /}}]
      containers:
        - name: c
          securityContext: {privileged: true, runAsUser: 0, capabilities: {add: [NET_ADMIN]}}
`, want: []string{"hostNetwork", "hostPath", "runAsNonRoot", "runAsUser: runs as root", "readOnlyRootFilesystem", "allowPrivilegeEscalation",
			"privileged", "must drop ALL", "adds [NET_ADMIN]", "seccompProfile", "requests.cpu", "requests.memory"}},
		{name: "init container and cronjob", manifest: `
apiVersion: batch/v1
kind: CronJob
metadata: {name: cj, namespace: upid-system}
spec:
  jobTemplate:
    spec:
      template:
        spec:
          securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
          initContainers:
            - name: init
              resources: {requests: {cpu: 10m, memory: 10Mi}}
              securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
          containers:
            - name: c
              resources: {requests: {cpu: 10m, memory: 10Mi}}
              securityContext: {readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
`, want: []string{"initContainers[0](init).securityContext.readOnlyRootFilesystem"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ms, err := Parse([]byte(c.manifest))
			if err != nil {
				t.Fatal(err)
			}
			got := Policy(ms)
			var lines []string
			for _, v := range got {
				lines = append(lines, v.String())
			}
			all := strings.Join(lines, "\n")
			for _, w := range c.want {
				if !strings.Contains(all, w) {
					t.Errorf("no violation mentions %q; got:\n%s", w, all)
				}
			}
			if len(c.want) == 0 && len(got) > 0 {
				t.Errorf("compliant manifests flagged:\n%s", all)
			}
			if len(got) < len(c.want) {
				t.Errorf("%d violations for %d expected", len(got), len(c.want))
			}
		})
	}
}

func TestParseRejectsAmbiguousManifests(t *testing.T) {
	for name, doc := range map[string]string{
		"duplicate": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: n}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: n}\n",
		"no name":   "apiVersion: v1\nkind: ConfigMap\nmetadata: {namespace: n}\n",
		"no kind":   "apiVersion: v1\nmetadata: {name: a}\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Parse([]byte(doc)); err == nil || !strings.Contains(err.Error(), "document") {
				t.Errorf("Parse = %v, want an error naming the document", err)
			}
		})
	}
	ms, err := Parse([]byte("---\n# only a comment\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"))
	if err != nil || len(ms) != 1 {
		t.Errorf("Parse with empty documents = %d objects, %v", len(ms), err)
	}
}
