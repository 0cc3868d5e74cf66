"""OpenLineage run events (START, then COMPLETE or FAIL) for scoring and training runs; off
unless set."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batch.core.redact import redact
from batch.storage.location import Location

log = logging.getLogger(__name__)

NAMESPACE = "house-price-batch"
# Who wrote the events, as a URI (OpenLineage asks for one); our custom facets' schema URIs.
PRODUCER = "urn:house-price-batch"
FACET_SCHEMA = "urn:house-price-batch:facets"
# Fixed, so the same run id of ours always maps to the same OpenLineage run UUID.
RUN_UUID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, PRODUCER)
HTTP_TIMEOUT_SECONDS = 10.0  # the default of --http-timeout-s
# A run sends at most three events; together they may take this many call deadlines.
RUN_BUDGET_CALLS = 3
# A down endpoint must cost a run seconds, not minutes: two retries, short, jittered back-off.
HTTP_RETRY = {
    "total": 2,
    "read": 2,
    "connect": 2,
    "backoff_factor": 0.3,
    "backoff_jitter": 0.3,
    "status_forcelist": [500, 502, 503, 504],
    "allowed_methods": ["POST"],
}


def run_uuid(job: str, run_id: str) -> str:
    """The OpenLineage run id (a UUID) for one of our run ids: stable, one per job and run."""
    return str(uuid.uuid5(RUN_UUID_NAMESPACE, f"{NAMESPACE}/{job}/{run_id}"))


def file_dataset(path: str | Location) -> tuple[str, str]:
    """(namespace, name) of a file or folder after OpenLineage's naming: file + absolute path,
    or s3://bucket + key."""
    text = redact(str(path))
    if "://" in text:
        scheme, rest = text.split("://", 1)
        bucket, _, key = rest.partition("/")
        return f"{scheme}://{bucket}", key
    return "file", str(Path(text).resolve())


@dataclass
class DatasetRef:
    """A dataset a run read or wrote, described without importing OpenLineage."""

    namespace: str
    name: str
    schema: list[tuple[str, str]] | None = None  # (column, type) in order
    rows: int | None = None  # outputs: the row count
    size_bytes: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # shown in a custom dataset facet

    @classmethod
    def file(cls, path: str | Location, **kwargs: Any) -> DatasetRef:
        """A file (or folder) dataset named after OpenLineage's naming conventions."""
        namespace, name = file_dataset(path)
        return cls(namespace, name, **kwargs)


@functools.cache
def _facet_classes() -> tuple[Any, Any]:
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
            return FACET_SCHEMA + ":BatchRunFacet"

    @attr.define
    class BatchDatasetFacet(DatasetFacet):
        """What else we know of a dataset (e.g. the model version, the file's sha256)."""

        properties: dict[str, Any] = attr.field(factory=dict)

        @staticmethod
        def _get_schema() -> str:
            return FACET_SCHEMA + ":BatchDatasetFacet"

    return BatchRunFacet, BatchDatasetFacet


class Lineage:
    """One run's lineage events: start(), then complete() or fail(); a no-op when disabled.

    Emitting never raises: an endpoint that is down, slow or refusing costs a warning in the
    log, never the run.
    """

    def __init__(
        self,
        job: str,
        run_id: str,
        url: str | None = None,
        file: Path | None = None,
        api_key: str | None = None,
        timeout: float = HTTP_TIMEOUT_SECONDS,
    ) -> None:
        self.job = job
        self.run_id = run_id
        self.uuid = run_uuid(job, run_id)
        self.url = url
        self.file = Path(file) if file else None
        self.api_key = api_key
        # Per call, retries included; the run's events together get RUN_BUDGET_CALLS of these.
        self.timeout = timeout
        self._budget = timeout * RUN_BUDGET_CALLS
        self.inputs: list[DatasetRef] = []
        self._clients: list[tuple[str, Any]] | None = None

    @classmethod
    def from_settings(cls, settings: Any, job: str, run_id: str) -> Lineage:
        """Lineage for a run, enabled by the openlineage_url / openlineage_file settings."""
        key = settings.openlineage_api_key
        return cls(
            job,
            run_id,
            url=settings.openlineage_url,
            file=settings.openlineage_file,
            api_key=key.get_secret_value() if key is not None else None,
            timeout=settings.http_timeout_s,
        )

    @property
    def enabled(self) -> bool:
        return bool(self.url or self.file)

    # -- the three events ------------------------------------------------------------------------
    def start(self, inputs: list[DatasetRef] | None = None) -> None:
        """The run began; `inputs` are remembered for the closing event too."""
        self.inputs = list(inputs or [])
        self._emit("START", self.inputs, [])

    def complete(
        self, outputs: list[DatasetRef] | None = None, inputs: list[DatasetRef] | None = None
    ) -> None:
        """The run succeeded and wrote `outputs` (with their row counts)."""
        if inputs is not None:
            self.inputs = list(inputs)
        self._emit("COMPLETE", self.inputs, list(outputs or []))

    def fail(self, error: str, outputs: list[DatasetRef] | None = None) -> None:
        """The run failed with `error` (its one-sentence message)."""
        self._emit("FAIL", self.inputs, list(outputs or []), error=error)

    # -- plumbing -------------------------------------------------------------------------------
    def _emit(
        self,
        kind: str,
        inputs: list[DatasetRef],
        outputs: list[DatasetRef],
        error: str | None = None,
    ) -> None:
        if not self.enabled:
            return
        try:
            event = self._event(kind, inputs, outputs, error)
            clients = self._connect()
        except Exception as exc:  # lineage must never fail a run
            log.warning(
                "OpenLineage %s event for %s run %s not built: %s", kind, self.job, self.run_id, exc
            )
            return
        for target, client in clients:
            try:
                if target == self.url:
                    self._emit_within_deadline(client, event)
                else:
                    client.emit(event)
                log.debug(
                    "OpenLineage %s event for %s run %s sent to %s",
                    kind,
                    self.job,
                    self.run_id,
                    target,
                )
            except Exception as exc:  # a down endpoint or an unwritable file: warn, go on
                log.warning(
                    "OpenLineage %s event for %s run %s could not be sent to %s: %s",
                    kind,
                    self.job,
                    self.run_id,
                    target,
                    _short(exc),
                )

    def _emit_within_deadline(self, client: Any, event: Any) -> None:
        """POST the event in a helper thread and wait at most the call's deadline (and what is
        left of the run's budget): a slow-drip answer is cut at the deadline, not reset by each
        byte, and never keeps the run (or its output lock) waiting. A thread left behind is a
        daemon; it ends with its socket's read timeout or the process."""
        wait = min(self.timeout, self._budget)
        if wait <= 0:
            raise TimeoutError("the run's lineage time budget is spent; event not sent")
        outcome: list[BaseException | None] = []

        def post() -> None:
            try:
                client.emit(event)
                outcome.append(None)
            except BaseException as exc:  # handed to the waiting thread
                outcome.append(exc)

        started = time.monotonic()
        worker = threading.Thread(target=post, name="openlineage-emit", daemon=True)
        worker.start()
        worker.join(wait)
        self._budget -= time.monotonic() - started
        if not outcome:
            raise TimeoutError(f"no answer within {wait:g} s (--http-timeout-s)")
        if outcome[0] is not None:
            raise outcome[0]

    def _connect(self) -> list[tuple[str, Any]]:
        if self._clients is None:
            from openlineage.client import OpenLineageClient

            clients = []
            if self.url:
                from openlineage.client.transport.http import (
                    ApiKeyTokenProvider,
                    HttpConfig,
                    HttpTransport,
                    TokenProvider,
                )

                auth = (
                    ApiKeyTokenProvider({"api_key": self.api_key})
                    if self.api_key
                    else TokenProvider({})
                )
                http = HttpTransport(
                    HttpConfig(
                        url=self.url, timeout=self.timeout, retry=dict(HTTP_RETRY), auth=auth
                    )
                )
                clients.append((self.url, OpenLineageClient(transport=http)))
            if self.file:
                from openlineage.client.transport.file import FileConfig, FileTransport

                self.file.parent.mkdir(parents=True, exist_ok=True)
                file = FileTransport(FileConfig(log_file_path=str(self.file), append=True))
                clients.append((str(self.file), OpenLineageClient(transport=file)))
            self._clients = clients
        return self._clients

    def _event(
        self, kind: str, inputs: list[DatasetRef], outputs: list[DatasetRef], error: str | None
    ) -> Any:
        from openlineage.client.event_v2 import InputDataset, Job, Run, RunEvent, RunState
        from openlineage.client.facet_v2 import error_message_run

        run_facet, _ = _facet_classes()
        run_facets: dict[str, Any] = {
            "houseprice_batch": run_facet(runId=self.run_id, job=self.job, producer=PRODUCER)
        }
        if error is not None:
            run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=error, programmingLanguage="python", producer=PRODUCER
            )
        return RunEvent(
            eventType=getattr(RunState, kind),
            eventTime=dt.datetime.now(dt.UTC).isoformat(),
            run=Run(runId=self.uuid, facets=run_facets),
            job=Job(namespace=NAMESPACE, name=self.job),
            producer=PRODUCER,
            inputs=[
                InputDataset(namespace=r.namespace, name=r.name, facets=_dataset_facets(r))
                for r in inputs
            ],
            outputs=[_output_dataset(r) for r in outputs],
        )


def _dataset_facets(ref: DatasetRef) -> dict[str, Any]:
    """A dataset's schema facet and our own (what else we know of it)."""
    from openlineage.client.facet_v2 import schema_dataset

    out: dict[str, Any] = {}
    if ref.schema:
        out["schema"] = schema_dataset.SchemaDatasetFacet(
            fields=[schema_dataset.SchemaDatasetFacetFields(name=n, type=t) for n, t in ref.schema],
            producer=PRODUCER,
        )
    if ref.extra:
        _, dataset_facet = _facet_classes()
        out["houseprice_batch"] = dataset_facet(properties=dict(ref.extra), producer=PRODUCER)
    return out


def _output_dataset(ref: DatasetRef) -> Any:
    """An output dataset, with its row count and size when known."""
    from openlineage.client.event_v2 import OutputDataset
    from openlineage.client.facet_v2 import output_statistics_output_dataset as statistics

    output_facets: dict[str, Any] = {}
    if ref.rows is not None:
        output_facets["outputStatistics"] = statistics.OutputStatisticsOutputDatasetFacet(
            rowCount=ref.rows, size=ref.size_bytes, producer=PRODUCER
        )
    return OutputDataset(
        namespace=ref.namespace,
        name=ref.name,
        facets=_dataset_facets(ref),
        outputFacets=output_facets,
    )


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] or type(exc).__name__


def arrow_schema(schema: Any) -> list[tuple[str, str]]:
    """(column, type) pairs of a pyarrow schema (or any fields with .name and .type)."""
    return [(f.name, str(f.type)) for f in schema]


def score_inputs(
    files: list[Any],
    schema: list[tuple[str, str]] | None,
    model_dir: Location | None = None,
    version: str | None = None,
) -> list[DatasetRef]:
    """A scoring run's input datasets: each input file (with the run's input schema) and the model.

    `files` are objects with `path` and `sha256` (the scorer's per-file records).
    """
    refs = [
        DatasetRef.file(f.path, schema=schema, extra={"sha256": getattr(f, "sha256", None)})
        for f in files
    ]
    if model_dir is not None and version:
        refs.append(DatasetRef.file(model_dir / version, extra={"model_version": version}))
    return refs


def score_outputs(
    run_dir: Location,
    rows_scored: int,
    rows_rejected: int,
    schema: list[tuple[str, str]] | None = None,
) -> list[DatasetRef]:
    """A scoring run's output datasets: predictions (Parquet) and rejects.csv, with row counts."""
    return [
        DatasetRef.file(run_dir / "predictions.parquet", schema=schema, rows=rows_scored),
        DatasetRef.file(
            run_dir / "rejects.csv",
            rows=rows_rejected,
            schema=[
                ("source_file", "string"),
                ("source_row", "int64"),
                ("raw_value", "string"),
                ("reason", "string"),
            ],
        ),
    ]
