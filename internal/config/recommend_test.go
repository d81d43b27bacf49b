package config

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/upid-dev/upid/exporter/recommend"
)

// The defaults are recommend.DefaultPolicy's, exactly.
func TestRecommendDefaults(t *testing.T) {
	p, err := Default().Exporter.Recommend.Policy()
	if err != nil {
		t.Fatal(err)
	}
	if p != recommend.DefaultPolicy() {
		t.Errorf("default policy %+v, want %+v", p, recommend.DefaultPolicy())
	}
	r := Default().Exporter.Recommend
	if r.MinCPU != "10m" || r.MinMemory != "32Mi" || r.Window != model.Duration(14*24*time.Hour) || r.LimitPolicy != "remove-cpu" {
		t.Errorf("defaults as written: %+v", r)
	}
}

func TestRecommendParse(t *testing.T) {
	f := func(x float64) *float64 { return &x }
	tests := []struct {
		name    string
		file    string
		want    func(*Recommend)
		policy  func(*recommend.Policy) // the cluster policy expected
		wantErr []string
	}{{
		name: "cluster knobs",
		file: "exporter:\n  recommend:\n    cpu_percentile: 0.95\n    cpu_margin: 0.05\n    min_cpu: 50m\n    min_memory: 128Mi\n    window: 7d\n    limit_policy: keep\n",
		want: func(r *Recommend) {
			r.CPUPercentile, r.CPUMargin, r.MinCPU, r.MinMemory = 0.95, 0.05, "50m", "128Mi"
			r.Window, r.LimitPolicy = model.Duration(7*24*time.Hour), "keep"
		},
		policy: func(p *recommend.Policy) {
			p.CPUPercentile, p.CPUMargin, p.MinCPU, p.MinMemory = 0.95, 0.05, 0.05, 128<<20
			p.Window, p.Limits = 7*24*time.Hour, recommend.LimitKeep
		},
	}, {
		name: "overrides",
		file: `exporter:
  recommend:
    overrides:
    - namespace: batch
      memory_margin: 0.3
    - namespace: shop
      workload: checkout
      kind: Deployment
      cpu_percentile: 0.99
      min_memory: 256Mi
`,
		want: func(r *Recommend) {
			r.Overrides = []RecommendOverride{
				{Namespace: "batch", MemoryMargin: f(0.3)},
				{Namespace: "shop", Workload: "checkout", Kind: "Deployment", CPUPercentile: f(0.99), MinMemory: "256Mi"},
			}
		},
	}, {
		name:    "cluster knob out of range names key and line",
		file:    "exporter:\n  recommend:\n    cpu_percentile: 95\n    memory_margin: -1\n",
		wantErr: []string{"upid.yaml:3: exporter.recommend.cpu_percentile: 95 is out of range: want (0, 1]", "upid.yaml:4: exporter.recommend.memory_margin: -1 is out of range"},
	}, {
		name:    "bad quantity",
		file:    "exporter:\n  recommend:\n    min_memory: lots\n",
		wantErr: []string{`upid.yaml:3: exporter.recommend.min_memory: "lots" is not a quantity`},
	}, {
		name:    "bad limit policy is reported once",
		file:    "exporter:\n  recommend:\n    limit_policy: remove\n",
		wantErr: []string{`upid.yaml:3: exporter.recommend.limit_policy: invalid value "remove": want one of keep, scale, remove-cpu`},
	}, {
		name: "override errors name the index and field",
		file: `exporter:
  recommend:
    overrides:
    - namespace: ok
      cpu_margin: 0.1
    - namespace: shop
      cpu_percentile: 2
      min_cpu: 5 cores
      limit_policy: never
    - workload: web
      kind: deployment
      window: 0s
    - namespace: empty
`,
		wantErr: []string{
			"upid.yaml:4: exporter.recommend.overrides[1].cpu_percentile: 2 is out of range",
			`exporter.recommend.overrides[1].min_cpu: "5 cores" is not a quantity`,
			`exporter.recommend.overrides[1].limit_policy: "never" is not keep, scale or remove-cpu`,
			"exporter.recommend.overrides[2].namespace: must not be empty",
			`exporter.recommend.overrides[2].kind: invalid value "deployment": want one of Deployment, StatefulSet`,
			"exporter.recommend.overrides[2].window: 0s must be positive",
			"exporter.recommend.overrides[3]: sets no knob",
		},
	}, {
		name:    "unknown override key",
		file:    "exporter:\n  recommend:\n    overrides:\n    - namespace: a\n      cpu_precentile: 0.9\n",
		wantErr: []string{`unknown key "cpu_precentile" in [0]`},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse("upid.yaml", []byte(tc.file))
			if !checkParseError(t, err, tc.wantErr) {
				if n := strings.Count(err.Error(), "limit_policy"); strings.Contains(tc.name, "once") && n != 1 {
					t.Errorf("limit_policy reported %d times: %v", n, err)
				}
				return
			}
			want := Default().Exporter.Recommend
			tc.want(&want)
			if !reflect.DeepEqual(got.Exporter.Recommend, want) {
				t.Errorf("got %+v, want %+v", got.Exporter.Recommend, want)
			}
			p, err := got.Exporter.Recommend.Policy()
			if err != nil {
				t.Fatal(err)
			}
			wantP := recommend.DefaultPolicy()
			if tc.policy != nil {
				tc.policy(&wantP)
			}
			if p != wantP {
				t.Errorf("policy %+v, want %+v", p, wantP)
			}
		})
	}
}

// Flags and environment variables reach the cluster knobs, through the same
// checks as the file.
func TestRecommendOverridesFromEnv(t *testing.T) {
	cfg, err := Load("", Override{Key: "exporter.recommend.cpu_percentile", Raw: "0.95", Source: "env UPID_EXPORTER_RECOMMEND_CPU_PERCENTILE"})
	if err != nil || cfg.Exporter.Recommend.CPUPercentile != 0.95 {
		t.Fatalf("got %v, %v", cfg.Exporter.Recommend.CPUPercentile, err)
	}
	_, err = Load("", Override{Key: "exporter.recommend.min_cpu", Raw: "x", Source: "flag --exporter.recommend.min-cpu"})
	if err == nil || !strings.Contains(err.Error(), `flag --exporter.recommend.min-cpu: exporter.recommend.min_cpu: "x" is not a quantity`) {
		t.Errorf("error %v", err)
	}
}
