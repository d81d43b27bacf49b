package exporter

import (
	"bufio"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/upid-dev/upid/exporter/history"
	"github.com/upid-dev/upid/exporter/recommend"
)

// checkpointVersion changes whenever the file's layout does; a file of
// another version is ignored and the state is read from Prometheus.
const checkpointVersion = 1

// maxCheckpointBytes bounds what a load reads: about 1.3 KB a container,
// so this holds several million containers.
const maxCheckpointBytes = 8 << 30

// checkpoint is the recommender's state as saved to
// exporter.recommender.state_file: the states and how far each namespace
// has been read. It holds slices only: gob sizes a map from the count the
// file claims, before reading it, so a corrupt count could exhaust memory,
// while slices grow as their elements arrive.
type checkpoint struct {
	Version    int
	Namespaces []namespaceProgress
	Keys       []history.ContainerKey
	States     []recommend.StateRecord
}

// namespaceProgress is how far a namespace's windows have been read.
type namespaceProgress struct {
	Name     string
	Through  time.Time
	CaughtUp bool
}

// save writes the checkpoint to a temporary file beside path and renames
// it over path, so that a crash mid-write leaves the previous checkpoint.
func (r *recommender) save(path string) error {
	r.mu.Lock()
	c := checkpoint{Version: checkpointVersion, Namespaces: make([]namespaceProgress, 0, len(r.through)),
		Keys: make([]history.ContainerKey, 0, len(r.states)), States: make([]recommend.StateRecord, 0, len(r.states))}
	for ns, t := range r.through {
		c.Namespaces = append(c.Namespaces, namespaceProgress{Name: ns, Through: t, CaughtUp: r.caughtUp[ns]})
	}
	for k, s := range r.states {
		c.Keys = append(c.Keys, k)
		c.States = append(c.States, s.Record())
	}
	r.mu.Unlock()

	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", path, err)
	}
	tmp := f.Name()
	w := bufio.NewWriterSize(f, 1<<20)
	err = gob.NewEncoder(w).Encode(&c)
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("checkpoint %s: %w", path, err)
	}
	return nil
}

// load reads a checkpoint saved by save. A missing file is no checkpoint.
// A file that cannot be read, or of another version, is an error and
// nothing of it is kept; a state whose record does not fit the policy (it
// changed since) is dropped alone, and its namespace read again whole.
// It returns the states loaded and those dropped.
func (r *recommender) load(path string) (loaded, dropped int, err error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	defer f.Close()
	c, err := decodeCheckpoint(io.LimitReader(bufio.NewReaderSize(f, 1<<20), maxCheckpointBytes))
	if err != nil {
		return 0, 0, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	states := make(map[history.ContainerKey]*recommend.State, len(c.Keys))
	stale := map[string]bool{}
	for i, k := range c.Keys {
		s, err := recommend.StateFromRecord(c.States[i], r.policy)
		if err != nil {
			stale[k.Namespace] = true
			dropped++
			continue
		}
		states[k] = s
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.states, r.through, r.caughtUp = states, map[string]time.Time{}, map[string]bool{}
	for _, ns := range c.Namespaces {
		if !stale[ns.Name] {
			r.through[ns.Name], r.caughtUp[ns.Name] = ns.Through, ns.CaughtUp
		}
	}
	for k := range r.states {
		if stale[k.Namespace] {
			// The namespace is read again whole; its other states
			// would see those windows twice.
			delete(r.states, k)
		}
	}
	return len(r.states), dropped, nil
}

// decodeCheckpoint decodes and checks a checkpoint's layout.
func decodeCheckpoint(rd io.Reader) (*checkpoint, error) {
	var c checkpoint
	if err := gob.NewDecoder(rd).Decode(&c); err != nil {
		return nil, fmt.Errorf("not a checkpoint: %w", err)
	}
	if c.Version != checkpointVersion {
		return nil, fmt.Errorf("version %d, want %d", c.Version, checkpointVersion)
	}
	if len(c.Keys) != len(c.States) {
		return nil, fmt.Errorf("%d keys for %d states", len(c.Keys), len(c.States))
	}
	return &c, nil
}
