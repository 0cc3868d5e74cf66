"""The facets of our events, as OpenLineage's client classes (imported only when lineage is on).

Standard facets: jobType, processing_engine, nominalTime, errorMessage (run and job); schema,
dataQualityMetrics, dataQualityAssertions, outputStatistics (datasets). Our own two facets,
`houseprice_batch` on the run and on datasets, have their JSON Schemas beside this module
(HousePriceBatchRunFacet.json, HousePriceBatchDatasetFacet.json), named by their _schemaURL.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib.metadata
from pathlib import Path
from typing import Any

from batch.ops.lineage.datasets import DatasetRef, Quality

# Who wrote the events, as a URI (OpenLineage asks for one).
PRODUCER = "urn:house-price-batch"
PROJECT = "house-price-batch"  # the integration named in the jobType facet
# Our custom facets' JSON Schemas (their $id) and the definitions the events point at.
FACET_SCHEMA = "urn:house-price-batch:facets:1-0-0"
RUN_FACET_SCHEMA = f"{FACET_SCHEMA}:HousePriceBatchRunFacet.json#/$defs/HousePriceBatchRunFacet"
DATASET_FACET_SCHEMA = (
    f"{FACET_SCHEMA}:HousePriceBatchDatasetFacet.json#/$defs/HousePriceBatchDatasetFacet"
)
SCHEMA_FILES = tuple(
    Path(__file__).with_name(n)
    for n in ("HousePriceBatchRunFacet.json", "HousePriceBatchDatasetFacet.json")
)


def package_version(name: str) -> str:
    """An installed distribution's version ("unknown" when it is not installed, e.g. this
    project run from a checkout)."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


@functools.cache
def _custom_classes() -> tuple[Any, Any]:
    """Our custom facets; built on first use so that OpenLineage is imported only when enabled."""
    import attr
    from openlineage.client.generated.base import DatasetFacet, RunFacet

    @attr.define
    class BatchRunFacet(RunFacet):
        """Our own run id (the folder name under runs/), beside OpenLineage's UUID."""

        runId: str
        job: str

        @staticmethod
        def _get_schema() -> str:
            return RUN_FACET_SCHEMA

    @attr.define
    class BatchDatasetFacet(DatasetFacet):
        """What else we know of a dataset (e.g. the model version, the file's sha256)."""

        properties: dict[str, Any] = attr.field(factory=dict)

        @staticmethod
        def _get_schema() -> str:
            return DATASET_FACET_SCHEMA

    return BatchRunFacet, BatchDatasetFacet


def job_facets() -> dict[str, Any]:
    """jobType: a batch job of this project (processingType BATCH, jobType JOB)."""
    from openlineage.client.facet_v2 import job_type_job

    return {
        "jobType": job_type_job.JobTypeJobFacet(
            processingType="BATCH", integration=PROJECT, jobType="JOB", producer=PRODUCER
        )
    }


def run_facets(
    run_id: str,
    job: str,
    engine: str | None,
    nominal_time: dt.datetime | None,
    error: str | None,
) -> dict[str, Any]:
    """Our run facet, the processing engine, the nominal (scheduled) time, the error on FAIL."""
    from openlineage.client.facet_v2 import (
        error_message_run,
        nominal_time_run,
        processing_engine_run,
    )

    run_facet, _ = _custom_classes()
    out: dict[str, Any] = {"houseprice_batch": run_facet(runId=run_id, job=job, producer=PRODUCER)}
    if engine is not None:
        out["processing_engine"] = processing_engine_run.ProcessingEngineRunFacet(
            version=engine_version(engine),
            name=engine,
            openlineageAdapterVersion=package_version(PROJECT),
            producer=PRODUCER,
        )
    if nominal_time is not None:
        out["nominalTime"] = nominal_time_run.NominalTimeRunFacet(
            nominalStartTime=nominal_time.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
            producer=PRODUCER,
        )
    if error is not None:
        out["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=error, programmingLanguage="python", producer=PRODUCER
        )
    return out


def engine_version(engine: str) -> str:
    """The version of what does the work: Dask's for dask, Keras's for keras (training), this
    project's for local (its own in-process engine)."""
    return package_version({"dask": "dask", "keras": "keras"}.get(engine, PROJECT))


def dataset_facets(ref: DatasetRef) -> dict[str, Any]:
    """A dataset's schema facet and our own (what else we know of it)."""
    from openlineage.client.facet_v2 import schema_dataset

    out: dict[str, Any] = {}
    if ref.schema:
        out["schema"] = schema_dataset.SchemaDatasetFacet(
            fields=[
                schema_dataset.SchemaDatasetFacetFields(name=n, type=t, fields=None)
                for n, t in ref.schema
            ],
            producer=PRODUCER,
        )
    if ref.extra:
        _, dataset_facet = _custom_classes()
        out["houseprice_batch"] = dataset_facet(properties=dict(ref.extra), producer=PRODUCER)
    return out


def input_facets(quality: Quality | None) -> dict[str, Any]:
    """An input's dataQualityMetrics and dataQualityAssertions, once the run measured them."""
    if quality is None:
        return {}
    from openlineage.client.facet_v2 import (
        data_quality_assertions_dataset as assertions,
    )
    from openlineage.client.facet_v2 import (
        data_quality_metrics_input_dataset as metrics,
    )

    return {
        "dataQualityMetrics": metrics.DataQualityMetricsInputDatasetFacet(
            rowCount=quality.rows,
            bytes=quality.size_bytes,
            fileCount=1,
            columnMetrics={
                name: metrics.ColumnMetrics(**values, quantiles=None)
                for name, values in quality.columns.items()
            },
            producer=PRODUCER,
        ),
        "dataQualityAssertions": assertions.DataQualityAssertionsDatasetFacet(
            assertions=[assertions.Assertion(**a, params=None) for a in quality.assertions],
            producer=PRODUCER,
        ),
    }


def output_facets(ref: DatasetRef) -> dict[str, Any]:
    """An output's row count and size, when known."""
    if ref.rows is None:
        return {}
    from openlineage.client.facet_v2 import output_statistics_output_dataset as statistics

    return {
        "outputStatistics": statistics.OutputStatisticsOutputDatasetFacet(
            rowCount=ref.rows, size=ref.size_bytes, producer=PRODUCER
        )
    }
