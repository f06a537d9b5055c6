"""Normalise every person and dose field of an export table."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor

import pandas as pd

from pipeline.normalize.codes import (
    normalize_dose_numbers,
    normalize_phones,
    normalize_sex,
    normalize_vaccines,
)
from pipeline.normalize.dates import normalize_dates
from pipeline.normalize.ids import normalize_ids
from pipeline.normalize.names import normalize_names
from pipeline.rules import Rules, default_rules
from pipeline.text import fold_fullwidth, strip_invisible, unwrap_excel_text

# The columns read here; invisible characters are taken out of them first (`strip_invisible`),
# Excel's text formulas unwrapped (`unwrap_excel_text`), and in the fields of digits and signs
# full-width forms read as ASCII (`fold_fullwidth`).
FIELDS = ("full_name", "id_number", "date_of_birth", "dose_date", "sex", "phone", "vaccine", "dose_number")
NUMERIC_FIELDS = ("id_number", "date_of_birth", "dose_date", "phone", "dose_number")


def _cleaned(column: str, values: pd.Series) -> pd.Series:
    values = unwrap_excel_text(strip_invisible(values))
    return fold_fullwidth(values) if column in NUMERIC_FIELDS else values


def normalize_exports(raw: pd.DataFrame, rules: Rules | None = None, *, run_date: dt.date,
                      style: str = "old", lexicon: frozenset[str] | None = None) -> pd.DataFrame:
    """One row per input row: the normalised values next to the evidence the linker needs.

    Columns are prefixed by field: `name_*` keys, `id_*` classification,
    `dob_*` parse results, `dose_date*`, plus `sex`, `phone`, `vaccine`,
    `dose_number` and the `*_known` flags.
    """
    rules = rules or default_rules()
    raw = raw.assign(**{c: _cleaned(c, raw[c]) for c in FIELDS if c in raw})
    # Names are mostly Python-level work; the other fields mostly Arrow kernels that release
    # the GIL. Running names in a second thread overlaps the two on a two-core machine.
    with ThreadPoolExecutor(max_workers=1) as pool:
        names_job = pool.submit(normalize_names, raw["full_name"], rules, style, lexicon, raw.get("source_file"))
        others = _other_fields(raw, rules, run_date)
        names = names_job.result()
    out = pd.concat([names.rename(columns={"encoding": "name_encoding", "valid": "name_valid", "noted": "name_noted"}), *others], axis=1)
    out.index = raw.index
    return out


def _other_fields(raw: pd.DataFrame, rules: Rules, run_date: dt.date) -> list[pd.DataFrame]:
    ids = normalize_ids(raw["id_number"], rules)
    dob = normalize_dates(raw["date_of_birth"], rules, run_date=run_date).add_prefix("dob_")
    dose = normalize_dates(raw["dose_date"], rules, run_date=run_date, allow_year_only=False)
    dose = dose[["date", "date_error"]].rename(columns={"date": "dose_date", "date_error": "dose_date_error"})
    return [
        ids, dob, dose,
        normalize_sex(raw["sex"], rules),
        normalize_phones(raw["phone"], rules),
        normalize_vaccines(raw["vaccine"], rules),
        normalize_dose_numbers(raw["dose_number"], rules),
    ]
