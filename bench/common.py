"""Cached synthetic data sets for the benchmarks (git-ignored under bench/cache/)."""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from pathlib import Path

from pipeline.synth.generate import SynthConfig, generate

CACHE = Path(__file__).resolve().parent / "cache"


def dataset(people: int, doses: int, provinces: tuple[str, ...] = ("01", "79", "48", "66", "92"),
            seed: int = 1, rows_per_file: int = 20_000) -> Path:
    """Generate once (seeded) and reuse: bench/cache/p<people>_d<doses>_s<seed>_<n>prov[_<codes>]/
    (the codes named when they are not the usual five)."""
    usual = provinces == ("01", "79", "48", "66", "92")
    out = CACHE / (f"p{people}_d{doses}_s{seed}_{len(provinces)}prov" + ("" if usual else "_" + "-".join(provinces)))
    if not (out / "truth.parquet").exists():
        logging.getLogger("bench").info("generating %s", out.name)
        t = time.perf_counter()
        stats = generate(SynthConfig(out=out, people=people, doses=doses, provinces=provinces, seed=seed,
                                     rows_per_file=rows_per_file, corrupt_files=False))
        print(f"synth: {stats} in {time.perf_counter() - t:.1f} s")
    return out


def measure(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Run `cmd`; return wall seconds, peak resident memory in GB of it and all its descendants
    together (sampled every 0.1 s), and its standard error. Exit codes other than 0 and 3 abort."""
    import psutil  # comes with distributed (prefect-dask)

    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        root = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in procs if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.1)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    _, err = proc.communicate()
    done.set()
    watcher.join()
    if proc.returncode not in (0, 3):
        raise SystemExit(err[-4000:])
    return time.perf_counter() - t, peak / 1e9, err
