// Command upid finds the money a Kubernetes cluster wastes and takes it back
// safely. Each part of the suite is a subcommand of this one binary.
package main

import (
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
