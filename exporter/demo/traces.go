package demo

import (
	"embed"
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"
)

// The traces are excerpts of public cluster traces (see traces/ATTRIBUTION.md). They are
// embedded because the demo must run from the binary alone, with no data directory.
//
//go:embed traces/*.csv
var traceFiles embed.FS

// traceStep is the resolution of both traces: five-minute windows.
const traceStep = 5 * time.Minute

// trace is one column of a trace at traceStep. It repeats beyond its end, and its slots
// are anchored to the Unix epoch so that a wall-clock time always maps to the same value,
// whenever the demo starts: two demos started a minute apart show the same history.
type trace []float64

// at interpolates linearly between the five-minute slots, because the demo samples every
// minute and steps every fifth minute would show up as artefacts in rate().
func (tr trace) at(t time.Time) float64 {
	pos := float64(t.UnixMilli()) / float64(traceStep.Milliseconds())
	n := float64(len(tr))
	pos = math.Mod(pos, n)
	if pos < 0 {
		pos += n
	}
	i := int(pos)
	frac := pos - float64(i)
	return tr[i]*(1-frac) + tr[(i+1)%len(tr)]*frac
}

func (tr trace) mean() float64 {
	s := 0.0
	for _, v := range tr {
		s += v
	}
	return s / float64(len(tr))
}

// shape returns the trace divided by its mean: a dimensionless profile with mean 1 that
// the cases scale to their own units.
func (tr trace) shape() trace {
	m := tr.mean()
	out := make(trace, len(tr))
	for i, v := range tr {
		out[i] = v / m
	}
	return out
}

// borgTask is one Borg task of Google's 2019 trace: usage relative to the task's request,
// which is what carries over to a Kubernetes container with a different request.
type borgTask struct {
	id     string
	cpu    trace // avg_cpu_usage / cpu_limit
	memory trace // avg_memory_usage / memory_limit
}

type traces struct {
	azure map[string]trace // Azure VM id → average CPU percent
	borg  map[string]*borgTask
}

func loadTraces() (*traces, error) {
	t := &traces{azure: map[string]trace{}, borg: map[string]*borgTask{}}
	rows, err := readCSV("traces/azure_v1_avg_cpu_5min.csv")
	if err != nil {
		return nil, err
	}
	header := rows[0]
	for col := 1; col < len(header); col++ {
		tr := make(trace, 0, len(rows)-1)
		for _, r := range rows[1:] {
			v, err := strconv.ParseFloat(r[col], 64)
			if err != nil {
				return nil, fmt.Errorf("demo: azure trace, VM %s: %w", header[col], err)
			}
			tr = append(tr, v)
		}
		t.azure[header[col]] = tr
	}
	for _, name := range []string{"borg_job113_22", "borg_job113_75", "borg_job382_2", "borg_job382_27"} {
		rows, err := readCSV("traces/" + name + ".csv")
		if err != nil {
			return nil, err
		}
		col := map[string]int{}
		for i, h := range rows[0] {
			col[h] = i
		}
		task := &borgTask{id: rows[1][col["unique_id"]]}
		for _, r := range rows[1:] {
			f := func(name string) float64 {
				v, perr := strconv.ParseFloat(r[col[name]], 64)
				if perr != nil && err == nil {
					err = fmt.Errorf("demo: borg trace %s, column %s: %w", task.id, name, perr)
				}
				return v
			}
			task.cpu = append(task.cpu, f("avg_cpu_usage")/f("cpu_limit"))
			task.memory = append(task.memory, f("avg_memory_usage")/f("memory_limit"))
		}
		if err != nil {
			return nil, err
		}
		t.borg[name] = task
	}
	return t, nil
}

func readCSV(name string) ([][]string, error) {
	f, err := traceFiles.Open(name)
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	var rows [][]string
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("demo: %s: %w", name, err)
		}
		rows = append(rows, rec)
	}
	if len(rows) < 2 {
		return nil, fmt.Errorf("demo: %s has no data rows", name)
	}
	return rows, nil
}
