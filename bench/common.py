"""Cached synthetic data sets for the benchmarks (git-ignored under bench/cache/)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from pipeline.synth.generate import SynthConfig, generate

CACHE = Path(__file__).resolve().parent / "cache"


def dataset(people: int, doses: int, provinces: tuple[str, ...] = ("01", "79", "48", "66", "92"),
            seed: int = 1, rows_per_file: int = 20_000) -> Path:
    """Generate once (seeded) and reuse: bench/cache/p<people>_d<doses>_s<seed>/."""
    out = CACHE / f"p{people}_d{doses}_s{seed}_{len(provinces)}prov"
    if not (out / "truth.parquet").exists():
        logging.getLogger("bench").info("generating %s", out.name)
        t = time.perf_counter()
        stats = generate(SynthConfig(out=out, people=people, doses=doses, provinces=provinces, seed=seed,
                                     rows_per_file=rows_per_file, corrupt_files=False))
        print(f"synth: {stats} in {time.perf_counter() - t:.1f} s")
    return out
