"""Dose-level codes on small hand-worked frames."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from pipeline.doses import dose_flags

RUN = dt.date(2022, 6, 1)


def frame(rows):
    cols = ["source_file", "source_row", "identity", "dose_date", "vaccine", "dose_number", "date_of_birth", "birth_year"]
    d = pd.DataFrame(rows, columns=cols)
    d["dose_date"] = pd.to_datetime(d["dose_date"])
    d["date_of_birth"] = pd.to_datetime(d["date_of_birth"])
    d["birth_year"] = d["birth_year"].astype("Int16")
    d["dose_number"] = d["dose_number"].astype("Int16")
    return d


def test_duplicates_intervals_dates_and_unknown_vaccines(rules):
    d = frame([
        ("01/a.csv", 2, "P1", "2021-07-01", "AstraZeneca", 1, "1980-01-01", 1980),
        ("01/a.csv", 3, "P1", "2021-07-20", "AstraZeneca", 2, "1980-01-01", 1980),  # 19 days < 28: interval
        ("01/b.csv", 2, "P1", "2021-07-01", "AstraZeneca", 1, "1980-01-01", 1980),  # same dose again: duplicate
        ("01/b.csv", 3, "P1", "2021-11-01", "Pfizer", 3, "1980-01-01", 1980),       # booster 104 days after: fine
        ("01/b.csv", 4, "P2", "2021-02-01", "Pfizer", 1, "1990-01-01", 1990),       # before the campaign
        ("01/b.csv", 5, "P2", "2023-01-01", "Pfizer", 2, "1990-01-01", 1990),       # after the run date
        ("01/b.csv", 6, "P3", "2021-08-01", None, 1, "1990-01-01", 1990),           # unknown vaccine
        ("01/b.csv", 7, "P4", None, "Moderna", 1, "1990-01-01", 1990),              # no dose date
        ("01/b.csv", 8, "P5", "2021-08-01", "Moderna", 1, "2021-09-01", 2021),      # before birth
        ("79/c.csv", 2, "P1", "2021-07-01", "AstraZeneca", 1, "1980-01-01", 1980),  # duplicate across provinces
        ("79/c.csv", 3, "P6", "2021-10-01", "Pfizer", 1, None, 1970),
        ("79/c.csv", 4, "P6", "2021-12-01", "Pfizer", 3, None, 1970),               # booster after 61 days < 90
        ("79/c.csv", 5, "P6", "2022-04-01", "Pfizer", 4, None, 1970),               # 2nd booster after 121 days: fine
        ("79/c.csv", 6, "P7", "2021-06-01", "Moderna", 3, None, 1970),
        ("79/c.csv", 7, "P7", "2021-09-15", "Moderna", 4, None, 1970),              # 2nd booster after 106 days < 120
    ])
    f = dose_flags(d, rules, RUN)
    assert f["DOSE_DUPLICATE"].tolist() == [False, False, True, False, False, False, False, False, False, True, False, False, False, False, False]
    assert f["DOSE_INTERVAL"].tolist() == [False, True, False, False, False, False, False, False, False, False, False, True, False, False, True]
    assert f["DOSE_DATE_INVALID"].tolist() == [False, False, False, False, True, True, False, True, True, False, False, False, False, False, False]
    assert f["VACCINE_UNKNOWN"].tolist() == [False] * 6 + [True] + [False] * 8
