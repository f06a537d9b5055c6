"""Apply a column normaliser once per distinct value and map the result back."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd


def by_distinct(raw: pd.Series, fn: Callable[[pd.Series], pd.DataFrame]) -> pd.DataFrame:
    """Run `fn` on the distinct non-null values of `raw`; rows of nulls get nulls.

    `fn` receives a string Series with a RangeIndex and returns a frame with
    the same index. Boolean columns come back with False for null inputs.
    """
    codes, uniques = pd.factorize(raw, use_na_sentinel=True)
    distinct = pd.Series(uniques, dtype="string[pyarrow]")
    table = fn(distinct).reset_index(drop=True)
    out = table.reindex(codes).reset_index(drop=True)
    for col in table.columns:
        if table[col].dtype == bool:
            out[col] = out[col].fillna(False).astype(bool)
        elif out[col].dtype != table[col].dtype:
            out[col] = out[col].astype(table[col].dtype)
    out.index = raw.index
    return out


def plain_or_repaired(values: pd.Series, plain: np.ndarray, as_written: Callable[[pd.Series], pd.DataFrame],
                      repaired: Callable[[pd.Series], pd.DataFrame]) -> pd.DataFrame:
    """`as_written` on the values marked `plain` (written as they should be: most of them) and
    `repaired` on the others, in `values`' order. `repaired` must give plain values what
    `as_written` gives them; it is only the long way."""
    if plain.all():
        return as_written(values)
    if not plain.any():
        return repaired(values)
    return pd.concat([as_written(values[plain]), repaired(values[~plain])]).loc[values.index]
