package manifest

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Input is what Load read, from every path given.
type Input struct {
	Workloads []Workload
	Skipped   []Skipped
}

// Load reads each path: a file, a directory (its *.yaml, *.yml and *.json
// files, recursively, in lexical order) or "-" for stdin. Every problem in
// every file is returned, joined.
func Load(paths []string, stdin io.Reader) (Input, error) {
	var in Input
	var errs []error
	read := func(name string, r io.Reader) {
		ws, sk, err := Read(name, r)
		in.Workloads = append(in.Workloads, ws...)
		in.Skipped = append(in.Skipped, sk...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	for _, p := range paths {
		if p == "-" {
			read("<stdin>", stdin)
			continue
		}
		st, err := os.Stat(p)
		if err != nil {
			errs = append(errs, &Error{File: p, Msg: strings.TrimPrefix(err.Error(), "stat "+p+": ")})
			continue
		}
		if !st.IsDir() {
			readFile(p, read, &errs)
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			switch strings.ToLower(filepath.Ext(path)) {
			case ".yaml", ".yml", ".json":
				if !d.IsDir() {
					readFile(path, read, &errs)
				}
			}
			return nil
		})
		if err != nil {
			errs = append(errs, &Error{File: p, Msg: err.Error()})
		}
	}
	in.resolveRefs()
	return in, errors.Join(errs...)
}

// resolveRefs sizes a Rollout with a workloadRef as the cluster does: the
// referenced Deployment's template, in whichever file it is, becomes the
// Rollout's, with the Rollout's replicas. Argo scales the Deployment
// itself down, so it is not counted beside it. A reference to a
// Deployment not in the input stays skipped.
func (in *Input) resolveRefs() {
	kept := in.Skipped[:0]
	for _, sk := range in.Skipped {
		i := -1
		if sk.ref != nil {
			i = slices.IndexFunc(in.Workloads, func(w Workload) bool {
				return w.Kind == "Deployment" && w.Namespace == sk.ref.namespace && w.Name == sk.ref.deployment
			})
		}
		if i < 0 {
			kept = append(kept, sk)
			continue
		}
		// File and lines stay the Deployment's: the template is there.
		w := &in.Workloads[i]
		w.Kind, w.Name, w.Replicas = sk.Kind, sk.Name, sk.ref.replicas
	}
	in.Skipped = kept
}

func readFile(path string, read func(string, io.Reader), errs *[]error) {
	f, err := os.Open(path)
	if err != nil {
		*errs = append(*errs, &Error{File: path, Msg: err.Error()})
		return
	}
	defer f.Close()
	read(path, f)
}
