"""Link precision / recall, review rate, per-code F1 and misses by damage, on synthetic data.

    python -m bench.accuracy [--people 300000 --doses 150000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
import time
from pathlib import Path

import pandas as pd

from bench.common import dataset
from flows.reconcile import run_reconciliation
from pipeline.evaluate import compare, load_corrected


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--people", type=int, default=300_000)
    ap.add_argument("--doses", type=int, default=150_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    data = dataset(args.people, args.doses, seed=args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        run_reconciliation(data / "registry.parquet", data / "exports", Path(tmp), run_date=dt.date(2026, 11, 26))
        seconds = time.perf_counter() - t
        res = compare(load_corrected(Path(tmp)), pd.read_parquet(data / "truth.parquet"))
    codes = res.pop("codes")
    print(f"vaxrecon run: {seconds:.1f} s for {res['rows']:,} dose rows against {args.people:,} registry people")
    print(f"link precision {res['precision']:.5f}  recall {res['recall']:.5f}  "
          f"wrong links {res['wrong_links']}  review rate {res['review_rate']:.4f}")
    print(f"{'code':<20}{'precision':>10}{'recall':>10}{'F1':>8}{'tp':>8}{'fp':>6}{'fn':>6}")
    for code, s in codes.items():
        print(f"{code:<20}{s['precision']:>10.4f}{s['recall']:>10.4f}{s['f1']:>8.4f}{s['tp']:>8}{s['fp']:>6}{s['fn']:>6}")
    print("misses (true person not linked) by damage:", json.dumps(res["misses_by_damage"], ensure_ascii=False))
    print("misses by status:", res["misses_by_status"])
    print("wrong links by damage:", json.dumps(res["wrong_links_by_damage"], ensure_ascii=False))


if __name__ == "__main__":
    main()
