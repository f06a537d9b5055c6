"""Build list<string> error-code columns from boolean flags without a loop per row."""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def code_lists(flags: dict[str, np.ndarray], n: int) -> pa.ListArray:
    """A list of the codes whose flag is set, per row, in the order of `flags`."""
    names = list(flags)
    if not names:
        return pa.array([[] for _ in range(n)], type=pa.list_(pa.string()))
    matrix = np.column_stack([np.asarray(flags[k], dtype=bool) for k in names]) if n else np.zeros((0, len(names)), bool)
    rows, cols = np.nonzero(matrix)
    offsets = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))]).astype(np.int32)
    values = pa.array(np.array(names, dtype=object)[cols], type=pa.string())
    return pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), values)


def merge_code_lists(a: pa.ListArray, b: pa.ListArray, order: tuple[str, ...]) -> pa.ListArray:
    """Union of two code-list columns, ordered by `order`."""
    n = len(a)
    flags = {}
    for code in order:
        flags[code] = (np.asarray(_contains(a, code)) | np.asarray(_contains(b, code)))
    return code_lists(flags, n)


def _contains(lists: pa.ListArray, code: str) -> np.ndarray:
    import pyarrow.compute as pc

    parent = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
    hit = pc.equal(pc.list_flatten(lists), code).to_numpy(zero_copy_only=False)
    out = np.zeros(len(lists), dtype=bool)
    out[parent[hit]] = True
    return out
