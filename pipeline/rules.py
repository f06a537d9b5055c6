"""Load the `rules/` folder into typed, frozen objects.

Every problem in every rules file is collected and raised once
(`RulesError`), so a bad rules file fails at start with all its problems
listed, never halfway through a run.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from pipeline.text import fold_key, fold_words

DEFAULT_RULES_DIR = Path(__file__).resolve().parent.parent / "rules"
PERSON_CODES = (
    "ID_MISSING", "ID_INVALID", "ID_OLD", "ID_WRONG", "NAME_DIACRITICS", "NAME_WRONG",
    "DOB_MISSING", "DOB_WRONG", "SEX_WRONG",
)
DOSE_CODES = ("DOSE_DUPLICATE", "DOSE_DATE_INVALID", "DOSE_INTERVAL", "VACCINE_UNKNOWN")
ALL_CODES = PERSON_CODES + DOSE_CODES
STATUSES = ("matched", "corrected", "review", "unmatched", "rejected")


class RulesError(ValueError):
    """Raised with every problem found in the rules folder."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("rules are invalid:\n  - " + "\n  - ".join(problems))


@dataclass(frozen=True)
class Vaccine:
    name: str
    aliases: tuple[str, ...]
    primary_doses: int
    min_interval_days: int
    source: str


@dataclass(frozen=True, eq=False)
class Rules:
    """Everything a data officer or the ministry may change without a programmer."""

    header_aliases: dict[str, str]          # folded header text -> canonical column
    min_known_columns: int
    header_search_rows: int
    required_any: tuple[str, ...]
    provinces: dict[str, str]               # GSO code -> name
    vaccines: dict[str, Vaccine]
    vaccine_aliases: dict[str, str]         # folded alias -> canonical vaccine
    # other vaccines whose names hold a catalogue vaccine's ('Sputnik Light'): their fold_words
    not_in_catalogue: tuple[tuple[str, ...], ...]
    booster_min_days: int
    second_booster_min_days: int
    campaign_start: dt.date
    dose_number_words: dict[str, int]
    placeholder_ids: frozenset[str]
    no_id_words: frozenset[str]             # folded words meaning "no ID" in an ID cell
    century_sex: dict[str, tuple[int, str]]
    phone_prefixes: dict[str, str]          # old 4-digit prefix -> new 3-digit prefix
    sex_values: dict[str, str]
    bare_year_min: int
    bare_year_max: int
    family_names: dict[str, float]
    family_variants: tuple[tuple[str, ...], ...]
    middle_names: dict[str, dict[str, float]]
    given_names: dict[str, tuple[str, ...]]
    minority: dict[str, Any]
    legacy_charsets: tuple[dict[str, str], ...]
    matching: dict[str, Any]
    labels_statuses: dict[str, str]
    labels_codes: dict[str, str]
    source_dir: Path = field(default=DEFAULT_RULES_DIR)


class _Collector:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.problems: list[str] = []

    def yaml(self, name: str) -> dict[str, Any]:
        path = self.root / name
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            self.problems.append(f"{name}: cannot read: {exc}")
            return {}
        if not isinstance(data, dict):
            self.problems.append(f"{name}: expected a mapping at top level")
            return {}
        return data

    def csv(self, name: str, columns: tuple[str, ...]) -> list[dict[str, str]]:
        path = self.root / name
        try:
            with path.open(encoding="utf-8", newline="") as fh:
                rows = list(csv.DictReader(fh))
        except OSError as exc:
            self.problems.append(f"{name}: cannot read: {exc}")
            return []
        if rows and set(columns) - set(rows[0]):
            self.problems.append(f"{name}: missing columns {sorted(set(columns) - set(rows[0]))}")
            return []
        return rows

    def need(self, cond: bool, message: str) -> None:
        if not cond:
            self.problems.append(message)


def _header_aliases(c: _Collector, data: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for canonical, aliases in (data.get("columns") or {}).items():
        c.need(isinstance(aliases, list) and bool(aliases), f"headers.yaml: {canonical}: aliases must be a non-empty list")
        for alias in aliases or []:
            key = fold_key(str(alias))
            if key in out and out[key] != canonical:
                c.problems.append(f"headers.yaml: alias {alias!r} maps to both {out[key]} and {canonical}")
            out[key] = canonical
    for col in ("full_name", "id_number", "date_of_birth", "dose_date"):
        c.need(col in out.values(), f"headers.yaml: no aliases for required column {col}")
    return out


def _vaccines(c: _Collector, data: dict[str, Any]) -> tuple[dict[str, Vaccine], dict[str, str]]:
    vaccines: dict[str, Vaccine] = {}
    aliases: dict[str, str] = {}
    for name, spec in (data.get("vaccines") or {}).items():
        try:
            vac = Vaccine(
                name=name,
                aliases=tuple(str(a) for a in spec["aliases"]),
                primary_doses=int(spec["primary_doses"]),
                min_interval_days=int(spec["min_interval_days"]),
                source=str(spec["source"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            c.problems.append(f"vaccines.yaml: {name}: missing or bad field {exc}")
            continue
        c.need(vac.min_interval_days >= 0, f"vaccines.yaml: {name}: negative interval")
        vaccines[name] = vac
        for alias in (name, *vac.aliases):
            key = fold_key(alias)
            if key in aliases and aliases[key] != name:
                c.problems.append(f"vaccines.yaml: alias {alias!r} used by {aliases[key]} and {name}")
            aliases[key] = name
    c.need(bool(vaccines), "vaccines.yaml: no vaccines declared")
    return vaccines, aliases


def _date(c: _Collector, value: Any, where: str) -> dt.date:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        c.problems.append(f"{where}: not an ISO date: {value!r}")
        return dt.date(2021, 3, 8)


def load_rules(root: Path | str | None = None) -> Rules:
    """Read and check every rules file; raise `RulesError` listing all problems."""
    c = _Collector(Path(root) if root else DEFAULT_RULES_DIR)
    headers = c.yaml("headers.yaml")
    vac = c.yaml("vaccines.yaml")
    ids = c.yaml("ids.yaml")
    dates = c.yaml("dates.yaml")
    sex = c.yaml("sex.yaml")
    names = c.yaml("names.yaml")
    matching = c.yaml("matching.yaml")
    labels = c.yaml("labels_vi.yaml")
    provinces = {r["code"]: r["name"] for r in c.csv("provinces.csv", ("code", "name"))}
    for code in provinces:
        c.need(bool(re.fullmatch(r"\d{2}", code)), f"provinces.csv: bad code {code!r}")
    phones = {r["old_prefix"]: r["new_prefix"] for r in c.csv("phones.csv", ("old_prefix", "new_prefix"))}
    charsets = tuple(c.csv("legacy_charsets.csv", ("unicode", "vni", "tcvn3", "viqr")))
    c.need(len(charsets) == 134, f"legacy_charsets.csv: expected 134 letters, found {len(charsets)}")
    vaccines, vaccine_aliases = _vaccines(c, vac)
    for key in ("link_threshold", "review_threshold", "max_candidates", "absent_share", "null_log2_weight_min",
                "blocking", "comparisons", "linkable_name_levels", "m_prior_strength"):
        c.need(key in matching, f"matching.yaml: missing {key}")
    if {"link_threshold", "review_threshold"} <= matching.keys():
        c.need(0 < matching["review_threshold"] < matching["link_threshold"] <= 1,
               "matching.yaml: need 0 < review_threshold < link_threshold <= 1")
    status_labels = labels.get("statuses") or {}
    code_labels = labels.get("codes") or {}
    for s in STATUSES:
        c.need(s in status_labels, f"labels_vi.yaml: no label for status {s}")
    for code in ALL_CODES:
        c.need(code in code_labels, f"labels_vi.yaml: no label for code {code}")
    century = {str(k): (int(v["century"]), str(v["sex"])) for k, v in (ids.get("century_sex") or {}).items()}
    c.need(set(century) >= {"0", "1", "2", "3"}, "ids.yaml: century_sex must define digits 0-3")
    sex_values = {fold_key(str(k)): str(v) for k, v in (sex.get("values") or {}).items()}
    c.need(set(sex_values.values()) <= {"M", "F"}, "sex.yaml: values must map to M or F")
    rules = Rules(
        header_aliases=_header_aliases(c, headers),
        min_known_columns=int(headers.get("min_known_columns", 3)),
        header_search_rows=int(headers.get("search_rows", 30)),
        required_any=tuple(headers.get("required_any") or ("full_name", "id_number")),
        provinces=provinces,
        vaccines=vaccines,
        vaccine_aliases=vaccine_aliases,
        booster_min_days=int(vac.get("booster_min_days", 90)),
        second_booster_min_days=int(vac.get("second_booster_min_days", 120)),
        campaign_start=_date(c, vac.get("campaign_start", "2021-03-08"), "vaccines.yaml: campaign_start"),
        dose_number_words={fold_key(k): int(v) for k, v in (vac.get("dose_numbers") or {}).items()},
        not_in_catalogue=tuple(fold_words(str(v)) for v in vac.get("not_in_catalogue") or []),
        placeholder_ids=frozenset(str(p) for p in ids.get("placeholders") or []),
        no_id_words=frozenset(fold_key(str(w)) for w in ids.get("no_id_words") or []),
        century_sex=century,
        phone_prefixes=phones,
        sex_values=sex_values,
        bare_year_min=int(dates.get("bare_year_min", 1900)),
        bare_year_max=int(dates.get("bare_year_max", 2030)),
        family_names={str(k): float(v) for k, v in (names.get("family_names") or {}).items()},
        family_variants=tuple(tuple(v) for v in names.get("family_variants") or []),
        middle_names={s: {str(k): float(v) for k, v in d.items()} for s, d in (names.get("middle_names") or {}).items()},
        given_names={s: tuple(dict.fromkeys(v)) for s, v in (names.get("given_names") or {}).items()},
        minority=dict(names.get("minority") or {}),
        legacy_charsets=charsets,
        matching=dict(matching),
        labels_statuses={str(k): str(v) for k, v in status_labels.items()},
        labels_codes={str(k): str(v) for k, v in code_labels.items()},
        source_dir=c.root,
    )
    if c.problems:
        raise RulesError(c.problems)
    return rules


@lru_cache(maxsize=4)
def default_rules() -> Rules:
    """The rules shipped in `rules/`, loaded once per process."""
    return load_rules(DEFAULT_RULES_DIR)
