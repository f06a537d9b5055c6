"""Comparison levels and Fellegi-Sunter weights for candidate pairs, vectorised.

Each field comparison yields a level name per pair (exact, fold, close, ...);
its weight is log2(m/u) from `rules/matching.yaml`, with term-frequency u for
name levels so that a common name is weak evidence and a rare one strong.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from rapidfuzz import fuzz, process

from pipeline.link.index import RegistryIndex
from pipeline.text import regex_replace

FIELDS = ("id", "name", "dob", "sex", "phone", "place")


def _digits_matrix(values: pd.Series, width: int) -> np.ndarray:
    arr = values.fillna("").astype(str).str.pad(width, fillchar="x").to_numpy().astype(f"U{width}")
    return arr.view(np.uint32).reshape(-1, width)


def _one_edit(a: pd.Series, b: pd.Series) -> np.ndarray:
    """One substituted digit, or two adjacent digits transposed (same length)."""
    out = np.zeros(len(a), dtype=bool)
    for width in (9, 12):
        sel = ((a.str.len() == width) & (b.str.len() == width)).fillna(False).to_numpy()
        if not sel.any():
            continue
        x, y = _digits_matrix(a[sel], width), _digits_matrix(b[sel], width)
        diff = x != y
        n = diff.sum(axis=1)
        swapped = (n == 2) & (diff[:, :-1] & diff[:, 1:]).any(axis=1)
        swapped &= ((x[:, :-1] == y[:, 1:]) & (x[:, 1:] == y[:, :-1]) & diff[:, :-1]).any(axis=1)
        out[sel] = (n == 1) | swapped
    return out


def id_levels(p: pd.DataFrame, r: pd.DataFrame) -> np.ndarray:
    """exact | old | one_edit | household | different_own | different | missing."""
    pid, kind = p["id_number"], p["id_kind"]
    well_formed = kind.isin(["personal", "old"]).to_numpy()
    exact = ((kind == "personal") & (pid == r["person_id"])).fillna(False).to_numpy()
    old = ((kind == "old") & (pid == r["old_id"])).fillna(False).to_numpy()
    target = r["person_id"].where(kind == "personal", r["old_id"])
    edit = _one_edit(pid.where(pd.Series(well_formed, index=pid.index)), target) & well_formed
    own = (p["id_structure_ok"].to_numpy()
           & ((p["id_sex"] == p["sex"]) | p["sex"].isna()).fillna(False).to_numpy()
           & (p["id_birth_year"].astype("Int32") == p["dob_year"].astype("Int32")).fillna(False).to_numpy())
    household = (p["id_household"] == r["household_id"]).fillna(False).to_numpy() & well_formed
    return np.select([exact, old, edit, household, well_formed & own, well_formed],
                     ["exact", "old", "one_edit", "household", "different_own", "different"], "missing")


def name_levels(p: pd.DataFrame, r: pd.DataFrame, close: float, fuzzy: float) -> tuple[np.ndarray, np.ndarray]:
    """(level, similarity 0-100): exact | fold | fold_marked | reordered | variant | close | fuzzy | different | missing."""
    a, b = p["name_fold"].fillna(""), r["name_fold"].fillna("")
    missing = (a == "").to_numpy()
    exact = (p["name_key"] == r["name_key"]).fillna(False).to_numpy()
    fold = (a == b).to_numpy()
    reordered = ((p["name_sorted"] == r["name_sorted"]) | (p["name_joined"] == r["name_joined"])).fillna(False).to_numpy()
    variant = ((p["family_variant"] == r["family_variant"])
               & (regex_replace(a, r"^\S+", "") == regex_replace(b, r"^\S+", ""))).fillna(False).to_numpy()
    sim = np.full(len(a), 100.0)
    todo = ~(exact | fold | reordered | variant | missing)
    if todo.any():
        sim[todo] = process.cpdist(a[todo].tolist(), b[todo].tolist(), scorer=fuzz.ratio, workers=-1)
    marked = p["full_name"].str.contains(r"[^\x00-\x7f]", regex=True).fillna(False).to_numpy()
    level = np.select([missing, exact, fold & ~marked, fold, reordered, variant, sim >= close, sim >= fuzzy],
                      ["missing", "exact", "fold", "fold_marked", "reordered", "variant", "close", "fuzzy"],
                      "different")
    return level, sim


def dob_levels(p: pd.DataFrame, r: pd.DataFrame) -> np.ndarray:
    """exact | swapped | year_only | year_off | same_year | different | missing."""
    pd_date, rd = p["dob"], r["date_of_birth"]
    py = p["dob_year"].astype("Int32")
    ry = r["birth_year"].astype("Int32")
    missing = py.isna().to_numpy()
    both_full = (pd_date.notna() & rd.notna()).to_numpy()
    exact = both_full & (pd_date == rd).fillna(False).to_numpy()
    swapped = both_full & (pd_date == r["dob_swapped"]).fillna(False).to_numpy()
    same_year = (py == ry).fillna(False).to_numpy()
    off = ((py - ry).abs() == 1).fillna(False).to_numpy()
    same_md = both_full & (pd_date.dt.month == rd.dt.month).fillna(False).to_numpy() & (pd_date.dt.day == rd.dt.day).fillna(False).to_numpy()
    return np.select(
        [missing, exact, swapped, ~both_full & same_year, off & (same_md | ~both_full), same_year],
        ["missing", "exact", "swapped", "year_only", "year_off", "same_year"], "different")


def _simple(a: pd.Series, b: pd.Series, same: str, other: str) -> np.ndarray:
    missing = (a.isna() | b.isna()).to_numpy()
    eq = (a == b).fillna(False).to_numpy()
    return np.select([missing, eq], ["missing", same], other)


def level_weights(comparisons: dict, field: str, levels: np.ndarray, tf: np.ndarray | None,
                  tf_floor: float, chance: float | None = None, extra: dict[str, float] | None = None) -> np.ndarray:
    """log2(m/u) per pair.

    `u: tf` is the term frequency of the name in the registry; `u: freq` the
    chance that two random registry people agree on the field (sum of squared
    value shares); `u: 1-freq` its complement; `u: freq_<column>` the chance
    agreement of another registry column (household for the household level).
    """
    out = np.zeros(len(levels))
    for level, spec in comparisons[field].items():
        sel = levels == level
        if not sel.any():
            continue
        m = float(spec["m"])
        if spec["u"] == "tf":
            assert tf is not None, f"{field}.{level}: tf weight needs frequencies"
            out[sel] = np.log2(m / np.maximum(tf[sel], tf_floor))
        elif spec["u"] in ("freq", "1-freq"):
            assert chance is not None, f"{field}.{level}: freq weight needs value frequencies"
            u = chance if spec["u"] == "freq" else 1.0 - chance
            out[sel] = np.log2(m / max(u, tf_floor))
        elif str(spec["u"]).startswith("freq_"):
            assert extra is not None, f"{field}.{level}: needs the chance agreement of {spec['u'][5:]}"
            out[sel] = np.log2(m / max(extra[str(spec["u"])[5:]], tf_floor))
        else:
            out[sel] = np.log2(m / float(spec["u"]))
    return out


PROFILE_COLUMNS = ("dob", "dob_year", "family_variant", "full_name", "id_birth_year", "id_household", "id_kind",
                   "id_number", "id_sex", "id_structure_ok", "name_fold", "name_joined", "name_key", "name_sorted",
                   "phone", "place_fold", "sex")
REGISTRY_COLUMNS = ("birth_year", "date_of_birth", "dob_swapped", "family_variant", "household_id", "name_fold",
                    "name_joined", "name_key", "name_sorted", "old_id", "person_id", "phone", "place_fold", "sex")


def score_pairs(pairs: pd.DataFrame, profiles: pd.DataFrame, index: RegistryIndex, model: dict,
                estimate: bool = True) -> pd.DataFrame:
    """Comparison levels, weights and total log2 Bayes factor of every candidate pair.

    With `estimate`, the m probabilities are re-estimated from this batch's
    confident links (see `estimate_m`) before the weights are applied.
    """
    # Take only the columns the comparisons read: a take over every column of the registry
    # frame costs more than all the comparisons together.
    p = profiles[[c for c in PROFILE_COLUMNS if c in profiles.columns]].loc[pairs["profile"].to_numpy()]
    p = p.reset_index(drop=True)
    r = index.people[[c for c in REGISTRY_COLUMNS if c in index.people.columns]].iloc[pairs["row"].to_numpy()]
    r = r.reset_index(drop=True)
    out = pairs.reset_index(drop=True).copy()
    out["id_level"] = id_levels(p, r)
    out["name_level"], out["name_sim"] = name_levels(p, r, model["name_close_ratio"], model["name_fuzzy_ratio"])
    out["dob_level"] = dob_levels(p, r)
    out["sex_level"] = _simple(p["sex"], r["sex"], "same", "different")
    out["phone_level"] = _simple(p["phone"], r["phone"], "same", "different")
    out["place_level"] = _simple(p["place_fold"], r["place_fold"], "same_ward", "other")
    tf_key = index.name_freq.reindex(p["name_key"]).fillna(0).to_numpy()
    tf_fold = index.fold_freq.reindex(p["name_fold"]).fillna(0).to_numpy()
    tf_candidate = index.fold_freq.reindex(r["name_fold"]).fillna(0).to_numpy()
    level = out["name_level"].to_numpy()
    out["name_tf"] = np.select([level == "exact", np.isin(level, ["fold", "fold_marked"])], [tf_key, tf_fold], tf_candidate)
    comparisons = estimate_m(out, model) if estimate else model["comparisons"]
    return apply_weights(out, comparisons, index, float(model.get("tf_floor", 1e-7)))


def apply_weights(out: pd.DataFrame, comparisons: dict, index: RegistryIndex, floor: float) -> pd.DataFrame:
    """Per-field weights and their sum (log2 Bayes factor) from the comparison levels."""
    chance = {"sex": index.chance_agreement["sex"], "phone": index.chance_agreement["phone"],
              "place": index.chance_agreement["place_fold"], "dob": index.chance_agreement["date_of_birth"],
              "id": index.chance_agreement["person_id"]}
    total = np.zeros(len(out))
    for field in FIELDS:
        w = level_weights(comparisons, field, out[f"{field}_level"].to_numpy(),
                          out["name_tf"].to_numpy() if field == "name" else None, floor, chance.get(field),
                          {"household": index.chance_agreement["household_id"]})
        if field == "dob":
            # People who share a name share a birth date more often than strangers (names follow
            # birth cohorts): where the names agree, u(exact date) is measured within name groups.
            named = out["name_level"].isin(["exact", "fold", "fold_marked"]).to_numpy() & (out["dob_level"] == "exact").to_numpy()
            within = max(index.chance_agreement["date_of_birth|name"], chance["dob"])
            w = np.where(named, w - np.log2(within / chance["dob"]), w)
        out[f"{field}_weight"] = w
        total += w
    out["log2_bf"] = total
    return out


# For each field, the pairs whose other fields make them confident links: the
# distribution of this field's levels among them estimates its m probabilities.
CONFIDENT = {
    "name": lambda d: (d["id_level"] == "exact") & (d["dob_level"] == "exact"),
    "dob": lambda d: (d["id_level"] == "exact") & d["name_level"].isin(["exact", "fold"]),
    "id": lambda d: d["name_level"].isin(["exact"]) & (d["dob_level"] == "exact") & d["unique_in_profile"],
    "sex": lambda d: (d["id_level"] == "exact") & (d["name_level"] == "exact") & (d["dob_level"] == "exact"),
}


def estimate_m(scored: pd.DataFrame, model: dict) -> dict:
    """m probabilities re-estimated from confident links, blended with the rules' priors.

    m(level) = (count(level) + k * prior_m(level)) / (n + k) over the
    confident pairs whose field is present, with k = `m_prior_strength`
    pseudo-pairs; the 'missing' level stays neutral (m = u = 1).
    """
    k = float(model.get("m_prior_strength", 500))
    comparisons = {f: {lv: dict(spec) for lv, spec in levels.items()} for f, levels in model["comparisons"].items()}
    d = scored.assign(unique_in_profile=scored.groupby("profile")["row"].transform("size") == 1)
    for field, select in CONFIDENT.items():
        levels = comparisons[field]
        present = d.loc[select(d) & (d[f"{field}_level"] != "missing"), f"{field}_level"]
        counts = present.value_counts()
        n = float(counts.sum())
        prior_total = sum(float(spec["m"]) for lv, spec in levels.items() if lv != "missing")
        for lv, spec in levels.items():
            if lv == "missing":
                continue
            prior = float(spec["m"]) / prior_total
            spec["m"] = (float(counts.get(lv, 0)) + k * prior) / (n + k)
    return comparisons
