"""`vaxrecon run` on the committed sample: contract conformance, conservation, accuracy."""

from __future__ import annotations

import json
import re

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.evaluate import compare, load_corrected
from pipeline.rules import ALL_CODES, PERSON_CODES, STATUSES

from .conftest import RUN_DATE, SAMPLE

CONTRACT_TYPES = {
    "source_file": pa.string(), "source_row": pa.int64(), "province_code": pa.string(), "status": pa.string(),
    "person_id": pa.string(), "candidate_ids": pa.list_(pa.string()), "match_score": pa.float64(),
    "match_reason": pa.string(), "error_codes": pa.list_(pa.string()), "full_name": pa.string(),
    "date_of_birth": pa.date32(), "sex": pa.string(), "id_number": pa.string(),
    "original_full_name": pa.string(), "original_date_of_birth": pa.string(), "original_sex": pa.string(),
    "original_id_number": pa.string(), "dose_date": pa.date32(), "dose_number": pa.int16(),
    "vaccine": pa.string(), "lot_number": pa.string(), "site": pa.string(),
}


def test_exit_status_and_quarantine(sample_run):
    code, out = sample_run
    assert code == 3  # the sample carries two unreadable files
    reasons = sorted((out / "quarantine").rglob("*.reason.txt"))
    assert [p.name for p in reasons] == ["zz_file_hong.xlsx.reason.txt", "zz_thieu_cot.csv.reason.txt"]
    assert "no header row" in reasons[1].read_text(encoding="utf-8")
    assert (out / "quarantine" / "01" / "zz_file_hong.xlsx").exists()


def test_corrected_files_follow_the_contract_column_by_column(sample_run):
    _, out = sample_run
    files = sorted((out / "corrected").glob("*.parquet"))
    assert [f.stem for f in files] == ["01", "66", "79"]
    for f in files:
        table = pq.read_table(f)
        for name, typ in CONTRACT_TYPES.items():
            assert table.schema.field(name).type == typ, (f.name, name)
        df = table.to_pandas()
        assert (df["province_code"] == f.stem).all()
        assert df["source_file"].str.startswith(f.stem + "/").all()
        assert list(zip(df["source_file"], df["source_row"], strict=True)) == sorted(zip(df["source_file"], df["source_row"], strict=True))
        assert not df.duplicated(["source_file", "source_row"]).any()
        assert set(df["status"]) <= set(STATUSES)
        assert df["error_codes"].map(lambda c: set(c) <= set(ALL_CODES)).all()
        linked = df["status"].isin(["matched", "corrected"])
        assert df.loc[linked, "person_id"].str.fullmatch(r"\d{12}").all()
        assert df.loc[~linked, "person_id"].isna().all()
        assert (df.loc[linked, "id_number"] == df.loc[linked, "person_id"]).all()
        has_person_code = df["error_codes"].map(lambda c: any(x in PERSON_CODES for x in c))
        assert not has_person_code[df["status"] == "matched"].any()
        assert has_person_code[df["status"] == "corrected"].all()
        assert (df.loc[df["status"] == "review", "candidate_ids"].map(len) >= 1).all()
        assert (df.loc[df["status"] != "review", "candidate_ids"].map(len) == 0).all()
        assert df["match_score"].between(0, 1).all()
        assert df["match_reason"].notna().all()
        ids = df["error_codes"].map(lambda c: sum(x.startswith("ID_") for x in c))
        dobs = df["error_codes"].map(lambda c: sum(x.startswith("DOB_") for x in c))
        assert (ids <= 1).all() and (dobs <= 1).all()
        assert df["vaccine"].dropna().isin(["AstraZeneca", "Pfizer", "Moderna", "Vero Cell", "Sputnik V", "Abdala",
                                            "Hayat-Vax", "Janssen"]).all()


def test_every_input_row_appears_exactly_once(sample_run, sample_truth):
    _, out = sample_run
    corrected = load_corrected(out)
    keys = corrected[["source_file", "source_row"]]
    truth_keys = sample_truth[["source_file", "source_row"]]
    assert len(keys) == len(truth_keys)
    merged = truth_keys.merge(keys, how="outer", indicator=True)
    assert (merged["_merge"] == "both").all()


def test_accuracy_on_the_sample(sample_run, sample_truth):
    _, out = sample_run
    res = compare(load_corrected(out), sample_truth)
    assert res["precision"] >= 0.999, res["wrong_links_by_damage"]
    assert res["recall"] >= 0.99, res["misses_by_damage"]
    assert res["review_rate"] <= 0.02
    for code, stats in res["codes"].items():
        assert stats["f1"] >= 0.95, (code, stats)


def test_run_json_summarises_without_personal_data(sample_run):
    _, out = sample_run
    summary = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert summary["registry"]["people"] == pq.read_metadata(SAMPLE / "registry.parquet").num_rows
    p01 = summary["provinces"]["01"]
    assert p01["files_quarantined"] and all(q["reason"] for q in p01["files_quarantined"])
    assert sum(p01["rows_by_status"].values()) == p01["rows"]
    assert set(p01["stage_seconds"]) >= {"ingest", "normalise", "link", "write"}
    assert set(p01["stage_peak_gb"]) == set(p01["stage_seconds"])
    assert all(0.05 < gb < 24 for gb in p01["stage_peak_gb"].values()), p01["stage_peak_gb"]
    kinds = p01["ingest_by_kind"]
    read = {k: v for k, v in kinds.items() if k != "input_suite"}
    assert {"xlsx", "csv"} <= set(read)
    assert sum(v["files"] for v in read.values()) == len(p01["files_read"])
    assert sum(v["rows"] for v in read.values()) == p01["rows"]
    assert kinds["input_suite"]["rows"] == p01["rows"] and kinds["input_suite"]["seconds"] > 0
    assert summary["dose_checks"]["seconds"] > 0 and summary["dose_checks"]["provinces"] == len(summary["provinces"])
    assert summary["dose_checks"]["rows"] == sum(p["rows"] for p in summary["provinces"].values())
    assert summary["dose_checks"]["buckets"] == 1   # the sample's 4,000 rows: one bucket by default
    text = json.dumps(summary, ensure_ascii=False)
    assert not re.search(r"\b0\d{11}\b", text), "a personal ID number in run.json"
    registry = pd.read_parquet(SAMPLE / "registry.parquet", columns=["full_name"])
    assert not any(name in text for name in registry["full_name"].head(500))


def test_same_inputs_give_the_same_corrected_contents(sample_run, tmp_path):
    from pipeline.cli import main

    _, out = sample_run
    again = tmp_path / "again"
    main(["run", "--registry", str(SAMPLE / "registry.parquet"), "--exports", str(SAMPLE / "exports"),
          "--out", str(again), "--run-date", RUN_DATE.isoformat()])
    for code in ("01", "66", "79"):
        assert pq.read_table(again / "corrected" / f"{code}.parquet").equals(pq.read_table(out / "corrected" / f"{code}.parquet"))

def test_usage_errors_and_unreadable_registry(tmp_path):
    from pipeline.cli import main

    assert main(["run", "--registry", "x"]) == 2
    assert main(["run", "--registry", str(tmp_path / "nope.parquet"), "--exports", str(SAMPLE / "exports"),
                 "--out", str(tmp_path / "o")]) == 1
    assert main(["run", "--registry", str(SAMPLE / "registry.parquet"), "--exports", str(tmp_path / "none"),
                 "--out", str(tmp_path / "o")]) == 2
    assert main(["run", "--registry", str(SAMPLE / "registry.parquet"), "--exports", str(SAMPLE / "exports"),
                 "--out", str(tmp_path / "o"), "--slice-persons", "0"]) == 2
    assert main(["run", "--registry", str(SAMPLE / "registry.parquet"), "--exports", str(SAMPLE / "exports"),
                 "--out", str(tmp_path / "o"), "--dose-bucket-rows", "0"]) == 2
    assert not (tmp_path / "o").exists()

def test_relative_output_folder(tmp_path, monkeypatch):
    """`make demo` passes a relative --out: every writer must cope."""
    from pipeline.cli import main

    monkeypatch.chdir(tmp_path)
    code = main(["run", "--registry", str(SAMPLE / "registry.parquet"), "--exports", str(SAMPLE / "exports"),
                 "--out", "out/demo", "--province", "66"])
    assert code == 0
    assert (tmp_path / "out" / "demo" / "validation" / "index.html").exists()
    assert (tmp_path / "out" / "demo" / "corrected" / "66.parquet").exists()

def test_a_province_without_readable_rows_still_gets_its_outputs(tmp_path):
    """A province whose only file is unreadable, and one whose folder is empty: each gets an
    empty corrected file with the contract's schema, a report and a run.json entry, and neither
    fails (the exit status says only that a file was quarantined). What is no province folder is
    listed in run.json as not read."""
    import shutil

    from pipeline.cli import main

    exports = tmp_path / "exports"
    (exports / "01").mkdir(parents=True)
    shutil.copy(SAMPLE / "exports" / "01" / "zz_file_hong.xlsx", exports / "01")
    (exports / "48").mkdir()
    for junk in ("Thumbs.db", "desktop.ini", "~$danh_sach.xlsx", ".~lock.danh_sach.xlsx#"):   # not exports: skipped
        (exports / "48" / junk).write_bytes(b"\x00junk")
    shutil.copytree(SAMPLE / "exports" / "66", exports / "66")
    # Not province folders: never read, but listed (a hidden file is not)
    (exports / "HCM").mkdir()
    shutil.copy(SAMPLE / "exports" / "79" / "diem_tiem_01_csv_utf-8.csv", exports / "HCM")
    shutil.copy(SAMPLE / "exports" / "79" / "diem_tiem_01_csv_utf-8.csv", exports / "loose.csv")
    (exports / ".DS_Store").write_bytes(b"x")
    out = tmp_path / "out"
    code = main(["run", "--registry", str(SAMPLE / "registry.parquet"), "--exports", str(exports),
                 "--out", str(out), "--run-date", RUN_DATE.isoformat()])
    assert code == 3    # the quarantined file; no province failed
    summary = json.loads((out / "run.json").read_text(encoding="utf-8"))
    for province in ("01", "48"):
        entry = summary["provinces"][province]
        assert entry["error"] is None, entry["error"]
        assert entry["rows"] == 0 and entry["files_read"] == []
        assert sum(entry["rows_by_status"].values()) == 0
        table = pq.read_table(out / "corrected" / f"{province}.parquet")
        assert table.num_rows == 0
        for column, kind in CONTRACT_TYPES.items():
            assert table.schema.field(column).type == kind, (province, column)
        assert list((out / "reports" / province).glob("*.xlsx")), province
    assert [q["file"] for q in summary["provinces"]["01"]["files_quarantined"]] == ["01/zz_file_hong.xlsx"]
    assert summary["provinces"]["48"]["files_quarantined"] == []
    assert sorted(summary["provinces"]) == ["01", "48", "66"]
    assert summary["not_read"] == ["HCM/", "loose.csv"]
    assert pq.read_table(out / "corrected" / "66.parquet").num_rows == summary["provinces"]["66"]["rows"] > 0
