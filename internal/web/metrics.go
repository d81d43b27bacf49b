package web

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// Snapshot is what one scrape serves besides the registry.
type Snapshot struct {
	// Version names the state Stored reads, and must be comparable: while
	// it stays equal (==), Stored is not gathered again and the bytes
	// encoded for it are served.
	Version any
	// Stored are gathered and encoded once per Version and format.
	Stored []prometheus.Collector
	// Live are gathered at every scrape.
	Live []prometheus.Collector
}

// Stream adds the collectors of one scrape, which /metrics gathers and
// encodes one at a time: give it one collector per metric family and an
// encoding holds one family's metrics in memory, not all of them. The
// exporter's 1.6 million series at 150,000 pods made gathering everything
// at once the process's peak memory.
//
// Stored families are encoded once per Version and format, compressed, and
// every scrape until the Version changes writes those bytes: at 150,000
// pods gathering, sorting and encoding them took 8 s a scrape against
// Prometheus' default 10 s timeout, for results that change once a cycle.
// Run encodes them again within a second of a change, for the formats
// scraped since the last one; a scrape that finds them changed and not yet
// encoded encodes them itself, so a scrape never serves an older Version
// than scrape returned when it began.
//
// scrape is called once per scrape, so the collectors it returns can share
// one reading of their source: the exporter's families all come from the
// same cycle, even when a cycle ends while a large scrape is being written.
// Each collector gets a registry of its own, so a family inconsistent in
// itself fails as it would in Registry: the metrics that were gathered are
// served and the error is logged.
func (s *Server) Stream(scrape func() Snapshot) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap := scrape()
	if v := snap.Version; v != nil && !reflect.TypeOf(v).Comparable() {
		return fmt.Errorf("metrics: a snapshot's version must be comparable, not %T", v)
	}
	for _, c := range slices.Concat(snap.Stored, snap.Live) {
		// described holds every family served, so a family streamed
		// twice, or also in the registry, is refused as Register would.
		if err := s.described.Register(c); err != nil {
			return err
		}
	}
	s.streamed = append(s.streamed, scrape)
	return nil
}

// scrape reads every stream once: the versions of their stored families,
// the stored collectors, and the gatherers of this scrape's live families
// (the registry first).
func (s *Server) scrape() (versions []any, stored []prometheus.Collector, live []prometheus.Gatherer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	live = []prometheus.Gatherer{s.Registry}
	for _, scrape := range s.streamed {
		snap := scrape()
		versions = append(versions, snap.Version)
		stored = append(stored, snap.Stored...)
		for _, c := range snap.Live {
			live = append(live, family{c})
		}
	}
	return versions, stored, live
}

// encoded is the stored families in one format, as raw DEFLATE blocks
// ending in a sync flush: a scrape that accepts gzip writes a gzip header,
// these blocks, the live families compressed after them, and the trailer,
// one gzip member in all. (Two members, the stored and the live, would be
// simpler, but curl and browsers stop at the first.)
type encoded struct {
	versions []any
	deflate  []byte
	crc      uint32 // CRC-32 of the uncompressed families
	size     uint32 // their length mod 2³², gzip's ISIZE
	// served says a scrape wrote it: only such formats are encoded again
	// ahead of the scrapes when the stored families change.
	served bool
}

// maxFormats bounds the encodings kept: Prometheus asks for one format,
// a person with curl for another.
const maxFormats = 4

// stored returns the stored families encoded in format for versions,
// encoding them if they are not. Encodings are serialised: a scrape that
// arrives while its format is being encoded waits for that encoding
// instead of starting a second one.
func (s *Server) stored(format expfmt.Format, versions []any, cs []prometheus.Collector) *encoded {
	s.encMu.Lock()
	defer s.encMu.Unlock()
	if e := s.encodings[format]; e != nil && slices.Equal(e.versions, versions) {
		e.served = true
		return e
	}
	e := s.encode(format, versions, cs)
	e.served = true
	if s.encodings == nil {
		s.encodings = map[expfmt.Format]*encoded{}
	}
	if _, ok := s.encodings[format]; !ok && len(s.encodings) >= maxFormats {
		// Make room: a format not scraped since it was encoded, else any.
		var victim expfmt.Format
		for f, old := range s.encodings {
			victim = f
			if !old.served {
				break
			}
		}
		delete(s.encodings, victim)
	}
	s.encodings[format] = e
	return e
}

// Encode encodes the stored families again, for every format scraped since
// they last changed, if they changed; a format not scraped since is
// dropped. Run calls it every second, so that the first scrape after a
// cycle finds its bytes ready.
func (s *Server) Encode() {
	s.encMu.Lock()
	defer s.encMu.Unlock()
	if len(s.encodings) == 0 {
		// Nothing scraped yet, or nothing since the last change: no
		// reading of the streams every second for nobody.
		return
	}
	versions, stored, _ := s.scrape()
	for f, e := range s.encodings {
		switch {
		case slices.Equal(e.versions, versions):
		case e.served:
			s.encodings[f] = s.encode(f, versions, stored)
		default:
			delete(s.encodings, f)
		}
	}
}

func (s *Server) encode(format expfmt.Format, versions []any, cs []prometheus.Collector) *encoded {
	var buf bytes.Buffer
	fw, err := flate.NewWriter(&buf, flate.DefaultCompression)
	if err != nil {
		panic(err) // only for a bad level
	}
	sum := &summed{w: fw}
	enc := expfmt.NewEncoder(sum, format)
	for _, c := range cs {
		if !s.encodeFamilies(enc, family{c}) {
			break
		}
	}
	// Not Close: OpenMetrics' "# EOF" comes after the live families.
	if err := fw.Flush(); err != nil {
		s.opts.Logger.Error("metrics exposition: compressing failed", "err", err)
	}
	return &encoded{versions: versions, deflate: buf.Bytes(), crc: sum.crc, size: sum.size}
}

// encodeFamilies gathers g and encodes what it gathered; false when the
// writer failed, which ends the exposition.
func (s *Server) encodeFamilies(enc expfmt.Encoder, g prometheus.Gatherer) bool {
	mfs, err := g.Gather()
	if err != nil {
		s.opts.Logger.Error("metrics exposition: gathering failed; serving what was gathered", "err", err)
	}
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			// The client went away, or the family cannot be written:
			// the status line is long gone, so only the log can tell.
			s.opts.Logger.Error("metrics exposition: encoding failed", "family", mf.GetName(), "err", err)
			return false
		}
	}
	return true
}

// summed passes writes on and keeps the CRC-32 and length of what passed,
// for the gzip trailer.
type summed struct {
	w    io.Writer
	crc  uint32
	size uint32
}

func (s *summed) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	s.crc = crc32.Update(s.crc, crc32.IEEETable, p[:n])
	s.size += uint32(n)
	return n, err
}

// gzipHeader is the fixed header of a gzip member: no name, no time, no
// extra fields, OS unknown (RFC 1952 section 2.3).
var gzipHeader = []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}

// finalBlock is an empty, final, stored DEFLATE block: after a sync flush
// it ends the stream, for decompressing the stored families alone.
var finalBlock = []byte{1, 0, 0, 0xff, 0xff}

// serveMetrics is /metrics: the stored families, then the registry, then
// the live ones, in the format the scraper asked for (OpenMetrics
// included), gzipped when it accepts gzip. A failing family is logged and
// left out; the others are served, as promhttp's ContinueOnError does.
func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	versions, stored, live := s.scrape()
	format := expfmt.NegotiateIncludingOpenMetrics(r.Header)
	e := s.stored(format, versions, stored)
	w.Header().Set("Content-Type", string(format))

	var out io.Writer = w
	var fw *flate.Writer
	var sum *summed
	if acceptsGzip(r.Header.Get("Accept-Encoding")) {
		w.Header().Set("Content-Encoding", "gzip")
		if _, err := w.Write(gzipHeader); err != nil {
			return
		}
		if _, err := w.Write(e.deflate); err != nil {
			return
		}
		fw, _ = flate.NewWriter(w, flate.DefaultCompression)
		sum = &summed{w: fw, crc: e.crc, size: e.size}
		out = sum
	} else {
		inflated := flate.NewReader(io.MultiReader(bytes.NewReader(e.deflate), bytes.NewReader(finalBlock)))
		if _, err := io.Copy(w, inflated); err != nil {
			s.opts.Logger.Error("metrics exposition: writing the stored families failed", "err", err)
			return
		}
	}

	enc := expfmt.NewEncoder(out, format)
	for _, g := range live {
		if !s.encodeFamilies(enc, g) {
			return
		}
	}
	if c, ok := enc.(expfmt.Closer); ok {
		if err := c.Close(); err != nil {
			s.opts.Logger.Error("metrics exposition: closing failed", "err", fmt.Sprint(err))
			return
		}
	}
	if fw != nil {
		if err := fw.Close(); err != nil {
			return
		}
		var trailer [8]byte
		binary.LittleEndian.PutUint32(trailer[:4], sum.crc)
		binary.LittleEndian.PutUint32(trailer[4:], sum.size)
		_, _ = w.Write(trailer[:])
	}
}

// acceptsGzip reads Accept-Encoding: gzip, unless its weight is 0
// ("gzip;q=0.5" is a yes).
func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		enc, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(enc), "gzip") {
			continue
		}
		q := 1.0
		for _, p := range strings.Split(params, ";") {
			if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(strings.TrimSpace(k), "q") {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					q = f
				}
			}
		}
		return q > 0
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
