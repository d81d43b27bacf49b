package web

import (
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// Stream adds the collectors of one scrape, which /metrics gathers and
// encodes one at a time after the registry's: give it one collector per
// metric family and a scrape holds one family's metrics in memory, not all
// of them. The exporter's 1.4 million series at 150,000 pods made gathering
// everything at once the process's peak memory. scrape is called once per
// scrape, so the collectors it returns can share one reading of their source:
// the exporter's families all come from the same cycle, even when a cycle
// ends while a large scrape is being written. Each collector gets a registry
// of its own, so a family inconsistent in itself fails as it would in
// Registry: the metrics that were gathered are served and the error is logged.
func (s *Server) Stream(scrape func() []prometheus.Collector) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range scrape() {
		// described holds every family served, so a family streamed
		// twice, or also in the registry, is refused as Register would.
		if err := s.described.Register(c); err != nil {
			return err
		}
	}
	s.streamed = append(s.streamed, scrape)
	return nil
}

// serveMetrics is /metrics: the registry, then every streamed collector, in
// the format the scraper asked for (OpenMetrics included), gzipped when it
// accepts gzip. A failing family is logged and left out; the others are
// served, as promhttp's ContinueOnError does.
func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	gatherers := []prometheus.Gatherer{s.Registry}
	for _, scrape := range s.streamed {
		for _, c := range scrape() {
			gatherers = append(gatherers, family{c})
		}
	}
	s.mu.Unlock()

	format := expfmt.NegotiateIncludingOpenMetrics(r.Header)
	w.Header().Set("Content-Type", string(format))
	var out io.Writer = w
	if acceptsGzip(r.Header.Get("Accept-Encoding")) {
		w.Header().Set("Content-Encoding", "gzip")
		gz := gzip.NewWriter(w)
		defer gz.Close()
		out = gz
	}
	enc := expfmt.NewEncoder(out, format)
	for _, g := range gatherers {
		mfs, err := g.Gather()
		if err != nil {
			s.opts.Logger.Error("metrics exposition: gathering failed; serving what was gathered", "err", err)
		}
		for _, mf := range mfs {
			if err := enc.Encode(mf); err != nil {
				// The client went away, or the family cannot be written:
				// the status line is long gone, so only the log can tell.
				s.opts.Logger.Error("metrics exposition: encoding failed", "family", mf.GetName(), "err", err)
				return
			}
		}
	}
	if c, ok := enc.(expfmt.Closer); ok {
		if err := c.Close(); err != nil {
			s.opts.Logger.Error("metrics exposition: closing failed", "err", fmt.Sprint(err))
		}
	}
}

func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		enc, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") && !strings.Contains(strings.ReplaceAll(params, " ", ""), "q=0") {
			return true
		}
	}
	return false
}

// family gathers one streamed collector through a registry of its own,
// which checks it as Registry checks what it holds.
type family struct{ prometheus.Collector }

func (f family) Gather() ([]*dto.MetricFamily, error) {
	r := prometheus.NewRegistry()
	if err := r.Register(f.Collector); err != nil {
		return nil, err
	}
	return r.Gather()
}
