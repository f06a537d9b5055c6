"""A generic Fellegi-Sunter linker configured by a rules file (any two tables, any columns).

Blocking rules, comparison levels and thresholds come from the file; m and
u are estimated by expectation-maximisation over the candidate pairs, exact
agreement is weighted by the value's term frequency, and candidates compete
through the same posterior as the Vietnamese engine (`decide.posterior`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from rapidfuzz import fuzz, process

from pipeline.link.decide import posterior


def load_spec(path: Path) -> dict[str, Any]:
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    missing = [k for k in ("id_column", "blocking", "comparisons", "link_threshold") if k not in spec]
    if missing:
        raise ValueError(f"{path}: missing {missing}")
    return spec


def candidate_pairs(left: pd.DataFrame, right: pd.DataFrame, spec: dict[str, Any]) -> pd.DataFrame:
    """(left position, right position) pairs from every blocking rule, each block bounded."""
    parts = []
    for rule in spec["blocking"]:
        keys = list(rule["keys"])
        lk = left[keys].dropna().reset_index(names="l")
        rk = right[keys].dropna().reset_index(names="r")
        sizes = rk.groupby(keys, sort=False)["r"].transform("size")
        parts.append(lk.merge(rk[sizes <= int(rule.get("max_block", 50))], on=keys)[["l", "r"]])
    return pd.concat(parts, ignore_index=True).drop_duplicates().reset_index(drop=True)


def compare(left: pd.DataFrame, right: pd.DataFrame, pairs: pd.DataFrame, spec: dict[str, Any]) -> dict[str, np.ndarray]:
    """Level index per pair and field: 0 exact, 1.. each threshold, then different; -1 missing."""
    levels = {}
    for col, cmp in spec["comparisons"].items():
        a = left[col].to_numpy()[pairs["l"].to_numpy()]
        b = right[col].to_numpy()[pairs["r"].to_numpy()]
        missing = pd.isna(a) | pd.isna(b)
        a_s = np.where(missing, "", a).astype(str)
        b_s = np.where(missing, "", b).astype(str)
        exact = a_s == b_s
        thresholds = list(cmp.get("thresholds", []))
        level = np.full(len(a_s), len(thresholds) + 1)
        if thresholds:
            todo = ~exact & ~missing
            sim = np.zeros(len(a_s))
            sim[todo] = process.cpdist(a_s[todo].tolist(), b_s[todo].tolist(), scorer=fuzz.ratio, workers=1)
            for i in range(len(thresholds) - 1, -1, -1):
                level[todo & (sim >= thresholds[i])] = i + 1
        level[exact] = 0
        level[missing] = -1
        levels[col] = level
    return levels


def em(levels: dict[str, np.ndarray], spec: dict[str, Any], iterations: int) -> tuple[dict, dict, float]:
    """m and u per field and level, and the match share among pairs, by expectation-maximisation."""
    n = len(next(iter(levels.values())))
    m = {c: _init(len(spec["comparisons"][c].get("thresholds", [])) + 2, match=True) for c in levels}
    u = {c: _init(len(spec["comparisons"][c].get("thresholds", [])) + 2, match=False) for c in levels}
    lam = 0.1
    for _ in range(iterations):
        log_m = np.full(n, np.log(lam))
        log_u = np.full(n, np.log(1 - lam))
        for c, lv in levels.items():
            ok = lv >= 0
            log_m[ok] += np.log(m[c][lv[ok]])
            log_u[ok] += np.log(u[c][lv[ok]])
        g = 1 / (1 + np.exp(np.clip(log_u - log_m, -50, 50)))
        lam = float(np.clip(g.mean(), 1e-6, 1 - 1e-6))
        for c, lv in levels.items():
            ok = lv >= 0
            k = len(m[c])
            m[c] = (np.bincount(lv[ok], weights=g[ok], minlength=k) + 1e-3) / (g[ok].sum() + k * 1e-3)
            u[c] = (np.bincount(lv[ok], weights=1 - g[ok], minlength=k) + 1e-3) / ((1 - g[ok]).sum() + k * 1e-3)
    return m, u, lam


def _init(k: int, match: bool) -> np.ndarray:
    w = np.linspace(1, 0.05, k) if match else np.linspace(0.05, 1, k)
    return w / w.sum()


def link_tables(left: pd.DataFrame, right: pd.DataFrame, spec: dict[str, Any]) -> pd.DataFrame:
    """Best right record for each left record: ids, posterior and whether it is linked."""
    pairs = candidate_pairs(left, right, spec)
    levels = compare(left, right, pairs, spec)
    m, u, _ = em(levels, spec, int(spec.get("em_iterations", 15)))
    score = np.zeros(len(pairs))
    for c, lv in levels.items():
        ok = lv >= 0
        w = np.log2(m[c][lv[ok]] / u[c][lv[ok]])
        if spec["comparisons"][c].get("tf"):
            freq = right[c].value_counts(normalize=True)
            values = right[c].to_numpy()[pairs["r"].to_numpy()[ok]]
            tf = freq.reindex(values).fillna(1.0 / len(right)).to_numpy()
            exact = lv[ok] == 0
            w[exact] = np.log2(m[c][0] / np.maximum(tf[exact], 1e-9))
        score[ok] += w
    scored = pairs.rename(columns={"l": "profile", "r": "row"}).assign(log2_bf=score)
    share = float(spec.get("absent_share", 0.01))
    scored["p"] = posterior(scored, float(np.log2(len(right) * share / (1 - share))))
    best = scored.sort_values(["profile", "p"], ascending=[True, False]).groupby("profile").head(1)
    if spec.get("one_to_one"):
        best = best.sort_values("p", ascending=False).drop_duplicates("row")
    best = best.assign(linked=best["p"] >= float(spec["link_threshold"]))
    idc = spec["id_column"]
    return pd.DataFrame({"left_id": left[idc].to_numpy()[best["profile"].to_numpy()],
                         "right_id": right[idc].to_numpy()[best["row"].to_numpy()],
                         "p": best["p"].to_numpy(), "linked": best["linked"].to_numpy()})
