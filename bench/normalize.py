"""Rows per second normalised, per field, on export rows as read.

    python -m bench.normalize [--rows 1000000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

import pandas as pd

from bench.common import dataset
from pipeline.ingest import read_export
from pipeline.normalize.codes import (
    normalize_dose_numbers,
    normalize_phones,
    normalize_sex,
    normalize_vaccines,
)
from pipeline.normalize.dates import normalize_dates
from pipeline.normalize.ids import normalize_ids
from pipeline.normalize.names import normalize_names
from pipeline.normalize.records import normalize_exports
from pipeline.rules import default_rules


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows to normalise (the read rows, repeated)")
    args = ap.parse_args()
    root = dataset(300_000, 150_000) / "exports"
    rules = default_rules()
    raw = pd.concat([read_export(p, rules).frame for p in sorted(root.rglob("*.*"))], ignore_index=True)
    raw = pd.concat([raw] * (args.rows // len(raw) + 1), ignore_index=True).head(args.rows)
    run = dt.date(2026, 11, 26)
    fields = {
        "full_name": lambda: normalize_names(raw["full_name"], rules),
        "id_number": lambda: normalize_ids(raw["id_number"], rules),
        "date_of_birth": lambda: normalize_dates(raw["date_of_birth"], rules, run_date=run),
        "dose_date": lambda: normalize_dates(raw["dose_date"], rules, run_date=run, allow_year_only=False),
        "sex": lambda: normalize_sex(raw["sex"], rules),
        "phone": lambda: normalize_phones(raw["phone"], rules),
        "vaccine": lambda: normalize_vaccines(raw["vaccine"], rules),
        "dose_number": lambda: normalize_dose_numbers(raw["dose_number"], rules),
    }
    print(f"{len(raw):,} rows ({raw['full_name'].nunique():,} distinct names)")
    print(f"{'field':<16}{'seconds':>10}{'rows/s':>14}")
    for name, fn in fields.items():
        t = time.perf_counter()
        fn()
        s = time.perf_counter() - t
        print(f"{name:<16}{s:>10.2f}{len(raw) / s:>14,.0f}")
    t = time.perf_counter()
    normalize_exports(raw, rules, run_date=run)
    s = time.perf_counter() - t
    print(f"{'all fields':<16}{s:>10.2f}{len(raw) / s:>14,.0f}")


if __name__ == "__main__":
    main()
