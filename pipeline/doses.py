"""Dose-level checks of contract 3.3 over all provinces of a run."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from pipeline.rules import Rules


def dose_flags(d: pd.DataFrame, rules: Rules, run_date: dt.date) -> dict[str, np.ndarray]:
    """Flags for DOSE_DUPLICATE, DOSE_DATE_INVALID, DOSE_INTERVAL, VACCINE_UNKNOWN.

    `d` has one row per dose row of the run, sorted by (source_file,
    source_row), with `identity` (person_id for linked rows, an export-person
    key otherwise, null for rejected rows), `dose_date`, `vaccine`,
    `dose_number`, `date_of_birth` and `birth_year` (corrected values).
    """
    date = pd.to_datetime(d["dose_date"])
    dob = pd.to_datetime(d["date_of_birth"])
    before_birth = (date < dob).fillna(False) | (date.dt.year < d["birth_year"].astype("Int32")).fillna(False)
    invalid = (date.isna() | (date < pd.Timestamp(rules.campaign_start)) | (date > pd.Timestamp(run_date))
               | before_birth).to_numpy()
    unknown = d["vaccine"].isna().to_numpy()
    key = d[["identity", "dose_date", "vaccine"]]
    complete = key.notna().all(axis=1).to_numpy()
    dup = key.duplicated(keep="first").to_numpy() & complete
    interval = _short_intervals(d, date, ~invalid & ~dup & d["identity"].notna().to_numpy(), rules)
    return {"DOSE_DUPLICATE": dup, "DOSE_DATE_INVALID": invalid, "DOSE_INTERVAL": interval,
            "VACCINE_UNKNOWN": unknown}


def _short_intervals(d: pd.DataFrame, date: pd.Series, usable: np.ndarray, rules: Rules) -> np.ndarray:
    """A dose sooner after the same person's previous dose than its vaccine's minimum interval.

    A dose whose number exceeds its vaccine's primary series is a booster
    and needs `booster_min_days` (the one after it `second_booster_min_days`);
    without a dose number, its position in the person's timeline counts.
    """
    t = pd.DataFrame({"identity": d["identity"], "date": date, "vaccine": d["vaccine"],
                      "number": d["dose_number"].astype("Int32"), "pos": np.arange(len(d))})[usable]
    t = t.sort_values(["identity", "date", "pos"], kind="stable")
    t["prev"] = t.groupby("identity", sort=False)["date"].shift(1)
    t["number"] = t["number"].fillna(t.groupby("identity", sort=False).cumcount() + 1)
    primary = t["vaccine"].map({k: v.primary_doses for k, v in rules.vaccines.items()})
    interval = t["vaccine"].map({k: v.min_interval_days for k, v in rules.vaccines.items()})
    beyond = (t["number"].astype("Float64") - primary.astype("Float64")).fillna(0).to_numpy()
    need = np.select([beyond >= 2, beyond >= 1], [rules.second_booster_min_days, rules.booster_min_days],
                     interval.astype("Float64").fillna(0).to_numpy())
    gap = (t["date"] - t["prev"]).dt.days
    short = (t["prev"].notna() & interval.notna() & (gap < need)).fillna(False).to_numpy()
    out = np.zeros(len(d), dtype=bool)
    out[t["pos"].to_numpy()[short]] = True
    return out
