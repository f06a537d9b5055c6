"""The Python Record Linkage Toolkit (`recordlinkage` 0.16) on the same rows, in its own environment.

    <rl-venv>/bin/python bench/peer_recordlinkage.py PREPARED_DIR [--limit N]

Reads PREPARED_DIR/exports.parquet and registry.parquet (the cleanly decoded
rows bench/peers.py writes for Splink too) and links them the way the
toolkit's documentation does for data without training labels: candidate pairs
by blocking (on ID, and on name + date of birth), comparison vectors (name by
Jaro-Winkler at 0.85, date of birth and sex exact, ID by Levenshtein at 0.85),
and the unsupervised ECM classifier (expectation-maximisation on the binary
vectors). With --limit, only the first N export rows are linked (the toolkit
holds every candidate pair and comparison vector in pandas). Writes
PREPARED_DIR/rl_links.parquet (one registry person per linked export row, the
one with the most agreeing fields) and rl.json (timings, rows linked).
Imports nothing from vaxrecon: this environment pins pandas < 3.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd


def main() -> None:
    import recordlinkage

    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--limit", type=int, default=0)
    args = ap.parse_args()
    folder = Path(args.folder)
    t0 = time.perf_counter()
    exports = pd.read_parquet(folder / "exports.parquet").set_index("uid")
    if args.limit:
        exports = exports.iloc[: args.limit]
    registry = pd.read_parquet(folder / "registry.parquet").set_index("uid")
    t_read = time.perf_counter()
    indexer = recordlinkage.Index()
    indexer.block("person_id")
    indexer.block(["name_fold", "dob"])
    pairs = indexer.index(exports, registry)
    t_index = time.perf_counter()
    compare = recordlinkage.Compare(n_jobs=2)
    compare.string("name_fold", "name_fold", method="jarowinkler", threshold=0.85, label="name")
    compare.exact("dob", "dob", label="dob")
    compare.exact("sex", "sex", label="sex")
    compare.string("person_id", "person_id", method="levenshtein", threshold=0.85, label="id")
    features = compare.compute(pairs, exports, registry)
    t_compare = time.perf_counter()
    ecm = recordlinkage.ECMClassifier(binarize=0.5)
    matches = ecm.fit_predict(features)
    t_classify = time.perf_counter()
    chosen = features.loc[matches].sum(axis=1).rename("agree").reset_index()
    chosen.columns = ["row", "registry_row", "agree"]
    chosen = chosen.sort_values(["row", "agree"], ascending=[True, False]).drop_duplicates("row")
    chosen[["row", "registry_row"]].astype("int64").to_parquet(folder / "rl_links.parquet")
    timings = {"read": t_read - t0, "index": t_index - t_read, "compare": t_compare - t_index,
               "classify": t_classify - t_compare, "total": t_classify - t0, "rows": len(exports),
               "pairs": len(pairs)}
    (folder / "rl.json").write_text(json.dumps(timings), encoding="utf-8")


if __name__ == "__main__":
    main()
