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
from flows.nightly import nightly_reconciliation
from pipeline.evaluate import compare, load_corrected


def blocking_recall(data: Path) -> tuple[float, int, float]:
    """(share of rows whose true person is among their candidates, candidate pairs, pairs per row)."""
    from flows.reconcile import ProvinceRun, ingest_province, list_provinces
    from pipeline.link.index import load_index
    from pipeline.reconcile import find_candidates, normalise
    from pipeline.rules import default_rules

    rules = default_rules()
    index = load_index(data / "registry.parquet", rules)
    truth = pd.read_parquet(data / "truth.parquet").set_index(["source_file", "source_row"])["true_person_id"]
    hits = total = pairs = rows = 0
    with tempfile.TemporaryDirectory() as tmp:
        for code in list_provinces(data / "exports", None):
            raw = ingest_province(ProvinceRun(code), data / "exports", Path(tmp), rules, None)
            norm = normalise(raw, rules, dt.date(2026, 11, 26), index.tone_style, index.lexicon(rules))
            cand = find_candidates(norm, index, rules)
            true_pid = truth.reindex(pd.MultiIndex.from_frame(raw[["source_file", "source_row"]])).to_numpy()
            in_reg = pd.notna(true_pid)
            true_row = index.rows_of(pd.Series(true_pid, dtype="string[pyarrow]").fillna(""), "person_id")
            profile = cand.profile_of_row.reindex(norm.index).fillna(-1).astype(int).to_numpy()
            wanted = pd.DataFrame({"profile": profile[in_reg], "row": true_row[in_reg]})
            found = wanted.merge(cand.pairs[["profile", "row"]].drop_duplicates(), how="left", indicator=True)
            hits += int((found["_merge"] == "both").sum())
            total += int(in_reg.sum())
            pairs += len(cand.pairs)
            rows += len(raw)
    return hits / max(total, 1), pairs, pairs / max(rows, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--people", type=int, default=300_000)
    ap.add_argument("--doses", type=int, default=150_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    data = dataset(args.people, args.doses, seed=args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        nightly_reconciliation(data / "registry.parquet", data / "exports", Path(tmp), run_date=dt.date(2026, 11, 26))
        seconds = time.perf_counter() - t
        res = compare(load_corrected(Path(tmp)), pd.read_parquet(data / "truth.parquet"))
    codes = res.pop("codes")
    print(f"vaxrecon run: {seconds:.1f} s for {res['rows']:,} dose rows against {args.people:,} registry people")
    print(f"link precision {res['precision']:.5f}  recall {res['recall']:.5f}  "
          f"wrong links {res['wrong_links']}  review rate {res['review_rate']:.4f}")
    print(f"{'code':<20}{'precision':>10}{'recall':>10}{'F1':>8}{'tp':>8}{'fp':>6}{'fn':>6}")
    for code, s in codes.items():
        print(f"{code:<20}{s['precision']:>10.4f}{s['recall']:>10.4f}{s['f1']:>8.4f}{s['tp']:>8}{s['fp']:>6}{s['fn']:>6}")
    print("calibration (links by match_score band: count, observed precision):",
          json.dumps(res["calibration"], ensure_ascii=False))
    recall, n_pairs, per_row = blocking_recall(data)
    print(f"blocking recall {recall:.5f} ({n_pairs:,} candidate pairs, {per_row:.2f} per dose row)")
    print("misses (true person not linked) by damage:", json.dumps(res["misses_by_damage"], ensure_ascii=False))
    print("misses by status:", res["misses_by_status"])
    print("wrong links by damage:", json.dumps(res["wrong_links_by_damage"], ensure_ascii=False))


if __name__ == "__main__":
    main()
