package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// auditPolicy records every request's metadata: who, which verb on what, and the answer.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
`

// auditArgs are the kube-apiserver flags that write the audit log to path, one request per line
// as it completes.
func auditArgs(t *testing.T) (args map[string][]string, path string) {
	t.Helper()
	dir := t.TempDir()
	policy := filepath.Join(dir, "audit-policy.yaml")
	if err := os.WriteFile(policy, []byte(auditPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(dir, "audit.log")
	return map[string][]string{
		"audit-policy-file": {policy},
		"audit-log-path":    {path},
		"audit-log-format":  {"json"},
		"audit-log-mode":    {"blocking"},
	}, path
}

// apiCall is what RBAC decides on: a verb on a resource (or subresource) of a group.
type apiCall struct{ verb, group, resource string }

func (c apiCall) String() string {
	g := c.group
	if g == "" {
		g = "core"
	}
	return c.verb + " " + c.resource + "." + g
}

// auditedCalls reads the audit log and returns, for each of users, the calls it made that were
// allowed and those RBAC forbade. Components authenticate in these tests by impersonation, so the
// user is the impersonated one.
func auditedCalls(t *testing.T, path string, users []string) (allowed, forbidden map[string]map[apiCall]int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("audit log: %v", err)
	}
	// The components still run, and the API server may be writing a line as it is read.
	data = data[:bytes.LastIndexByte(data, '\n')+1]
	allowed, forbidden = map[string]map[apiCall]int{}, map[string]map[apiCall]int{}
	for _, line := range bytes.Split(data, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var ev struct {
			Verb             string `json:"verb"`
			ImpersonatedUser *struct {
				Username string `json:"username"`
			} `json:"impersonatedUser"`
			ObjectRef *struct {
				APIGroup    string `json:"apiGroup"`
				Resource    string `json:"resource"`
				Subresource string `json:"subresource"`
			} `json:"objectRef"`
			ResponseStatus *struct {
				Code int `json:"code"`
			} `json:"responseStatus"`
		}
		if err := json.Unmarshal(line, &ev); err != nil {
			t.Fatalf("audit log line %q: %v", line, err)
		}
		if ev.ImpersonatedUser == nil || !slices.Contains(users, ev.ImpersonatedUser.Username) || ev.ObjectRef == nil || ev.ResponseStatus == nil {
			continue
		}
		resource := ev.ObjectRef.Resource
		if ev.ObjectRef.Subresource != "" {
			resource += "/" + ev.ObjectRef.Subresource
		}
		into := allowed
		if ev.ResponseStatus.Code == 403 {
			into = forbidden
		}
		user := ev.ImpersonatedUser.Username
		if into[user] == nil {
			into[user] = map[apiCall]int{}
		}
		into[user][apiCall{ev.Verb, ev.ObjectRef.APIGroup, resource}]++
	}
	return allowed, forbidden
}

// granted expands the rules that ms binds to each service account user into single calls.
// resourceNames are left out: the calls are what a rule allows on some object.
func granted(t *testing.T, ms Manifests) map[string]map[apiCall]bool {
	t.Helper()
	rules := map[string][]rbacv1.PolicyRule{}
	for _, kind := range []string{"ClusterRole", "Role"} {
		for _, o := range ms {
			if o.GetKind() != kind {
				continue
			}
			var r rbacv1.ClusterRole
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &r); err != nil {
				t.Fatalf("%s %s: %v", kind, o.GetName(), err)
			}
			rules[kind+"/"+o.GetNamespace()+"/"+o.GetName()] = r.Rules
		}
	}
	out := map[string]map[apiCall]bool{}
	for _, o := range ms {
		if o.GetKind() != "ClusterRoleBinding" && o.GetKind() != "RoleBinding" {
			continue
		}
		var b rbacv1.RoleBinding
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &b); err != nil {
			t.Fatalf("%s %s: %v", o.GetKind(), o.GetName(), err)
		}
		ns := ""
		if b.RoleRef.Kind == "Role" {
			ns = o.GetNamespace()
		}
		for _, s := range b.Subjects {
			if s.Kind != rbacv1.ServiceAccountKind {
				continue
			}
			user := "system:serviceaccount:" + s.Namespace + ":" + s.Name
			if out[user] == nil {
				out[user] = map[apiCall]bool{}
			}
			for _, r := range rules[b.RoleRef.Kind+"/"+ns+"/"+b.RoleRef.Name] {
				for _, g := range r.APIGroups {
					for _, res := range r.Resources {
						for _, v := range r.Verbs {
							out[user][apiCall{v, g, res}] = true
						}
					}
				}
			}
		}
	}
	return out
}

// checkGrantsMatchCalls compares what each component did against a real API server with what the
// manifests grant it: no call may have been forbidden, and, when the run went through every step
// (ranThrough), every grant must have been used, or be one of unused, which says why this run need
// not use it. A grant nothing uses is a permission the code does not need.
func checkGrantsMatchCalls(t *testing.T, grants map[string]map[apiCall]bool, allowed, forbidden map[string]map[apiCall]int, ranThrough bool, unused map[string]map[apiCall]string) {
	t.Helper()
	var users []string
	for u := range grants {
		users = append(users, u)
	}
	sort.Strings(users)
	for _, u := range users {
		for c, n := range forbidden[u] {
			t.Errorf("%s: %s forbidden %d times: the manifests do not grant a call the component makes", u, c, n)
		}
		if !ranThrough {
			continue
		}
		if len(allowed[u]) == 0 {
			t.Errorf("%s made no call: the component did not run as this service account", u)
			continue
		}
		var extra []string
		for c := range grants[u] {
			used := allowed[u][c] > 0
			// A list reads every object a get could; informers list and never get.
			if c.verb == "get" && allowed[u][apiCall{"list", c.group, c.resource}] > 0 {
				used = true
			}
			// An excused call may still happen: a retried admission repeats its Event.
			if _, excused := unused[u][c]; !used && !excused {
				extra = append(extra, c.String())
			}
		}
		for c := range unused[u] {
			if !grants[u][c] {
				t.Errorf("%s: %s is excused as unused but not granted", u, c)
			}
		}
		if len(extra) > 0 {
			sort.Strings(extra)
			t.Errorf("%s is granted what it never used: %s (calls made: %s)", u, strings.Join(extra, ", "), callList(allowed[u]))
		}
	}
}

func callList(m map[apiCall]int) string {
	var out []string
	for c, n := range m {
		out = append(out, fmt.Sprintf("%s ×%d", c, n))
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}
