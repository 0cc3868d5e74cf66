"""OpenLineage run events (START, then COMPLETE or FAIL) for scoring and training runs; off
unless set.

`events` builds and sends one run's events, `facets` turns what the run knows into OpenLineage's
facets, `datasets` describes the datasets a run read and wrote (without importing OpenLineage).
"""

from batch.ops.lineage.datasets import (
    DatasetRef,
    Quality,
    arrow_schema,
    file_dataset,
    file_schema,
    input_quality,
    score_inputs,
    score_outputs,
)
from batch.ops.lineage.events import NAMESPACE, Lineage, run_uuid
from batch.ops.lineage.facets import PRODUCER

__all__ = [
    "NAMESPACE",
    "PRODUCER",
    "DatasetRef",
    "Lineage",
    "Quality",
    "arrow_schema",
    "file_dataset",
    "file_schema",
    "input_quality",
    "run_uuid",
    "score_inputs",
    "score_outputs",
]
