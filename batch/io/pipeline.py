"""Overlap reading, scoring and writing: a read-ahead thread and writer threads, bounded queues.

Arrow's readers and writers (Parquet decode and encode, CSV parse and format, compression) run
without the GIL, so while the main thread validates and scores batch k, one thread reads batch
k+1 and two more write batch k-1 (one the Parquet file, one the CSV files; the CSV thread hands
each batch to csv_writer's formatting pool and writes the formatted bytes in order). Every queue
holds at most `depth` batches, and the pool at most a few, so memory stays flat whatever the
input's size. The report's `stream` phase is all of this together: the stages overlap, so their
own times are not added up as if they ran one after another.

Errors anywhere stop everything: the first exception of any thread (an InputError from the
reader, the EnvironmentFault of a full disk from a writer) is raised in the main thread, which
then stops and joins every thread before it unwinds. A KeyboardInterrupt (a stop signal) in the
main thread unwinds the same way. No thread outlives the with-block or `abort()`.

The queues between the threads are `Channel`s, not `queue.Queue`s: a stop signal raises its
KeyboardInterrupt wherever the main thread is, and one raised inside Queue.put or Queue.get (Python
code around a lock) can release that lock while the other thread holds it; the threads then lose a
wake-up and the abort waits for ever. A Channel's waits are single C calls that an interrupt ends
before or after, never half-way; and every thread's wait also polls the stop flag.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pyarrow as pa

from batch.io.sink import PredictionSink
from batch.storage import fs

log = logging.getLogger(__name__)

DEPTH = 1  # batches waiting between two stages: each stage still has its next batch ready
_POLL = 0.1  # seconds between checks for a failed or stopped stage while waiting on a queue
_DONE = object()  # end of a stream


class Channel:
    """A bounded FIFO between two threads whose every wait is one C call (queue.SimpleQueue).

    `put` waits for room (one of `depth` tokens), `get` hands the token back. An interrupt in
    the main thread between the two C calls of a put or a get can only lose a token or an item;
    that happens only while the pipeline is being stopped, and `put_last` (the end-of-stream
    marker) needs no room.
    """

    def __init__(self, depth: int) -> None:
        self._items: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._room: queue.SimpleQueue[None] = queue.SimpleQueue()
        for _ in range(depth):
            self._room.put(None)

    def put(self, item: Any, timeout: float) -> bool:
        """Add `item` once there is room; False if there was none within `timeout` seconds."""
        try:
            self._room.get(timeout=timeout)
        except queue.Empty:
            return False
        self._items.put(item)
        return True

    def put_last(self, item: Any) -> None:
        """Add `item` whether or not there is room (the end of a stream)."""
        self._items.put(item)

    def get(self, timeout: float) -> Any:
        """The oldest item; raises queue.Empty when none arrived within `timeout` seconds."""
        item = self._items.get(timeout=timeout)
        self._room.put(None)
        return item

    def drain(self) -> None:
        """Drop every waiting item, and let a put waiting for room go on at once (when stopping:
        an interrupted get may have taken the room and not given it back)."""
        try:
            while True:
                self.get(timeout=0)
        except queue.Empty:
            pass
        self._room.put(None)


class _Failed:
    """An exception raised in a stage's thread, carried to the main thread."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class ReadAhead:
    """Iterate `iterable` in a thread, at most `depth` items ahead of the consumer.

    Use as a context manager (or call close()): leaving the block stops the thread, closes the
    iterable in that thread (a generator's clean-up runs where it ran) and joins it.
    """

    def __init__(
        self, iterable: Iterable[Any], depth: int = DEPTH, name: str = "read-ahead"
    ) -> None:
        self._iterable = iterable
        self._queue = Channel(depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        it = iter(self._iterable)
        try:
            for item in it:
                if not self._offer(item):
                    return
            self._queue.put_last(_DONE)
        except BaseException as exc:  # carried to the consumer, raised there
            self._queue.put_last(_Failed(exc))
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()

    def _offer(self, item: Any) -> bool:
        """Put `item`, waiting while the queue is full; False once the consumer has stopped."""
        while not self._stop.is_set():
            if self._queue.put(item, timeout=_POLL):
                return True
        return False

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        while True:
            alive = self._thread.is_alive()  # before the wait: a thread that ended put its last
            try:
                item = self._queue.get(timeout=_POLL)
                break
            except queue.Empty:
                if not alive:
                    raise RuntimeError("the read-ahead thread ended without a result") from None
        if item is _DONE:
            self._queue.put_last(_DONE)  # stay exhausted
            raise StopIteration
        if isinstance(item, _Failed):
            raise item.exc
        return item

    def close(self) -> None:
        """Stop the thread and wait for it (it finishes at most the read in progress)."""
        self._stop.set()
        self._queue.drain()
        self._thread.join()

    def __enter__(self) -> ReadAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PipelinedSink(PredictionSink):
    """The prediction sink with its Parquet file and its CSV files written in two threads.

    The same files, byte for byte, as PredictionSink: each thread writes its batches in order.
    `write` returns once both threads have room for the batch; `close` waits for them to finish
    and raises the first error; `abort` (after an error elsewhere) stops them without raising.
    """

    def __init__(
        self,
        folder: fs.Location,
        schema: pa.Schema,
        rejects_schema: pa.Schema,
        depth: int = DEPTH,
        numbers: frozenset[str] = frozenset(),
        formats: str = "both",
        integers: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__(
            folder, schema, rejects_schema, numbers=numbers, formats=formats, integers=integers
        )
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        # The two halves of PredictionSink.write, one per thread.
        self._stages = [
            self._stage("write-parquet", self.write_parquet, depth),
            self._stage("write-csv", self.write_csv, depth),
        ]

    def _stage(
        self, name: str, fn: Callable[..., None], depth: int
    ) -> tuple[Channel, threading.Thread]:
        q = Channel(depth)
        thread = threading.Thread(target=self._drain_into, args=(q, fn), name=name, daemon=True)
        thread.start()
        return q, thread

    def _drain_into(self, q: Channel, fn: Callable[..., None]) -> None:
        while not self._stop.is_set():
            try:
                item = q.get(timeout=_POLL)
            except queue.Empty:
                continue
            if item is _DONE or self._stop.is_set():
                return
            try:
                fn(*item)
            except BaseException as exc:  # raised in the main thread by write/close
                self._errors.append(exc)
                self._stop.set()
                return

    def _check(self) -> None:
        if self._errors:
            raise self._errors[0]

    def _put(self, q: Channel, item: Any) -> None:
        while True:
            self._check()
            if self._stop.is_set():
                raise RuntimeError("the prediction sink was stopped")
            if q.put(item, timeout=_POLL):
                return

    def write(self, predictions: pa.RecordBatch, rejects: pa.RecordBatch) -> None:
        for q, _ in self._stages:
            self._put(q, (predictions, rejects))

    def _join(self) -> None:
        for q, _ in self._stages:
            q.put_last(_DONE)
        for _, thread in self._stages:
            thread.join()

    def _stop_writers(self) -> None:
        """Stop both writer threads (each ends its batch in progress) and wait for them."""
        self._stop.set()
        for q, _ in self._stages:
            q.drain()
        self._join()

    def close(self) -> None:
        """Wait for both writers, close the files; the first error (a full disk, say) is raised."""
        if not self._writers:
            return
        try:
            self._join()
        except BaseException:
            # Interrupted while waiting (a stop signal): stop the writers before their files
            # are closed under them, so that no thread outlives the sink.
            self._stop_writers()
            raise
        finally:
            try:
                super().close()
            except BaseException as exc:
                self._errors.append(exc)
        self._check()

    def abort(self) -> None:
        """Stop both writers without raising (the caller is already unwinding an error)."""
        self._stop_writers()
        try:
            super().close()
        except Exception as exc:  # the run fails anyway; its own error is the one to report
            log.debug("closing the prediction files after an error: %s", exc)
