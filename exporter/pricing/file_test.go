package pricing

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseFile(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		want    *File
		wantErr []string // each must appear in the error
	}{
		{name: "empty file", file: "", want: &File{}},
		{name: "comments only", file: "# no prices yet\n", want: &File{}},
		{name: "null document", file: "~\n", want: &File{}},
		{name: "null sections", file: "default:\nrules:\n", want: &File{}},
		{
			name: "rule inherits what it leaves out",
			file: "rules:\n  - match: {region: eu-west-1}\n    gpu_hour: 1\n    cpu_core_hour:\n",
			want: &File{Rules: []Rule{{Name: "rules[0]", Match: Match{Region: "eu-west-1"}, Rates: Rates{GPUHour: f(1)}}}},
		},
		{
			name: "capacity type and integers",
			file: "default: {cpu_core_hour: 1, memory_gib_hour: 0}\nrules:\n  - name: od\n    match: {capacity_type: ON_DEMAND, instance_type: 12}\n",
			want: &File{
				Default: &Rates{CPUCoreHour: f(1), MemoryGiBHour: f(0)},
				Rules:   []Rule{{Name: "od", Match: Match{CapacityType: OnDemand, InstanceType: "12"}}},
			},
		},
		{
			name:    "unknown key with line and suggestion",
			file:    "rules:\n  - name: a\n    match:\n      instnce_type: m5.large\n",
			wantErr: []string{`pricing.yaml:4: rules[0].match.instnce_type: unknown key (did you mean "instance_type"?)`},
		},
		{
			name:    "unknown key lists the known ones",
			file:    "default:\n  cpu: 0.1\n",
			wantErr: []string{`pricing.yaml:2: default.cpu: unknown key (known keys here: cpu_core_hour, memory_gib_hour, gpu_hour)`},
		},
		{
			name:    "unknown top-level key",
			file:    "defaults:\n  cpu_core_hour: 0.1\n",
			wantErr: []string{`pricing.yaml:1: defaults: unknown key (did you mean "default"?)`},
		},
		{
			name:    "negative price",
			file:    "rules:\n  - name: a\n    match: {region: r}\n    memory_gib_hour: -0.004\n",
			wantErr: []string{`pricing.yaml:4: rules[0].memory_gib_hour: invalid value -0.004: prices cannot be negative`},
		},
		{
			name:    "negative default",
			file:    "default: {gpu_hour: -1}\n",
			wantErr: []string{`pricing.yaml:1: default.gpu_hour: invalid value -1: prices cannot be negative`},
		},
		{
			name:    "bad selector",
			file:    "rules:\n  - name: gpu\n    match:\n      selector: \"pool==,tier in (a\"\n",
			wantErr: []string{`pricing.yaml:4: rules[0].match.selector: invalid label selector "pool==,tier in (a"`},
		},
		{
			name:    "selector of everything",
			file:    "rules:\n  - match: {selector: \" \"}\n",
			wantErr: []string{`pricing.yaml:2: rules[0].match.selector: empty`},
		},
		{
			name:    "quoted number",
			file:    "default:\n  cpu_core_hour: \"0.03\"\n",
			wantErr: []string{`pricing.yaml:2: default.cpu_core_hour: invalid value "0.03" (a string): want a number of dollars per vCPU-hour`},
		},
		{
			name:    "word for a number",
			file:    "default:\n  gpu_hour: free\n",
			wantErr: []string{`pricing.yaml:2: default.gpu_hour: invalid value "free" (a string): want a number of dollars per GPU-hour`},
		},
		{
			name:    "list for a number",
			file:    "default:\n  memory_gib_hour: [1, 2]\n",
			wantErr: []string{`pricing.yaml:2: default.memory_gib_hour: invalid value a list: want a number`},
		},
		{
			name:    "infinite and not-a-number",
			file:    "default:\n  cpu_core_hour: .inf\n  gpu_hour: .nan\n",
			wantErr: []string{`pricing.yaml:2: default.cpu_core_hour: invalid value .inf: want a finite number`, `pricing.yaml:3: default.gpu_hour: invalid value .nan: want a finite number`},
		},
		{
			name:    "absurd price",
			file:    "default:\n  cpu_core_hour: 1e12\n",
			wantErr: []string{`pricing.yaml:2: default.cpu_core_hour: invalid value 1e12: more than 1e+09 per vCPU-hour`},
		},
		{
			name:    "bad capacity type",
			file:    "rules:\n  - match: {capacity_type: preemptible}\n",
			wantErr: []string{`pricing.yaml:2: rules[0].match.capacity_type: invalid value "preemptible": want one of spot, on-demand, reserved`},
		},
		{
			name:    "mapping for a string",
			file:    "rules:\n  - name: {a: b}\n    match: {region: r}\n",
			wantErr: []string{`pricing.yaml:2: rules[0].name: invalid value a mapping: want a string`},
		},
		{
			name:    "empty string condition",
			file:    "rules:\n  - match:\n      region: \"\"\n",
			wantErr: []string{`pricing.yaml:3: rules[0].match.region: empty; leave the key out instead`},
		},
		{
			name:    "missing match",
			file:    "rules:\n  - name: all\n    cpu_core_hour: 0.1\n",
			wantErr: []string{`pricing.yaml:2: rules[0].match: missing`},
		},
		{
			name:    "empty match",
			file:    "rules:\n  - name: all\n    match: {}\n",
			wantErr: []string{`pricing.yaml:3: rules[0].match: no conditions`},
		},
		{
			name:    "match of nulls",
			file:    "rules:\n  - name: all\n    match:\n      region:\n",
			wantErr: []string{`pricing.yaml:4: rules[0].match: no conditions`},
		},
		{
			name:    "rules not a list",
			file:    "rules:\n  spot: {}\n",
			wantErr: []string{`pricing.yaml:2: rules: must be a list of rules, not a mapping`},
		},
		{
			name:    "rule not a mapping",
			file:    "rules:\n  - spot\n",
			wantErr: []string{`pricing.yaml:2: rules[0]: must be a mapping with match: and rates, not "spot" (a string)`},
		},
		{
			name:    "default not a mapping",
			file:    "default: 0.03\n",
			wantErr: []string{`pricing.yaml:1: default: must be a mapping of rates, not 0.03`},
		},
		{
			name:    "duplicate key",
			file:    "default:\n  gpu_hour: 1\n  gpu_hour: 2\n",
			wantErr: []string{`pricing.yaml:3: default.gpu_hour: duplicate key (first set on line 2)`},
		},
		{
			name:    "duplicate rule name",
			file:    "rules:\n  - name: a\n    match: {region: x}\n  - name: a\n    match: {region: y}\n",
			wantErr: []string{`pricing.yaml:4: rules[1].name: duplicate rule name "a" (first used on line 2)`},
		},
		{
			name:    "alias",
			file:    "default: {gpu_hour: &g 1}\nrules:\n  - match: {region: r}\n    gpu_hour: *g\n",
			wantErr: []string{`pricing.yaml:4: rules[0].gpu_hour: YAML aliases (*name) are not supported`},
		},
		{
			name:    "merge key",
			file:    "default: &d {gpu_hour: 1}\nrules:\n  - match: {region: r}\n    <<: *d\n",
			wantErr: []string{`pricing.yaml:4: rules[0].<<: unknown key`},
		},
		{
			name:    "top level not a mapping",
			file:    "- a\n",
			wantErr: []string{`pricing.yaml:1: the pricing file must be a mapping`},
		},
		{
			name:    "two documents",
			file:    "default: {}\n---\nrules: []\n",
			wantErr: []string{`pricing.yaml:2: more than one YAML document`},
		},
		{
			name:    "syntax error",
			file:    "default:\n  gpu_hour: [\n",
			wantErr: []string{`pricing.yaml: `},
		},
		{
			name: "every error at once",
			file: "default: {cpu_core_hour: -1}\nrules:\n  - match: {capacity_type: cheap}\n  - match: {region: r}\n    gpu_hours: 2\n",
			wantErr: []string{
				"pricing.yaml:1: default.cpu_core_hour",
				"pricing.yaml:3: rules[0].match.capacity_type",
				`pricing.yaml:5: rules[1].gpu_hours: unknown key (did you mean "gpu_hour"?)`,
			},
		},
		{
			name: "errors in line order",
			file: "rules:\n  - name: a\n    match: {region: x}\n  - name: a\n    match: {}\n",
			wantErr: []string{
				"pricing.yaml:4: rules[1].name: duplicate rule name \"a\" (first used on line 2); names tell rules apart in metrics\n" +
					"pricing.yaml:5: rules[1].match: no conditions",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseFile("pricing.yaml", []byte(tc.file))
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatalf("no error, want %q", tc.wantErr)
				}
				if got != nil {
					t.Errorf("got a file with an error: %+v", got)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				checkErrors(t, "pricing.yaml", err)
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %s\nwant %s", dump(got), dump(tc.want))
			}
		})
	}
}

// checkErrors asserts that err consists of *Error values located in file name.
func checkErrors(t *testing.T, name string, err error) {
	t.Helper()
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		var pe *Error
		if !errors.As(e, &pe) {
			t.Errorf("%v (%T) is not an *Error", e, e)
			continue
		}
		if pe.Source != name && !strings.HasPrefix(pe.Source, name+":") {
			t.Errorf("%v: source %q is not in %s", e, pe.Source, name)
		}
	}
}

func dump(f *File) string {
	if f == nil {
		return "nil"
	}
	s := "{"
	if f.Default != nil {
		s += "default " + rates(*f.Default) + " "
	}
	for _, r := range f.Rules {
		s += "[" + r.Name + " " + strings.Join([]string{r.Match.InstanceType, r.Match.Region, r.Match.CapacityType, r.Match.Selector}, "|") + " " + rates(r.Rates) + "]"
	}
	return s + "}"
}

func TestParseFileTooLarge(t *testing.T) {
	data := []byte("# " + strings.Repeat("x", MaxFileBytes))
	if _, err := ParseFile("big.yaml", data); err == nil || !strings.Contains(err.Error(), "big.yaml: file is larger than 1048576 bytes") {
		t.Errorf("err = %v", err)
	}
}

func TestParseFileManyErrors(t *testing.T) {
	var b strings.Builder
	b.WriteString("default:\n")
	for i := range 200 {
		b.WriteString("  k")
		b.WriteString(strings.Repeat("x", i))
		b.WriteString(": 1\n")
	}
	_, err := ParseFile("p.yaml", []byte(b.String()))
	if err == nil {
		t.Fatal("no error")
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != maxErrors+1 {
		t.Errorf("%d lines of errors, want %d", n, maxErrors+1)
	}
	if !strings.Contains(err.Error(), "p.yaml: more than 50 errors") {
		t.Errorf("no note of the errors left out: %v", err)
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "pricing.yaml")
	if err := os.WriteFile(good, []byte("default: {gpu_hour: 2}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	file, err := LoadFile(good)
	if err != nil || file.Default == nil || *file.Default.GPUHour != 2 {
		t.Fatalf("LoadFile = %+v, %v", file, err)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("default:\n  gpu: 2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadFile(bad); err == nil || !strings.Contains(err.Error(), bad+":2: default.gpu: unknown key") {
		t.Errorf("LoadFile(bad) error = %v", err)
	}

	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, make([]byte, MaxFileBytes+10), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadFile(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("LoadFile(big) error = %v", err)
	}

	if _, err := LoadFile(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "pricing file") {
		t.Errorf("LoadFile(missing) error = %v", err)
	}
}

func FuzzParseFile(f *testing.F) {
	if data, err := os.ReadFile("testdata/example.yaml"); err == nil {
		f.Add(data)
	}
	for _, seed := range []string{
		"",
		"default: {cpu_core_hour: 0.1, memory_gib_hour: 0.01, gpu_hour: 3}\n",
		"rules:\n  - name: a\n    match: {instance_type: m5.large, region: us-east-1, capacity_type: SPOT, selector: 'a=b,c notin (d)'}\n    cpu_core_hour: 1e3\n",
		"rules:\n  - match: {selector: \"!x\"}\n    gpu_hour: 0x10\n",
		"default: &a {gpu_hour: -1}\nrules: [*a, {match: {region: *a}}]\n",
		"default: {cpu_core_hour: .inf, memory_gib_hour: .nan}\n",
		"rules:\n- {match: {capacity_type: reserved}, memory_gib_hour: !!float 1}\n- {match: {selector: 'a in (b'}}\n",
		"default:\n  gpu_hour: 999999999\n---\nx: 1\n",
		"{[1]: 2, ? {a: b} : c}\n",
	} {
		f.Add([]byte(seed))
	}
	nodes := []Node{
		{},
		{Name: "n", InstanceType: "m5.large", Region: "us-east-1", CapacityType: Spot, Labels: map[string]string{"a": "b", "x": "y"}, CPUCores: 2, MemoryBytes: 8 << 30},
		{Name: "g", CapacityType: Reserved, Labels: map[string]string{"pool": "gpu", "tier": "a"}, CPUCores: 96, MemoryBytes: 768 << 30, GPUs: 8},
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := ParseFile("fuzz.yaml", data)
		if err != nil {
			if file != nil {
				t.Fatalf("a file and an error: %v", err)
			}
			checkErrors(t, "fuzz.yaml", err)
			return
		}
		ok := func(r *float64) bool { return r == nil || (*r >= 0 && *r <= MaxRate) }
		if d := file.Default; d != nil && (!ok(d.CPUCoreHour) || !ok(d.MemoryGiBHour) || !ok(d.GPUHour)) {
			t.Fatalf("accepted default %s", rates(*d))
		}
		names := map[string]bool{}
		for _, r := range file.Rules {
			if !ok(r.CPUCoreHour) || !ok(r.MemoryGiBHour) || !ok(r.GPUHour) {
				t.Fatalf("accepted rule %s %s", r.Name, rates(r.Rates))
			}
			if r.Name == "" || names[r.Name] {
				t.Fatalf("rule name %q empty or repeated", r.Name)
			}
			names[r.Name] = true
			if r.Match.empty() {
				t.Fatalf("rule %s accepted with an empty match", r.Name)
			}
		}
		p := New(file, nil)
		for _, n := range nodes {
			price := p.Price(n)
			for _, r := range []float64{price.CPUPerCoreHour, price.MemoryPerGiBHour, price.GPUPerHour} {
				if !(r >= 0) || r > MaxRate {
					t.Fatalf("price %+v of %+v", price, n)
				}
			}
			if h := price.NodeHourly(n); !(h >= 0) || math.IsInf(h, 0) {
				t.Fatalf("NodeHourly = %v for %+v", h, n)
			}
		}
	})
}
