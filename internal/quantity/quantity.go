// Package quantity writes CPU and memory amounts as Kubernetes requests
// and limits. The webhook, the CLI's patches and commands, and its tables
// all round through it, so the request a GitOps patch proposes is the one
// the webhook would set.
package quantity

import (
	"math"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

const mebibyte = 1 << 20

// Request writes v (cores for CPU, bytes otherwise) as people write a
// request: whole millicores, and memory rounded up to a whole MiB (bytes
// below one), never under the unit. Rounding up keeps a recommendation
// from being cut below what was measured. hi > 0 is a bound the value
// must not pass (a limit, a LimitRange max): when rounding would pass it,
// v is written rounded up to the unit only, and never above hi, which an
// API server would refuse.
func Request(r corev1.ResourceName, v, hi float64) resource.Quantity {
	q := rounded(r, v)
	if hi <= 0 || q.AsApproximateFloat64() <= hi {
		return q
	}
	if r == corev1.ResourceCPU {
		return *resource.NewMilliQuantity(int64(math.Max(1, math.Min(math.Ceil(v*1000-1e-6), math.Floor(hi*1000+1e-6)))), resource.DecimalSI)
	}
	return *resource.NewQuantity(int64(math.Max(1, math.Min(math.Ceil(v-1e-9), math.Floor(hi+1e-6)))), resource.BinarySI)
}

func rounded(r corev1.ResourceName, v float64) resource.Quantity {
	if r == corev1.ResourceCPU {
		return *resource.NewMilliQuantity(int64(math.Max(1, math.Ceil(v*1000-1e-6))), resource.DecimalSI)
	}
	mib := math.Ceil(v/mebibyte - 1e-9)
	if mib*mebibyte != v && v >= mebibyte {
		return *resource.NewQuantity(int64(mib)*mebibyte, resource.BinarySI)
	}
	return *resource.NewQuantity(int64(math.Max(1, math.Ceil(v))), resource.BinarySI)
}
