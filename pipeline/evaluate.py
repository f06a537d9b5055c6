"""Compare a run's corrected outputs with a ground-truth file (synthetic data)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.rules import ALL_CODES


def load_corrected(out: Path) -> pd.DataFrame:
    parts = [pd.read_parquet(p) for p in sorted((out / "corrected").glob("*.parquet"))]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def compare(corrected: pd.DataFrame, truth: pd.DataFrame) -> dict[str, Any]:
    """Link precision and recall, review rate, per-code precision / recall / F1, misses by damage."""
    m = truth.merge(corrected, on=["source_file", "source_row"], how="left", indicator=True)
    linked = m["person_id"].notna()
    in_reg = m["true_person_id"].notna()
    correct = linked & (m["person_id"] == m["true_person_id"])
    res: dict[str, Any] = {
        "rows": len(truth), "rows_missing_from_output": int((m["_merge"] != "both").sum()),
        "links": int(linked.sum()), "correct_links": int(correct.sum()),
        "wrong_links": int((linked & ~correct.fillna(False)).sum()),
        "precision": float(correct.sum() / max(linked.sum(), 1)),
        "recall": float(correct.sum() / max(in_reg.sum(), 1)),
        "review_rate": float((m["status"] == "review").mean()),
        "status_counts": m["status"].value_counts().to_dict(),
    }
    codes = {}
    for code in ALL_CODES:
        t = m["error_codes_x"].map(lambda c, k=code: k in list(c))
        p = m["error_codes_y"].map(lambda c, k=code: c is not None and k in list(c))
        tp, fp, fn = int((t & p).sum()), int((~t & p).sum()), int((t & ~p).sum())
        prec = tp / max(tp + fp, 1)
        rec = tp / max(tp + fn, 1)
        codes[code] = {"tp": tp, "fp": fp, "fn": fn, "precision": round(prec, 4), "recall": round(rec, 4),
                       "f1": round(2 * prec * rec / max(prec + rec, 1e-9), 4)}
    res["codes"] = codes
    bands = pd.cut(m.loc[linked, "match_score"], [0.0, 0.99, 0.995, 0.999, 0.9999, 1.0001], right=False)
    cal = pd.DataFrame({"band": bands, "ok": correct[linked]}).groupby("band", observed=True)["ok"].agg(["size", "mean"])
    res["calibration"] = {str(k): {"links": int(v["size"]), "precision": round(float(v["mean"]), 5)} for k, v in cal.iterrows()}
    missed = m[in_reg & ~correct.fillna(False)]
    kinds = missed["damage"].map(lambda d: ",".join(sorted(d)) if len(d) else "none")
    res["misses_by_damage"] = kinds.value_counts().head(15).to_dict()
    res["misses_by_status"] = missed["status"].value_counts().to_dict()
    wrong = m[linked & ~correct.fillna(False)]
    res["wrong_links_by_damage"] = wrong["damage"].map(lambda d: ",".join(sorted(d)) if len(d) else "none").value_counts().head(10).to_dict()
    return res
