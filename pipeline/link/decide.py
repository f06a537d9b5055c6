"""Decisions: link, review or unmatched, with a calibrated score and a readable reason."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from pipeline.link.profiles import combined_codes
from pipeline.link.scoring import FIELDS

REASON_VI = {
    "id": {"exact": "số định danh trùng", "old": "số CMND cũ trùng", "one_edit": "số giấy tờ sai một chữ số",
           "household": "số giấy tờ của người cùng hộ khẩu",
           "different_own": "số giấy tờ khác", "different": "số giấy tờ khác (có thể của người khác)",
           "missing": "không có số giấy tờ hợp lệ"},
    "name": {"exact": "họ tên trùng", "fold": "họ tên trùng khi bỏ dấu", "fold_marked": "họ tên trùng khi bỏ dấu nhưng dấu khác", "reordered": "họ tên trùng nhưng sai thứ tự/viết liền",
             "variant": "họ tên trùng (biến thể họ Hoàng/Huỳnh, Vũ/Võ)", "close": "họ tên gần giống",
             "middle": "họ và tên trùng, thiếu hoặc thừa tên đệm",
             "fuzzy": "họ tên hơi giống", "different": "họ tên khác", "missing": "không có họ tên"},
    "dob": {"exact": "ngày sinh trùng", "swapped": "ngày sinh đảo ngày/tháng", "year_only": "năm sinh trùng",
            "year_off": "năm sinh lệch 1 năm", "same_year": "cùng năm sinh, khác ngày", "different": "ngày sinh khác",
            "missing": "không có ngày sinh"},
    "sex": {"same": "giới tính trùng", "different": "giới tính khác", "missing": ""},
    "phone": {"same": "số điện thoại trùng", "different": "", "missing": ""},
    "place": {"same_ward": "cùng phường/xã", "other": "", "missing": ""},
}


def posterior(scored: pd.DataFrame, null_weight: float) -> pd.Series:
    """p(c) = 2^s(c) / (sum of 2^s over the profile's candidates + 2^null), computed stably."""
    s = scored["log2_bf"].to_numpy()
    top = np.maximum(scored.groupby("profile")["log2_bf"].transform("max").to_numpy(), null_weight)
    e = np.exp2(s - top)
    denom = pd.Series(e).groupby(scored["profile"].to_numpy()).transform("sum").to_numpy() + np.exp2(null_weight - top)
    return pd.Series(e / denom, index=scored.index)


def reasons(scored: pd.DataFrame) -> pd.Series:
    """'số định danh trùng; họ tên trùng; ngày sinh trùng' from the comparison levels.

    Built once per distinct combination of levels (a few hundred), then taken for the rows by
    integer codes: the combination of each row is one number, with no text compared per row.
    """
    cols = [f"{f}_level" for f in FIELDS]
    combo = combined_codes(scored, cols)           # numbered in order of first appearance
    _, first = np.unique(combo, return_index=True)  # the first pair of each, by number
    text = pa.array(_reason_text(scored.iloc[first][cols]), pa.string())
    return pd.Series(pd.array(text.take(combo), dtype="string[pyarrow]"), index=scored.index)


def _reason_text(levels: pd.DataFrame) -> np.ndarray:
    """The reason for each row of `levels` (the comparison levels' columns), as text."""
    levels = levels.astype(object).where(levels.notna(), "")
    parts = [levels[f"{f}_level"].map(REASON_VI[f]).fillna("").astype("string[pyarrow]").reset_index(drop=True)
             for f in FIELDS]
    joined = parts[0]
    for part in parts[1:]:
        joined = joined.str.cat(part, sep="; ")
    return joined.str.replace(r"(; )+", "; ", regex=True).str.strip("; ").to_numpy(dtype=object)


def null_weight(model: dict, registry_size: int) -> float:
    """log2 odds weight of "the true person is not in the registry" for a registry of this size."""
    share = float(model["absent_share"])
    return max(float(model["null_log2_weight_min"]), float(np.log2(max(registry_size, 1) * share / (1 - share))))


def decide(profiles: pd.DataFrame, scored: pd.DataFrame, model: dict, registry_size: int) -> pd.DataFrame:
    """One decision per profile: status, person row, candidates (review cases), score, reason."""
    p = posterior(scored, null_weight(model, registry_size)).to_numpy()
    # Each profile's candidates by falling p (ties in their order): one stable numpy lexsort and a
    # rank within each profile; only the best pair of each profile and the review candidates are
    # taken from the scored pairs, never a copy of all of them.
    prof = scored["profile"].to_numpy()
    order = np.lexsort((-p, prof))
    first = np.ones(len(order), dtype=bool)
    first[1:] = prof[order][1:] != prof[order][:-1]
    positions = np.arange(len(order))
    rank = positions - np.maximum.accumulate(np.where(first, positions, 0))
    top = order[rank == 0]
    best = scored.iloc[top][["profile", "row", *(f"{f}_level" for f in FIELDS)]].set_index("profile")
    best["p"] = p[top]
    best["reason"] = reasons(best)
    out = pd.DataFrame(index=profiles.index)
    out["best_row"] = best["row"].reindex(out.index).astype("Int64")
    out["match_score"] = best["p"].reindex(out.index).fillna(0.0).astype("float64")
    out["reason"] = best["reason"].reindex(out.index).astype("string[pyarrow]")
    # the best candidate's name (with or without diacritics) and full date of birth are the row's
    out["agrees"] = (best["name_level"].isin(["exact", "fold"]) & (best["dob_level"] == "exact")
                     ).reindex(out.index).fillna(False).astype(bool)
    link_t, review_t = float(model["link_threshold"]), float(model["review_threshold"])
    # A link needs a name that agrees (exactly, without diacritics, reordered, a regional
    # variant or one typo away), or one that leaves out middle words on a row carrying the
    # person's own number; a link on the ID or the date alone is sent to review.
    strong = {str(v) for v in model.get("linkable_name_levels", [])}
    with_id = {str(v) for v in model.get("linkable_with_id_name_levels", [])}
    name_level = best["name_level"].reindex(out.index)
    own_id = best["id_level"].reindex(out.index).isin(["exact", "old"])
    name_ok = name_level.isin(strong) | (name_level.isin(with_id) & own_id)
    id_only = name_level.eq("missing") & own_id
    can_link = (name_ok | id_only).fillna(False).to_numpy()
    out["status"] = np.select([(out["match_score"] >= link_t) & can_link, out["match_score"] >= review_t],
                              ["linked", "review"], "unmatched")
    # Candidate lists are shown for review cases only: built for those, not for every profile.
    review = out.index[out["status"] == "review"]
    kept = order[rank < int(model["max_candidates"])]
    kept = kept[(p[kept] >= float(model["candidate_min_p"])) & np.isin(prof[kept], review.to_numpy())]
    listed = pd.DataFrame({"profile": prof[kept], "row": scored["row"].to_numpy()[kept]})
    # object dtype even when no profile is in review: resolve_conflicts writes lists into it later
    out["candidate_rows"] = listed.groupby("profile")["row"].agg(list).reindex(out.index).astype(object)
    return out


def resolve_conflicts(decisions: pd.DataFrame, profiles: pd.DataFrame) -> pd.DataFrame:
    """Two export persons claiming one registry person with conflicting details go to review.

    Conflicting: their names are not the same even without diacritics and
    word order, and their dates of birth disagree. A claimant whose name and
    full date of birth are the registry person's own (`agrees`) keeps its link:
    the doubt is about the others (a relative's row carrying the ID, or a row
    damaged twice), not about the one that matches in every respect.
    """
    linked = decisions[decisions["status"] == "linked"]
    dup_rows = linked["best_row"][linked["best_row"].duplicated(keep=False)]
    if dup_rows.empty:
        return decisions
    grp = pd.DataFrame({"row": dup_rows, "name": profiles.loc[dup_rows.index, "name_sorted"],
                        "dob": profiles.loc[dup_rows.index, "dob_year"].astype("Int32")})
    n_names = grp.groupby("row")["name"].transform("nunique")
    n_dobs = grp.groupby("row")["dob"].transform("nunique")
    agrees = decisions["agrees"].reindex(grp.index).to_numpy(dtype=bool)
    conflict = grp.index[(n_names > 1) & (n_dobs > 1) & ~agrees]
    out = decisions.copy()
    out.loc[conflict, "status"] = "review"
    out.loc[conflict, "reason"] = "hai người khác nhau cùng nhận một người trong CSDL; " + out.loc[conflict, "reason"].fillna("")
    out.loc[conflict, "candidate_rows"] = pd.Series([[int(r)] for r in out.loc[conflict, "best_row"]], index=conflict, dtype=object)
    return out
