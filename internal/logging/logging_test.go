package logging

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	stdlog "log"
	"log/slog"
	"strings"
	"testing"

	"github.com/go-kit/log/level"
	"k8s.io/klog/v2"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// TestBridgesWriteOneFormat logs once through every API a dependency may use
// and checks that each line arrives as the same JSON shape.
func TestBridgesWriteOneFormat(t *testing.T) {
	var buf bytes.Buffer
	l, err := New(&buf, "info", "json")
	if err != nil {
		t.Fatal(err)
	}
	Install(l, "info")
	t.Cleanup(func() { klog.ClearLogger() })

	level.Info(l.Kit).Log("msg", "from go-kit")
	slog.Info("from slog", "k", "v")
	stdlog.Print("from stdlib")
	klog.InfoS("from klog", "k", "v")
	klog.Flush()
	ctrllog.Log.WithName("ctrl").Info("from logr")
	slog.Debug("dropped at info")
	klog.V(4).InfoS("dropped at verbosity 0")

	want := []string{"from go-kit", "from slog", "from stdlib", "from klog", "from logr"}
	var got []string
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		line := sc.Text()
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("line is not JSON: %q: %v", line, err)
		}
		for _, key := range []string{"ts", "level", "msg", "caller"} {
			if _, ok := rec[key]; !ok {
				t.Errorf("line %q has no %q", line, key)
			}
		}
		if _, ok := rec["time"]; ok {
			t.Errorf("line %q repeats the time as %q", line, "time")
		}
		got = append(got, rec["msg"].(string))
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("messages = %q, want %q", got, want)
	}
}

func TestLevelFilter(t *testing.T) {
	tests := []struct {
		level string
		want  []string
	}{
		{"debug", []string{"debug", "info", "warn", "error"}},
		{"info", []string{"info", "warn", "error"}},
		{"warn", []string{"warn", "error"}},
		{"error", []string{"error"}},
	}
	for _, tc := range tests {
		t.Run(tc.level, func(t *testing.T) {
			var buf bytes.Buffer
			l, err := New(&buf, tc.level, "logfmt")
			if err != nil {
				t.Fatal(err)
			}
			l.Slog.Debug("debug")
			l.Slog.Info("info")
			level.Warn(l.Kit).Log("msg", "warn")
			l.Slog.Error("error", "err", errors.New("boom"))
			var got []string
			for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
				if !strings.HasPrefix(line, "ts=") {
					t.Errorf("logfmt line does not start with ts=: %q", line)
				}
				for _, w := range []string{"debug", "info", "warn", "error"} {
					if strings.Contains(line, "msg="+w) {
						got = append(got, w)
					}
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("level %s let through %v, want %v", tc.level, got, tc.want)
			}
		})
	}
}

func TestRejectsUnknownSettings(t *testing.T) {
	if _, err := New(&bytes.Buffer{}, "loud", "json"); err == nil || !strings.Contains(err.Error(), "log.level") {
		t.Errorf("unknown level: err = %v, want one naming log.level", err)
	}
	if _, err := New(&bytes.Buffer{}, "info", "xml"); err == nil || !strings.Contains(err.Error(), "log.format") {
		t.Errorf("unknown format: err = %v, want one naming log.format", err)
	}
}
