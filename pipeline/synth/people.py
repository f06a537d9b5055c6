"""Synthetic people: households, Vietnamese names with realistic frequencies, IDs.

Everything is drawn with numpy from one seeded generator, column by column;
no Python loop per person.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.rules import Rules

PROVINCE_WEIGHT = {"79": 9.0, "01": 8.0, "74": 2.6, "75": 3.1, "31": 2.0, "48": 1.2, "92": 1.2}
HOUSEHOLD_SIZES = np.array([1, 2, 3, 4, 5, 6])
HOUSEHOLD_SHARE = np.array([0.10, 0.20, 0.26, 0.26, 0.12, 0.06])
NEW_PREFIXES = np.array(["032", "033", "034", "035", "036", "037", "038", "039", "070", "079", "077",
                         "076", "078", "083", "084", "085", "081", "082", "086", "090", "091", "093",
                         "094", "096", "097", "098", "056", "058", "059", "088", "089"])


def _choice(rng: np.random.Generator, table: dict[str, float], n: int) -> np.ndarray:
    names = np.array(list(table), dtype=object)
    p = np.array(list(table.values()), dtype=float)
    return names[rng.choice(len(names), size=n, p=p / p.sum())]


def _zipf_choice(rng: np.random.Generator, names: tuple[str, ...], n: int, a: float = 1.1) -> np.ndarray:
    w = 1.0 / np.arange(1, len(names) + 1) ** a
    return np.array(names, dtype=object)[rng.choice(len(names), size=n, p=w / w.sum())]


def province_weights(rules: Rules, focus: list[str]) -> dict[str, float]:
    """Residence shares: the focus provinces (the ones exporting) hold most people."""
    w = {c: PROVINCE_WEIGHT.get(c, 1.0) * 0.15 for c in rules.provinces}
    for c in focus:
        w[c] = PROVINCE_WEIGHT.get(c, 1.0) * 6.0
    return w


def make_households(rng: np.random.Generator, n: int, rules: Rules, focus: list[str]) -> pd.DataFrame:
    """One row per person with household, role, sex and birth date."""
    n_house = int(n / 3.2) + 10
    sizes = rng.choice(HOUSEHOLD_SIZES, size=n_house, p=HOUSEHOLD_SHARE)
    house = np.repeat(np.arange(n_house), sizes)[:n]
    pos = np.arange(len(house)) - np.repeat(np.cumsum(sizes) - sizes, sizes)[:n]
    hh_prov = _choice(rng, province_weights(rules, focus), n_house)
    head_male = rng.random(n_house) < 0.8
    head_year = rng.integers(1940, 1998, n_house)
    male = np.where(pos == 0, head_male[house], np.where(pos == 1, ~head_male[house], rng.random(n) < 0.51))
    year = np.where(pos == 0, head_year[house],
                    np.where(pos == 1, head_year[house] + rng.integers(-6, 6, n),
                             head_year[house] + rng.integers(20, 40, n)))
    year = np.minimum(year, 2021)
    day_of_year = rng.integers(0, 365, n)
    dob = (pd.to_datetime(pd.Series(year).astype(str) + "-01-01") + pd.to_timedelta(day_of_year, unit="D")).to_numpy()
    kid = pos >= 2
    twin = kid & (np.roll(kid, 1)) & (rng.random(n) < 0.04) & (np.roll(house, 1) == house)
    dob = np.where(twin, np.roll(dob, 1), dob)
    return pd.DataFrame({
        "household": house, "role": np.where(pos == 0, "head", np.where(pos == 1, "spouse", "child")),
        "male": male, "dob": dob, "twin": twin, "province_code": hh_prov[house],
        "district_no": rng.integers(1, 13, n_house)[house], "ward_no": rng.integers(1, 21, n_house)[house],
    })


def make_names(rng: np.random.Generator, people: pd.DataFrame, rules: Rules) -> pd.Series:
    """Full names: family name by frequency (children take the head's), middle by sex, Zipf given names."""
    n = len(people)
    house = people["household"].to_numpy()
    male = people["male"].to_numpy()
    fam_house = _choice(rng, rules.family_names, house.max() + 1)
    family = np.where(people["role"].to_numpy() == "spouse", _choice(rng, rules.family_names, n), fam_house[house])
    middle = np.where(male, _choice(rng, rules.middle_names["M"], n), _choice(rng, rules.middle_names["F"], n))
    second = np.where(male, _choice(rng, rules.middle_names["M"], n), _choice(rng, rules.middle_names["F"], n))
    two_middle = (rng.random(n) < 0.06) & (second != middle) & (second != "Văn") & (second != "Thị")
    middle = np.where(two_middle, middle + " " + second, middle)
    both_parents = (people["role"].to_numpy() == "child") & (rng.random(n) < 0.03)
    other_family = _choice(rng, rules.family_names, n)
    family = np.where(both_parents & (other_family != family), family + " " + other_family, family)
    given = np.where(male, _zipf_choice(rng, rules.given_names["M"], n), _zipf_choice(rng, rules.given_names["F"], n))
    no_middle = rng.random(n) < 0.02
    names = np.where(no_middle, family + " " + given, family + " " + middle + " " + given)
    minority = rules.minority
    in_highlands = np.isin(people["province_code"].to_numpy(), minority.get("provinces", []))
    hh_minority = rng.random(house.max() + 1) < float(minority.get("share", 0))
    is_min = in_highlands & hh_minority[house]
    if is_min.any():
        k = int(is_min.sum())
        mfam = np.array(minority["family_names"], dtype=object)[rng.integers(0, len(minority["family_names"]), k)]
        mgiven = np.array(minority["given_names"], dtype=object)[rng.integers(0, len(minority["given_names"]), k)]
        pref = np.where(male[is_min], minority["prefixes"]["M"] + " ", minority["prefixes"]["F"])
        names[is_min] = mfam + " " + pref + mgiven
    return pd.Series(names, dtype="string[pyarrow]")


def make_ids(rng: np.random.Generator, people: pd.DataFrame, rules: Rules) -> tuple[pd.Series, pd.Series]:
    """12-digit personal numbers (structured, unique) and 9-digit old numbers for most adults."""
    n = len(people)
    codes = np.array(list(rules.provinces))
    born_here = rng.random(n) < 0.85
    birth_prov = np.where(born_here, people["province_code"].to_numpy(), codes[rng.integers(0, len(codes), n)])
    year = pd.DatetimeIndex(people["dob"]).year.to_numpy()
    cs = (year >= 2000) * 2 + (~people["male"].to_numpy()).astype(int)
    prefix = pd.Series(birth_prov).radd("0") + pd.Series(cs).astype(str) + pd.Series(year % 100).astype(str).str.zfill(2)
    rank = prefix.groupby(prefix).cumcount().to_numpy()
    offset = rng.integers(0, 1_000_000, n)
    serial = (rank * 7919 + pd.Series(offset).groupby(prefix).transform("first").to_numpy()) % 1_000_000
    pid = prefix + pd.Series(serial).astype(str).str.zfill(6)
    has_old = (year <= 2004) & (rng.random(n) < 0.7)
    pool = rng.permutation(n * 3)[:n] + 10_000_000
    police = rng.integers(1, 39, n)
    old = pd.Series(police).astype(str).str.zfill(2) + pd.Series(pool % 10_000_000).astype(str).str.zfill(7)
    return pid.astype("string[pyarrow]"), old.where(has_old).astype("string[pyarrow]")


def make_people(rng: np.random.Generator, n: int, rules: Rules, focus: list[str]) -> pd.DataFrame:
    """`n` people with every registry attribute plus generator-only columns."""
    people = make_households(rng, n, rules, focus)
    people["full_name"] = make_names(rng, people, rules)
    people["person_id"], people["old_id"] = make_ids(rng, people, rules)
    people["sex"] = np.where(people["male"], "M", "F")
    year_only = rng.random(n) < 0.04
    people["date_of_birth"] = pd.Series(people["dob"]).mask(year_only)
    people["birth_year"] = pd.DatetimeIndex(people["dob"]).year.astype("int16")
    people["district"] = "Quận " + people["district_no"].astype(str)
    people["ward"] = "Phường " + people["ward_no"].astype(str)
    people["household_id"] = "HK" + people["province_code"] + people["household"].astype(str).str.zfill(8)
    adult = people["birth_year"] <= 2006
    phone = pd.Series(NEW_PREFIXES[rng.integers(0, len(NEW_PREFIXES), n)]) + pd.Series(rng.integers(0, 10_000_000, n)).astype(str).str.zfill(7)
    people["phone"] = phone.where(adult & (rng.random(n) < 0.75)).astype("string[pyarrow]")
    return people.drop(columns=["district_no", "ward_no"])


REGISTRY_COLUMNS = ["person_id", "old_id", "full_name", "date_of_birth", "birth_year", "sex",
                    "province_code", "district", "ward", "household_id", "phone"]
