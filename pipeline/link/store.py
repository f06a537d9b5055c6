"""The registry partitioned by blocking key on disk, and streamed: for registries too large to hold whole.

A province's export persons can only ever be linked to registry people who
share a blocking key with them. So instead of loading the whole registry (some
45 GB prepared for 100 million people), the registry is written once, in
chunks, as:

- ``maps/<columns>/{key,row,block}.int64``: for every blocking rule's registry
  columns (and for the IDs, phones and households), each person's key, registry
  row and the key's block size in the whole registry, sorted by key: a run finds
  its keys by binary search in the file mapped from disk, reading only the
  pages it touches. Text parts of a key are hashed (64 bits), so the key of an export
  person is computed the same way from its own values, with no registry
  dictionary in memory.
- ``people/part-N.arrow``: the registry's rows as given, with their row number, as
  uncompressed Arrow files: a run maps them from disk and takes the rows it needs,
  reading only the pages that hold them, with nothing to decode.
- ``attributes/*.int64``: per person, by row, what decides whether a candidate
  is sure (IDs, folded name, date of birth): read by memory map, a few rows at
  a time.
- ``counts/*.parquet``: how many people have each folded name and name key.
- ``store.json``: the whole registry's size, chance agreements, tone style and
  name lexicon, the digest of the registry's content (a night's inputs digest
  reads it, `registry_files`), and the digests of the rules and code the keys
  were built with.

A run then looks up, rule by rule, only the keys its province (or a slice of
its export persons) has, takes those people's rows, and builds an
ordinary `RegistryIndex` of them, carrying the whole registry's statistics
(size, chance agreements, name frequencies, lexicon). Every person who shares a
key with an export person is in it, so every block is whole: blocking (block
sizes included), scoring and decisions are the same as against the whole
registry. Only a collision of two texts' 64-bit hashes (some 10^-19 for a given
pair) could differ: it would add a person no block reaches, or count two
values' people as one block.

The hashes and the stored arrays come from numpy, pandas and pyarrow: the store
records their versions, the rules' and the code's digests, and a run refuses a
store built with others.

Memory: while the store is built, one chunk, the distinct values of the
counted columns (names, places, dates) and, one map at a time, that map's
columns (some 32 bytes a person while it is sorted); at night, one lookup's
pages at a time and the people that a slice of the province's export persons
reaches (`pipeline.reconcile.link`).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from pipeline.link.candidates import KeyPart, _day_codes, _encode, id_half
from pipeline.link.encoded import DIGIT_KEYS, MAX_KEY, NAT, RegistryCodes, days_of
from pipeline.link.index import (
    OPTIONAL,
    REQUIRED,
    STORE_FILE,
    RegistryError,
    RegistryIndex,
    build_index,
    chance_from_counts,
    pair_agreement_from_counts,
    registry_digest,
    registry_frame,
    warn_if_ids_shared,
)
from pipeline.link.keys import digit_key, spans
from pipeline.link.prepared import libraries, prepare, rules_digest, source_digest
from pipeline.memory import peak_gb, reset_peak
from pipeline.rules import Rules

log = logging.getLogger(__name__)
VERSION = 2     # 2: the people as Arrow files (1: Parquet)
MIX = np.uint64(0x9E3779B97F4A7C15)     # combines the parts of a key (odd: a bijection mod 2^64)
ID_MAPS = (("person_id",), ("old_id",))
HOUSEHOLD = ("household_id",)
PHONE, NAME_DOB = ("phone",), ("name_fold", "date_of_birth")    # counted for the chance agreements
COUNTED = ("sex", "place_fold", "date_of_birth", "name_fold", "name_key")   # value counts merged over chunks
PERSON_KEY_PARTS = ("pid_head", "pid_tail")
REVIEWED = ["person_id", "old_id", "full_name", "date_of_birth", "birth_year", "sex"]   # what `write_review` shows


def is_store(path: Path | str) -> bool:
    """Whether `path` is a registry partitioned by blocking key (a folder with `store.json`)."""
    return (Path(path) / STORE_FILE).is_file()


def map_columns(rules: Rules) -> list[tuple[str, ...]]:
    """The registry column tuples with a map: every blocking rule's (the household rule is served by
    the household map, reached through the IDs), the two IDs, and the phone and name with date of
    birth (whose key counts give chance agreements)."""
    tuples = [tuple(str(c) for c in rule["registry"]) for rule in rules.matching["blocking"]]
    return list(dict.fromkeys([*ID_MAPS, PHONE, NAME_DOB, *(t for t in tuples if t != HOUSEHOLD)]))


def map_name(columns: tuple[str, ...]) -> str:
    return "+".join(columns)


# ---------------------------------------------------------------- keys, the same on both sides

def _text_hash(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """A 64-bit hash of each text (each distinct text hashed once), and where there is one."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    hashed = pd.util.hash_array(np.asarray(uniques, dtype=object), categorize=False) if len(uniques) else \
        np.zeros(0, dtype=np.uint64)
    present = codes >= 0
    out = np.zeros(len(codes), dtype=np.uint64)
    out[present] = hashed[codes[present]]
    return out, present


def _registry_part(people: pd.DataFrame, column: str, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """A registry column as the integers its blocking keys are made of, as `candidates._part`
    codes it, except that text is hashed instead of numbered in a dictionary."""
    if kind == "text":
        return _text_hash(people[column])
    if column in DIGIT_KEYS:
        key = digit_key(people[column], -1, -1)
    elif column in PERSON_KEY_PARTS:
        key = id_half(digit_key(people["person_id"], -1, -1), column)
    elif pd.api.types.is_datetime64_any_dtype(people[column].dtype):
        key = _day_codes(people[column])
    else:
        key = people[column].astype("Int64").fillna(-1).to_numpy(dtype=np.int64)
    return key.astype(np.uint64), key >= 0


def _export_part(values: pd.Series, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """An export person's column in the same integers (`candidates._encode`, without a bound)."""
    if kind == "text":
        return _text_hash(values)
    key = _encode(KeyPart(None, MAX_KEY, None), values)
    return key.astype(np.uint64), key >= 0


def _combine(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    key = np.zeros(len(parts[0][0]), dtype=np.uint64)
    present = np.ones(len(parts[0][0]), dtype=bool)
    for value, ok in parts:
        key = key * MIX + value          # wraps modulo 2^64
        present &= ok
    return key.view(np.int64), present


def _kind(people: pd.DataFrame, column: str) -> str:
    if column in DIGIT_KEYS or column in PERSON_KEY_PARTS:
        return "digits"
    dtype = people[column].dtype
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_integer_dtype(dtype):
        return "number"
    return "text"


def _mapped(path: Path) -> np.ndarray:
    """A column written as raw int64, mapped from disk: pages are read as they are touched, and the
    mapping goes with the last reference to it (take copies out of it, keep no view)."""
    return np.memmap(path, dtype=np.int64, mode="r") if path.stat().st_size else np.zeros(0, dtype=np.int64)


def _pairs(at: np.ndarray, keys: np.ndarray, map_keys: np.ndarray, map_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(profile position, registry row) of every export key `keys[i]` (of profile `at[i]`) with every
    map row of the same key."""
    order = np.argsort(map_keys, kind="stable")
    mk, mr = map_keys[order], map_rows[order]
    lo, hi = np.searchsorted(mk, keys, "left"), np.searchsorted(mk, keys, "right")
    return np.repeat(at, hi - lo), mr[spans(lo, hi - lo)]


# ---------------------------------------------------------------- building the store

def _chunks(dataset: ds.Dataset, columns: list[str], rows: int) -> Iterator[pa.Table]:
    """The registry in tables of about `rows` rows, in file order."""
    batches: list[pa.RecordBatch] = []
    held = 0
    for batch in dataset.to_batches(columns=columns, batch_size=min(rows, 1 << 20)):
        batches.append(batch)
        held += batch.num_rows
        if held >= rows:
            yield pa.Table.from_batches(batches)
            batches, held = [], 0
    if batches:
        yield pa.Table.from_batches(batches)


def _append(folder: Path, **arrays: np.ndarray) -> None:
    """Add a chunk's values to a map's files (`<name>.int64`, in the order they come)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, values in arrays.items():
        with open(folder / f"{name}.int64", "ab") as fh:
            values.astype(np.int64).tofile(fh)


def build_store(registry: Path, store: Path, rules: Rules, chunk_rows: int = 2_000_000) -> dict[str, Any]:
    """Write the registry at `registry` (Parquet file or folder) partitioned by blocking key into the
    folder `store`, `chunk_rows` people at a time. The folder is replaced only once complete.
    Returns what `store.json` holds."""
    registry, store = Path(registry), Path(store)
    if not registry.exists():
        raise RegistryError(f"registry not found: {registry}")
    if is_store(registry):
        raise RegistryError(f"{registry} is already a partitioned registry")
    try:
        dataset = ds.dataset(registry, format="parquet")
    except (pa.ArrowException, OSError) as exc:
        raise RegistryError(f"registry {registry} cannot be read: {exc}") from exc
    names = set(dataset.schema.names)
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        raise RegistryError(f"registry {registry} lacks columns {missing}")
    columns = [c for c in (*REQUIRED, *OPTIONAL) if c in names]
    maps = map_columns(rules)
    tmp = store.with_name(store.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    t0 = time.perf_counter()
    offset, parts, style = 0, [], ""
    kinds: dict[str, str] = {}
    words: set[str] = set()
    counted: dict[str, pa.Table] = {}
    try:
        for number, table in enumerate(_chunks(dataset, columns, chunk_rows)):
            n = table.num_rows
            rows = np.arange(offset, offset + n, dtype=np.int64)
            name = f"part-{number:05d}.arrow"
            (tmp / "people").mkdir(exist_ok=True)
            with pa.ipc.new_file(str(tmp / "people" / name), table.schema.append(pa.field("row", pa.int64()))) as out:
                out.write_table(table.append_column("row", pa.array(rows)), max_chunksize=1 << 17)
            index = build_index(registry_frame(table), rules, agreements=False)
            people = index.people
            style = style or index.tone_style    # the first chunk's first distinct names, as a whole index reads them
            words |= index.lexicon(rules)
            for col in COUNTED:
                counted[col] = _merge_counts(counted.get(col), _counts(people[col]))
            for col in ("person_id", "phone"):    # values that are not digit strings (the maps count those)
                counted[col] = _merge_counts(counted.get(col), _counts(people[col][digit_key(people[col], -1, -2) == -2]))
            _append(tmp / "attributes", **_attributes(people))
            households = _text_hash(people["household_id"])
            for cols in maps:
                for c in cols:
                    kinds.setdefault(c, _kind(people, c))
                key, ok = _combine([_registry_part(people, c, kinds[c]) for c in cols])
                at = np.flatnonzero(ok)
                extra = {}
                if cols in ID_MAPS:     # the household of the person with that ID (`id_households`); 0: none
                    extra["household"] = np.where(households[1], households[0].view(np.int64), 0)[at]
                _append(tmp / "maps" / map_name(cols), key=key[at], row=rows[at], **extra)
            at = np.flatnonzero(households[1])
            _append(tmp / "maps" / map_name(HOUSEHOLD), key=households[0].view(np.int64)[at], row=rows[at])
            parts.append({"file": name, "first_row": offset, "rows": n})
            offset += n
            log.info("partitioned registry: %d people written (%.0f s, peak memory %s)", offset,
                     time.perf_counter() - t0, _peak())
            del index, people, table
        reset_peak()
        keys = {cols: _sort_map(tmp / "maps" / map_name(cols)) for cols in [*maps, HOUSEHOLD]}
        log.info("partitioned registry: %d maps sorted by key (%.0f s, peak memory %s)", len(keys),
                 time.perf_counter() - t0, _peak())
        (tmp / "counts").mkdir()
        for col in ("name_fold", "name_key"):
            pq.write_table(counted[col].rename_columns(["value", "count"]), tmp / "counts" / f"{col}.parquet")
        meta = {"version": VERSION, "population": offset, "tone_style": style,
                "chance_agreement": _whole_agreements(offset, counted, keys), "lexicon": sorted(words), "kinds": kinds,
                "maps": [list(m) for m in maps], "parts": parts, "rules": rules_digest(rules),
                "code": source_digest(), "libraries": libraries(), "registry": str(registry.resolve()),
                "content": registry_digest(registry)}
        (tmp / STORE_FILE).write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if store.exists():
        shutil.rmtree(store)
    tmp.rename(store)
    log.info("partitioned registry of %d people in %d parts written to %s in %.0f s", offset, len(parts), store,
             time.perf_counter() - t0)
    return meta


def _peak() -> str:
    peak = peak_gb()
    return f"{peak:.2f} GB" if peak is not None else "unknown"


def _attributes(people: pd.DataFrame) -> dict[str, np.ndarray]:
    """What tells whether a pair is sure (`candidates.sure_profiles`), per person: the IDs' digit keys
    (-1: none), the folded name's hash (0: none) and the date of birth's day number (NAT: none)."""
    fold, named = _text_hash(people["name_fold"])
    return {"person_id": digit_key(people["person_id"], -1, -1), "old_id": digit_key(people["old_id"], -1, -1),
            "name_fold": np.where(named, fold.view(np.int64), 0),
            "date_of_birth": days_of(people["date_of_birth"]).astype(np.int64)}


def _sort_map(folder: Path) -> np.ndarray:
    """Sort a map's files by key (ties by row) and add `block`: the number of registry people with
    the key (its block's size in the whole registry), so that a run leaves out the blocks their
    rules skip without reading them. Returns those numbers, one per distinct key. Holds the map's
    columns and the sort order (8 bytes a person each), not the registry."""
    if not (folder / "key.int64").exists():       # no one has such a key
        _append(folder, key=np.zeros(0, np.int64), row=np.zeros(0, np.int64))
    key = np.fromfile(folder / "key.int64", dtype=np.int64)
    order = np.lexsort((np.fromfile(folder / "row.int64", dtype=np.int64), key))
    key = key[order]
    key.tofile(folder / "key.int64")
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else np.array([], np.int64)
    counts = np.diff(np.r_[starts, len(key)])
    np.repeat(counts, counts).astype(np.int64).tofile(folder / "block.int64")
    del key
    for name in ("row", "household"):
        if (folder / f"{name}.int64").exists():
            np.fromfile(folder / f"{name}.int64", dtype=np.int64)[order].tofile(folder / f"{name}.int64")
    return counts


def _counts(values: pd.Series) -> pa.Table:
    """How many people have each value (nulls left out)."""
    arr = pa.array(values.array) if isinstance(values.dtype, pd.StringDtype | pd.ArrowDtype) else pa.array(values)
    counts = pc.value_counts(pc.drop_null(arr))
    return pa.table({"values": counts.field("values"), "counts": counts.field("counts")})


def _merge_counts(total: pa.Table | None, more: pa.Table) -> pa.Table:
    if total is None:
        return more
    merged = pa.concat_tables([total, more.cast(total.schema)]).group_by("values").aggregate([("counts", "sum")])
    return pa.table({"values": merged.column("values"), "counts": merged.column("counts_sum")})


def _whole_agreements(people: int, counted: dict[str, pa.Table], keys: dict[tuple[str, ...], np.ndarray]) -> dict:
    """The whole registry's chance agreements from its value counts (merged over chunks) and its
    maps' key counts, by the formulas an index of the whole registry uses on the same counts."""
    def n(col: str) -> np.ndarray:
        return counted[col].column("counts").to_numpy().astype(np.int64)

    out = {"sex": chance_from_counts(n("sex"), people), "place_fold": chance_from_counts(n("place_fold"), people),
           "phone": chance_from_counts(np.concatenate([keys[PHONE], n("phone")]), people),
           "date_of_birth": chance_from_counts(n("date_of_birth"), people),
           "person_id": chance_from_counts(np.concatenate([keys[ID_MAPS[0]], n("person_id")]), people),
           "household_id": chance_from_counts(keys[HOUSEHOLD], people),
           "date_of_birth|name": pair_agreement_from_counts(n("name_fold"), keys[NAME_DOB])}
    warn_if_ids_shared(out["person_id"], people)
    return out


# ---------------------------------------------------------------- reading it at night

@dataclass(frozen=True)
class Reach:
    """The registry rows a province's export persons reach, and the whole registry's size of each
    of their blocks: per rule's registry columns, the keys found (sorted) and their sizes."""

    rows: np.ndarray
    blocks: dict[tuple[str, ...], tuple[np.ndarray, np.ndarray]]


@dataclass
class RegistryStore:
    """A partitioned registry, opened: the whole registry's statistics, and the parts a province needs."""

    path: Path
    meta: dict[str, Any]
    rules: Rules
    _lexicon: frozenset[str] = field(default_factory=frozenset, repr=False)

    @classmethod
    def open(cls, path: Path | str, rules: Rules) -> RegistryStore:
        path = Path(path)
        try:
            meta = json.loads((path / STORE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RegistryError(f"partitioned registry {path}: {STORE_FILE} cannot be read: {exc}") from exc
        rebuild = f"build it again with `vaxrecon partition-registry --registry <registry> --store {path}`"
        if meta.get("version") != VERSION:
            raise RegistryError(f"partitioned registry {path} has format {meta.get('version')}, not {VERSION}: {rebuild}")
        if meta.get("rules") != rules_digest(rules):
            raise RegistryError(f"partitioned registry {path} was built with other rules than {rules.source_dir}: {rebuild}")
        if meta.get("code") != source_digest():
            raise RegistryError(f"partitioned registry {path} was built by another version of vaxrecon: {rebuild}")
        if meta.get("libraries") != libraries():
            raise RegistryError(f"partitioned registry {path} was built with other versions of Python, numpy, pandas "
                                f"or pyarrow: {rebuild}")
        wanted = map_columns(rules)
        if [tuple(m) for m in meta["maps"]] != wanted:
            raise RegistryError(f"partitioned registry {path} has no keys for some blocking rules: {rebuild}")
        return cls(path, meta, rules, frozenset(meta["lexicon"]))

    @property
    def size(self) -> int:
        return int(self.meta["population"])

    @property
    def population(self) -> int:
        return self.size

    @property
    def chance_agreement(self) -> dict[str, float]:
        """The whole registry's chance agreements (`RegistryIndex.chance_agreement`)."""
        return dict(self.meta["chance_agreement"])

    @property
    def tone_style(self) -> str:
        return str(self.meta["tone_style"])

    def lexicon(self, rules: Rules | None = None) -> frozenset[str]:
        """The whole registry's name lexicon (as `RegistryIndex.lexicon`)."""
        return self._lexicon

    def _lookup(self, columns: tuple[str, ...], keys: np.ndarray, extra: tuple[str, ...] = ()) -> pa.Table:
        """The map rows of `columns` whose key is among `keys` (key, row, block size and `extra`): a
        binary search of the sorted keys, mapped from disk, so only the pages it touches are read.
        The files are unmapped on return: their pages do not stay in the process's memory."""
        keys = np.unique(keys)
        folder = self.path / "maps" / map_name(columns)
        sorted_keys = _mapped(folder / "key.int64")
        lo, hi = np.searchsorted(sorted_keys, keys, "left"), np.searchsorted(sorted_keys, keys, "right")
        del sorted_keys
        positions = spans(lo, hi - lo)
        return pa.table({name: _mapped(folder / f"{name}.int64")[positions] for name in ("key", "row", "block", *extra)})

    def reach(self, profiles: pd.DataFrame, person_ids: pd.Series | None = None) -> Reach:
        """Who the export persons can be linked to: for each blocking rule, in order, every registry
        person in a block of theirs that the rule does not skip (a block of at most `max_block` people
        of the whole registry), the rules marked `if_unsure` only for the export persons the rules
        before them left without a sure candidate (as `candidates.candidate_pairs` runs them); the
        people with the IDs they wrote, and the people `person_ids` name."""
        blocking = self.rules.matching["blocking"]
        found: list[np.ndarray] = []
        blocks: dict[tuple[str, ...], list[pa.Table]] = {}
        # The people with the IDs written (or named by reviewers), whatever their blocks' sizes:
        # the household rule and scoring read the household of each export person's ID.
        ids = {cols: digit_key(profiles[col], -1, -1) for cols, col in zip(ID_MAPS, ("id_personal", "id_old"), strict=True)}
        named = digit_key(pd.Series(person_ids, dtype="string[pyarrow]"), -1, -1) if person_ids is not None else \
            np.array([], np.int64)
        by_id = {cols: self._lookup(cols, np.concatenate([key[key >= 0], named[named >= 0] if cols == ID_MAPS[0] else
                                                          np.array([], np.int64)]), ("household",))
                 for cols, key in ids.items()}
        found += [t.column("row").to_numpy() for t in by_id.values()]
        everyone = np.arange(len(profiles))
        early: list[tuple[np.ndarray, np.ndarray]] = []     # (profile position, row) of the rules before
        unsure: np.ndarray | None = None
        parts: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}   # a column is in several rules

        def part(column: str, kind: str) -> tuple[np.ndarray, np.ndarray]:
            if (column, kind) not in parts:
                parts[column, kind] = _export_part(profiles[column], kind)
            return parts[column, kind]

        for rule in blocking:
            if rule.get("if_unsure") and unsure is None:
                unsure = np.flatnonzero(~self._sure(profiles, early, ids, part("name_fold", "text")))
            todo = unsure if rule.get("if_unsure") and unsure is not None else everyone
            cols = tuple(rule["registry"])
            if cols == HOUSEHOLD:
                at, key = self._household_keys(todo, ids, by_id)
            else:
                taken = [part(k, self.meta["kinds"][c]) for k, c in zip(rule["keys"], cols, strict=True)]
                key, ok = _combine([(value[todo], present[todo]) for value, present in taken])
                at, key = todo[ok], key[ok]
            table = self._lookup(cols, key)
            blocks.setdefault(cols, []).append(table.select(["key", "block"]))
            kept = table.filter(pc.less_equal(table.column("block"), int(rule["max_block"])))
            rows = kept.column("row").to_numpy()
            found.append(rows)
            if unsure is None:
                early.append(_pairs(at, key, kept.column("key").to_numpy(), rows))
        sizes = {}
        for cols, tables in blocks.items():
            both = pa.concat_tables(tables)
            distinct, first = np.unique(both.column("key").to_numpy(), return_index=True)
            sizes[cols] = (distinct, both.column("block").to_numpy()[first])
        rows = np.unique(np.concatenate(found)) if found else np.array([], np.int64)
        return Reach(rows, sizes)

    def _household_keys(self, todo: np.ndarray, ids: dict, by_id: dict) -> tuple[np.ndarray, np.ndarray]:
        """(profile position, household key) of the household of the person with the ID each export
        person wrote: the first registry row with that number (`RegistryIndex.rows_of`), by the
        personal number where one is written, else the old one."""
        personal = ids[ID_MAPS[0]][todo] >= 0
        out_at, out_key = [], []
        for cols, which in ((ID_MAPS[0], personal), (ID_MAPS[1], ~personal)):
            table = by_id[cols]          # sorted by key, ties by row
            key = table.column("key").to_numpy()
            starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else np.array([], np.int64)
            first_key, household = key[starts], table.column("household").to_numpy()[starts]
            want = ids[cols][todo[which]]
            if not len(first_key):
                continue
            pos = np.minimum(np.searchsorted(first_key, want), len(first_key) - 1)
            has = (want >= 0) & (first_key[pos] == want) & (household[pos] != 0)
            out_at.append(todo[which][has])
            out_key.append(household[pos][has])
        if not out_at:
            return np.array([], np.int64), np.array([], np.int64)
        return np.concatenate(out_at), np.concatenate(out_key).astype(np.int64)

    def _sure(self, profiles: pd.DataFrame, early: list[tuple[np.ndarray, np.ndarray]], ids: dict,
              name: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """Per export person: one of its pairs so far is a registry person with the ID it wrote
        (personal or old, exactly), its folded name and its full date of birth
        (`candidates.sure_profiles`), read from the people's attributes kept by row."""
        sure = np.zeros(len(profiles), dtype=bool)
        if not early:
            return sure
        at = np.concatenate([a for a, _ in early])
        row = np.concatenate([r for _, r in early])
        personal, old = ids[ID_MAPS[0]][at], ids[ID_MAPS[1]][at]   # the digit keys of the IDs written
        same_id = (((personal >= 0) & (personal == self._attribute("person_id", row)))
                   | ((old >= 0) & (old == self._attribute("old_id", row))))
        fold, named = name                  # the folded name's hash, and where there is one
        same_name = named[at] & (fold.view(np.int64)[at] == self._attribute("name_fold", row))
        days = days_of(profiles["dob"])[at].astype(np.int64)
        same_day = (days != NAT) & (days == self._attribute("date_of_birth", row))
        sure[at[same_id & same_name & same_day]] = True
        return sure

    def _attribute(self, name: str, rows: np.ndarray) -> np.ndarray:
        """One attribute (`_attributes`) of the registry people at `rows`, from the file mapped from disk."""
        return _mapped(self.path / "attributes" / f"{name}.int64")[rows]

    def people(self, rows: np.ndarray, columns: list[str] | None = None) -> pd.DataFrame:
        """The registry rows `rows` (sorted), as `read_registry` gives them (only `columns`, if
        given): part by part, each mapped from disk, taking only those rows (so reading only the
        pages that hold them), and unmapped after."""
        tables: list[pa.Table] = []
        for part in self.meta["parts"]:
            lo, n = int(part["first_row"]), int(part["rows"])
            a, b = np.searchsorted(rows, [lo, lo + n])
            if a == b and tables:      # (the first part is read even so: its columns, for no rows at all)
                continue
            with pa.memory_map(str(self.path / "people" / part["file"])) as source:
                table = pa.ipc.open_file(source).read_all()     # no copy: the mapped file's pages
                table = table.select(columns or [c for c in table.column_names if c != "row"])
                tables.append(table.take(pa.array(rows[a:b] - lo)).combine_chunks())   # copied out
                del table
        return registry_frame(pa.concat_tables(tables))

    def index_of(self, rows: np.ndarray, blocks: dict | None = None, for_linking: bool = True) -> RegistryIndex:
        """An index of the registry rows `rows` (sorted, distinct), carrying the whole registry's
        statistics; its row i is the registry's row `rows[i]` (kept as `store_rows`). For linking,
        it also carries the whole registry's name counts and, for the blocking rules, its block
        sizes (`blocks`, from `reach`), and is prepared; otherwise it serves to look people up."""
        t0 = time.perf_counter()
        people = self.people(rows)
        read = time.perf_counter() - t0
        built = build_index(people, self.rules, agreements=False)
        del people
        index = RegistryIndex(built.people, self.tone_style, self.chance_agreement, built._lookups)
        index._lookups["population"] = self.size
        index._lookups["lexicon"] = self._lexicon
        index._lookups["store_rows"] = rows
        if for_linking:
            index._lookups["name_counts"] = {col: self._name_counts(col, built.people[col])
                                             for col in ("name_fold", "name_key")}
            if blocks is not None:
                index._lookups["block_sizes"] = {cols: self._sizes(cols, keys, sizes, index)
                                                 for cols, (keys, sizes) in blocks.items()}
            prepare(index, self.rules)
        log.info("registry: %d of %d people read from the partitioned registry in %.1f s, indexed in %.1f s%s",
                 index.size, self.size, read, time.perf_counter() - t0 - read, "" if for_linking else
                 " (the people the decisions name)")
        return index

    def _sizes(self, cols: tuple[str, ...], keys: np.ndarray, sizes: np.ndarray,
               index: RegistryIndex) -> Callable[[pd.DataFrame, list[str]], np.ndarray]:
        """For a rule on registry columns `cols`: the whole registry's block size of each export
        person (0 where it has no key or no block). `keys` (sorted) and `sizes` are the blocks found."""
        kinds = self.meta["kinds"]

        def lookup(hashed: np.ndarray, ok: np.ndarray) -> np.ndarray:
            if not len(keys):
                return np.zeros(len(hashed), dtype=np.int64)
            at = np.minimum(np.searchsorted(keys, hashed), len(keys) - 1)
            return np.where(ok & (keys[at] == hashed), sizes[at], 0).astype(np.int64)

        if cols == HOUSEHOLD:
            # The export side is the registry's household code of the person with the written ID:
            # its text is that of any person of the part with that code (taken now: the text column
            # is dropped once the index is prepared).
            codes = RegistryCodes.of(index).codes["household_id"]
            distinct, first = np.unique(codes, return_index=True)
            hashed, present = _text_hash(index.people["household_id"].iloc[first])

            def household(profiles: pd.DataFrame, columns: list[str]) -> np.ndarray:
                wanted = profiles[columns[0]].to_numpy(dtype=np.int64)
                if not len(distinct):
                    return np.zeros(len(wanted), dtype=np.int64)
                at = np.minimum(np.searchsorted(distinct, wanted), len(distinct) - 1)
                return lookup(hashed.view(np.int64)[at], (wanted >= 0) & (distinct[at] == wanted) & present[at])
            return household

        def by_key(profiles: pd.DataFrame, columns: list[str]) -> np.ndarray:
            return lookup(*_combine([_export_part(profiles[k], kinds[c]) for k, c in zip(columns, cols, strict=True)]))
        return by_key

    def _name_counts(self, column: str, values: pd.Series) -> pa.Table:
        """The whole registry's counts of the names in `values`, streamed from `counts/<column>.parquet`."""
        distinct = pc.unique(pc.drop_null(pa.array(values.astype("string[pyarrow]").array)))
        dataset = ds.dataset(self.path / "counts" / f"{column}.parquet", format="parquet")
        return dataset.to_table(filter=pc.field("value").isin(distinct))

    def index_for(self, profiles: pd.DataFrame, person_ids: pd.Series | None = None) -> RegistryIndex:
        """The prepared index of the people the export persons reach (`reach`)."""
        t0 = time.perf_counter()
        reach = self.reach(profiles, person_ids)
        log.info("registry: %d export persons reach %d of %d people (keys read in %.1f s)",
                 len(profiles), len(reach.rows), self.size, time.perf_counter() - t0)
        return self.index_of(reach.rows, reach.blocks)

    def with_ids(self, person_ids: pd.Series) -> RegistryIndex:
        """The people with these person IDs, with the columns the review queue shows, to be looked
        up by ID (`RegistryIndex.rows_of`): not an index to link with."""
        rows = self.rows_with_ids(person_ids)
        index = RegistryIndex(self.people(rows, REVIEWED), self.tone_style, self.chance_agreement)
        index._lookups["population"] = self.size
        return index

    def rows_with_ids(self, person_ids: pd.Series) -> np.ndarray:
        """The registry rows (sorted) of every person with one of these person IDs."""
        key = digit_key(pd.Series(person_ids, dtype="string[pyarrow]"), -1, -1)
        return np.unique(self._lookup(("person_id",), key[key >= 0]).column("row").to_numpy())
