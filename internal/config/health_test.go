package config

import (
	"strings"
	"testing"
)

// TestHealthMatchers: an empty health path is the prefix "/" of every
// path, and an empty user agent pattern matches every agent; either makes
// all traffic health traffic, so busy workloads look idle.
func TestHealthMatchers(t *testing.T) {
	checkParseCases(t, []parseCase{
		{name: "defaults", file: ""},
		{name: "root and nested paths", file: "exporter:\n  health_paths: [/, /healthz, /api/v1/health]\n"},
		{
			name:    "empty path",
			file:    "exporter:\n  health_paths: [/healthz, \"\"]\n",
			wantErr: []string{"upid.yaml:2: exporter.health_paths[1]: empty: as a prefix it matches every path"},
		},
		{
			name:    "empty path in a block list",
			file:    "exporter:\n  health_paths:\n    - ''\n    - /livez\n",
			wantErr: []string{"upid.yaml:3: exporter.health_paths[0]: empty"},
		},
		{
			name:    "relative path",
			file:    "exporter:\n  health_paths: [/healthz, healthz, \" /livez\"]\n",
			wantErr: []string{`upid.yaml:2: exporter.health_paths[1]: "healthz" does not start with /`, `upid.yaml:2: exporter.health_paths[2]: " /livez" does not start with /`},
		},
		{
			name:    "empty user agent",
			file:    "exporter:\n  health_user_agents: [\"^kube-probe/\", \"\"]\n",
			wantErr: []string{"upid.yaml:2: exporter.health_user_agents[1]: empty: it matches every user agent"},
		},
		{
			name: "user agent matching everything",
			file: "exporter:\n  health_user_agents: [\".*\", \"^\", \"kube-probe|\", \"(?:)\"]\n",
			wantErr: []string{
				`upid.yaml:2: exporter.health_user_agents[0]: ".*" matches every user agent`,
				`upid.yaml:2: exporter.health_user_agents[1]: "^" matches every user agent`,
				`upid.yaml:2: exporter.health_user_agents[2]: "kube-probe|" matches every user agent`,
				`upid.yaml:2: exporter.health_user_agents[3]: "(?:)" matches every user agent`,
			},
		},
		// It matches no agent the analysis looks at (those are never
		// empty): useless, but not harmful.
		{name: "empty agent only", file: "exporter:\n  health_user_agents: [\"^$\", \"(?i)^curl/\"]\n"},
		{
			name:    "bad user agent pattern",
			file:    "exporter:\n  health_user_agents: [\"^kube-probe/\", \"(\"]\n",
			wantErr: []string{"upid.yaml:2: exporter.health_user_agents[1]: error parsing regexp: missing closing )"},
		},
	})
}

func TestHealthMatchersFromOverride(t *testing.T) {
	_, err := Load("", Override{Key: "exporter.health_paths", Raw: `/healthz,""`, Source: "env UPID_EXPORTER_HEALTH_PATHS"})
	want := "env UPID_EXPORTER_HEALTH_PATHS: exporter.health_paths[1]: empty"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v, want %q", err, want)
	}
}
