"""Candidate pairs through blocking joins: vectorised merges, bounded blocks."""

from __future__ import annotations

import logging

import pandas as pd
import pyarrow as pa

from pipeline.link.index import RegistryIndex

log = logging.getLogger(__name__)


def _registry_side(index: RegistryIndex, keys: list[str], reg_keys: list[str], max_block: int) -> pa.Table:
    """The registry's rows of one blocking rule (blocks no larger than `max_block`) as an Arrow table,
    built once per process and reused by every province."""
    cache_key = ("block", tuple(keys), tuple(reg_keys), max_block)
    table = index._lookups.get(cache_key)
    if table is None:
        right = index.people[[*reg_keys, "row"]].dropna()
        right.columns = [*keys, "row"]
        sizes = right.groupby(keys, observed=True, sort=False)["row"].transform("size")
        right = right[sizes <= max_block]
        table = pa.Table.from_pandas(right, preserve_index=False)
        index._lookups[cache_key] = table
    return table


def _block(profiles: pd.DataFrame, index: RegistryIndex, keys: list[str], reg_keys: list[str],
           max_block: int) -> pd.DataFrame:
    left = profiles[keys].dropna()
    if left.empty:
        return pd.DataFrame({"profile": [], "row": []}, dtype="int64")
    right = _registry_side(index, keys, reg_keys, max_block)
    left_tbl = pa.Table.from_pandas(left.reset_index(names="profile"), preserve_index=False)
    for k in keys:  # a key typed differently on the two sides joins as the registry's type
        want = right.schema.field(k).type
        if left_tbl.schema.field(k).type != want:
            left_tbl = left_tbl.set_column(left_tbl.schema.get_field_index(k), k, left_tbl.column(k).cast(want))
    # Arrow's hash join (C++, multithreaded) instead of a pandas merge; sorted for a stable order.
    # Arrow builds its hash table on the right input: the province's keys, probed by the registry's.
    merged = right.join(left_tbl, keys=keys, join_type="inner").select(["profile", "row"])
    merged = merged.sort_by([("profile", "ascending"), ("row", "ascending")])
    return merged.to_pandas().astype({"profile": "int64", "row": "int64"})


def candidate_pairs(profiles: pd.DataFrame, index: RegistryIndex, blocking: list[dict]) -> pd.DataFrame:
    """Distinct (profile, registry row) pairs with the first blocking rule that found them."""
    parts = []
    for rule in blocking:
        pairs = _block(profiles, index, list(rule["keys"]), list(rule["registry"]), int(rule["max_block"]))
        pairs["via"] = rule["name"]
        log.debug("blocking %s: %d pairs", rule["name"], len(pairs))
        parts.append(pairs)
    allpairs = pd.concat(parts, ignore_index=True)
    return allpairs.drop_duplicates(["profile", "row"], keep="first").reset_index(drop=True)
