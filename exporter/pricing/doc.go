// Package pricing gives the hourly price of a node's CPU, memory and GPUs and
// says where each price came from, so that every dollar UPID reports can be
// traced back to OpenCost, a line of the pricing file or a built-in default.
//
// # Units
//
// CPU is priced per vCPU-hour, memory per GiB-hour (2^30 bytes) and GPUs per
// GPU-hour: the units of OpenCost's node_cpu_hourly_cost,
// node_ram_hourly_cost and node_gpu_hourly_cost, whose node_total_hourly_cost
// is cpu×vCPUs + ram×GiB + gpu×GPUs. Keeping OpenCost's units lets its rates
// be used unconverted. A month is [HoursPerMonth] hours, OpenCost's and the
// cloud providers' convention. Nodes are priced by capacity, not allocatable:
// the bill is for the whole machine, including what the kubelet reserves.
//
// # Precedence
//
// Each of the three rates is resolved on its own; the first of these that has
// it wins:
//
//  1. OpenCost, when Prometheus has the node's series (see [OpenCostQuery]).
//  2. The first rule of the pricing file that matches the node.
//  3. The default: section of the pricing file.
//  4. The built-in defaults: [DefaultCPUCoreHour] per vCPU-hour,
//     [DefaultMemoryGiBHour] per GiB-hour and [DefaultGPUHour] per GPU-hour.
//
// Resolving per rate rather than per node is what lets an SRE fill a gap
// without overriding what OpenCost knows: OpenCost may publish a node's CPU
// and memory prices without a GPU price (its releases before GPU support had
// no node_gpu_hourly_cost), and a gpu_hour in the file then prices just the
// GPUs. A rate OpenCost publishes as 0 is a price, not a gap: OpenCost has
// published CPU prices of 0 for GPU nodes (opencost/opencost#73), charging
// the machine to its GPUs, and filling that 0 from the file would count part
// of the machine twice.
//
// # Pricing file
//
// The pricing file is YAML; every key is optional:
//
//	default:                    # rates for every node no rule gives a rate for
//	  cpu_core_hour: 0.031611   # dollars per vCPU-hour
//	  memory_gib_hour: 0.004237 # dollars per GiB-hour
//	  gpu_hour: 0               # dollars per GPU-hour
//	rules:                      # tried in order; the first that matches wins
//	  - name: spot-m5           # shown in metrics; defaults to rules[N]
//	    match:                  # every condition given must hold
//	      instance_type: m5.large # node.kubernetes.io/instance-type
//	      region: us-east-1       # topology.kubernetes.io/region
//	      capacity_type: spot     # spot, on-demand or reserved
//	    cpu_core_hour: 0.012
//	    memory_gib_hour: 0.0016 # gpu_hour left out: taken from default:
//	  - name: gpu-pool
//	    match:
//	      selector: "pool=gpu,tier in (a,b)" # a Kubernetes label selector
//	    gpu_hour: 2.48
//
// A match needs at least one condition; a rule for every node is what
// default: is for. Instance type and region compare case-insensitively,
// because Azure's instance types are mixed case and are easily mistyped.
// capacity_type is compared after both sides are normalised (see
// [CapacityType]); selector uses the syntax of kubectl get -l and sees every
// label of the node.
//
// Rules are tried in file order and the first match wins. "Most specific
// wins" was rejected because a selector has no natural specificity to rank
// against an instance type, so users would have to learn a ranking and a tie
// rule; an ordered list reads top to bottom, like a firewall or an
// Alertmanager route. Put narrow rules before broad ones.
//
// A rule may give any of the three rates. One it leaves out comes from
// default:, then from the built-in default, never from a later rule: a node
// is priced by at most one rule, and the info metric names that rule. A rule
// that gives no rate at all therefore pins the nodes it matches to the
// defaults, shielding them from the rules below it.
//
// Rule names must be unique, since metrics tell rules apart by name. Prices
// must be numbers from 0 to [MaxRate]; quoted numbers, unknown keys,
// duplicate keys and YAML aliases are errors, and every error names the file,
// line and key, like the errors of internal/config. A file with any error is
// rejected whole.
//
// # Reporting
//
// [Price] carries the source of each rate, a summary Source ("opencost",
// "file", "default", or several joined with "+" such as "opencost+file") and
// the Rule that gave a rate. Both consider only the rates that make up the
// node's cost, so a GPU price does not show on nodes without GPUs.
package pricing
