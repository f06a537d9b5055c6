"""Corrected values and the person-level error codes of contract 3.3."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.rules import PERSON_CODES
from pipeline.text import squeeze_spaces


def person_flags(rows: pd.DataFrame, reg: pd.DataFrame, linked: np.ndarray) -> dict[str, np.ndarray]:
    """Boolean flag per person-level code for every row.

    `reg` holds, aligned with `rows`, the registry person of linked rows
    (nulls elsewhere). Codes needing no registry person are set on every row.
    """
    kind = rows["id_kind"]
    f: dict[str, np.ndarray] = {}
    f["ID_MISSING"] = (kind == "missing").to_numpy()
    # a number recovered from other text ('CCCD: 079…', 'O79…') is linked on, but is invalid as written
    recovered = rows["id_recovered"].fillna(False).to_numpy(dtype=bool)
    f["ID_INVALID"] = kind.isin(["invalid", "placeholder"]).to_numpy() | recovered
    formed = kind.isin(["personal", "old"]).to_numpy() & ~recovered
    is_pid = (rows["id_number"] == reg["person_id"]).fillna(False).to_numpy()
    is_old = (rows["id_number"] == reg["old_id"]).fillna(False).to_numpy()
    f["ID_OLD"] = linked & formed & ~is_pid & is_old
    f["ID_WRONG"] = linked & formed & ~is_pid & ~is_old
    has_name = rows["name_fold"].notna().to_numpy()
    same = (rows["name_key"] == reg["name_key"]).fillna(False).to_numpy()
    a = squeeze_spaces(rows["name_fold"].fillna(""))
    fold_same = (a == reg["name_fold"].fillna("")).to_numpy()
    # a name written with a note or marks beside it ('… (con)', '1. …', '….') is not the registry's as written
    noted = rows["name_noted"].fillna(False).to_numpy(dtype=bool)
    f["NAME_DIACRITICS"] = linked & has_name & ~same & fold_same & ~noted
    f["NAME_WRONG"] = linked & has_name & ((~same & ~fold_same) | noted)
    year = rows["dob_year"].astype("Int32")
    f["DOB_MISSING"] = year.isna().to_numpy()
    reg_date = reg["date_of_birth"]
    both_full = (rows["dob"].notna() & reg_date.notna()).to_numpy()
    date_diff = (rows["dob"] != reg_date).fillna(False).to_numpy()
    year_diff = (year != reg["birth_year"].astype("Int32")).fillna(False).to_numpy()
    f["DOB_WRONG"] = linked & ~f["DOB_MISSING"] & np.where(both_full, date_diff, year_diff)
    f["SEX_WRONG"] = linked & (rows["sex"].notna() & reg["sex"].notna() & (rows["sex"] != reg["sex"])).fillna(False).to_numpy()
    return {k: f[k] for k in PERSON_CODES}


def corrected_values(rows: pd.DataFrame, reg: pd.DataFrame, linked: np.ndarray) -> pd.DataFrame:
    """The registry's values for linked rows, the normalised export values otherwise."""
    lk = pd.Series(linked, index=rows.index)
    own_id = rows["id_number"].where(rows["id_kind"].isin(["personal", "old"]))
    return pd.DataFrame({
        "person_id": reg["person_id"].where(lk).astype("string[pyarrow]"),
        "full_name": reg["full_name"].where(lk, rows["full_name"]).astype("string[pyarrow]"),
        "date_of_birth": reg["date_of_birth"].where(lk, rows["dob"]),
        "birth_year": reg["birth_year"].astype("Int16").where(lk, rows["dob_year"].astype("Int16")),
        "sex": reg["sex"].where(lk, rows["sex"]).astype("string[pyarrow]"),
        "id_number": reg["person_id"].where(lk, own_id).astype("string[pyarrow]"),
    }, index=rows.index)
