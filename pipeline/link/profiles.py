"""Export persons: the distinct person descriptions among a run's dose rows.

Rows that describe a person with the same normalised name, date of birth,
sex and ID are one export person: linked once, all their doses get one
decision.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.link.keys import add_block_keys, add_id_halves

# Phone and place are part of the key: rows that give only a common name must
# not be merged across different people.
PROFILE_KEY = ["name_key", "dob_date", "dob_year", "sex", "id_number", "id_kind", "phone", "place_fold"]
CARRIED = ["full_name", "name_fold", "given_fold", "family_variant", "family_fold", "middle_fold", "dob_precision",
           "dob_swappable", "id_sex", "id_birth_year", "id_structure_ok", "name_valid"]


COMBINED_LIMIT = 2 ** 62


def combined_codes(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """One code per distinct combination of `columns` (a missing value is a value), numbered in
    order of first appearance: each column factorised on its own, then combined as integers."""
    key = np.zeros(len(frame), dtype=np.int64)
    bound = 1                        # every key is below this
    for col in columns:
        codes, uniques = pd.factorize(frame[col], use_na_sentinel=True)
        if bound * (len(uniques) + 1) >= COMBINED_LIMIT:   # renumbered densely first: no overflow
            key, distinct = pd.factorize(key)
            key, bound = key.astype(np.int64), len(distinct)
        key = key * (len(uniques) + 1) + (codes.astype(np.int64) + 1)
        bound *= len(uniques) + 1
    return pd.factorize(key)[0].astype(np.int64)   # numbered in order of first appearance


def build_profiles(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """(profiles, profile number of each row). Rows must be normalised."""
    codes = combined_codes(rows, PROFILE_KEY)
    profile_of_row = pd.Series(codes, index=rows.index, name="profile")
    # each profile's first row, by profile number, and its count of rows: from the codes, no groupby
    _, firsts = np.unique(codes, return_index=True)
    prof = rows[PROFILE_KEY + CARRIED].iloc[firsts]
    prof.index = pd.Index(codes[firsts], dtype=np.int64)
    prof["n_rows"] = np.bincount(codes, minlength=len(firsts)).astype(np.int64)
    prof["dob"] = prof["dob_date"].where(prof["dob_precision"] == "day")
    prof["id_personal"] = prof["id_number"].where(prof["id_kind"] == "personal")
    prof["id_old"] = prof["id_number"].where(prof["id_kind"] == "old")
    prof = add_id_halves(prof, "id_personal", "id_head", "id_tail")
    return add_block_keys(prof, "dob"), profile_of_row
