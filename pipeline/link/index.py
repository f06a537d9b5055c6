"""The registry index: normalised keys and name frequencies, no Python object per person."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from pipeline.link.keys import add_block_keys, digit_key, place_key, search_in_order
from pipeline.normalize.names import default_lexicon, detect_tone_style, name_keys, tone_key
from pipeline.output import tree_digest
from pipeline.rules import Rules, default_rules

# Registry columns not read once the integer codes and blocking keys exist: dropped then.
KEY_ONLY = ("province_code", "name_key", "district", "ward", "phone", "family_fold", "middle_fold", "given_fold", "family_variant", "dob_swapped",
            "place_fold", "name_sorted", "name_joined", "dob_md", "household_id")
REQUIRED = ("person_id", "old_id", "full_name", "date_of_birth", "birth_year", "sex", "province_code")
OPTIONAL = ("district", "ward", "household_id", "phone")
STORE_FILE = "store.json"     # marks a folder as a registry partitioned by blocking key

log = logging.getLogger(__name__)


class RegistryError(Exception):
    """The registry cannot be used (missing, unreadable, or not the contract's schema)."""


@dataclass(frozen=True)
class RegistryIndex:
    """Registry rows with keys for blocking and comparison, and chance agreements. Term
    frequencies of names are kept by code with the scoring codes (`pipeline.link.encoded`)."""

    people: pd.DataFrame          # one row per person; RangeIndex = registry row number
    tone_style: str
    chance_agreement: dict[str, float]   # column -> P(two random registry people agree), for `u: freq`
    _lookups: dict = field(default_factory=dict, repr=False)

    @property
    def size(self) -> int:
        """The people held here (row numbers run from 0 to size - 1)."""
        return len(self.people)

    @property
    def population(self) -> int:
        """The people of the whole registry: `size`, unless this index holds only the part of a
        partitioned registry that a province's keys reach (`pipeline.link.store`)."""
        return int(self._lookups.get("population", len(self.people)))

    @property
    def store_rows(self) -> np.ndarray | None:
        """For the part of a partitioned registry, the registry row of each of its rows (sorted);
        None for a whole registry, whose rows are the registry's."""
        return self._lookups.get("store_rows")

    def compact(self, blocking: list[dict]) -> int:
        """Drop the key-only text columns once the scoring codes exist and every rule's sorted keys,
        or the integer codes they are built from, do (the text is not read again: outputs print
        names, dates, sex and IDs). Returns the number of columns dropped; 0 while something still
        needs them."""
        def ready(rule: dict) -> bool:
            if ("rule_keys", tuple(rule["registry"])) in self._lookups:
                return True
            return all(getattr(self._lookups.get(("key_part", c)), "codes", None) is not None for c in rule["registry"])

        built = "codes" in self._lookups and all(ready(r) for r in blocking)
        drop = [c for c in KEY_ONLY if c in self.people.columns] if built else []
        if drop:
            for column in drop:          # in place: the index's frame is shared by every province
                del self.people[column]
            self._lookups["compacted"] = tuple(drop)
        return len(drop)

    def digit_keys(self, column: str) -> np.ndarray:
        """`digit_key` of a registry column (-1 where missing or not digits), computed once."""
        key = self._lookups.get(("digit_keys", column))
        if key is None:
            key = self._lookups[("digit_keys", column)] = digit_key(self.people[column], -1, -1)
        return key

    def rows_of(self, ids: pd.Series, column: str) -> np.ndarray:
        """Registry row of each ID in `column` (person_id or old_id); -1 where absent. The first
        row where an ID repeats. IDs are digit strings: looked up as integer keys in a sorted
        array (binary search), with no Python object per registry person."""
        keys, rows = self.id_lookup(column)
        want = digit_key(pd.Series(ids), -1, -1)
        if not len(keys):
            return np.full(len(want), -1, dtype=np.int64)
        pos = np.minimum(search_in_order(keys, want)[0], len(keys) - 1)
        return np.where((want >= 0) & (keys[pos] == want), rows[pos], -1).astype(np.int64)

    def id_lookup(self, column: str) -> tuple[np.ndarray, np.ndarray]:
        """The digit keys of `column` that are present, sorted (ties by row), and their rows; built once."""
        lookup = self._lookups.get(("rows_of", column))
        if lookup is None:
            rule = self._lookups.get(("rule_keys", (column,)))
            if rule is not None:    # the blocking rule on this column alone: the same sorted keys, ties by row
                lookup = (rule.keys, rule.rows)
            else:
                key = self.digit_keys(column)
                present = np.flatnonzero(key >= 0)
                order = np.argsort(key[present], kind="stable")
                lookup = (key[present][order], present[order])
            self._lookups[("rows_of", column)] = lookup
        return lookup

    def lexicon(self, rules: Rules | None = None) -> frozenset[str]:
        """Tone keys of every word of every registered name (guides legacy-font repair)."""
        if "lexicon" not in self._lookups:
            words = pd.Series(self.people["full_name"].unique()).str.lower().str.split().explode()
            keys = {tone_key(w) for w in words.dropna().unique().tolist()}
            self._lookups["lexicon"] = frozenset(keys) | default_lexicon(rules)
        return self._lookups["lexicon"]


def registry_files(registry: Path) -> list[Path]:
    """The files whose content is the registry: its Parquet file, or the Parquet files of its folder;
    of a registry partitioned by blocking key, its `store.json`, which holds the digest of the
    registry it was built from and of the rules and code that built it (`pipeline.link.store`)."""
    if (registry / STORE_FILE).is_file():
        return [registry / STORE_FILE]
    return sorted(registry.rglob("*.parquet")) if registry.is_dir() else [registry]


def registry_digest(registry: Path) -> str:
    """A digest of the names and contents of `registry_files`."""
    return tree_digest(registry_files(registry), registry if registry.is_dir() else registry.parent)


def registry_people(path: Path | str) -> int:
    """Check the registry's schema from its metadata and count its people, without reading it."""
    path = Path(path)
    if not path.exists():
        raise RegistryError(f"registry not found: {path}")
    if (path / STORE_FILE).is_file():    # a registry partitioned by blocking key (`pipeline.link.store`)
        try:
            return int(json.loads((path / STORE_FILE).read_text(encoding="utf-8"))["population"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RegistryError(f"partitioned registry {path}: {STORE_FILE} cannot be read: {exc}") from exc
    try:
        dataset = ds.dataset(path, format="parquet")
        missing = [c for c in REQUIRED if c not in set(dataset.schema.names)]
        if missing:
            raise RegistryError(f"registry {path} lacks columns {missing}")
        return int(dataset.count_rows())
    except (pa.ArrowException, OSError) as exc:
        raise RegistryError(f"registry {path} cannot be read: {exc}") from exc


def read_registry(path: Path | str) -> pd.DataFrame:
    """Read the registry Parquet file or directory with Arrow-backed columns."""
    path = Path(path)
    if not path.exists():
        raise RegistryError(f"registry not found: {path}")
    try:
        dataset = ds.dataset(path, format="parquet")
        names = set(dataset.schema.names)
        missing = [c for c in REQUIRED if c not in names]
        if missing:
            raise RegistryError(f"registry {path} lacks columns {missing}")
        table = dataset.to_table(columns=[c for c in (*REQUIRED, *OPTIONAL) if c in names])
    except (pa.ArrowException, OSError) as exc:
        raise RegistryError(f"registry {path} cannot be read: {exc}") from exc
    return registry_frame(table)


def registry_frame(table: pa.Table) -> pd.DataFrame:
    """Registry rows read by Arrow as the index holds them: text as Arrow strings, dates as
    datetime64[s], birth years as Int16, the optional columns present (null where not given)."""
    dob = table.column("date_of_birth")
    table = table.drop_columns(["date_of_birth"])
    frame = table.to_pandas(types_mapper=pd.ArrowDtype)
    for col in frame.columns:
        if col != "birth_year":
            frame[col] = frame[col].astype("string[pyarrow]")
    frame["date_of_birth"] = _dates(dob)
    frame["birth_year"] = frame["birth_year"].astype("Int16")
    for col in OPTIONAL:
        if col not in frame:
            frame[col] = pd.Series(pd.NA, index=frame.index, dtype="string[pyarrow]")
    return frame


def _dates(column: pa.ChunkedArray) -> pd.Series:
    """A registry date column (date32, timestamp or text) as datetime64[s], NaT where unreadable.

    Arrow casts dates and timestamps in C; only text goes through pandas, parsed as ISO dates.
    """
    if pa.types.is_date(column.type) or pa.types.is_timestamp(column.type):
        values = column.cast(pa.timestamp("s")).to_numpy()
        return pd.Series(values, dtype="datetime64[s]")
    text = pd.Series(column.to_pandas(), dtype="string[pyarrow]").str.slice(0, 10)
    return pd.to_datetime(text, format="%Y-%m-%d", errors="coerce").astype("datetime64[s]")


def _chance_agreement(values: pd.Series, digits: np.ndarray | None = None) -> float:
    """P(two random registry people share a value of the column): the sum of squared shares, a
    person without a value sharing with no one. Arrow counts the values (no Python object each);
    with `digits` (`digit_key(values, -1, -2)`), digit strings are counted as integers and only
    the other values as text."""
    if digits is None:
        counts = _value_counts(values)
    else:
        counts = np.concatenate([np.unique(digits[digits >= 0], return_counts=True)[1],
                                 _value_counts(values[digits == -2])])
    return chance_from_counts(counts, len(values))


def chance_from_counts(counts: np.ndarray, people: int) -> float:
    """The sum of squared shares of values held by `counts` people each, among `people`."""
    shares = np.sort(counts)[::-1] / max(people, 1)   # the order pandas' value_counts sums them in
    return float((shares ** 2).sum())


def _value_counts(values: pd.Series) -> np.ndarray:
    arr = pa.array(values.array) if isinstance(values.dtype, pd.StringDtype | pd.ArrowDtype) else pa.array(values)
    return pc.value_counts(pc.drop_null(arr)).field("counts").to_numpy().astype(np.int64)


def _pair_agreement_within(people: pd.DataFrame, group: str, column: str) -> float:
    """P(two registry people agree on `column` | they share `group`), over all such pairs.

    On integer codes: the group's and the (group, value) pairs' sizes by counting, not by a
    group-by on text. The sums are of whole numbers, exact in any order."""
    g = pd.factorize(people[group], use_na_sentinel=True)[0].astype(np.int64)
    v = pd.factorize(people[column], use_na_sentinel=True)[0].astype(np.int64)
    sizes = np.bincount(g[g >= 0]).astype(np.float64)
    both_known = (g >= 0) & (v >= 0)
    both = np.unique(g[both_known] * (int(v.max(initial=-1)) + 1) + v[both_known], return_counts=True)[1]
    return pair_agreement_from_counts(sizes, both)


def pair_agreement_from_counts(groups: np.ndarray, both: np.ndarray) -> float:
    """P(two people agree on a value | they share a group), from the groups' sizes and the sizes of
    the (group, value) combinations."""
    sizes, both = np.asarray(groups, dtype=np.float64), np.asarray(both, dtype=np.float64)
    pairs = float((sizes * (sizes - 1) / 2).sum())
    same = float((both * (both - 1) / 2).sum())
    return same / pairs if pairs else 0.0


def build_index(registry: pd.DataFrame, rules: Rules | None = None, agreements: bool = True) -> RegistryIndex:
    """Compute name keys (each distinct name once) and frequencies. Without `agreements`, the chance
    agreements are left empty (a part of a registry: they are the whole registry's, computed apart)."""
    rules = rules or default_rules()
    people = registry.reset_index(drop=True).copy()
    codes, uniques = pd.factorize(people["full_name"])
    keys = name_keys(pd.Series(uniques, dtype="string[pyarrow]"), rules)
    keys = keys.reindex(codes).reset_index(drop=True)
    people = pd.concat([people, keys], axis=1)
    dob = people["date_of_birth"]
    people["dob_swapped"] = _swap(dob)
    people["place_fold"] = place_key(people["district"], people["ward"])
    people = add_block_keys(people, "date_of_birth")
    style = detect_tone_style(pd.Series(uniques[: 200_000]).astype(str))
    # The IDs' and phones' digit keys serve the agreements here and the integer codes later.
    digits = {col: digit_key(people[col], -1, -2) for col in ("person_id", "phone")}
    agreement = chance_agreements(people, digits) if agreements else {}
    index = RegistryIndex(people, style, agreement)
    for col, key in digits.items():
        key[key == -2] = -1            # as RegistryIndex.digit_keys has them: -1 where missing or not digits
        index._lookups[("digit_keys", col)] = key
    return index


AGREEMENT_COLUMNS = ("sex", "place_fold", "phone", "date_of_birth", "person_id", "household_id")


def chance_agreements(people: pd.DataFrame, digits: dict[str, np.ndarray] | None = None) -> dict[str, float]:
    """P(two random registry people agree) on each of `AGREEMENT_COLUMNS`, and on the date of birth
    among people of the same folded name. `digits`: the digit keys of person_id and phone
    (`digit_key(values, -1, -2)`), computed here where not given. Each value reads only its own
    columns, so a registry too large to hold whole can give them one column at a time."""
    digits = digits if digits is not None else {}
    agreement = {}
    for col in AGREEMENT_COLUMNS:
        if col not in people:
            continue
        key = digits.get(col)
        if key is None and col in ("person_id", "phone"):
            key = digit_key(people[col], -1, -2)
        agreement[col] = _chance_agreement(people[col], key)
    if "name_fold" in people and "date_of_birth" in people:
        agreement["date_of_birth|name"] = _pair_agreement_within(people, "name_fold", "date_of_birth")
    if "person_id" in agreement:
        warn_if_ids_shared(agreement["person_id"], len(people))
    return agreement


def warn_if_ids_shared(chance: float, people: int) -> None:
    """Unique numbers agree by chance exactly 1/N of the time: more means some are shared."""
    if chance * people > 1 + 1e-9:
        log.warning("registry: person_id is not unique (contract 1.1): some numbers belong to more than one row; "
                    "a dose linked to such a number cannot tell them apart")


def _swap(dob: pd.Series) -> pd.Series:
    """The date with day and month exchanged where that is a valid date, else NaT. Computed once
    per distinct date (a registry of millions has some tens of thousands), then taken per person."""
    codes, distinct = pd.factorize(dob)            # NaT: code -1
    d = pd.Series(distinct, dtype="datetime64[s]")
    ok = (d.dt.day <= 12) & (d.dt.day != d.dt.month)
    parts = pd.DataFrame({"year": d.dt.year.where(ok, 2000), "month": d.dt.day.where(ok, 1),
                          "day": d.dt.month.where(ok, 1)}).astype("int64")
    swapped = pd.to_datetime(parts).astype("datetime64[s]").where(ok).to_numpy()
    # code -1 takes the appended NaT
    return pd.Series(np.append(swapped, np.datetime64("NaT", "s"))[codes], index=dob.index)


def load_index(path: Path | str, rules: Rules | None = None) -> RegistryIndex:
    """Read and index the registry in one step."""
    return build_index(read_registry(path), rules)
