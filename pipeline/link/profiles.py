"""Export persons: the distinct person descriptions among a run's dose rows.

Rows that describe a person with the same normalised name, date of birth,
sex and ID are one export person: linked once, all their doses get one
decision.
"""

from __future__ import annotations

import pandas as pd

from pipeline.link.keys import add_block_keys, add_id_halves

# Phone and place are part of the key: rows that give only a common name must
# not be merged across different people.
PROFILE_KEY = ["name_key", "dob_date", "dob_year", "sex", "id_number", "id_kind", "phone", "place_fold"]
CARRIED = ["full_name", "name_fold", "given_fold", "family_variant", "family_fold", "middle_fold", "dob_precision",
           "dob_swappable", "id_sex", "id_birth_year", "id_structure_ok", "name_valid"]


def build_profiles(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """(profiles, profile number of each row). Rows must be normalised."""
    key = rows[PROFILE_KEY]
    codes, _ = pd.factorize(pd.MultiIndex.from_frame(key.astype(object).fillna("\x00")))
    profile_of_row = pd.Series(codes, index=rows.index, name="profile")
    first = rows.groupby(profile_of_row, sort=True).head(1)
    prof = first[PROFILE_KEY + CARRIED].copy()
    prof.index = profile_of_row[first.index].to_numpy()
    prof = prof.sort_index()
    grouped = rows.groupby(profile_of_row, sort=True)
    prof["n_rows"] = grouped.size()
    prof["dob"] = prof["dob_date"].where(prof["dob_precision"] == "day")
    prof["id_personal"] = prof["id_number"].where(prof["id_kind"] == "personal")
    prof["id_old"] = prof["id_number"].where(prof["id_kind"] == "old")
    prof = add_id_halves(prof, "id_personal", "id_head", "id_tail")
    return add_block_keys(prof, "dob"), profile_of_row
