package exporter

import (
	"bufio"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"hash/crc32"
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
// Version 2 added the checksum; version 3 states hold the limit of the pod
// an OOM kill hit (older ones its peak, which would size memory below it).
const checkpointVersion = 3

// checksumTable is CRC-32C (Castagnoli), over the gob stream, written as
// the file's last 4 bytes: gob decodes a flipped bit in a float as
// another float, which every range check may pass (a 300 MB peak read as
// 20 TB), and that is not a recommendation to serve.
var checksumTable = crc32.MakeTable(crc32.Castagnoli)

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
	sum := crc32.New(checksumTable)
	err = gob.NewEncoder(io.MultiWriter(w, sum)).Encode(&c)
	if err == nil {
		_, err = w.Write(binary.BigEndian.AppendUint32(nil, sum.Sum32()))
	}
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
	// The rename is durable only once the directory is: without this, a
	// power loss could bring the previous checkpoint back.
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// load reads a checkpoint saved by save. A missing file is no checkpoint.
// A file that cannot be read, or of another version, is an error and
// nothing of it is kept; a state whose record does not fit the policy (it
// changed since) is dropped alone, and its namespace read again whole.
// It returns the states loaded and those dropped.
func (r *recommender) load(path string) (loaded, dropped int, err error) {
	// Temporary files of a save cut short (the process killed mid-write)
	// would otherwise pile up on a size-limited volume, one per crash.
	if leftovers, err := filepath.Glob(filepath.Join(filepath.Dir(path), filepath.Base(path)+".tmp-*")); err == nil {
		for _, tmp := range leftovers {
			_ = os.Remove(tmp)
		}
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	defer f.Close()
	body, err := checkedBody(f)
	if err != nil {
		return 0, 0, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	c, err := decodeCheckpoint(bufio.NewReaderSize(body, 1<<20))
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

// checkedBody checks the file's checksum, reading it once, and returns a
// reader of its gob stream from the start. Nothing of a file that fails
// is decoded.
func checkedBody(f *os.File) (io.Reader, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	n := st.Size() - 4
	switch {
	case n < 0:
		return nil, fmt.Errorf("%d bytes: too short for a checkpoint", st.Size())
	case n > maxCheckpointBytes:
		return nil, fmt.Errorf("%d bytes: larger than %d", st.Size(), int64(maxCheckpointBytes))
	}
	sum := crc32.New(checksumTable)
	if _, err := io.Copy(sum, bufio.NewReaderSize(io.LimitReader(f, n), 1<<20)); err != nil {
		return nil, err
	}
	var trailer [4]byte
	if _, err := io.ReadFull(f, trailer[:]); err != nil {
		return nil, err
	}
	if binary.BigEndian.Uint32(trailer[:]) != sum.Sum32() {
		return nil, errors.New("checksum mismatch: the file is corrupt, or was written by a UPID before checkpoint version 2")
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return io.LimitReader(f, n), nil
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
