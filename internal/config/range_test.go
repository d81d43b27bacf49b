package config

import (
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// TestFloatRanges: NaN compares false with every bound, so a NaN threshold
// passed range checks written with < and >; with webhook.min_confidence NaN
// every recommendation was applied whatever its confidence.
func TestFloatRanges(t *testing.T) {
	checkParseCases(t, []parseCase{
		{
			name: "webhook NaNs",
			file: "webhook: {min_confidence: .nan, change_threshold: .nan, memory_margin: .nan}\n",
			wantErr: []string{
				"upid.yaml:1: webhook.min_confidence: invalid value NaN: want a finite number",
				"upid.yaml:1: webhook.change_threshold: invalid value NaN: want a finite number",
				"upid.yaml:1: webhook.memory_margin: invalid value NaN: want a finite number",
			},
		},
		{name: "webhook infinity", file: "webhook:\n  memory_margin: .inf\n", wantErr: []string{"upid.yaml:2: webhook.memory_margin: invalid value +Inf: want a finite number"}},
		{name: "webhook minus infinity", file: "webhook:\n  min_confidence: -.inf\n", wantErr: []string{"upid.yaml:2: webhook.min_confidence: invalid value -Inf: want a finite number"}},
		{name: "webhook min_confidence above 1", file: "webhook:\n  min_confidence: 1.5\n", wantErr: []string{"upid.yaml:2: webhook.min_confidence: invalid value 1.5: must be at most 1"}},
		{name: "webhook min_confidence below 0", file: "webhook:\n  min_confidence: -0.1\n", wantErr: []string{"upid.yaml:2: webhook.min_confidence: invalid value -0.1: must be at least 0"}},
		{name: "webhook change_threshold 1", file: "webhook:\n  change_threshold: 1\n", wantErr: []string{"upid.yaml:2: webhook.change_threshold: invalid value 1: must be below 1"}},
		{name: "webhook memory_margin above 10", file: "webhook:\n  memory_margin: 10.5\n", wantErr: []string{"upid.yaml:2: webhook.memory_margin: invalid value 10.5: must be at most 10"}},
		{name: "webhook bounds", file: "webhook:\n  min_confidence: 1\n  change_threshold: 0.99\n  memory_margin: 10\n"},
		{name: "webhook zeros", file: "webhook:\n  min_confidence: 0\n  change_threshold: 0\n  memory_margin: 0\n"},
		{
			name: "idle non-finite",
			file: "exporter:\n  idle:\n    min_coverage: .nan\n    real_requests_per_hour: .inf\n    cpu_base_cores: -.inf\n    cpu_per_health_request_seconds: .NaN\n",
			wantErr: []string{
				"upid.yaml:3: exporter.idle.min_coverage: invalid value NaN: want a finite number",
				"upid.yaml:4: exporter.idle.real_requests_per_hour: invalid value +Inf: want a finite number",
				"upid.yaml:5: exporter.idle.cpu_base_cores: invalid value -Inf: want a finite number",
				"upid.yaml:6: exporter.idle.cpu_per_health_request_seconds: invalid value NaN: want a finite number",
			},
		},
		{
			name: "idle out of range",
			file: "exporter:\n  idle:\n    min_coverage: 1.01\n    real_requests_per_hour: -1\n    cpu_base_cores: -0.001\n    cpu_per_health_request_seconds: -2\n",
			wantErr: []string{
				"upid.yaml:3: exporter.idle.min_coverage: invalid value 1.01: must be at most 1",
				"upid.yaml:4: exporter.idle.real_requests_per_hour: invalid value -1: must be at least 0",
				"upid.yaml:5: exporter.idle.cpu_base_cores: invalid value -0.001: must be at least 0",
				"upid.yaml:6: exporter.idle.cpu_per_health_request_seconds: invalid value -2: must be at least 0",
			},
		},
		{name: "idle bounds", file: "exporter:\n  idle:\n    min_coverage: 1\n    real_requests_per_hour: 0\n    cpu_base_cores: 0\n    cpu_per_health_request_seconds: 0\n"},
		{
			name: "recommend NaN",
			file: "exporter:\n  recommend:\n    min_confidence: .nan\n    cpu_margin: .inf\n",
			wantErr: []string{
				"upid.yaml:3: exporter.recommend.min_confidence: invalid value NaN: want a finite number",
				"upid.yaml:4: exporter.recommend.cpu_margin: invalid value +Inf: want a finite number",
			},
		},
		{name: "recommend override NaN", file: "exporter:\n  recommend:\n    overrides:\n    - {namespace: a, min_confidence: .nan}\n", wantErr: []string{"upid.yaml:4: exporter.recommend.overrides[0].min_confidence: NaN is out of range"}},
	})
}

// TestEveryFloatSettingIsFinite covers the float settings added later too.
func TestEveryFloatSettingIsFinite(t *testing.T) {
	var n int
	for _, s := range Settings() {
		if s.Type.Kind() != reflect.Float64 {
			continue
		}
		n++
		// A tag that does not parse would check nothing, silently.
		for _, tag := range []string{s.Min, strings.TrimPrefix(s.Max, "<")} {
			if _, err := strconv.ParseFloat(tag, 64); tag != "" && err != nil {
				t.Errorf("%s: range tag %q is not a number", s.Key, tag)
			}
		}
		for _, v := range []string{".nan", ".inf", "-.inf", ".NaN"} {
			parts := strings.Split(s.Key, ".")
			var file strings.Builder
			for i, p := range parts {
				file.WriteString(strings.Repeat("  ", i) + p + ":")
				if i == len(parts)-1 {
					file.WriteString(" " + v)
				}
				file.WriteString("\n")
			}
			_, err := Parse("upid.yaml", []byte(file.String()))
			want := "upid.yaml:" + strconv.Itoa(len(parts)) + ": " + s.Key + ": invalid value "
			if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "want a finite number") {
				t.Errorf("%s: %s: error %v, want %q... want a finite number", s.Key, v, err, want)
			}
		}
	}
	if n < 12 {
		t.Errorf("only %d float settings found; the sweep is broken", n)
	}
}

func TestOverrideNaN(t *testing.T) {
	_, err := Load("", Override{Key: "webhook.min_confidence", Raw: ".nan", Source: "env UPID_WEBHOOK_MIN_CONFIDENCE"})
	want := "env UPID_WEBHOOK_MIN_CONFIDENCE: webhook.min_confidence: invalid value NaN: want a finite number"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v, want %q", err, want)
	}
}

// TestCheckFloat: code that takes a setting's value from elsewhere than a
// file gets the file's verdict.
func TestCheckFloat(t *testing.T) {
	tests := []struct {
		key     string
		v       float64
		wantErr string
	}{
		{key: "webhook.change_threshold", v: 0.5},
		{key: "webhook.change_threshold", v: math.NaN(), wantErr: "webhook.change_threshold: invalid value NaN: want a finite number"},
		{key: "webhook.change_threshold", v: 1, wantErr: "webhook.change_threshold: invalid value 1: must be below 1"},
		{key: "webhook.memory_margin", v: math.Inf(1), wantErr: "webhook.memory_margin: invalid value +Inf: want a finite number"},
		{key: "webhook.memory_margin", v: -1, wantErr: "webhook.memory_margin: invalid value -1: must be at least 0"},
		{key: "webhook.min_confidence", v: math.Inf(-1), wantErr: "webhook.min_confidence: invalid value -Inf: want a finite number"},
		{key: "webhook.min_confidence", v: 1},
		{key: "webhook.mode", v: 0, wantErr: "webhook.mode: not a float setting"},
		{key: "nope", v: 0, wantErr: "nope: not a float setting"},
	}
	for _, tc := range tests {
		err := CheckFloat(tc.key, tc.v)
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || err.Error() != tc.wantErr) {
			t.Errorf("CheckFloat(%s, %v) = %v, want %q", tc.key, tc.v, err, tc.wantErr)
		}
	}
}
