"""One run's OpenLineage events (START, then COMPLETE or FAIL), built and sent within deadlines."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import batch.ops.lineage.facets as facets
from batch.ops.lineage.datasets import DatasetRef

log = logging.getLogger("batch.ops.lineage")

NAMESPACE = "house-price-batch"
# Fixed, so the same run id of ours always maps to the same OpenLineage run UUID.
RUN_UUID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, facets.PRODUCER)
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
        engine: str | None = None,
        nominal_time: dt.datetime | None = None,
    ) -> None:
        self.job = job
        self.engine = engine  # the processing_engine facet's name (local, dask, keras)
        self.nominal_time = nominal_time  # the scheduled time this run stands for
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
    def from_settings(
        cls, settings: Any, job: str, run_id: str, engine: str | None = None
    ) -> Lineage:
        """Lineage for a run, enabled by the openlineage_url / openlineage_file settings; a
        scoring run names its engine and nominal time from the settings too."""
        key = settings.openlineage_api_key
        scoring = job == "score"
        return cls(
            job,
            run_id,
            url=settings.openlineage_url,
            file=settings.openlineage_file,
            api_key=key.get_secret_value() if key is not None else None,
            timeout=settings.http_timeout_s,
            engine=settings.engine if scoring and engine is None else engine,
            nominal_time=settings.nominal_time if scoring else None,
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

    def observed(self, inputs: list[DatasetRef]) -> None:
        """The inputs as the run measured them (their data quality): the closing event's."""
        self.inputs = list(inputs)

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
        from openlineage.client.event_v2 import (
            InputDataset,
            Job,
            OutputDataset,
            Run,
            RunEvent,
            RunState,
        )

        return RunEvent(
            eventType=getattr(RunState, kind),
            eventTime=dt.datetime.now(dt.UTC).isoformat(),
            run=Run(
                runId=self.uuid,
                facets=facets.run_facets(
                    self.run_id, self.job, self.engine, self.nominal_time, error
                ),
            ),
            job=Job(namespace=NAMESPACE, name=self.job, facets=facets.job_facets()),
            producer=facets.PRODUCER,
            inputs=[
                InputDataset(
                    namespace=r.namespace,
                    name=r.name,
                    facets=facets.dataset_facets(r),
                    inputFacets=facets.input_facets(r.quality),
                )
                for r in inputs
            ],
            outputs=[
                OutputDataset(
                    namespace=r.namespace,
                    name=r.name,
                    facets=facets.dataset_facets(r),
                    outputFacets=facets.output_facets(r),
                )
                for r in outputs
            ],
        )


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] or type(exc).__name__
