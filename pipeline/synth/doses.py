"""Synthetic dose events: 1-4 doses per vaccinated person with plausible vaccines and dates."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.rules import Rules

PRIMARY_SHARE = {"AstraZeneca": 0.36, "Vero Cell": 0.26, "Pfizer": 0.24, "Moderna": 0.09,
                 "Sputnik V": 0.02, "Abdala": 0.015, "Hayat-Vax": 0.01, "Janssen": 0.005}
BOOSTER_SHARE = {"Pfizer": 0.55, "Moderna": 0.25, "AstraZeneca": 0.2}
DOSE_COUNT = (np.array([1, 2, 3, 4]), np.array([0.08, 0.37, 0.45, 0.10]))


def make_doses(rng: np.random.Generator, people: pd.DataFrame, n_doses: int, rules: Rules,
               provinces: list[str], last_date: pd.Timestamp) -> pd.DataFrame:
    """Dose rows for people vaccinated in the exporting `provinces`, about `n_doses` of them."""
    eligible = people.index[(people["birth_year"] <= 2016)
                            & (people["province_code"].isin(provinces) | (np.arange(len(people)) % 9 == 0))]
    mean = float((DOSE_COUNT[0] * DOSE_COUNT[1]).sum())
    k = min(len(eligible), int(n_doses * 1.09 / mean) + 1)  # about 8% fall after last_date and are dropped
    who = rng.choice(eligible, size=k, replace=False)
    counts = rng.choice(DOSE_COUNT[0], size=k, p=DOSE_COUNT[1])
    person = np.repeat(who, counts)
    nth = np.arange(len(person)) - np.repeat(np.cumsum(counts) - counts, counts)
    names = list(PRIMARY_SHARE)
    primary = np.array(names)[rng.choice(len(names), size=k, p=np.array(list(PRIMARY_SHARE.values())))]
    boost_names = list(BOOSTER_SHARE)
    booster = np.array(boost_names)[rng.choice(len(boost_names), size=len(person), p=np.array(list(BOOSTER_SHARE.values())))]
    n_primary = np.array([rules.vaccines[v].primary_doses for v in primary])
    is_boost = nth >= np.repeat(n_primary, counts)
    vaccine = np.where(is_boost, booster, np.repeat(primary, counts))
    interval = np.array([rules.vaccines[v].min_interval_days for v in vaccine])
    second_boost = nth >= np.repeat(n_primary, counts) + 1
    gap = np.where(second_boost, rules.second_booster_min_days + rng.integers(0, 90, len(person)),
                   np.where(is_boost, rules.booster_min_days + rng.integers(0, 120, len(person)),
                            interval + rng.integers(0, 35, len(person))))
    young = people.loc[who, "birth_year"].to_numpy() >= 2004
    start = np.where(young, rng.integers(200, 420, k), rng.integers(0, 330, k))
    offset = np.where(nth == 0, np.repeat(start, counts), gap)
    days = pd.Series(offset).groupby(np.repeat(np.arange(k), counts)).cumsum().to_numpy()
    date = pd.Timestamp(rules.campaign_start) + pd.to_timedelta(days, unit="D")
    home = people.loc[person, "province_code"].to_numpy()
    elsewhere = np.array(provinces)[rng.integers(0, len(provinces), len(person))]
    away = rng.random(k) < 0.12
    province = np.where(np.isin(home, provinces) & ~np.repeat(away, counts), home, elsewhere)
    doses = pd.DataFrame({
        "person": person, "dose_number": nth + 1, "vaccine": vaccine, "dose_date": date,
        "vax_province": province,
        "lot_number": pd.Series(rng.integers(100000, 999999, len(person))).astype(str).radd("L"),
        "site": pd.Series(rng.integers(1, 40, len(person))).astype(str).radd("Trạm Y tế Phường "),
    })
    return doses[doses["dose_date"] <= last_date].reset_index(drop=True)
