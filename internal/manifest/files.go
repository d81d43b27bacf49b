package manifest

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
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
	return in, errors.Join(errs...)
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
