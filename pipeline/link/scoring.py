"""Comparison levels and Fellegi-Sunter weights for candidate pairs, vectorised.

Each field comparison yields a level name per pair (exact, fold, close, ...);
its weight is log2(m/u) from `rules/matching.yaml`, with term-frequency u for
name levels so that a common name is weak evidence and a rare one strong.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from rapidfuzz import fuzz, process

from pipeline.link.encoded import (
    NAT,
    NO_YEAR,
    NULL_PROFILE,
    NULL_REGISTRY,
    ProfileCodes,
    RegistryCodes,
)
from pipeline.link.index import RegistryIndex

FIELDS = ("id", "name", "dob", "sex", "phone", "place")


def _digit_matrix(values: np.ndarray, width: int) -> np.ndarray:
    """Digits of non-negative integers, least significant first: shape (n, width)."""
    powers = 10 ** np.arange(width, dtype=np.int64)
    return (values[:, None] // powers[None, :]) % 10


def one_edit(a_key: np.ndarray, b_key: np.ndarray) -> np.ndarray:
    """One substituted digit, or two adjacent digits transposed, between digit strings of the same
    length (9 or 12), given as digit keys (value * 16 + length; negative: not a digit string).

    A substitution at digit k changes the value by c·10^k and a transposition by 9c·10^k
    (1 <= |c| <= 9): only pairs whose difference has that form are compared digit by digit.
    """
    out = np.zeros(len(a_key), dtype=bool)
    a, b = a_key // 16, b_key // 16
    a_len, b_len = np.where(a_key >= 0, a_key % 16, 0), np.where(b_key >= 0, b_key % 16, 0)
    for width in (9, 12):
        sel = (a_len == width) & (b_len == width)
        if not sel.any():
            continue
        d = np.abs(a[sel] - b[sel])
        m = d.copy()
        for _ in range(width):
            m = np.where((m > 0) & (m % 10 == 0), m // 10, m)
        maybe = (d > 0) & ((m <= 9) | ((m % 9 == 0) & (m <= 81)))
        idx = np.flatnonzero(sel)[maybe]
        if not len(idx):
            continue
        x, y = _digit_matrix(a[idx], width), _digit_matrix(b[idx], width)
        diff = x != y
        n = diff.sum(axis=1)
        swapped = (n == 2) & (diff[:, :-1] & diff[:, 1:]).any(axis=1)
        swapped &= ((x[:, :-1] == y[:, 1:]) & (x[:, 1:] == y[:, :-1]) & diff[:, :-1]).any(axis=1)
        out[idx] = (n == 1) | swapped
    return out


def _levels(conditions: list[np.ndarray], names: list[str], default: str) -> pd.Categorical:
    """np.select over level names, as a Categorical (no string per pair)."""
    codes = np.select(conditions, list(range(len(names))), len(names)).astype(np.int8)
    return pd.Categorical.from_codes(codes, categories=[*names, default])


def id_levels(p: ProfileCodes, r: RegistryCodes, pi: np.ndarray, ri: np.ndarray) -> pd.Categorical:
    """exact | old | one_edit | household | different_own | different | missing."""
    kind = p.kind[pi]
    well_formed = kind > 0
    exact = (kind == 1) & (p.codes["person_id"][pi] == r.codes["person_id"][ri])
    old = (kind == 2) & (p.codes["old_id"][pi] == r.codes["old_id"][ri])
    personal = kind == 1
    target = np.where(personal, r.codes["person_id"][ri], r.codes["old_id"][ri])
    edit = one_edit(p.codes["person_id"][pi], target) & well_formed   # the profile's digit key of its ID
    household = (p.codes["household_id"][pi] == r.codes["household_id"][ri]) & well_formed
    return _levels([exact, old, edit, household, well_formed & p.own[pi], well_formed],
                   ["exact", "old", "one_edit", "household", "different_own", "different"], "missing")


def name_levels(p: ProfileCodes, r: RegistryCodes, pi: np.ndarray, ri: np.ndarray, close: float,
                fuzzy: float) -> tuple[pd.Categorical, np.ndarray]:
    """(level, similarity 0-100): exact | fold | fold_marked | reordered | variant | close | middle |
    fuzzy | different | missing."""
    def same(col: str) -> np.ndarray:
        return p.codes[col][pi] == r.codes[col][ri]

    missing = p.missing_name[pi]
    exact = same("name_key")
    fold = same("name_fold")
    reordered = same("name_sorted") | same("name_joined")
    variant = same("family_variant") & same("name_rest")
    sim = np.full(len(pi), 100.0)
    middle = np.zeros(len(pi), dtype=bool)
    todo = ~(exact | fold | reordered | variant | missing)
    if todo.any():
        ours = p.name_fold[pi[todo]]
        theirs = r.name_fold.take(pa.array(ri[todo])).fill_null("")
        sim[todo] = process.cpdist(ours.tolist(), theirs.to_pylist(), scorer=fuzz.ratio, workers=-1)
        middle[todo] = middle_left_out(ours, theirs.combine_chunks())
    marked = p.marked[pi]
    level = _levels([missing, exact, fold & ~marked, fold, reordered, variant, sim >= close, middle, sim >= fuzzy],
                    ["missing", "exact", "fold", "fold_marked", "reordered", "variant", "close", "middle", "fuzzy"],
                    "different")
    return level, sim


def middle_left_out(a: np.ndarray | pa.Array, b: np.ndarray | pa.Array) -> np.ndarray:
    """Folded names that agree on the family and the given name while one leaves out middle words
    of the other: 'nguyen lan' / 'nguyen thi lan', 'tran thu ha' / 'tran thi thu ha'. The shorter
    name's middle words must stand, in order and together, in the longer one's.

    First and last words are compared by Arrow kernels over every pair; the middle words only for
    the few pairs that pass, by numpy's string functions (no Python loop per pair)."""
    x, y = pa.array(a, pa.string()), pa.array(b, pa.string())
    if not len(x):
        return np.zeros(0, dtype=bool)
    nx = pc.count_substring(x, " ").to_numpy(zero_copy_only=False)
    ny = pc.count_substring(y, " ").to_numpy(zero_copy_only=False)
    out = (nx != ny) & (np.minimum(nx, ny) >= 1)
    for reverse in (False, True):   # the family name, then the given name, of the pairs still in
        idx = pa.array(np.flatnonzero(out))
        words = [pc.list_element(pc.split_pattern(side.take(idx), " ", max_splits=1, reverse=reverse), int(reverse))
                 for side in (x, y)]
        out[idx.to_numpy()] = pc.fill_null(pc.equal(*words), False).to_numpy(zero_copy_only=False)
    idx = np.flatnonzero(out)
    if len(idx):
        middle = r"^\S+ (.*) \S+$"
        mx = pc.fill_null(pc.replace_substring_regex(x.take(idx), middle, r" \1 "), "").to_numpy(zero_copy_only=False)
        my = pc.fill_null(pc.replace_substring_regex(y.take(idx), middle, r" \1 "), "").to_numpy(zero_copy_only=False)
        # a two-word name has no middle: padded to ' ', found in any; otherwise ' thu ' in ' thi thu '
        short = np.where(nx[idx] < ny[idx], mx, my)
        long_ = np.where(nx[idx] < ny[idx], my, mx).astype(str)
        short = np.where(np.minimum(nx[idx], ny[idx]) == 1, " ", short).astype(str)
        out[idx] = np.char.find(long_, short) >= 0
    return out


def dob_levels(p: ProfileCodes, r: RegistryCodes, pi: np.ndarray, ri: np.ndarray) -> pd.Categorical:
    """exact | swapped | year_only | year_off | same_year | different | missing."""
    pdate, rdate = p.dob[pi], r.dob[ri]
    py, ry = p.year[pi], r.year[ri]
    missing = py == NO_YEAR
    both_full = (pdate != NAT) & (rdate != NAT)
    exact = both_full & (pdate == rdate)
    swapped = both_full & (pdate == r.dob_swapped[ri])
    years = (py != NO_YEAR) & (ry != NO_YEAR)
    same_year = years & (py == ry)
    off = years & (np.abs(py - ry) == 1)
    same_md = both_full & (p.dob_md[pi] == r.dob_md[ri])
    return _levels([missing, exact, swapped, ~both_full & same_year, off & (same_md | ~both_full), same_year],
                   ["missing", "exact", "swapped", "year_only", "year_off", "same_year"], "different")


def simple_levels(p: ProfileCodes, r: RegistryCodes, col: str, pi: np.ndarray, ri: np.ndarray,
                  same: str, other: str) -> pd.Categorical:
    a, b = p.codes[col][pi], r.codes[col][ri]
    return _levels([(a == NULL_PROFILE) | (b == NULL_REGISTRY), a == b], ["missing", same], other)


def level_weights(comparisons: dict, field: str, levels: np.ndarray | pd.Categorical, tf: np.ndarray | None,
                  tf_floor: float, chance: float | None = None, extra: dict[str, float] | None = None) -> np.ndarray:
    """log2(m/u) per pair.

    `u: tf` is the term frequency of the name in the registry; `u: tf_style` the
    same times m, for a level that only says how the export wrote the name (its
    weight is then log2(1/tf): the writing style is as common among strangers'
    rows as among the person's own, so it is no evidence either way); `u: freq` the
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
        if spec["u"] in ("tf", "tf_style"):
            assert tf is not None, f"{field}.{level}: tf weight needs frequencies"
            # tf_style: u = tf * m, so m cancels out
            out[sel] = np.log2((1.0 if spec["u"] == "tf_style" else m) / np.maximum(tf[sel], tf_floor))
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


def compare_pairs(pairs: pd.DataFrame, profiles: pd.DataFrame, index: RegistryIndex, model: dict) -> pd.DataFrame:
    """The pairs with each field's comparison level and the name's term frequency: all that their
    weights need besides the m probabilities (`m_from_counts`) and the registry's chance
    agreements (`apply_weights`).

    Both sides are integer-encoded (`pipeline.link.encoded`): a pair costs integer takes and
    compares, and only fuzzy name similarity reads text.
    """
    reg = RegistryCodes.of(index)
    prof = ProfileCodes.of(profiles, reg)
    pi = profiles.index.get_indexer(pairs["profile"].to_numpy())
    ri = pairs["row"].to_numpy(dtype=np.int64)
    out = pairs.reset_index(drop=True).copy()
    out["id_level"] = id_levels(prof, reg, pi, ri)
    out["name_level"], out["name_sim"] = name_levels(prof, reg, pi, ri, model["name_close_ratio"], model["name_fuzzy_ratio"])
    out["dob_level"] = dob_levels(prof, reg, pi, ri)
    out["sex_level"] = simple_levels(prof, reg, "sex", pi, ri, "same", "different")
    out["phone_level"] = simple_levels(prof, reg, "phone", pi, ri, "same", "different")
    out["place_level"] = simple_levels(prof, reg, "place_fold", pi, ri, "same_ward", "other")
    fold_code = reg.codes["name_fold"][ri]
    tf_candidate = np.where(fold_code >= 0, reg.fold_freq[np.maximum(fold_code, 0)], 0.0)
    level = out["name_level"].array
    out["name_tf"] = np.select([level == "exact", (level == "fold") | (level == "fold_marked")],
                               [prof.name_key_freq[pi], prof.name_fold_freq[pi]], tf_candidate)
    return out


def apply_weights(out: pd.DataFrame, comparisons: dict, chance_agreement: dict[str, float], floor: float) -> pd.DataFrame:
    """Per-field weights and their sum (log2 Bayes factor) from the comparison levels and the
    registry's chance agreements (`RegistryIndex.chance_agreement`)."""
    chance = {"sex": chance_agreement["sex"], "phone": chance_agreement["phone"],
              "place": chance_agreement["place_fold"], "dob": chance_agreement["date_of_birth"],
              "id": chance_agreement["person_id"]}
    total = np.zeros(len(out))
    for field in FIELDS:
        w = level_weights(comparisons, field, out[f"{field}_level"].array,
                          out["name_tf"].to_numpy() if field == "name" else None, floor, chance.get(field),
                          {"household": chance_agreement["household_id"]})
        if field == "dob":
            # People who share a name share a birth date more often than strangers (names follow
            # birth cohorts): where the names agree, u(exact date) is measured within name groups.
            named = out["name_level"].isin(["exact", "fold", "fold_marked"]).to_numpy() & (out["dob_level"] == "exact").to_numpy()
            within = max(chance_agreement["date_of_birth|name"], chance["dob"])
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


def confident_counts(scored: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Per field, how many confident pairs (`CONFIDENT`) have each of its levels (missing left out).
    A pair's confidence depends only on the other candidates of its export person: the counts of
    batches of whole export persons add up to those of the batches together."""
    # Unique: the only candidate of its export person with the same name (with or without
    # diacritics) and the same full date of birth. Every such candidate comes from the name and
    # date rule, which runs for every export person, so this does not depend on which looser
    # rules ran (`if_unsure`): the ID levels of these pairs sample the IDs of true matches.
    agree = (scored["name_level"].isin(["exact", "fold", "fold_marked"]) & (scored["dob_level"] == "exact")).to_numpy()
    per_profile = pd.Series(agree).groupby(scored["profile"].to_numpy()).transform("sum").to_numpy()
    d = scored.assign(unique_in_profile=agree & (per_profile == 1))
    out = {}
    for field, select in CONFIDENT.items():
        present = d.loc[select(d) & (d[f"{field}_level"] != "missing"), f"{field}_level"]
        out[field] = {str(level): int(n) for level, n in present.value_counts().items()}
    return out


def add_counts(a: dict[str, dict[str, int]], b: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """Two batches' `confident_counts` together."""
    return {f: {lv: a.get(f, {}).get(lv, 0) + b.get(f, {}).get(lv, 0) for lv in {*a.get(f, {}), *b.get(f, {})}}
            for f in {*a, *b}}


def m_from_counts(counts: dict[str, dict[str, int]], model: dict) -> dict:
    """The comparisons of `model` with each m re-estimated from the confident links of a province
    (`confident_counts`), blended with the rules' priors.

    m(level) = (count(level) + k * prior_m(level)) / (n + k) over the
    confident pairs whose field is present, with k = `m_prior_strength`
    pseudo-pairs; the 'missing' level stays neutral (m = u = 1).
    """
    k = float(model.get("m_prior_strength", 500))
    comparisons = {f: {lv: dict(spec) for lv, spec in levels.items()} for f, levels in model["comparisons"].items()}
    for field in CONFIDENT:
        levels, seen = comparisons[field], counts.get(field, {})
        n = float(sum(seen.values()))
        prior_total = sum(float(spec["m"]) for lv, spec in levels.items() if lv != "missing")
        for lv, spec in levels.items():
            if lv == "missing":
                continue
            prior = float(spec["m"]) / prior_total
            spec["m"] = (float(seen.get(lv, 0)) + k * prior) / (n + k)
    return comparisons
