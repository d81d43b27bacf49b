package webhook

import (
	"os"
	"runtime/debug"
)

// GCPercent is the garbage collector's target `upid webhook` runs with. Its
// live heap is 2-3 MB, so Go's default of 100 collects every ~20 admissions,
// and mark assists and scheduling delay then land in admission tails (about 70
// cycles per 4,000 requests in BenchmarkAdmissionTLS, 14 at 400). The price is
// a heap peak of a few tens of MB.
const GCPercent = 400

// TuneGC sets GCPercent unless the operator chose with GOGC, and returns the
// value in force.
func TuneGC() int {
	if v, ok := os.LookupEnv("GOGC"); ok && v != "" {
		old := debug.SetGCPercent(100)
		debug.SetGCPercent(old)
		return old
	}
	debug.SetGCPercent(GCPercent)
	return GCPercent
}
