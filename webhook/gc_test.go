package webhook

import (
	"runtime/debug"
	"testing"
)

func TestTuneGC(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	for _, tc := range []struct {
		name, gogc string
		set        bool
		want       int
	}{
		{name: "unset: the webhook's own target", want: GCPercent},
		{name: "empty: as unset", gogc: "", set: true, want: GCPercent},
		{name: "operator's choice kept", gogc: "150", set: true, want: 150},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.set {
				t.Setenv("GOGC", tc.gogc)
				// The runtime reads GOGC at start; emulate a process started with it.
				if tc.gogc != "" {
					debug.SetGCPercent(150)
				}
			} else {
				t.Setenv("GOGC", "")
			}
			if got := TuneGC(); got != tc.want {
				t.Fatalf("TuneGC() = %d, want %d", got, tc.want)
			}
			if got := debug.SetGCPercent(tc.want); got != tc.want {
				t.Fatalf("GC percent in force = %d, want %d", got, tc.want)
			}
		})
	}
}
