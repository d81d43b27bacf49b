// Package backtest replays usage traces to score rightsizing recommenders
// (UPID, the Kubernetes VPA, robusta-dev/krr's simple strategy and the
// trace's own hand-set requests), and turns the same traces into series for
// forecast.Evaluate (ForecastSet). Recommendations are computed at a
// cadence from past samples only and applied to the period that follows;
// docs/recommendations.md describes the method and the measured results.
package backtest

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/upid-dev/upid/exporter/history"
	"github.com/upid-dev/upid/exporter/recommend"
)

// Sample is one usage window of a trace, in cores and bytes.
type Sample struct {
	Time     time.Time     // start of the window
	Duration time.Duration // length of the window
	// CPU is the mean and CPUMax the peak CPU in the window, in cores.
	CPU, CPUMax float64
	// Memory is the mean and MemoryMax the peak memory in bytes; NaN when
	// the trace has no memory (Azure V1).
	Memory, MemoryMax float64
	// CPURequest and MemoryRequest are the trace's own (hand-set) requests;
	// 0 when unknown.
	CPURequest, MemoryRequest float64
	// CPULimit and MemoryLimit are the trace's own limits, cores and
	// bytes, 0 for none, in a trace that records them (Trace.Observed). A
	// CSV trace does not: its memory limit is taken as its request
	// (Borg's memory_limit is the request the trace records) and its CPU
	// as unlimited.
	CPULimit, MemoryLimit float64
	// OOMKill: the cluster recorded an OOM kill in the window, of a pod
	// whose memory limit was OOMMemoryLimit (bytes; 0 when it had none or
	// it is unknown: the node ran out). Observed traces only: a CSV trace
	// records no kills, and the replay simulates them from the peak.
	OOMKill        bool
	OOMMemoryLimit float64
	// ThrottledPeriods and Periods are the increases of the CFS counters in
	// the window (Observed traces); both 0 when unknown or unlimited.
	ThrottledPeriods, Periods float64
	// Start: the instance (re)started in this window: the first window of an
	// instance not running at the trace's start, a window off the 300 s
	// grid, after a gap, on a new machine, or after a window cut short.
	Start bool
}

// Trace is the usage history of one container-like entity.
type Trace struct {
	Name   string // borg/<collection>-<index> or azure/<vm>
	Source string // "borg" or "azure"
	// CoresPerUnit and BytesPerUnit are the scale assumed to turn the
	// trace's normalized units into cores and bytes (see the readers).
	CoresPerUnit, BytesPerUnit float64
	Samples                    []Sample
	// Workload is the workload of a trace read from Prometheus; zero for
	// CSV traces.
	Workload history.Key
	// Observed: the samples hold the limits in force and the OOM kills and
	// throttling the cluster recorded (a trace read from Prometheus).
	Observed bool
	// Policy, when set, is what UPID replays this trace with instead of
	// Options.Policy (the workload's own, from overrides, labels or
	// annotations), and PolicyFrom says where it came from, for the report.
	Policy     *recommend.Policy
	PolicyFrom []string
}

// Rescale multiplies CPU values by cpu and memory values by mem, to test
// how results depend on the assumed unit scale.
func (t *Trace) Rescale(cpu, mem float64) {
	for i := range t.Samples {
		s := &t.Samples[i]
		s.CPU *= cpu
		s.CPUMax *= cpu
		s.CPURequest *= cpu
		s.CPULimit *= cpu
		s.Memory *= mem
		s.MemoryMax *= mem
		s.MemoryRequest *= mem
		s.MemoryLimit *= mem
		s.OOMMemoryLimit *= mem
	}
	t.CoresPerUnit *= cpu
	t.BytesPerUnit *= mem
}

// Unit scales. Borg 2019 normalizes CPU (NCU) and memory (NMU) to the
// largest machine of the trace, which is 1.0; the absolute size is not
// published. These values only matter for absolute floors (the VPA's 25m and
// 250 MiB, UPID's 10m and 32 MiB) and for histogram bucket resolution below
// about 0.02 core; slack and risk are ratios and do not depend on them.
const (
	BorgCoresPerNCU = 100     // assumed: the largest machine has 100 cores
	BorgBytesPerNMU = 1 << 40 // assumed: ... and 1 TiB
	// AzureVMCores is the assumed VM size for the Azure V1 CPU percentages;
	// the sample does not carry it. The hand-set request is the whole VM.
	AzureVMCores = 2
)

// Limits bounding what a reader accepts, so that a hostile or corrupt file
// fails fast instead of exhausting memory.
const (
	MaxInputBytes = 256 << 20
	MaxRows       = 1 << 20
	MaxColumns    = 4096
)

// borgOrigin is the trace's time zero: t = 600 s is 2019-05-01 00:00 PDT.
var borgOrigin = time.Date(2019, 5, 1, 7, 0, 0, 0, time.UTC).Add(-600 * time.Second)

// azureOrigin is arbitrary: the sample does not say when it starts.
var azureOrigin = time.Date(2017, 1, 1, 0, 0, 0, 0, time.UTC)

const window = 300 * time.Second

var errTooBig = errors.New("input larger than the reader's limit")

type limitedReader struct {
	r io.Reader
	n int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errTooBig
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

func newCSV(r io.Reader) *csv.Reader {
	c := csv.NewReader(&limitedReader{r: r, n: MaxInputBytes})
	c.ReuseRecord = true
	return c
}

// csvError names the line and column of a CSV syntax error.
func csvError(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("line %d, column %d: %w", pe.Line, pe.Column, pe.Err)
	}
	return err
}

// borgColumns are the columns ReadBorg needs.
var borgColumns = []string{"time", "unique_id", "machine_id", "avg_cpu_usage", "max_cpu_usage",
	"avg_memory_usage", "max_memory_usage", "cpu_limit", "memory_limit"}

// ReadBorg reads one instance file of the Google Borg 2019 sample
// (/work/shared/data/google2019-borg-instances): 5-minute rows with mean and
// peak CPU and memory, and cpu_limit / memory_limit, which are the
// instance's requests. Values are scaled by BorgCoresPerNCU and
// BorgBytesPerNMU. Errors name the line and column.
func ReadBorg(r io.Reader) (Trace, error) { return readBorgLimited(r, MaxRows) }

func readBorgLimited(r io.Reader, maxRows int) (Trace, error) {
	tr := Trace{Source: "borg", CoresPerUnit: BorgCoresPerNCU, BytesPerUnit: BorgBytesPerNMU}
	c := newCSV(r)
	head, err := c.Read()
	if err == io.EOF {
		return tr, errors.New("line 1: empty file, want a header")
	}
	if err != nil {
		return tr, csvError(err)
	}
	if len(head) > MaxColumns {
		return tr, fmt.Errorf("line 1: %d columns, more than %d", len(head), MaxColumns)
	}
	col := map[string]int{}
	for i, h := range head {
		col[strings.TrimSpace(h)] = i
	}
	idx := make([]int, len(borgColumns))
	for i, name := range borgColumns {
		j, ok := col[name]
		if !ok {
			return tr, fmt.Errorf("line 1: missing column %q", name)
		}
		idx[i] = j
	}
	var prevT int64 = -1
	var prevMachine string
	for {
		rec, err := c.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return tr, csvError(err)
		}
		if len(tr.Samples) >= maxRows {
			line, _ := c.FieldPos(0)
			return tr, fmt.Errorf("line %d: more than %d rows", line, maxRows)
		}
		bad := func(i int, format string, a ...any) error {
			line, column := c.FieldPos(idx[i])
			return fmt.Errorf("line %d, column %d (%s): %s", line, column, borgColumns[i], fmt.Sprintf(format, a...))
		}
		num := make([]float64, len(idx))
		for i, j := range idx {
			if i == 1 || i == 2 {
				continue
			}
			f := strings.TrimSpace(rec[j])
			v, err := strconv.ParseFloat(f, 64)
			if err != nil {
				return tr, bad(i, "%q is not a number", f)
			}
			if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
				return tr, bad(i, "%v is not a finite number >= 0", v)
			}
			num[i] = v
		}
		if num[0] != math.Trunc(num[0]) || num[0] > 1<<53 {
			return tr, bad(0, "%v is not a whole number of microseconds", num[0])
		}
		t := int64(num[0])
		if t < prevT {
			return tr, bad(0, "%d is before the previous row's %d", t, prevT)
		}
		id, machine := strings.TrimSpace(rec[idx[1]]), strings.TrimSpace(rec[idx[2]])
		if tr.Name == "" {
			if id == "" {
				return tr, bad(1, "empty")
			}
			tr.Name = "borg/" + id
		} else if "borg/"+id != tr.Name {
			return tr, bad(1, "%q differs from the first row's %q", id, strings.TrimPrefix(tr.Name, "borg/"))
		}
		s := Sample{
			Time:          borgOrigin.Add(time.Duration(t) * time.Microsecond),
			Duration:      window,
			CPU:           num[3] * BorgCoresPerNCU,
			CPUMax:        num[4] * BorgCoresPerNCU,
			Memory:        num[5] * BorgBytesPerNMU,
			MemoryMax:     num[6] * BorgBytesPerNMU,
			CPURequest:    num[7] * BorgCoresPerNCU,
			MemoryRequest: num[8] * BorgBytesPerNMU,
		}
		if t == prevT {
			// The trace has a few repeated windows around restarts (two
			// usage records starting in the same window): keep the larger
			// of each figure, which is what the window needed.
			p := &tr.Samples[len(tr.Samples)-1]
			p.CPU, p.CPUMax = math.Max(p.CPU, s.CPU), math.Max(p.CPUMax, s.CPUMax)
			p.Memory, p.MemoryMax = math.Max(p.Memory, s.Memory), math.Max(p.MemoryMax, s.MemoryMax)
			p.CPURequest, p.MemoryRequest = s.CPURequest, s.MemoryRequest
			p.Start = true
			prevMachine = machine
			continue
		}
		// Windows lie on a 300 s grid; one that starts off the grid is
		// the partial first window of a (re)start and lasts to the next
		// grid line.
		const gridUS = int64(window / time.Microsecond)
		if off := t % gridUS; off != 0 {
			s.Duration = time.Duration(gridUS-off) * time.Microsecond
			s.Start = true
		}
		switch {
		case prevT < 0:
			// Running when the trace began (its first window) or started
			// later.
			s.Start = s.Start || time.Duration(t)*time.Microsecond > 600*time.Second
		case time.Duration(t-prevT)*time.Microsecond > window || machine != prevMachine:
			s.Start = true
		}
		if n := len(tr.Samples); n > 0 {
			p := &tr.Samples[n-1]
			if gap := s.Time.Sub(p.Time); gap < p.Duration {
				// The next window began before this one's end: it was cut
				// short by a restart.
				p.Duration = gap
				s.Start = true
			}
		}
		tr.Samples = append(tr.Samples, s)
		prevT, prevMachine = t, machine
	}
	if len(tr.Samples) == 0 {
		return tr, errors.New("no rows after the header")
	}
	return tr, nil
}

// ReadAzure reads the Azure Public Dataset V1 sample
// (/work/shared/data/azure-v1-vm-cpu-100): two CSV files with the same
// header (step, then one column per VM) holding the mean and the peak CPU
// utilization in percent per 5-minute step. It returns one trace per VM, CPU
// only, scaled to AzureVMCores, with the whole VM as the hand-set request.
// Errors name the file (avg or max), line and column.
func ReadAzure(avg, max io.Reader) ([]Trace, error) {
	a, err := readAzureMatrix(avg)
	if err != nil {
		return nil, fmt.Errorf("avg: %w", err)
	}
	m, err := readAzureMatrix(max)
	if err != nil {
		return nil, fmt.Errorf("max: %w", err)
	}
	if !slices.Equal(a.ids, m.ids) {
		return nil, errors.New("max: line 1: header differs from the avg file's")
	}
	if len(a.steps) != len(m.steps) {
		return nil, fmt.Errorf("max: %d rows, the avg file has %d", len(m.steps), len(a.steps))
	}
	for i := range a.steps {
		if a.steps[i] != m.steps[i] {
			return nil, fmt.Errorf("max: line %d, column 1 (step): %d, the avg file has %d", i+2, m.steps[i], a.steps[i])
		}
	}
	traces := make([]Trace, len(a.ids))
	for v, id := range a.ids {
		tr := Trace{Name: "azure/" + id, Source: "azure", CoresPerUnit: AzureVMCores / 100.0, BytesPerUnit: math.NaN()}
		tr.Samples = make([]Sample, len(a.steps))
		for i, step := range a.steps {
			av, mv := a.values[i][v], m.values[i][v]
			if mv < av-1e-6 {
				return nil, fmt.Errorf("max: line %d, column %d (%s): %v is below the mean %v", i+2, v+2, id, mv, av)
			}
			tr.Samples[i] = Sample{
				Time:       azureOrigin.Add(time.Duration(step-1) * window),
				Duration:   window,
				CPU:        av / 100 * AzureVMCores,
				CPUMax:     mv / 100 * AzureVMCores,
				Memory:     math.NaN(),
				MemoryMax:  math.NaN(),
				CPURequest: AzureVMCores,
				Start:      i == 0,
			}
		}
		traces[v] = tr
	}
	return traces, nil
}

type azureMatrix struct {
	ids    []string
	steps  []int64
	values [][]float64
}

func readAzureMatrix(r io.Reader) (*azureMatrix, error) {
	c := newCSV(r)
	head, err := c.Read()
	if err == io.EOF {
		return nil, errors.New("line 1: empty file, want a header")
	}
	if err != nil {
		return nil, csvError(err)
	}
	if len(head) < 2 || strings.TrimSpace(head[0]) != "step" {
		return nil, errors.New("line 1: want a header step,<vm>,<vm>...")
	}
	if len(head) > MaxColumns {
		return nil, fmt.Errorf("line 1: %d columns, more than %d", len(head), MaxColumns)
	}
	m := &azureMatrix{}
	seen := map[string]bool{}
	for i, h := range head[1:] {
		h = strings.TrimSpace(h)
		if h == "" || seen[h] {
			return nil, fmt.Errorf("line 1, column %d: VM id %q is empty or repeated", i+2, h)
		}
		seen[h] = true
		m.ids = append(m.ids, h)
	}
	for {
		rec, err := c.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, csvError(err)
		}
		line, _ := c.FieldPos(0)
		if len(m.steps) >= MaxRows {
			return nil, fmt.Errorf("line %d: more than %d rows", line, MaxRows)
		}
		f := strings.TrimSpace(rec[0])
		step, err := strconv.ParseInt(f, 10, 64)
		if err != nil || step < 1 || step > 1<<40 {
			return nil, fmt.Errorf("line %d, column 1 (step): %q is not a whole number >= 1", line, f)
		}
		if n := len(m.steps); n > 0 && step <= m.steps[n-1] {
			return nil, fmt.Errorf("line %d, column 1 (step): %d is not after the previous row's %d", line, step, m.steps[n-1])
		}
		row := make([]float64, len(m.ids))
		for i := range row {
			f := strings.TrimSpace(rec[i+1])
			v, err := strconv.ParseFloat(f, 64)
			if err != nil || math.IsNaN(v) || v < 0 || v > 100 {
				l, col := c.FieldPos(i + 1)
				return nil, fmt.Errorf("line %d, column %d (%s): %q is not a percentage in [0, 100]", l, col, m.ids[i], f)
			}
			row[i] = v
		}
		m.steps = append(m.steps, step)
		m.values = append(m.values, row)
	}
	if len(m.steps) == 0 {
		return nil, errors.New("no rows after the header")
	}
	return m, nil
}

// ReadBorgFile reads one Borg instance file; errors start with the path.
func ReadBorgFile(path string) (Trace, error) {
	f, err := os.Open(path)
	if err != nil {
		return Trace{}, err
	}
	defer f.Close()
	tr, err := ReadBorg(f)
	if err != nil {
		return tr, fmt.Errorf("%s: %w", path, err)
	}
	return tr, nil
}

// ReadAzureFiles reads one pair of Azure avg and max files; errors start
// with the path of the file at fault.
func ReadAzureFiles(avgPath, maxPath string) ([]Trace, error) {
	a, err := os.Open(avgPath)
	if err != nil {
		return nil, err
	}
	defer a.Close()
	m, err := os.Open(maxPath)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	trs, err := ReadAzure(a, m)
	if err != nil {
		msg := err.Error()
		switch {
		case strings.HasPrefix(msg, "avg: "):
			return nil, fmt.Errorf("%s: %s", avgPath, strings.TrimPrefix(msg, "avg: "))
		case strings.HasPrefix(msg, "max: "):
			return nil, fmt.Errorf("%s: %s", maxPath, strings.TrimPrefix(msg, "max: "))
		}
		return nil, err
	}
	return trs, nil
}

// LoadDir reads every trace under dir in the layouts of /work/shared/data:
// Borg instance files (*.csv with a time column, in any subdirectory) and
// Azure pairs whose names differ only by avg and max. Traces come sorted by
// name.
func LoadDir(dir string) ([]Trace, error) {
	var borg, azureAvg []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(p, ".csv") {
			return nil
		}
		base := filepath.Base(p)
		switch {
		case strings.Contains(base, "avg"):
			azureAvg = append(azureAvg, p)
		case strings.Contains(base, "max"):
		default:
			borg = append(borg, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []Trace
	for _, p := range borg {
		tr, err := ReadBorgFile(p)
		if err != nil {
			return nil, err
		}
		out = append(out, tr)
	}
	for _, p := range azureAvg {
		dir, base := filepath.Split(p)
		trs, err := ReadAzureFiles(p, filepath.Join(dir, strings.Replace(base, "avg", "max", 1)))
		if err != nil {
			return nil, err
		}
		out = append(out, trs...)
	}
	slices.SortStableFunc(out, func(a, b Trace) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}
