package config

import (
	"time"

	"github.com/prometheus/common/model"
)

// Recommender bounds what the exporter's incremental recommender asks of
// Prometheus (docs/recommendations.md, Inputs): each cycle reads only the
// 5-minute windows completed since the last one; the window is read once,
// at start or after a gap, in chunks.
type Recommender struct {
	BatchContainers int            `yaml:"batch_containers" min:"1" doc:"Workload containers per window query (namespaces are batched up to this), so that no answer from Prometheus grows with the cluster."`
	BackfillChunk   model.Duration `yaml:"backfill_chunk" min:"5m" doc:"Longest span of history one window query reads when the state is filled at start or after a gap."`
	BackfillBudget  model.Duration `yaml:"backfill_budget" doc:"Time a cycle may spend filling the state; the rest continues next cycle, and containers still being filled get no recommendation. 0 means no limit."`
	StateFile       string         `yaml:"state_file" doc:"File the state is checkpointed to (written whole, then renamed) and loaded from at start, so that a restarted exporter reads only the windows since the checkpoint instead of the whole window; empty keeps the state in memory only. Put it on a volume that outlives the container (an emptyDir survives restarts of the container, not of the pod)."`
	StateInterval   model.Duration `yaml:"state_interval" min:"1m" doc:"How often the state is checkpointed to exporter.recommender.state_file, besides at shutdown."`
	Settle          model.Duration `yaml:"settle" min:"30s" doc:"How long after a 5-minute window ends it is read, once and for good: its last scrape must be queryable by then. 1m suits Prometheus; behind remote write (Mimir, Thanos Receive, Cortex, VictoriaMetrics) give the ingestion delay plus a scrape interval, or windows are read before their last samples arrive and never again."`
}

func defaultRecommender() Recommender {
	return Recommender{
		BatchContainers: 2000,
		BackfillChunk:   model.Duration(24 * time.Hour),
		BackfillBudget:  model.Duration(2 * time.Minute),
		StateInterval:   model.Duration(10 * time.Minute),
		Settle:          model.Duration(time.Minute),
	}
}
