package quantity

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestRequest(t *testing.T) {
	const mi = 1 << 20
	cpu, mem := corev1.ResourceCPU, corev1.ResourceMemory
	for _, tc := range []struct {
		r     corev1.ResourceName
		v, hi float64
		want  string
	}{
		{cpu, 0.25, 0, "250m"},
		{cpu, 0.2501, 0, "251m"},              // up, never below what was computed
		{cpu, 0.2500000001, 0, "250m"},        // float noise is not a millicore
		{cpu, 0.0001, 0, "1m"},                // at least the unit
		{cpu, 2, 0, "2"},                      //
		{cpu, 0.2501, 0.2505, "250m"},         // 251m would pass hi: the bound's whole millicores win
		{cpu, 0.2501, 0.3, "251m"},            // room under hi
		{mem, 100 * mi, 0, "100Mi"},           //
		{mem, 100*mi + 1, 0, "101Mi"},         // up to a whole MiB
		{mem, 1000, 0, "1k"},                  // bytes below one MiB
		{mem, 0.2, 0, "1"},                    // at least a byte
		{mem, 500e6 - 10, 500e6, "499999990"}, // a 500M limit: 477Mi would pass it; exact instead
		{mem, 500e6 + 10, 500e6, "500000000"}, // above the bound: the bound
		{mem, 128 * mi, 128 * mi, "128Mi"},    // at the bound
	} {
		q := Request(tc.r, tc.v, tc.hi)
		if got := q.String(); got != tc.want {
			t.Errorf("Request(%s, %v, %v) = %s, want %s", tc.r, tc.v, tc.hi, got, tc.want)
		}
		if tc.hi > 0 && q.AsApproximateFloat64() > tc.hi*(1+1e-9) {
			t.Errorf("Request(%s, %v, %v) = %s passes the bound", tc.r, tc.v, tc.hi, q.String())
		}
	}
}
