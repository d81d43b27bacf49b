package exporter

import (
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestAPIAnswersWholeOrFails checks that the JSON API never answers 200
// with a cut body: a value JSON cannot carry is a 500 that says so.
func TestAPIAnswersWholeOrFails(t *testing.T) {
	one, inf := 1.0, math.Inf(1)
	for _, tc := range []struct {
		name  string
		bytes *float64
		code  int
	}{
		{"finite", &one, http.StatusOK},
		{"infinite", &inf, http.StatusInternalServerError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Service{}
			s.last = &Results{At: time.Now(), Workloads: []WorkloadResult{
				{Namespace: "a", Kind: "Deployment", Name: "web", Containers: []ContainerResult{{Name: "app", Recommendation: &Recommendation{OK: true, MemoryRequestBytes: tc.bytes}}}},
			}}
			rr := httptest.NewRecorder()
			s.ServeHTTP(rr, httptest.NewRequest(http.MethodGet, "/api/v1/workloads", nil))
			if rr.Code != tc.code {
				t.Fatalf("status %d, want %d: %s", rr.Code, tc.code, rr.Body)
			}
			if tc.code != http.StatusOK {
				if !strings.Contains(rr.Body.String(), "encoding the results") {
					t.Errorf("error body %q does not say what failed", rr.Body)
				}
				return
			}
			var got WorkloadsResponse
			if err := json.Unmarshal(rr.Body.Bytes(), &got); err != nil || len(got.Workloads) != 1 {
				t.Errorf("body %q: %v", rr.Body, err)
			}
		})
	}
}

// blockedWriter is a client that does not read: Write waits for release.
type blockedWriter struct {
	httptest.ResponseRecorder
	release chan struct{}
}

func (b *blockedWriter) Write(p []byte) (int, error) {
	<-b.release
	return b.ResponseRecorder.Write(p)
}

// TestAPIBuildsFewAnswersAtOnce: each answer is built whole in memory, so
// past maxAPIInFlight at once a request is told to come back, and served
// again once one is done.
func TestAPIBuildsFewAnswersAtOnce(t *testing.T) {
	s := &Service{}
	s.last = &Results{At: time.Now(), Workloads: []WorkloadResult{{Namespace: "a", Kind: "Deployment", Name: "web"}}}
	release := make(chan struct{})
	done := make(chan struct{})
	for range maxAPIInFlight {
		go func() {
			defer func() { done <- struct{}{} }()
			s.ServeHTTP(&blockedWriter{ResponseRecorder: *httptest.NewRecorder(), release: release}, httptest.NewRequest(http.MethodGet, "/api/v1/workloads", nil))
		}()
	}
	for deadline := time.Now().Add(5 * time.Second); s.apiInFlight.Load() < maxAPIInFlight; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d answers in flight, want %d", s.apiInFlight.Load(), maxAPIInFlight)
		}
	}
	rr := httptest.NewRecorder()
	s.ServeHTTP(rr, httptest.NewRequest(http.MethodGet, "/api/v1/workloads", nil))
	if rr.Code != http.StatusServiceUnavailable || rr.Header().Get("Retry-After") == "" {
		t.Errorf("status %d, Retry-After %q with %d answers in flight, want 503 and a Retry-After", rr.Code, rr.Header().Get("Retry-After"), maxAPIInFlight)
	}
	close(release)
	for range maxAPIInFlight {
		<-done
	}
	rr = httptest.NewRecorder()
	s.ServeHTTP(rr, httptest.NewRequest(http.MethodGet, "/api/v1/workloads", nil))
	if rr.Code != http.StatusOK {
		t.Errorf("status %d once the others were done, want 200", rr.Code)
	}
}
