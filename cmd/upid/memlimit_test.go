package main

import (
	"bytes"
	"errors"
	"log/slog"
	"math"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

func TestSetMemoryLimit(t *testing.T) {
	const mib = 1 << 20
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	const preset = 123 * mib

	failing := func(err error) memlimit.Provider { return func() (uint64, error) { return 0, err } }
	for _, tc := range []struct {
		name                string
		gomemlimit, ratio   string // environment; ratio unset when ""
		provider            memlimit.Provider
		want                int64
		wantLevel, wantText string
	}{
		{name: "a tenth of the container's limit is left to the rest", provider: memlimit.Limit(1000 * mib), want: 900 * mib, wantLevel: "INFO", wantText: "gomemlimit_bytes=943718400"},
		{name: "GOMEMLIMIT is the operator's choice", gomemlimit: "512MiB", provider: memlimit.Limit(1000 * mib), want: preset, wantLevel: "INFO"},
		{name: "AUTOMEMLIMIT sets another ratio", ratio: "0.5", provider: memlimit.Limit(1000 * mib), want: 500 * mib, wantLevel: "INFO", wantText: "gomemlimit_bytes=524288000"},
		{name: "AUTOMEMLIMIT=off leaves it alone", ratio: "off", provider: memlimit.Limit(1000 * mib), want: preset, wantLevel: "INFO"},
		{name: "no limit on the cgroup", provider: failing(memlimit.ErrNoLimit), want: math.MaxInt64, wantLevel: "DEBUG"},
		{name: "not in a memory cgroup", provider: failing(memlimit.ErrNoCgroup), want: preset, wantLevel: "DEBUG"},
		{name: "cgroup unreadable: said, with the way out", provider: failing(errors.New("permission denied")), want: preset, wantLevel: "WARN", wantText: "set GOMEMLIMIT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("GOMEMLIMIT", tc.gomemlimit)
			if tc.ratio != "" {
				t.Setenv("AUTOMEMLIMIT", tc.ratio)
			}
			debug.SetMemoryLimit(preset)
			var out bytes.Buffer
			got := setMemoryLimit(slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug})), tc.provider)
			if inForce := debug.SetMemoryLimit(-1); got != tc.want || inForce != tc.want {
				t.Errorf("limit returned %d, in force %d; want %d", got, inForce, tc.want)
			}
			if !strings.Contains(out.String(), "level="+tc.wantLevel) || !strings.Contains(out.String(), tc.wantText) {
				t.Errorf("logged %q, want a %s line with %q", out.String(), tc.wantLevel, tc.wantText)
			}
		})
	}
}
