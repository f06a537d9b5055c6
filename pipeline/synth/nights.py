"""Successive nightly snapshots of a generated data set, as officers fix errors between nights.

Night 0 is the generated `exports/`. For night k (1..n-1) every readable file
is written again as UTF-8 CSV under `<dest>/<k>/exports/`, with the person
fields (name, date of birth, sex, ID) of a growing share of the persons that
carry a person-level error replaced by their registry values: the share
grows by each province's own pace per night, so some provinces finish and
some do not. Files that could not be read stay as they were (nobody fixed
them). The truth of every snapshot is the generated one: rows keep their file
and row number.
"""

from __future__ import annotations

import csv
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.ingest import IngestError, read_export
from pipeline.rules import Rules, default_rules

log = logging.getLogger(__name__)
PERSON_FIELDS = ("full_name", "date_of_birth", "sex", "id_number")
SEX_VI = {"M": "Nam", "F": "Nữ", "male": "Nam", "female": "Nữ", "Nam": "Nam", "Nữ": "Nữ"}


def _paces(provinces: list[str], rng: np.random.Generator) -> dict[str, float]:
    """Share of the erroneous persons each province fixes per night: 5% to 35%."""
    return {p: float(rng.uniform(0.05, 0.35)) for p in provinces}


def write_nights(data: Path, dest: Path, nights: int, seed: int = 1, rules: Rules | None = None) -> list[Path]:
    """Write `dest/<k>/exports` for k = 1..nights-1 from the data set in `data`; return every night's
    exports folder (night 0, `data/exports`, first)."""
    rules = rules or default_rules()
    rng = np.random.default_rng(seed)
    truth = pd.read_parquet(data / "truth.parquet")
    registry = pd.read_parquet(data / "registry.parquet").set_index("person_id")
    wrong = truth[truth["error_codes"].map(lambda c: any(not x.startswith("DOSE_") and x != "VACCINE_UNKNOWN"
                                                         for x in c))]
    wrong = wrong[wrong["true_person_id"].isin(registry.index)]
    persons = wrong.groupby("province_code")["true_person_id"].unique()
    order = {p: rng.permutation(ids) for p, ids in persons.items()}
    pace = _paces(sorted(persons.index), rng)
    folders = [data / "exports"]
    for k in range(1, nights):
        fixed = {pid for p, ids in order.items() for pid in ids[: int(len(ids) * min(1.0, pace[p] * k))]}
        folders.append(_write_night(data, dest / str(k) / "exports", truth, registry, fixed, rules))
        log.info("night %d: person fields of %d persons fixed", k, len(fixed))
    return folders


def _write_night(data: Path, dest: Path, truth: pd.DataFrame, registry: pd.DataFrame, fixed: set[str],
                 rules: Rules) -> Path:
    if dest.exists():
        shutil.rmtree(dest)
    key = truth.set_index(["source_file", "source_row"])["true_person_id"]
    for path in sorted((data / "exports").rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(data / "exports")
        try:
            frame = read_export(path, rules).frame
        except IngestError:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest / rel)
            continue
        pid = key.reindex(pd.MultiIndex.from_arrays([[rel.as_posix()] * len(frame), frame["source_row"]])).to_numpy()
        hit = pd.Series(pid).isin(fixed).to_numpy()
        frame = frame.astype(object)
        if hit.any():
            reg = registry.loc[pid[hit]]
            frame.loc[hit, "full_name"] = reg["full_name"].to_numpy()
            dob = pd.to_datetime(reg["date_of_birth"]).dt.strftime("%d/%m/%Y")
            frame.loc[hit, "date_of_birth"] = dob.fillna(reg["birth_year"].astype("string")).to_numpy()
            frame.loc[hit, "sex"] = reg["sex"].map(SEX_VI).to_numpy()
            frame.loc[hit, "id_number"] = reg.index.to_numpy()
        _write_csv(dest / rel.with_suffix(".csv"), frame)
    return dest


def _write_csv(path: Path, frame: pd.DataFrame) -> None:
    """UTF-8 CSV with a Vietnamese header for each column, rows in their original order."""
    headers = {"full_name": "Họ và tên", "date_of_birth": "Ngày sinh", "sex": "Giới tính", "id_number": "Số CMND/CCCD",
               "phone": "Số điện thoại", "address": "Địa chỉ", "district": "Quận/Huyện", "ward": "Phường/Xã",
               "dose_date": "Ngày tiêm", "dose_number": "Mũi tiêm", "vaccine": "Tên vắc xin", "lot_number": "Số lô",
               "site": "Điểm tiêm"}
    cols = [c for c in headers if c in frame.columns]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([headers[c] for c in cols])
        cells = frame.sort_values("source_row")[cols].astype(object).where(frame[cols].notna(), "")
        w.writerows(cells.itertuples(index=False, name=None))
