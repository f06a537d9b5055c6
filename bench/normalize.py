"""Rows per second normalised, per field, on export rows as read.

    python -m bench.normalize [--people 2000000 --doses 1000000] [--repeat ROWS]

By default every row is a generated row (no repetition), so names are as
diverse as a province's export; `--repeat N` repeats the rows to N instead
(fewer distinct values, a cheaper and less honest figure).
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
    ap.add_argument("--people", type=int, default=2_000_000)
    ap.add_argument("--doses", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=0, help="repeat the rows read up to this many (0: no repetition)")
    args = ap.parse_args()
    root = dataset(args.people, args.doses) / "exports"
    rules = default_rules()
    raw = pd.concat([read_export(p, rules).frame.assign(source_file=p.name) for p in sorted(root.rglob("*.*"))],
                    ignore_index=True)
    if args.repeat:
        raw = pd.concat([raw] * (args.repeat // len(raw) + 1), ignore_index=True).head(args.repeat)
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
    t = time.perf_counter()
    normalize_exports(raw, rules, run_date=run)  # first, with every cache cold: the figure for the target
    s = time.perf_counter() - t
    print(f"all fields together, cold: {s:.2f} s ({len(raw) / s:,.0f} rows/s; target < 10 s per million rows)")
    print(f"{'field':<16}{'seconds':>10}{'rows/s':>14}")
    for name, fn in fields.items():
        t = time.perf_counter()
        fn()
        s = time.perf_counter() - t
        print(f"{name:<16}{s:>10.2f}{len(raw) / s:>14,.0f}")


if __name__ == "__main__":
    main()
