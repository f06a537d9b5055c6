"""Person-level damage as seen in the 2022 clean-up, with the error codes it must earn.

Damage that is a real error (wrong ID, name, date or sex) is drawn per person
and applied to all their dose rows; the expected contract codes are derived
here from what was done, by the contract's definitions, not by the pipeline.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.text import strip_marks

# Share of export persons receiving each kind of damage.
RATES = {
    "id_missing": 0.04, "id_placeholder": 0.01, "id_sci_lost": 0.008, "id_old": 0.05,
    "id_typo": 0.02, "id_parent": 0.35,  # of children under 16 with a parent in the household
    "id_other": 0.004,
    "name_no_diacritics": 0.04, "name_diacritic_slip": 0.012, "name_typo": 0.02,
    "name_given_first": 0.006, "name_run_together": 0.006, "name_family_variant": 0.006,
    "dob_missing": 0.03, "dob_year_off": 0.015, "dob_swap": 0.015, "dob_other_day": 0.005,
    "dob_year_only": 0.03, "sex_wrong": 0.01,
}


def _typo(rng: np.random.Generator, word: str) -> str:
    """A doubled or a dropped letter (Nguyeen, Ngyen)."""
    if len(word) < 3:
        return word + word[-1]
    i = int(rng.integers(1, len(word)))
    if rng.random() < 0.5:
        return word[:i] + word[i - 1] + word[i:]
    return word[:i] + word[i + 1 :]


def _slip(rng: np.random.Generator, name: str) -> str:
    """Drop the diacritics of one word: equal to the registry once diacritics are removed."""
    words = name.split(" ")
    marked = [i for i, w in enumerate(words) if strip_marks(w) != w]
    if not marked:
        return name
    i = marked[int(rng.integers(0, len(marked)))]
    words[i] = strip_marks(words[i])
    return " ".join(words)


def _id_typo(rng: np.random.Generator, value: str) -> str:
    digits = list(value)
    i = int(rng.integers(3, len(digits) - 1))
    if rng.random() < 0.5 and digits[i] != digits[i + 1]:
        digits[i], digits[i + 1] = digits[i + 1], digits[i]
    else:
        digits[i] = str((int(digits[i]) + int(rng.integers(1, 10))) % 10)
    return "".join(digits)


def _name_damage(rng: np.random.Generator, names: pd.Series, kinds: pd.Series, variants: dict[str, str]) -> pd.Series:
    out = names.copy()
    for idx in kinds.index[kinds.notna()]:
        name, kind = str(names[idx]), kinds[idx]
        words = name.split(" ")
        if kind == "name_no_diacritics":
            new = strip_marks(name)
        elif kind == "name_diacritic_slip":
            new = _slip(rng, name)
        elif kind == "name_typo":
            j = int(rng.integers(0, len(words)))
            words[j] = _typo(rng, words[j])
            new = " ".join(words)
        elif kind == "name_given_first" and len(words) >= 2:
            new = " ".join([words[-1], *words[:-1]])
        elif kind == "name_run_together" and len(words) >= 3:
            new = " ".join([words[0] + words[1].lower(), *words[2:]])
        elif kind == "name_family_variant" and words[0] in variants:
            new = " ".join([variants[words[0]], *words[1:]])
        else:
            new = name
        out[idx] = new
    return out


def person_damage(rng: np.random.Generator, persons: pd.DataFrame, people: pd.DataFrame,
                  variants: dict[str, str]) -> pd.DataFrame:
    """Damaged person-level values for export persons, with damage labels and expected codes.

    `persons` has one row per export person with `person` (index into
    `people`) and `in_registry`. Returns the written name, DOB (date or year
    only or missing), sex and ID (canonical text, before file formatting).
    """
    n = len(persons)
    p = people.loc[persons["person"].to_numpy()].reset_index(drop=True)
    u = rng.random((n, 4))
    damage: list[list[str]] = [[] for _ in range(n)]

    # --- ID ---------------------------------------------------------------
    pid = p["person_id"].astype(object).to_numpy().copy()
    id_kind = np.full(n, None, dtype=object)
    cuts = np.cumsum([RATES["id_missing"], RATES["id_placeholder"], RATES["id_sci_lost"],
                      RATES["id_old"], RATES["id_typo"], RATES["id_other"]])
    labels = ["id_missing", "id_placeholder", "id_sci_lost", "id_old", "id_typo", "id_other"]
    pick = np.searchsorted(cuts, u[:, 0], side="right")
    for j, label in enumerate(labels):
        id_kind[pick == j] = label
    id_kind[(id_kind == "id_old") & p["old_id"].isna().to_numpy()] = None
    child = (p["role"] == "child").to_numpy() & (p["birth_year"] >= 2006).to_numpy()
    parent_id = people.groupby("household")["person_id"].first()
    parent_of = parent_id.reindex(p["household"]).to_numpy()
    use_parent = child & (rng.random(n) < RATES["id_parent"]) & (parent_of != pid)
    id_kind[use_parent] = "id_parent"
    written_id = pid.copy()
    for i in np.flatnonzero(id_kind != None):  # noqa: E711 (numpy object comparison)
        kind = id_kind[i]
        if kind == "id_missing":
            written_id[i] = None
        elif kind == "id_placeholder":
            written_id[i] = ["000000000000", "111111111111", "123456789", "999999999", "000000000"][int(rng.integers(0, 5))]
        elif kind == "id_sci_lost":
            written_id[i] = f"{int(pid[i]):.4E}".replace("E+", "E+")
        elif kind == "id_old":
            written_id[i] = p["old_id"].iloc[i]
        elif kind == "id_typo":
            written_id[i] = _id_typo(rng, str(pid[i]))
        elif kind == "id_other":
            written_id[i] = people["person_id"].iloc[int(rng.integers(0, len(people)))]
        elif kind == "id_parent":
            written_id[i] = parent_of[i]
        damage[i].append(str(kind))

    # --- name -------------------------------------------------------------
    name_labels = ["name_no_diacritics", "name_diacritic_slip", "name_typo", "name_given_first",
                   "name_run_together", "name_family_variant"]
    cuts = np.cumsum([RATES[k] for k in name_labels])
    pick = np.searchsorted(cuts, u[:, 1], side="right")
    name_kind = pd.Series([name_labels[k] if k < len(name_labels) else None for k in pick])
    written_name = _name_damage(rng, p["full_name"].astype(object), name_kind, variants)

    # --- date of birth ----------------------------------------------------
    dob_labels = ["dob_missing", "dob_year_off", "dob_swap", "dob_other_day", "dob_year_only"]
    cuts = np.cumsum([RATES[k] for k in dob_labels])
    pick = np.searchsorted(cuts, u[:, 2], side="right")
    dob_kind = np.array([dob_labels[k] if k < len(dob_labels) else None for k in pick], dtype=object)
    reg_dob = pd.to_datetime(p["date_of_birth"])
    true_dob = pd.to_datetime(p["dob"])
    day, month = true_dob.dt.day.to_numpy(), true_dob.dt.month.to_numpy()
    can_swap = (day <= 12) & (day != month)
    dob_kind[(dob_kind == "dob_swap") & ~can_swap] = None
    written_dob = true_dob.copy()
    year_only = np.zeros(n, dtype=bool) | reg_dob.isna().to_numpy() & (rng.random(n) < 0.6)
    shift = np.where(rng.random(n) < 0.5, -1, 1)
    yo = (dob_kind == "dob_year_off") & ~((month == 2) & (day == 29))
    dob_kind[(dob_kind == "dob_year_off") & ~yo] = None
    written_dob[yo] = pd.to_datetime(pd.DataFrame({"year": true_dob[yo].dt.year + shift[yo], "month": month[yo],
                                                   "day": day[yo]}))  # the year mistyped, day and month kept
    sw = dob_kind == "dob_swap"
    written_dob[sw] = pd.to_datetime(pd.DataFrame({"year": true_dob[sw].dt.year, "month": day[sw], "day": month[sw]}))
    od = dob_kind == "dob_other_day"
    written_dob[od] = true_dob[od] + pd.to_timedelta(rng.integers(2, 40, int(od.sum())), unit="D")
    year_only |= dob_kind == "dob_year_only"
    written_dob[dob_kind == "dob_missing"] = pd.NaT

    # --- sex --------------------------------------------------------------
    sex_wrong = u[:, 3] < RATES["sex_wrong"]
    written_sex = np.where(sex_wrong, np.where(p["sex"] == "M", "F", "M"), p["sex"])

    out = pd.DataFrame({
        "written_name": written_name.astype(object), "written_id": written_id,
        "written_dob": written_dob, "dob_year_only": year_only, "written_sex": written_sex,
        "id_damage": id_kind, "name_damage": name_kind.to_numpy(), "dob_damage": dob_kind,
        "sex_wrong": sex_wrong,
    })
    return pd.concat([persons.reset_index(drop=True), out], axis=1)


def expected_person_codes(d: pd.DataFrame, people: pd.DataFrame) -> pd.Series:
    """Contract 3.3 person-level codes for each damaged export person (list per row)."""
    p = people.loc[d["person"].to_numpy()].reset_index(drop=True)
    in_reg = d["in_registry"].to_numpy()
    codes: list[list[str]] = [[] for _ in range(len(d))]
    canon = p["full_name"].astype(str).to_numpy()
    reg_dob = pd.to_datetime(p["date_of_birth"])
    for i in range(len(d)):
        idk = d["id_damage"].iat[i]
        c = codes[i]
        if idk == "id_missing":
            c.append("ID_MISSING")
        elif idk in ("id_placeholder", "id_sci_lost"):
            c.append("ID_INVALID")
        elif in_reg[i] and idk == "id_old":
            c.append("ID_OLD")
        elif in_reg[i] and idk in ("id_typo", "id_other", "id_parent"):
            wid = d["written_id"].iat[i]
            if wid is not None and wid == (p["old_id"].iat[i] if pd.notna(p["old_id"].iat[i]) else None):
                c.append("ID_OLD")
            elif wid != p["person_id"].iat[i]:
                c.append("ID_WRONG")
        if in_reg[i]:
            written = str(d["written_name"].iat[i])
            if written != canon[i]:
                same_fold = strip_marks(written).lower().split() == strip_marks(canon[i]).lower().split()
                c.append("NAME_DIACRITICS" if same_fold else "NAME_WRONG")
        wdob = d["written_dob"].iat[i]
        if pd.isna(wdob):
            c.append("DOB_MISSING")
        elif in_reg[i]:
            wy = wdob.year
            rd = reg_dob.iat[i]
            if d["dob_year_only"].iat[i] or pd.isna(rd):
                if wy != p["birth_year"].iat[i]:
                    c.append("DOB_WRONG")
            elif wdob.normalize() != rd.normalize():
                c.append("DOB_WRONG")
        if in_reg[i] and d["sex_wrong"].iat[i]:
            c.append("SEX_WRONG")
    return pd.Series(codes)
