"""`vaxrecon synth`: a registry, provincial export files and their ground truth."""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.rules import Rules, default_rules
from pipeline.synth.damage import expected_person_codes, person_damage
from pipeline.synth.doses import make_doses
from pipeline.synth.files import KINDS, make_specs, render_rows, write_file
from pipeline.synth.people import REGISTRY_COLUMNS, make_people

log = logging.getLogger(__name__)

REGISTRY_SCHEMA = pa.schema([
    ("person_id", pa.string()), ("old_id", pa.string()), ("full_name", pa.string()),
    ("date_of_birth", pa.date32()), ("birth_year", pa.int16()), ("sex", pa.string()),
    ("province_code", pa.string()), ("district", pa.string()), ("ward", pa.string()),
    ("household_id", pa.string()), ("phone", pa.string()),
])
DOSE_RATES = {"date_invalid": 0.008, "vaccine_unknown": 0.005, "short_interval": 0.01, "duplicate": 0.015}


@dataclass(frozen=True)
class SynthConfig:
    out: Path
    people: int = 300_000
    doses: int = 150_000
    provinces: tuple[str, ...] = ("01", "79", "48", "66", "92")
    seed: int = 1
    absent_share: float = 0.03
    run_date: dt.date = dt.date(2022, 5, 31)
    corrupt_files: bool = True
    rows_per_file: int = 2500


def _registry_table(people: pd.DataFrame) -> pa.Table:
    reg = people[REGISTRY_COLUMNS].copy()
    reg["date_of_birth"] = pd.to_datetime(reg["date_of_birth"]).dt.date
    arrays = [pa.array(reg[f.name].astype(object).where(reg[f.name].notna(), None).tolist(), type=f.type)
              for f in REGISTRY_SCHEMA]
    return pa.Table.from_arrays(arrays, schema=REGISTRY_SCHEMA)


def _dose_damage(rng: np.random.Generator, doses: pd.DataFrame, rules: Rules, run_date: dt.date) -> pd.DataFrame:
    """Dose-level damage: unreadable or impossible dose dates, unknown vaccines, short intervals."""
    n = len(doses)
    d = doses.copy()
    second = (d["dose_number"] == 2).to_numpy() & (rng.random(n) < DOSE_RATES["short_interval"] * 3)
    prev_date = d["dose_date"].shift(1)
    min_gap = d["vaccine"].map(lambda v: rules.vaccines[v].min_interval_days)
    short = second & (d["person"].shift(1) == d["person"]).to_numpy()
    d.loc[short, "dose_date"] = prev_date[short] + pd.to_timedelta(
        (rng.random(int(short.sum())) * (min_gap[short] - 3)).astype(int) + 2, unit="D")
    d["dose_date_text"] = pd.Series(None, index=d.index, dtype=object)
    bad = rng.random(n) < DOSE_RATES["date_invalid"]
    choices = np.array(["2020-11-15", "2031-01-10", "31/02/2022", "không rõ", ""], dtype=object)
    pick = choices[rng.integers(0, len(choices), n)]
    d.loc[bad, "dose_date_text"] = pick[bad]
    d.loc[bad, "dose_date"] = pd.NaT
    d["vaccine_written"] = d["vaccine"].astype(object)
    unknown = rng.random(n) < DOSE_RATES["vaccine_unknown"]
    d.loc[unknown, "vaccine_written"] = np.array(["Covaxin", "Không rõ", "XYZ-Vac"])[rng.integers(0, 3, int(unknown.sum()))]
    return d


def _truth_dose_codes(rows: pd.DataFrame, rules: Rules, run_date: dt.date) -> pd.Series:
    """Dose-level codes by the contract's definitions, on true identities (rows in output order)."""
    codes: list[list[str]] = [[] for _ in range(len(rows))]
    date = pd.to_datetime(rows["dose_date_true"])
    dob = pd.to_datetime(rows["true_dob"])
    invalid = (date.isna() | (date < pd.Timestamp(rules.campaign_start)) | (date > pd.Timestamp(run_date))
               | (date < dob)).to_numpy()
    vac = rows["vaccine_true"].where(rows["vaccine_known"])
    key = pd.DataFrame({"p": rows["identity"], "d": date, "v": vac})
    dup = key.duplicated(keep="first").to_numpy() & key.notna().all(axis=1).to_numpy()
    valid = ~invalid & ~dup
    t = pd.DataFrame({"p": rows["identity"], "d": date, "v": vac, "n": rows["dose_number"],
                      "pos": np.arange(len(rows))})[valid].sort_values(["p", "d", "pos"])
    t["prev"] = t.groupby("p")["d"].shift(1)
    spec = t["v"].map(lambda v: rules.vaccines[v] if isinstance(v, str) and v in rules.vaccines else None)
    def need_days(s, n):  # the contract's rule, written out independently of pipeline.doses
        if s is None:
            return 0
        if n >= s.primary_doses + 2:
            return rules.second_booster_min_days
        return rules.booster_min_days if n > s.primary_doses else s.min_interval_days

    need = [need_days(s, n) for s, n in zip(spec, t["n"], strict=True)]
    short = t["prev"].notna() & ((t["d"] - t["prev"]).dt.days < np.array(need)) & spec.notna()
    for i in range(len(rows)):
        if invalid[i]:
            codes[i].append("DOSE_DATE_INVALID")
        if dup[i]:
            codes[i].append("DOSE_DUPLICATE")
        if not rows["vaccine_known"].iat[i]:
            codes[i].append("VACCINE_UNKNOWN")
    for pos in t.loc[short, "pos"]:
        codes[int(pos)].append("DOSE_INTERVAL")
    return pd.Series(codes, index=rows.index)


def generate(cfg: SynthConfig, rules: Rules | None = None) -> dict[str, int]:
    """Write `registry.parquet`, `exports/<PP>/*` and `truth.parquet` under `cfg.out`."""
    rules = rules or default_rules()
    rng = np.random.default_rng(cfg.seed)
    provinces = list(cfg.provinces)
    n_total = int(cfg.people / (1 - cfg.absent_share))
    log.info("synth: %d people (%d in the registry)", n_total, cfg.people)
    people = make_people(rng, n_total, rules, provinces)
    in_registry = np.ones(len(people), dtype=bool)
    in_registry[rng.permutation(len(people))[: len(people) - cfg.people]] = False
    people["in_registry"] = in_registry
    doses = make_doses(rng, people, cfg.doses, rules, provinces, pd.Timestamp(cfg.run_date))
    log.info("synth: %d dose rows", len(doses))
    persons = pd.DataFrame({"person": doses["person"].unique()})
    persons["in_registry"] = people.loc[persons["person"], "in_registry"].to_numpy()
    variants = {a: b for group in rules.family_variants for a in group for b in group if a != b}
    damaged = person_damage(rng, persons, people, variants)
    damaged["person_codes"] = expected_person_codes(damaged, people)
    doses = doses.merge(damaged, on="person", how="left")
    doses = _dose_damage(rng, doses, rules, cfg.run_date)
    extra = people.loc[doses["person"], ["ward", "district", "phone", "dob", "person_id"]].reset_index(drop=True)
    doses = pd.concat([doses.reset_index(drop=True), extra], axis=1)
    doses["phone_written"] = doses["phone"].astype(object)
    u = rng.random(len(doses))
    intl = doses["phone_written"].notna() & (u < 0.1)
    doses.loc[intl, "phone_written"] = "+84 " + doses.loc[intl, "phone_written"].str[1:]
    back = {new: old for old, new in rules.phone_prefixes.items()}
    prefix = doses["phone_written"].str[:3]
    pre2018 = doses["phone_written"].notna() & (u > 0.92) & prefix.isin(list(back))
    doses.loc[pre2018, "phone_written"] = prefix[pre2018].map(back) + doses.loc[pre2018, "phone_written"].str[3:]
    # duplicates: the same dose exported again by another site
    dup = rng.random(len(doses)) < DOSE_RATES["duplicate"]
    doses = pd.concat([doses, doses[dup]], ignore_index=True)
    out = Path(cfg.out)
    exports = out / "exports"
    if exports.exists():
        shutil.rmtree(exports)
    truth_parts = []
    for prov in provinces:
        rows = doses[doses["vax_province"] == prov]
        n_files = max(len(KINDS), len(rows) // cfg.rows_per_file)  # every kind in every province
        specs = make_specs(rng, prov, n_files, rules)
        which = rng.integers(0, len(specs), len(rows))
        for k, spec in enumerate(specs):
            part = rows[which == k].sort_values("dose_date")
            if part.empty:
                continue
            cells = render_rows(rng, part, spec)
            src_row = write_file(exports, spec, cells, rng)
            written = {c for c, _ in spec.headers}
            codes = [[c for c in cs if c != "SEX_WRONG" or "sex" in written] for cs in part["person_codes"]]
            truth_parts.append(pd.DataFrame({
                "source_file": spec.name, "source_row": src_row.to_numpy().astype("int64"),
                "province_code": prov, "true_person_id": part["person_id"].where(part["in_registry"]).to_numpy(),
                "identity": part["person"].to_numpy(), "person_codes": codes,
                "dose_date_true": part["dose_date"].to_numpy(), "true_dob": part["dob"].to_numpy(),
                "vaccine_true": part["vaccine_written"].to_numpy(),
                "vaccine_known": part["vaccine_written"].isin(list(rules.vaccines)).to_numpy(),
                "dose_number": part["dose_number"].to_numpy(),
                "damage": [
                    [x for x in (a, b, c) if isinstance(x, str)] + (["sex_wrong"] if s else [])
                    for a, b, c, s in zip(part["id_damage"], part["name_damage"], part["dob_damage"], part["sex_wrong"], strict=True)
                ],
                "file_font": spec.font, "file_kind": spec.kind,
            }))
    truth = pd.concat(truth_parts, ignore_index=True).sort_values(["source_file", "source_row"]).reset_index(drop=True)
    truth["dose_codes"] = _truth_dose_codes(truth, rules, cfg.run_date)
    truth["error_codes"] = [sorted(set(a) | set(b)) for a, b in zip(truth["person_codes"], truth["dose_codes"], strict=True)]
    registry = people[people["in_registry"]]
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(_registry_table(registry), out / "registry.parquet")
    keep = ["source_file", "source_row", "province_code", "true_person_id", "error_codes", "damage", "file_font", "file_kind"]
    pq.write_table(pa.Table.from_pandas(truth[keep], preserve_index=False), out / "truth.parquet")
    if cfg.corrupt_files:
        _write_corrupt(exports, provinces[0])
    return {"registry": len(registry), "dose_rows": len(truth), "files": truth["source_file"].nunique()}


def _write_corrupt(exports: Path, province: str) -> None:
    """Files a real night brings that cannot be read: they must be quarantined."""
    folder = exports / province
    (folder / "zz_file_hong.xlsx").write_bytes(b"PK\x03\x04 this is not a workbook \x00\x01")
    (folder / "zz_thieu_cot.csv").write_text("STT,Ngày tiêm,Vắc xin\n1,01/01/2022,AZ\n", encoding="utf-8")
