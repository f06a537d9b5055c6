"""Peak memory per stage (pipeline.memory): the kernel's high-water mark, reset per stage."""

import sys

import numpy as np
import pytest

from pipeline.memory import peak_gb, reset_peak


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the resettable peak (VmHWM, clear_refs) is Linux's")
def test_peak_follows_an_allocation_and_resets():
    assert reset_peak()
    before = peak_gb()
    block = np.ones(300_000_000 // 8)       # 300 MB, touched
    during = peak_gb()
    del block
    assert during - before >= 0.29
    assert reset_peak()
    after = peak_gb()
    assert after < during - 0.25             # the freed block no longer counts


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's heap and VmRSS are Linux's")
def test_release_returns_freed_heap_memory_to_the_system():
    """Blocks freed in the middle of the C heap stay resident until released (the heap's top is
    still in use): what pandas and numpy leave behind after a large province."""
    import ctypes

    from pipeline.memory import release

    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_void_p]

    def rss_gb() -> float:
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS")) * 1024 / 1e9

    release()
    blocks = [libc.malloc(4000) for _ in range(60_000)]      # 240 MB in small blocks, touched
    for block in blocks:
        ctypes.memset(block, 1, 4000)
    for block in blocks[:-1]:
        libc.free(block)
    held = rss_gb()
    release()
    released = rss_gb()
    libc.free(blocks[-1])
    assert held - released > 0.15, (held, released)


def test_frozen_objects_are_set_aside_until_the_next_thaw_and_new_garbage_is_still_collected():
    """release(freeze=True) between stages sets the survivors aside from Python's collector;
    release(thaw=True) at a province's start puts them back, so a cycle that died meanwhile is
    collected then, not kept for the life of the process."""
    import gc
    import weakref

    from pipeline.memory import release

    class Node:
        pass

    def cycle() -> weakref.ref:
        a, b = Node(), Node()
        a.other, b.other = b, a
        return weakref.ref(a)

    try:
        held = [Node(), Node()]
        held[0].other, held[1].other = held[1], held[0]
        old = weakref.ref(held[0])
        release(freeze=True)
        assert gc.get_freeze_count() > 0
        held.clear()                      # the cycle, alive when set aside, dies now
        new = cycle()                     # a cycle made and dropped after
        release(freeze=True)
        assert new() is None              # new garbage: collected as before
        assert old() is not None          # set aside: not traversed by this collection
        release(freeze=True, thaw=True)
        assert old() is None              # put back and collected at the next province's start
    finally:
        gc.unfreeze()


def _environ(pool: str | None) -> dict[str, str]:
    """This process's environment with ARROW_DEFAULT_MEMORY_POOL set to `pool` (None: unset)."""
    import os

    environ = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    if pool:
        environ["ARROW_DEFAULT_MEMORY_POOL"] = pool
    return environ


def _has_jemalloc() -> bool:
    import pyarrow as pa

    try:
        pa.jemalloc_memory_pool()
    except NotImplementedError:
        return False
    return True


_READ_AND_DROP = """
import sys, time
import pipeline
import pyarrow as pa, pyarrow.parquet as pq

def anon_gb():
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("RssAnon")) * 1024 / 1e9

base = anon_gb()
for _ in range(2):
    table = pq.read_table(sys.argv[1])      # decoded on Arrow's threads, dropped on this one
    held = anon_gb()
    del table
time.sleep(2.5)
print(pa.default_memory_pool().backend_name, base, held, anon_gb())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RssAnon is Linux's")
@pytest.mark.skipif(not _has_jemalloc(), reason="this pyarrow was built without jemalloc (Windows)")
def test_arrow_memory_freed_after_reading_goes_back_to_the_system(tmp_path):
    """Importing vaxrecon puts Arrow on jemalloc: a table read on Arrow's threads and dropped is
    handed back within a second or two. On Arrow's default mimalloc it stays resident (measured
    here: all of it), which is what made linking a large province peak 0.8 GB higher."""
    import subprocess

    import pyarrow as pa
    import pyarrow.parquet as pq

    n = 2_000_000
    numbers = pa.array(np.arange(n, dtype=np.int64) * 7919)
    pq.write_table(pa.table({f"c{i}": pa.compute.add(numbers, i).cast(pa.string()) for i in range(8)}),
                   tmp_path / "t.parquet", row_group_size=100_000)
    out = subprocess.run([sys.executable, "-c", _READ_AND_DROP, str(tmp_path / "t.parquet")],
                         env=_environ(None), capture_output=True, text=True, check=True).stdout.split()
    backend, (base, held, after) = out[0], map(float, out[1:])
    assert backend == "jemalloc"
    assert held - base > 0.2, out                    # the table was resident
    assert after - base < (held - base) / 2, out     # and most of it went back


@pytest.mark.skipif(not _has_jemalloc(), reason="this pyarrow was built without jemalloc (Windows)")
def test_an_operators_arrow_memory_pool_stands():
    import subprocess

    code = "import pipeline, pyarrow as pa; print(pa.default_memory_pool().backend_name)"
    for env, backend in ((None, "jemalloc"), ("system", "system"), ("mimalloc", "mimalloc")):
        got = subprocess.run([sys.executable, "-c", code], env=_environ(env), capture_output=True, text=True,
                             check=True).stdout.strip()
        assert got == backend, (env, got)
