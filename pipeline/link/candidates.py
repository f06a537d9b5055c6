"""Candidate pairs through blocking joins: vectorised merges, bounded blocks."""

from __future__ import annotations

import logging

import pandas as pd

from pipeline.link.index import RegistryIndex

log = logging.getLogger(__name__)


def _block(profiles: pd.DataFrame, registry: pd.DataFrame, keys: list[str], reg_keys: list[str],
           max_block: int) -> pd.DataFrame:
    left = profiles[keys].dropna()
    if left.empty:
        return pd.DataFrame({"profile": [], "row": []}, dtype="int64")
    right = registry[[*reg_keys, "row"]].dropna()
    right.columns = [*keys, "row"]
    sizes = right.groupby(keys, observed=True, sort=False)["row"].transform("size")
    right = right[sizes <= max_block]
    for k in keys:
        if left[k].dtype != right[k].dtype:
            right[k] = right[k].astype(left[k].dtype)
    merged = left.reset_index(names="profile").merge(right, on=keys, how="inner")
    return merged[["profile", "row"]]


def candidate_pairs(profiles: pd.DataFrame, index: RegistryIndex, blocking: list[dict]) -> pd.DataFrame:
    """Distinct (profile, registry row) pairs with the first blocking rule that found them."""
    parts = []
    for rule in blocking:
        pairs = _block(profiles, index.people, list(rule["keys"]), list(rule["registry"]), int(rule["max_block"]))
        pairs["via"] = rule["name"]
        log.debug("blocking %s: %d pairs", rule["name"], len(pairs))
        parts.append(pairs)
    allpairs = pd.concat(parts, ignore_index=True)
    return allpairs.drop_duplicates(["profile", "row"], keep="first").reset_index(drop=True)
