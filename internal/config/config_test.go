package config

import (
	"errors"
	"flag"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/model"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		want    func(*Config)
		wantErr []string // each must appear in the error
	}{
		{name: "empty file keeps defaults", file: ""},
		{name: "comments only", file: "# nothing\n"},
		{name: "null section", file: "log:\n"},
		{
			name: "values",
			file: "log:\n  level: debug\n  format: json\nweb:\n  listen_address: 127.0.0.1:9999\n",
			want: func(c *Config) {
				c.Log = Log{Level: "debug", Format: "json"}
				c.Web.ListenAddress = "127.0.0.1:9999"
			},
		},
		{
			name:    "unknown key with suggestion",
			file:    "log:\n  levle: debug\n",
			wantErr: []string{`upid.yaml:2: log.levle: unknown key (did you mean "log.level"?)`},
		},
		{
			// prometheus/common's HTTPClientConfig decodes itself and drops
			// unknown keys: a misspelt credentials file would leave
			// Prometheus without auth, without a word.
			name:    "unknown key in prometheus.http_client",
			file:    "prometheus:\n  http_client:\n    bearer_token_flie: /x\n",
			wantErr: []string{`prometheus.http_client: line 3: unknown key "bearer_token_flie" (known: authorization, basic_auth, bearer_token, bearer_token_file,`},
		},
		{
			name:    "unknown key deeper in prometheus.http_client",
			file:    "prometheus:\n  http_client:\n    tls_config:\n      insecure_skip_verfy: true\n",
			wantErr: []string{`prometheus.http_client: line 4: unknown key "insecure_skip_verfy" in tls_config (known: ca, ca_file,`},
		},
		{
			name: "proxy keys are inlined in prometheus.http_client",
			file: "prometheus:\n  http_client:\n    proxy_url: http://proxy:3128\n    follow_redirects: true\n",
			want: func(c *Config) {
				u, _ := url.Parse("http://proxy:3128")
				c.Prometheus.HTTPClient.ProxyURL.URL = u
			},
		},
		{
			name:    "prometheus.http_client's own check is reported",
			file:    "prometheus:\n  http_client:\n    bearer_token: a\n    bearer_token_file: b\n",
			wantErr: []string{`at most one of bearer_token & bearer_token_file must be configured`},
		},
		{
			name:    "unknown section",
			file:    "log:\n  level: info\nexporterr: {}\n",
			wantErr: []string{`upid.yaml:3: exporterr: unknown key`},
		},
		{
			name:    "bad enum names line and key",
			file:    "log:\n  level: info\n  format: xml\n",
			wantErr: []string{`upid.yaml:3: log.format: invalid value "xml": want one of logfmt, json`},
		},
		{
			name:    "every error at once",
			file:    "log:\n  level: loud\n  format: xml\nwbe: {}\n",
			wantErr: []string{"upid.yaml:2: log.level", "upid.yaml:3: log.format", "upid.yaml:4: wbe: unknown key"},
		},
		{
			name:    "section given a scalar",
			file:    "log: debug\n",
			wantErr: []string{"upid.yaml:1: log: must be a mapping"},
		},
		{
			name:    "leaf given a mapping",
			file:    "log:\n  level:\n    x: 1\n",
			wantErr: []string{"upid.yaml:3: log.level: want a string"},
		},
		{
			name:    "duplicate key",
			file:    "log:\n  level: info\n  level: debug\n",
			wantErr: []string{"upid.yaml:3: log.level: duplicate key (first set on line 2)"},
		},
		{
			name:    "top level not a mapping",
			file:    "- a\n- b\n",
			wantErr: []string{"upid.yaml:1: the configuration must be a mapping"},
		},
		{
			name:    "two documents",
			file:    "log: {}\n---\nweb: {}\n",
			wantErr: []string{"upid.yaml:2: more than one YAML document"},
		},
		{
			name:    "syntax error",
			file:    "log:\n  level: [\n",
			wantErr: []string{"upid.yaml: "},
		},
		{
			name: "prometheus selector",
			file: "prometheus:\n  selector: '{cluster=\"prod\"}'\n",
			want: func(c *Config) { c.Prometheus.Selector = `{cluster="prod"}` },
		},
		{
			name:    "request source naming both a workload and a Service",
			file:    "exporter:\n  request_sources:\n    - metric: istio_requests_total\n      workload_label: destination_workload\n      service_label: destination_service_name\n",
			wantErr: []string{`upid.yaml:3: exporter.request_sources[0]: workload_label (destination_workload) and service_label (destination_service_name) both set`},
		},
		{
			name:    "prometheus selector without braces",
			file:    "prometheus:\n  selector: cluster=prod\n",
			wantErr: []string{`upid.yaml:2: prometheus.selector: "cluster=prod" is not a label selector like {cluster="prod"}`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse("upid.yaml", []byte(tc.file))
			if !checkParseError(t, err, tc.wantErr) {
				return
			}
			want := Default()
			if tc.want != nil {
				tc.want(&want)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %+v, want %+v", got, want)
			}
		})
	}
}

func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "upid.yaml")
	if err := os.WriteFile(file, []byte("log:\n  level: warn\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
		url  bool // want is prometheus.url, not log.level
	}{
		{name: "default", want: "info"},
		{name: "file over default", args: []string{"--config", file}, want: "warn"},
		{name: "env over file", args: []string{"--config", file}, env: map[string]string{"UPID_LOG_LEVEL": "error"}, want: "error"},
		{name: "flag over env", args: []string{"--config", file, "--log.level", "debug"}, env: map[string]string{"UPID_LOG_LEVEL": "error"}, want: "debug"},
		{name: "config path from env", env: map[string]string{"UPID_CONFIG": file}, want: "warn"},
		{name: "flag", args: []string{"--prometheus.url", "http://a:9090"}, want: "http://a:9090", url: true},
		{name: "alias", args: []string{"--prometheus-url", "http://b:9090"}, want: "http://b:9090", url: true},
		{name: "alias over env", args: []string{"--prometheus-url=http://c:9090"}, env: map[string]string{"UPID_PROMETHEUS_URL": "http://env:9090"}, want: "http://c:9090", url: true},
		{name: "env without the alias", env: map[string]string{"UPID_PROMETHEUS_URL": "http://env:9090"}, want: "http://env:9090", url: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			app := kingpin.New("upid", "")
			flags := RegisterFlags(app)
			if _, err := app.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			cfg, err := flags.Load()
			if err != nil {
				t.Fatal(err)
			}
			got := cfg.Log.Level
			if tc.url {
				got = cfg.Prometheus.URL
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestOverrideErrorsNameTheirSource(t *testing.T) {
	t.Setenv("UPID_LOG_FORMAT", "xml")
	app := kingpin.New("upid", "")
	flags := RegisterFlags(app)
	if _, err := app.Parse([]string{"--log.level=loud"}); err != nil {
		t.Fatal(err)
	}
	_, err := flags.Load()
	for _, want := range []string{
		`env UPID_LOG_FORMAT: log.format: invalid value "xml"`,
		`flag --log.level: log.level: invalid value "loud"`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not contain %q", err, want)
		}
	}
}

// typed exercises the value kinds that later sections use.
type typed struct {
	Section struct {
		Window  model.Duration `yaml:"window" min:"1m"`
		Workers int            `yaml:"workers" min:"1"`
		Ratio   float64        `yaml:"ratio"`
		Enabled bool           `yaml:"enabled"`
		Paths   []string       `yaml:"paths"`
	} `yaml:"section"`
}

func TestValueKinds(t *testing.T) {
	tests := []struct {
		name      string
		file      string
		overrides []Override
		check     func(t *testing.T, v typed)
		wantErr   string
	}{
		{
			name: "file values",
			file: "section:\n  window: 7d\n  workers: 4\n  ratio: 0.5\n  enabled: true\n  paths: [/healthz, /livez]\n",
			check: func(t *testing.T, v typed) {
				if time.Duration(v.Section.Window) != 7*24*time.Hour || v.Section.Workers != 4 || v.Section.Ratio != 0.5 || !v.Section.Enabled || len(v.Section.Paths) != 2 {
					t.Errorf("got %+v", v.Section)
				}
			},
		},
		{
			name:      "overrides parse like the file",
			file:      "section:\n  workers: 4\n",
			overrides: []Override{{Key: "section.window", Raw: "90s", Source: "flag --section.window"}, {Key: "section.paths", Raw: "/a,/b,/c", Source: "env UPID_SECTION_PATHS"}, {Key: "section.enabled", Raw: "true", Source: "flag --section.enabled"}},
			check: func(t *testing.T, v typed) {
				if time.Duration(v.Section.Window) != 90*time.Second || v.Section.Workers != 4 || !v.Section.Enabled || strings.Join(v.Section.Paths, " ") != "/a /b /c" {
					t.Errorf("got %+v", v.Section)
				}
			},
		},
		{name: "bad duration", file: "section:\n  window: soon\n", wantErr: `f.yaml:2: section.window: invalid value "soon": want a duration such as 30s, 5m, 12h or 7d`},
		{name: "bad integer", file: "section:\n  workers: many\n", wantErr: `f.yaml:2: section.workers: invalid value "many": want an integer`},
		{name: "bad list", file: "section:\n  paths: {a: 1}\n", wantErr: `f.yaml:2: section.paths: invalid value (a mapping): want a list of strings`},
		{name: "below minimum from file", file: "section:\n  workers: 0\n", wantErr: `f.yaml:2: section.workers: invalid value 0: must be at least 1`},
		{name: "below minimum from flag", overrides: []Override{{Key: "section.window", Raw: "1s", Source: "flag --section.window"}}, wantErr: `flag --section.window: section.window: invalid value 1s: must be at least 1m`},
		{name: "bad flag value", overrides: []Override{{Key: "section.workers", Raw: "x", Source: "flag --section.workers"}}, wantErr: `flag --section.workers: section.workers: invalid value "x": want an integer`},
		{name: "unknown override", overrides: []Override{{Key: "section.nope", Raw: "x", Source: "flag --section.nope"}}, wantErr: `unknown setting`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := ""
			if tc.file != "" {
				path = filepath.Join(t.TempDir(), "f.yaml")
				if err := os.WriteFile(path, []byte(tc.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			var v typed
			v.Section.Window = model.Duration(time.Hour)
			v.Section.Workers = 1
			err := load(reflect.ValueOf(&v), settingsOf(reflect.TypeOf(v)), path, tc.overrides)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), strings.ReplaceAll(tc.wantErr, "f.yaml", path)) {
					t.Fatalf("error = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, v)
		})
	}
}

func TestFileSizeBound(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(path, []byte("# "+strings.Repeat("x", MaxFileBytes)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("error = %v, want the file rejected as too large", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file: error = %v, want one naming the file", err)
	}
}

func TestDefaultsYAMLRoundTrips(t *testing.T) {
	out, err := DefaultsYAML()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse("defaults.yaml", out)
	if err != nil {
		t.Fatalf("upid config defaults does not pass its own check: %v\n%s", err, out)
	}
	if !reflect.DeepEqual(got, Default()) {
		t.Errorf("round trip = %+v, want %+v", got, Default())
	}
	for _, s := range Settings() {
		if s.Doc == "" {
			t.Errorf("setting %s has no doc tag", s.Key)
		}
		if !strings.Contains(string(out), "# "+s.Doc) {
			t.Errorf("defaults do not carry the doc of %s", s.Key)
		}
	}
}

// TestConfigurationDocIsFresh keeps docs/configuration.md generated from the
// code; `go test ./internal/config -update` (or `make generate`) refreshes it.
func TestConfigurationDocIsFresh(t *testing.T) {
	path := filepath.Join("..", "..", "docs", "configuration.md")
	want := Markdown()
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("%s is stale: run `make generate`", path)
	}
	for _, s := range Settings() {
		if !strings.Contains(want, "`"+s.Key+"`") || !strings.Contains(want, s.Env) {
			t.Errorf("docs miss %s", s.Key)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("log:\n  level: debug\n"))
	f.Add([]byte("log: [1, 2]\nweb: {listen_address: x}\n"))
	f.Add([]byte("&a [*a, *a]\n"))
	f.Add([]byte("log:\n  level: info\n  level: info\n---\nx: 1\n"))
	f.Add([]byte("exporter:\n  recommend:\n    min_cpu: 1e400\n    overrides:\n    - {namespace: a, kind: Pod, window: 1d, min_memory: 1Ei}\n    - {cpu_percentile: .nan}\n"))
	f.Add([]byte("webhook: {min_confidence: .nan, change_threshold: .inf, memory_margin: -.inf}\n"))
	f.Add([]byte("exporter:\n  idle: {min_coverage: .NaN, cpu_base_cores: .Inf}\n  recommend: {cpu_margin: -.Inf}\n"))
	f.Add([]byte("exporter:\n  health_paths: [/healthz, \"\", x]\n  health_user_agents: [\"\", \".*\", \"(\"]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.yaml", data)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v is not a located *Error", err)
			}
			return
		}
		// Whatever is accepted must be valid.
		if !contains([]string{"debug", "info", "warn", "error"}, cfg.Log.Level) {
			t.Fatalf("accepted invalid level %q", cfg.Log.Level)
		}
		if _, problems := cfg.Exporter.CheckHealthMatchers(); len(problems) > 0 {
			t.Fatalf("accepted %v", problems[0])
		}
		for _, s := range Settings() {
			if f := s.field(reflect.ValueOf(&cfg)); f.CanFloat() && (math.IsNaN(f.Float()) || math.IsInf(f.Float(), 0)) {
				t.Fatalf("accepted %s: %v", s.Key, f.Float())
			}
		}
	})
}

// TestAliasHidden checks that --prometheus-url, the kubectl-style spelling
// of --prometheus.url (its precedence is in TestPrecedence), stays out of
// --help.
func TestAliasHidden(t *testing.T) {
	app := kingpin.New("upid", "")
	RegisterFlags(app)
	var help strings.Builder
	app.UsageWriter(&help)
	app.Usage(nil)
	if strings.Contains(help.String(), "prometheus-url") || !strings.Contains(help.String(), "prometheus.url") {
		t.Errorf("--help should list --prometheus.url and hide its alias:\n%s", help.String())
	}
}

// checkParseError checks err against wantErr, each of which must appear in
// it (none: no error). It reports whether the configuration parsed, so the
// caller checks the values.
func checkParseError(t *testing.T, err error, wantErr []string) bool {
	t.Helper()
	if len(wantErr) == 0 {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return true
	}
	if err == nil {
		t.Fatalf("no error, want %q", wantErr)
	}
	for _, w := range wantErr {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
	return false
}

// parseCase is a file and the errors it must give, no more: one bad value
// makes one error.
type parseCase struct {
	name    string
	file    string
	wantErr []string
}

func checkParseCases(t *testing.T, tests []parseCase) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("upid.yaml", []byte(tc.file))
			checkParseError(t, err, tc.wantErr)
			if n := len(Flatten(err)); n != len(tc.wantErr) {
				t.Errorf("%d errors, want %d:\n%v", n, len(tc.wantErr), err)
			}
		})
	}
}
