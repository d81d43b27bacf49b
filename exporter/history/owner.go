package history

// OwnerExpr is the pod-to-workload mapping of the exporter's queries, for
// recording rules that must resolve cAdvisor and kube-state-metrics series
// to the same workloads as the upid_ metrics (see ownerExpr). An empty
// lookback maps the pods of the evaluation instant. Pods are told apart by
// cluster too, for rules on a Prometheus that holds several clusters.
func OwnerExpr(lookback string) string { return ownerExprBy("cluster, namespace", lookback, "") }
