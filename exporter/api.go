package exporter

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/common/model"
)

// WorkloadsResponse is the body of GET /api/v1/workloads.
type WorkloadsResponse struct {
	At        time.Time        `json:"at"`
	Window    string           `json:"window"`
	Workloads []WorkloadResult `json:"workloads"`
}

// maxAPIInFlight is how many answers of the JSON API are built at once.
const maxAPIInFlight = 4

// ServeHTTP serves GET /api/v1/workloads, filterable by namespace, kind and
// idle (true: only idle workloads; false: only the others). The CLI and the
// webhook read the same results as the metrics.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	// Each answer is built whole in memory, tens of MB in a large
	// cluster: a few at once, and the rest told to come back (found in
	// review: 20 concurrent readers took 1.6 GiB).
	if s.apiInFlight.Add(1) > maxAPIInFlight {
		s.apiInFlight.Add(-1)
		w.Header().Set("Retry-After", "5")
		http.Error(w, "busy: too many requests at once; retry", http.StatusServiceUnavailable)
		return
	}
	defer s.apiInFlight.Add(-1)
	q := r.URL.Query()
	var wantIdle *bool
	if v := q.Get("idle"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			http.Error(w, "idle: want true or false", http.StatusBadRequest)
			return
		}
		wantIdle = &b
	}
	res := s.Last()
	if res == nil {
		// Before the first cycle there is nothing true to say.
		http.Error(w, "no results yet: the first analysis cycle has not finished", http.StatusServiceUnavailable)
		return
	}
	out := WorkloadsResponse{At: res.At, Window: model.Duration(res.Window).String(), Workloads: []WorkloadResult{}}
	for _, wl := range res.Workloads {
		if ns := q.Get("namespace"); ns != "" && wl.Namespace != ns {
			continue
		}
		if k := q.Get("kind"); k != "" && wl.Kind != k {
			continue
		}
		if wantIdle != nil && (wl.Idle.State == "idle") != *wantIdle {
			continue
		}
		out.Workloads = append(out.Workloads, wl)
	}
	// Encoded whole before the status is written: a value JSON cannot
	// carry must be a 500 that says so, not a 200 with an empty body.
	body, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		http.Error(w, "encoding the results: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(body, '\n'))
}
