"""Integer-encoded comparison keys: the registry's once per process, a province's per run.

Scoring compares hundreds of thousands of candidate pairs on a dozen text
keys. Taking those strings for every pair (an Arrow take per column) and
comparing them costs more than all the comparison logic. Instead each key is
encoded once against the registry's dictionary of its values: the registry
gets an int32 code per person (-2 where it has no value), an export person the
code of the same text (-1 where it has no value, -3 where the registry has no
one with it), so two sides agree exactly when their codes are equal. A pair then costs a numpy take
of integers. Only fuzzy name similarity still reads text, for the pairs that
need it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from pipeline.link.index import RegistryIndex
from pipeline.link.keys import codes_in, digit_key
from pipeline.text import regex_replace, take_text

# Text keys compared for equality: registry column -> the export person's column (scoring).
TEXT_KEYS = {
    "name_key": "name_key", "name_fold": "name_fold", "name_sorted": "name_sorted", "name_joined": "name_joined",
    "family_variant": "family_variant", "name_rest": "name_rest", "place_fold": "place_fold", "sex": "sex",
    "household_id": "id_household",
}
# Registry columns whose export-side key is not text but already the registry's code: the
# household is that of the registry person whose ID the row wrote (`household_codes`), so it
# needs no dictionary, and the registry keeps only its codes.
CODED_ONLY = ("household_id",)
# Digit strings (IDs, phones, halves of IDs) need no dictionary: their key is value * 16 + length.
DIGIT_KEYS = {"person_id": "id_number", "old_id": "id_number", "phone": "phone"}
NULL_REGISTRY, NULL_PROFILE, UNKNOWN = -2, -1, -3
NO_YEAR = -9999
NAT = np.iinfo(np.int32).min   # a missing date among int32 day numbers
DAY_OFFSET = 200_000            # days added to dates (since 1970) so that every code is >= 0
MAX_KEY = 2 ** 62


def name_rest(name_fold: pd.Series) -> pd.Series:
    """The folded name without its first word (the family name): ' van hung'."""
    return regex_replace(name_fold.fillna(""), r"^\S+", "")


def name_fold_text(people: pd.DataFrame) -> pa.ChunkedArray:
    """The registry's folded names as Arrow text (sharing the frame's buffers)."""
    return pa.chunked_array([pa.array(people["name_fold"].astype("string[pyarrow]").array)])


def counts_of(dictionary: pd.Index, counts: pa.Table) -> np.ndarray:
    """The count of each dictionary entry in a table of (value, count); 0 where it has none."""
    values = pd.Index(pd.array(counts.column("value").combine_chunks().cast(pa.string()), dtype="string[pyarrow]"))
    pos = codes_in(values, pd.Series(dictionary.astype("string[pyarrow]", copy=False)))
    known = counts.column("count").to_numpy().astype(np.int64)
    return np.where(pos >= 0, known[np.maximum(pos, 0)] if len(known) else 0, 0)


def days_of(values: pd.Series) -> np.ndarray:
    """Dates as int32 days since 1970, NAT where missing or unreadable (comparable with ==)."""
    arr = pd.to_datetime(values, errors="coerce").to_numpy(dtype="datetime64[D]")
    days = arr.view(np.int64)
    ok = ~np.isnat(arr) & (np.abs(days) < 2 ** 31 - 1)
    return np.where(ok, days, NAT).astype(np.int32)


def _year(values: pd.Series) -> np.ndarray:
    return pd.to_numeric(values, errors="coerce").fillna(NO_YEAR).to_numpy(dtype=np.int32)


def _month_day(values: pd.Series) -> np.ndarray:
    """month * 100 + day, -1 where missing."""
    return values.fillna(-1).to_numpy(dtype=np.int16)


@dataclass(frozen=True)
class RegistryCodes:
    """Per registry person: a code per text key, a digit key per ID and phone, dates and years;
    plus name frequencies by code."""

    dictionaries: dict[str, pd.Index]
    codes: dict[str, np.ndarray]   # text keys: dictionary codes; digit keys: value * 16 + length
    dob: np.ndarray
    dob_swapped: np.ndarray
    dob_md: np.ndarray
    year: np.ndarray
    fold_freq: np.ndarray       # share of registry people with each name_fold code
    key_freq: np.ndarray        # share with each name_key code
    name_fold: pa.ChunkedArray  # the text, for fuzzy similarity of the pairs that need it

    @classmethod
    def of(cls, index: RegistryIndex) -> RegistryCodes:
        """Built once per process and kept with the index."""
        cached = index._lookups.get("codes")
        if cached is not None:
            return cached
        people = index.people
        dictionaries, codes = {}, {}
        for col in TEXT_KEYS:
            values = name_rest(people["name_fold"]) if col == "name_rest" else people[col]
            code, uniques = pd.factorize(values, use_na_sentinel=True)
            code = code.astype(np.int32)
            code[code < 0] = NULL_REGISTRY
            codes[col] = code
            if col not in CODED_ONLY:
                dictionaries[col] = pd.Index(uniques)
        for col in DIGIT_KEYS:
            key = index.digit_keys(col)
            codes[col] = np.where(key >= 0, key, NULL_REGISTRY)
        n = max(index.population, 1)
        # A part of a partitioned registry carries the whole registry's counts of its names.
        whole: dict[str, pa.Table] = index._lookups.get("name_counts", {})

        def freq(col: str) -> np.ndarray:   # name keys only: they have dictionaries
            if col in whole:
                return counts_of(dictionaries[col], whole[col]) / n
            c = codes[col]
            return np.bincount(c[c >= 0], minlength=len(dictionaries[col])) / n

        md = _month_day(people["dob_md"])
        built = cls(dictionaries, codes, days_of(people["date_of_birth"]), days_of(people["dob_swapped"]), md,
                    _year(people["birth_year"]), freq("name_fold"), freq("name_key"),
                    name_fold_text(people))
        index._lookups["codes"] = built
        return built

    def text(self, col: str, rows: np.ndarray) -> pd.Series:
        """The registry's text of key `col` for registry `rows` (null where a row is -1 or has none)."""
        taken = np.full(len(rows), NULL_REGISTRY, dtype=np.int64)
        found = rows >= 0
        taken[found] = self.codes[col][rows[found]]
        return take_text(self.dictionaries[col], taken)

    def household_codes(self, rows: np.ndarray) -> np.ndarray:
        """The household code of each registry row (int64; -1 where the row is -1 or has none)."""
        found = rows >= 0
        out = np.full(len(rows), -1, dtype=np.int64)
        out[found] = np.maximum(self.codes["household_id"][rows[found]], -1)   # NULL_REGISTRY: none
        return out

    def encode(self, col: str, values: pd.Series) -> np.ndarray:
        """An export column's codes in the registry's dictionary for `col` (-1: no value, -3: unknown);
        for a `CODED_ONLY` column, its values are the registry's codes already (-1: none)."""
        if col in DIGIT_KEYS:
            return digit_key(values, NULL_PROFILE, UNKNOWN)
        if col in CODED_ONLY:
            code = np.asarray(values, dtype=np.int64)
            return np.where(code >= 0, code, NULL_PROFILE).astype(np.int32)
        code = codes_in(self.dictionaries[col], values).astype(np.int32)
        code[code < 0] = UNKNOWN
        code[values.isna().to_numpy()] = NULL_PROFILE
        return code


@dataclass(frozen=True)
class ProfileCodes:
    """The same encodings for a province's export persons (one row per profile, by position)."""

    codes: dict[str, np.ndarray]
    dob: np.ndarray
    dob_md: np.ndarray
    year: np.ndarray
    kind: np.ndarray            # 0 missing/invalid, 1 personal, 2 old
    own: np.ndarray             # the ID's own sex and birth year fit the row
    marked: np.ndarray          # the written name has diacritics
    missing_name: np.ndarray
    name_fold: np.ndarray       # text (object), for fuzzy similarity
    name_key_freq: np.ndarray   # share of registry people with the profile's name_key
    name_fold_freq: np.ndarray  # ... with its name_fold

    @classmethod
    def of(cls, profiles: pd.DataFrame, reg: RegistryCodes) -> ProfileCodes:
        p = profiles.assign(name_rest=name_rest(profiles["name_fold"]))
        codes = {col: reg.encode(col, p[src]) for col, src in (TEXT_KEYS | DIGIT_KEYS).items()}
        kind = np.select([(p["id_kind"] == "personal").fillna(False).to_numpy(dtype=bool),
                          (p["id_kind"] == "old").fillna(False).to_numpy(dtype=bool)], [1, 2], 0).astype(np.int8)
        own = (p["id_structure_ok"].fillna(False).to_numpy(dtype=bool)
               & ((p["id_sex"] == p["sex"]) | p["sex"].isna()).fillna(False).to_numpy(dtype=bool)
               & (p["id_birth_year"].astype("Int32") == p["dob_year"].astype("Int32")).fillna(False).to_numpy(dtype=bool))
        marked = p["full_name"].astype("string[pyarrow]").str.contains("[^\x00-\x7f]", regex=True).fillna(False)
        fold = p["name_fold"].astype("string[pyarrow]")
        dob = days_of(p["dob"])
        md = np.where(dob != NAT, _month_day(p["dob_md"]), -1).astype(np.int16)
        key, fc = codes["name_key"], codes["name_fold"]
        return cls(codes, dob, md, _year(p["dob_year"]), kind, own,
                   marked.to_numpy(dtype=bool), fold.fillna("").eq("").to_numpy(dtype=bool),
                   fold.fillna("").to_numpy(dtype=object),
                   np.where(key >= 0, reg.key_freq[np.maximum(key, 0)], 0.0),
                   np.where(fc >= 0, reg.fold_freq[np.maximum(fc, 0)], 0.0))
