"""The run's allocators: freed memory handed back soon, and under an address-space limit (ulimit -v,
RLIMIT_AS) allocators that reserve only what they use.

Without a limit (choose_pool), Arrow allocates from jemalloc, told to return freed pages to the
system after DECAY_MS: the batches in flight are allocated and freed over and over by several
threads, and Arrow's default allocator (mimalloc) kept about 30 to 60 MB more resident at the
same work (measured at 8M rows: 672 to 684 MB peak against 703 to 747 MB). DECAY_MS is the
decay Arrow's own jemalloc configuration has (1 s), set here so that it is not changed by
accident: pages handed back sooner are faulted in again by the next batches (8M CSV rows: 200 ms
cost 1.2M page faults and 6.4-7.0 s of system time, 1000 ms 0.75M and 4.6-5.0 s, for 20-30 MB
more at peak). jemalloc applies it to the arenas created after the call: the run's, since it is
made before the run allocates. An ARROW_DEFAULT_MEMORY_POOL set by the user is left as
it is, and so is a build without jemalloc.

By default Arrow's allocator (mimalloc) and glibc's per-thread arenas reserve address space far
beyond what they hold (measured on a 100 KB-wide CSV: 2.0 GB of address space for 0.6 GB
resident). That costs nothing without a limit, so nothing changes then; under a limit it would
spend the limit on reservations, so the scorer switches to Arrow's system pool, at most ARENAS
glibc arenas, and a fixed 1 MB mmap threshold (measured: 0.85 GB of address space for the same
file).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import resource

import pyarrow as pa

log = logging.getLogger(__name__)

ARENAS = 2
DECAY_MS = 1000  # jemalloc gives freed pages back after this long (Arrow's setting; see above)
MMAP_THRESHOLD = 1 << 20
_M_ARENA_MAX = -8  # glibc's mallopt parameters
_M_MMAP_THRESHOLD = -3


def limited() -> int | None:
    """The process's address-space limit in bytes, or None when there is none."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    return None if soft == resource.RLIM_INFINITY else soft


def choose_pool() -> None:
    """The run's Arrow memory pool: fit_address_space under a limit, else jemalloc (see above)."""
    if limited() is not None:
        fit_address_space()
        return
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        return
    try:
        pool = pa.jemalloc_memory_pool()
    except NotImplementedError:  # a pyarrow built without it: the default pool stays
        return
    pa.set_memory_pool(pool)
    pa.jemalloc_set_decay_ms(DECAY_MS)


def fit_address_space() -> None:
    """Under an address-space limit, allocators that reserve only what they use (see above)."""
    limit = limited()
    if limit is None:
        return
    pa.set_memory_pool(pa.system_memory_pool())
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt = getattr(libc, "mallopt", None)
        if mallopt is not None:
            mallopt(_M_ARENA_MAX, ARENAS)
            # A fixed threshold: every block of 1 MB or more is its own mapping, returned to the
            # system when freed (glibc otherwise raises it as large blocks are freed, up to 32 MB,
            # and serves them from arenas that keep the address space they grew to).
            mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    except OSError:  # not glibc: its arenas are not ours to bound
        pass
    log.info(
        "address space limited to %d MB: Arrow uses the system allocator, glibc %d arenas",
        limit >> 20,
        ARENAS,
    )
