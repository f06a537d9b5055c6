"""Dose-level codes on small hand-worked frames."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.doses import (
    FLAG_NAMES,
    check_bucket,
    dose_flags,
    flag_in_buckets,
    gather_flags,
    spill_province,
)

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


def _two_provinces(rules, folder):
    """Two provinces' rows written as linked rows, each file out of order; and the flags of one
    `dose_flags` call over every row, mapped back to each province's rows."""
    d = frame([
        ("01/a.csv", 2, "P1", "2021-07-01", "AstraZeneca", 1, "1980-01-01", 1980),
        ("01/a.csv", 3, "P1", "2021-07-20", "AstraZeneca", 2, "1980-01-01", 1980),  # interval
        ("01/b.csv", 2, "P1", "2021-07-01", "AstraZeneca", 1, "1980-01-01", 1980),  # duplicate
        ("01/b.csv", 4, "P2", "2021-09-01", "Pfizer", 1, "1990-01-01", 1990),
        ("01/b.csv", 6, None, "2021-08-01", None, 1, None, None),                   # rejected row, unknown vaccine
        ("01/b.csv", 7, None, "2023-08-01", "Pfizer", 1, None, None),               # rejected row, after the run date
        ("79/c.csv", 2, "P1", "2021-07-01", "AstraZeneca", 1, "1980-01-01", 1980),  # duplicate across provinces
        ("79/c.csv", 3, "P6", "2021-10-01", "Pfizer", 1, None, 1970),
        ("79/c.csv", 4, "P6", "2021-12-01", "Pfizer", 3, None, 1970),               # booster too soon
        ("79/c.csv", 5, "P2", "2021-02-01", "Pfizer", 1, "1990-01-01", 1990),       # before the campaign
        ("79/c.csv", 6, "P2", "2021-09-10", "Pfizer", 2, "1990-01-01", 1990),       # interval across provinces
        ("79/c.csv", 7, "P7", "2021-06-01", "Moderna", 1, None, 1970),
        ("79/c.csv", 8, "P7", "2021-06-01", "Moderna", 1, None, 1970),              # duplicate
        ("79/c.csv", 9, "P8", "2021-06-01", "Moderna", 1, None, 1970),
        ("79/c.csv", 10, "P9", "2021-06-01", "Moderna", 1, None, 1970),
        ("79/c.csv", 11, "P10", "2021-06-01", "Moderna", 1, None, 1970),
    ])
    whole = dose_flags(d, rules, RUN)
    assert {k: list(np.flatnonzero(v)) for k, v in whole.items()} == {   # the case the buckets must keep
        "DOSE_DUPLICATE": [2, 6, 12], "DOSE_DATE_INVALID": [5, 9], "DOSE_INTERVAL": [1, 8, 10], "VACCINE_UNKNOWN": [4]}
    sources, expected = {}, {}
    for code in ("01", "79"):
        rows = d.index[d["source_file"].str.startswith(code)][::-1]   # in a file, not in sorted order
        sources[code] = folder / f"{code}.parquet"
        pq.write_table(pa.Table.from_pandas(d.loc[rows], preserve_index=False), sources[code])
        expected[code] = {k: v[rows] for k, v in whole.items()}
    return sources, expected


def test_doses_checked_in_buckets_of_persons_are_flagged_as_all_at_once(rules, tmp_path):
    """Two provinces' rows checked in 1, 4 and 16 buckets (one row each): the flags are those of one
    `dose_flags` call over every row."""
    sources, expected = _two_provinces(rules, tmp_path)
    for bucket_rows, buckets in ((100, 1), (4, 4), (1, 16)):
        spill = tmp_path / f"spill-{bucket_rows}"
        spill.mkdir()
        flags, made = flag_in_buckets(sources, rules, RUN, bucket_rows, spill)
        assert made == buckets
        # spilled: one file of rows per province, one file of flagged rows per bucket (none for one bucket)
        assert sorted(f.name for f in spill.glob("*.arrow")) == (
            sorted(["rows-0.arrow", "rows-1.arrow", *(f"flags-{b}.arrow" for b in range(buckets))]) if buckets > 1 else [])
        assert list(flags) == ["01", "79"]
        for code in sources:
            assert list(flags[code]) == list(FLAG_NAMES)
            for k in FLAG_NAMES:
                assert flags[code][k].tolist() == expected[code][k].tolist(), (bucket_rows, code, k)


def test_dose_check_steps_run_in_any_order_as_a_cluster_would(rules, tmp_path):
    """On a cluster the provinces are spilled, the buckets checked and the flags gathered as
    separate tasks, in whatever order the workers take them: the flags are the same."""
    sources, expected = _two_provinces(rules, tmp_path)
    codes, buckets = ["79", "01"], 5    # numbered against the order of their files
    assert [spill_province(sources[codes[p]], p, buckets, 3, tmp_path) for p in (1, 0)] == [6, 10]
    counted = [check_bucket(tmp_path, len(codes), b, buckets, rules, RUN) for b in reversed(range(buckets))]
    assert sum(rows for rows, _ in counted) == 16
    assert {k: sum(c[k] for _, c in counted) for k in FLAG_NAMES} == {   # flagged rows of both provinces
        k: int(expected["01"][k].sum() + expected["79"][k].sum()) for k in FLAG_NAMES}
    for p in (1, 0):
        flags = gather_flags(tmp_path, buckets, p, len(expected[codes[p]]["DOSE_DUPLICATE"]))
        assert {k: v.tolist() for k, v in flags.items()} == {k: v.tolist() for k, v in expected[codes[p]].items()}


def test_dose_checks_in_small_buckets_write_the_codes_of_the_sample_run(rules, tmp_path, sample_run):
    """The sample run's provinces checked some 40 rows at a time write the same dose codes."""
    import shutil

    from flows.reconcile import dose_checks, work_dir
    from pipeline.rules import DEFAULT_RULES_DIR
    from tests.conftest import RUN_DATE

    _, reference = sample_run
    codes = sorted(p.name for p in (reference / "work").iterdir() if (p / "linked.parquet").exists())
    for code in codes:
        work_dir(tmp_path, code).mkdir(parents=True)
        shutil.copy(work_dir(reference, code) / "linked.parquet", work_dir(tmp_path, code))
    rows = sum(pq.ParquetFile(work_dir(tmp_path, c) / "linked.parquet").metadata.num_rows for c in codes)
    assert len(codes) == 3 and rows > 40 * 50
    checked = dose_checks(tmp_path, codes, DEFAULT_RULES_DIR, RUN_DATE, bucket_rows=40)
    for code in codes:
        ours = pq.read_table(work_dir(tmp_path, code) / "dose_codes.parquet")
        assert ours.equals(pq.read_table(work_dir(reference, code) / "dose_codes.parquet")), code
    assert set(checked.digests) == set(codes) and (checked.rows, checked.buckets) == (rows, -(-rows // 40))
    assert list((tmp_path / "work").glob(".dose-buckets-*")) == []   # the spilled buckets are removed
