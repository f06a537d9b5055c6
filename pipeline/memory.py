"""Peak resident memory of this process over a stage of work.

On Linux the kernel keeps the process's peak resident set size (VmHWM in
/proc/self/status) and lets a process reset it to the current size (writing 5
to /proc/self/clear_refs), so a stage's own peak is read exactly, without a
sampling thread. Elsewhere the peak since the process started is reported
(`resource.getrusage`), which is an upper bound of the stage's.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import sys
from pathlib import Path

_STATUS, _CLEAR = Path("/proc/self/status"), Path("/proc/self/clear_refs")
# Export persons of a province linked at a time in a nightly run (`pipeline.reconcile.link`):
# what linking holds at once grows with it, the results do not change (BENCHMARKS.md).
DEFAULT_SLICE_PERSONS = 250_000
# Dose rows of a run checked at a time (`pipeline.doses.flag_in_buckets`), 0.3-0.5 KB each while
# checked: a run with more is checked in buckets of persons, with the same flags (BENCHMARKS.md).
DEFAULT_DOSE_BUCKET_ROWS = 1_000_000


def use_returning_memory_pool() -> str:
    """Make Arrow allocate from jemalloc, which hands freed memory back to the system within a
    second, instead of its default mimalloc, which keeps much of it for reuse; return the pool's
    name. Linking a province of 3 million dose rows peaked at 7.29 GB with mimalloc and 6.44-6.49 GB
    with jemalloc, in the same time, and held 4.2 GB instead of 5.8 GB once its rows were assembled
    (BENCHMARKS.md). An operator's own ARROW_DEFAULT_MEMORY_POOL stands, and where Arrow was built
    without jemalloc (Windows) its default stays."""
    import pyarrow as pa

    if not os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        with contextlib.suppress(NotImplementedError):
            pa.set_memory_pool(pa.jemalloc_memory_pool())
    return str(pa.default_memory_pool().backend_name)


def reset_peak() -> bool:
    """Start measuring a new peak from the current size; False where the system cannot."""
    try:
        _CLEAR.write_text("5")
        return True
    except OSError:
        return False


def peak_gb() -> float | None:
    """Peak resident memory in GB (10^9 bytes) since the last `reset_peak`, None where unknown."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e9
    except OSError:
        pass
    try:
        import resource
    except ImportError:   # Windows
        return None
    scale = 1 if sys.platform == "darwin" else 1024   # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 1e9


def release(freeze: bool = False, thaw: bool = False) -> None:
    """Hand memory freed by the last stage back to the system, so the next stage starts from what is
    really in use: Python's cycles, Arrow's memory pool, and (Linux, glibc) the C heap's free pages.

    With `freeze`, called between stages, the objects that survive (the loaded libraries, the
    registry index: some 290,000 once a province has been validated) are then set aside from
    Python's cyclic collector (`gc.freeze`). Its full collections, here and the automatic ones a
    stage's work triggers, then go through the newer objects only, not through all of those again
    each time. With `thaw` (at the start of a province), they are first put back and everything
    is collected, so an object set aside that has died since is collected then: nothing stays
    set aside beyond one province."""
    if thaw:
        gc.unfreeze()
    gc.collect()
    if freeze:
        gc.freeze()
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):   # another C library (musl): nothing to trim
            ctypes.CDLL("libc.so.6").malloc_trim(0)
