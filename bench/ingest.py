"""Rows per second read, per file kind and encoding.

    python -m bench.ingest [--people N --doses N]
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

from bench.common import dataset
from pipeline.ingest import read_export
from pipeline.rules import default_rules


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--people", type=int, default=300_000)
    ap.add_argument("--doses", type=int, default=150_000)
    args = ap.parse_args()
    root = dataset(args.people, args.doses) / "exports"
    rules = default_rules()
    rows: dict[str, int] = defaultdict(int)
    secs: dict[str, float] = defaultdict(float)
    for path in sorted(root.rglob("*.*")):
        t = time.perf_counter()
        res = read_export(path, rules)
        kind = f"{res.kind}/{res.encoding or '-'}" + ("/semicolon" if "csv_utf-8" in path.name and b";" in path.read_bytes()[:200] else "")
        secs[kind] += time.perf_counter() - t
        rows[kind] += len(res.frame)
    print(f"{'file kind':<28}{'rows':>10}{'seconds':>10}{'rows/s':>12}")
    for kind in sorted(rows):
        print(f"{kind:<28}{rows[kind]:>10}{secs[kind]:>10.2f}{rows[kind] / secs[kind]:>12,.0f}")
    total_rows, total_secs = sum(rows.values()), sum(secs.values())
    print(f"{'all':<28}{total_rows:>10}{total_secs:>10.2f}{total_rows / total_secs:>12,.0f}")


if __name__ == "__main__":
    main()
