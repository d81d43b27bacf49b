package main

import (
	"errors"
	"log/slog"
	"math"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// memoryLimitRatio is the share of the container's memory limit the Go
// runtime may use before it collects harder. The kernel charges the
// container for more than the Go heap (the runtime's own structures, page
// cache, a burst allocated between two collections), and a limit equal to
// the kernel's leaves the collector no room to win before the OOM kill.
// Prometheus runs at the same 90 % (--auto-gomemlimit.ratio).
const memoryLimitRatio = 0.9

// setMemoryLimit bounds the Go runtime under the memory limit provider
// reports (the container's cgroup in a pod), unless the operator chose with
// GOMEMLIMIT or AUTOMEMLIMIT (a ratio, or "off"). It returns the limit in
// force, math.MaxInt64 when there is none. A process outside any memory
// cgroup (a laptop, `upid exporter --demo`) runs unbounded, as Go does by
// default; that is not worth more than a debug line.
func setMemoryLimit(log *slog.Logger, provider memlimit.Provider) int64 {
	limit, err := memlimit.Set(memlimit.WithRatio(memoryLimitRatio), memlimit.WithProvider(provider))
	switch {
	case errors.Is(err, memlimit.ErrCgroupsNotSupported), errors.Is(err, memlimit.ErrNoCgroup):
		log.Debug("no memory cgroup: the Go runtime's memory is not bounded", "err", err)
	case err != nil:
		log.Warn("cannot read the memory limit: the Go runtime's memory is not bounded; set GOMEMLIMIT", "err", err)
	case limit == math.MaxInt64:
		log.Debug("no memory limit: the Go runtime's memory is not bounded")
	default:
		log.Info("Go runtime memory limit", "gomemlimit_bytes", limit)
	}
	return limit
}
