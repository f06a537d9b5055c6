"""The registry partitioned by blocking key on disk, and streamed: for registries too large to hold whole.

A province's export persons can only ever be linked to registry people who
share a blocking key with them. So instead of loading the whole registry (some
45 GB prepared for 100 million people), the registry is written once, in
chunks, as:

- ``maps/<columns>/part-N.parquet``: for every blocking rule's registry columns
  (and for the IDs and households), each person's key and registry row, sorted
  by key. Text parts of a key are hashed (64 bits), so the key of an export
  person is computed the same way from its own values, with no registry
  dictionary in memory.
- ``people/part-N.parquet``: the registry's rows as given, with their row number.
- ``names/part-N.parquet``: each person's folded name, name key and place key;
  ``counts/*.parquet``: how many people have each folded name and name key.
- ``store.json``: the whole registry's size, chance agreements, tone style and
  name lexicon, and the digests of the rules and code the keys were built with.

A run then reads, rule by rule, only the keys its province has (Arrow streams
the map files with an `is_in` filter), takes those people's rows, and builds an
ordinary `RegistryIndex` of them, carrying the whole registry's statistics
(size, chance agreements, name frequencies, lexicon). Every person who shares a
key with an export person is in it, so every block is whole: blocking (block
sizes included), scoring and decisions are the same as against the whole
registry. A hash collision can only add a person no block reaches.

Memory: one chunk while the store is built (besides one column of the whole
registry while its statistics are counted); at night, one map file at a time
and the people the province's keys reach.
"""

from __future__ import annotations

import hashlib
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

from pipeline.link.candidates import KeyPart, _day_codes, _encode
from pipeline.link.encoded import DIGIT_KEYS, MAX_KEY, RegistryCodes
from pipeline.link.index import (
    OPTIONAL,
    REQUIRED,
    STORE_FILE,
    RegistryError,
    RegistryIndex,
    _dates,
    build_index,
    chance_agreements,
    registry_frame,
)
from pipeline.link.keys import digit_key
from pipeline.link.prepared import prepare, source_digest
from pipeline.output import file_digest
from pipeline.rules import Rules

log = logging.getLogger(__name__)
VERSION = 1
MIX = np.uint64(0x9E3779B97F4A7C15)     # combines the parts of a key (odd: a bijection mod 2^64)
ID_MAPS = (("person_id",), ("old_id",))
HOUSEHOLD = ("household_id",)
PERSON_KEY_PARTS = ("pid_head", "pid_tail")


def is_store(path: Path | str) -> bool:
    """Whether `path` is a registry partitioned by blocking key (a folder with `store.json`)."""
    return (Path(path) / STORE_FILE).is_file()


def rules_digest(rules: Rules) -> str:
    h = hashlib.blake2b(digest_size=16)
    for path in sorted(p for p in rules.source_dir.rglob("*") if p.is_file()):
        h.update(path.relative_to(rules.source_dir).as_posix().encode() + b"\0" + file_digest(path).encode() + b"\n")
    return h.hexdigest()


def map_columns(rules: Rules) -> list[tuple[str, ...]]:
    """The registry column tuples with a map: every blocking rule's (the household rule is served by
    the household map, reached through the IDs) and the two IDs."""
    tuples = [tuple(str(c) for c in rule["registry"]) for rule in rules.matching["blocking"]]
    return list(dict.fromkeys([*ID_MAPS, *(t for t in tuples if t != HOUSEHOLD)]))


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
        pid = digit_key(people["person_id"], -1, -1)
        value = pid // 16
        half = value // 10 ** 6 if column == "pid_head" else value % 10 ** 6
        key = np.where((pid >= 0) & (pid % 16 == 12), half * 16 + 6, -1).astype(np.int64)
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


def _write_sorted(path: Path, key: np.ndarray, rows: np.ndarray, extra: dict[str, pa.Array] | None = None) -> None:
    order = np.argsort(key, kind="stable")
    columns: dict[str, Any] = {"key": key[order], "row": rows[order]}
    for name, values in (extra or {}).items():
        columns[name] = values.take(pa.array(order))
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path, row_group_size=1 << 20)


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
    try:
        for number, table in enumerate(_chunks(dataset, columns, chunk_rows)):
            n = table.num_rows
            rows = np.arange(offset, offset + n, dtype=np.int64)
            name = f"part-{number:05d}.parquet"
            (tmp / "people").mkdir(exist_ok=True)
            pq.write_table(table.append_column("row", pa.array(rows)), tmp / "people" / name, row_group_size=1 << 17)
            index = build_index(registry_frame(table), rules, agreements=False)
            people = index.people
            style = style or index.tone_style    # the first chunk's first distinct names, as a whole index reads them
            words |= index.lexicon(rules)
            (tmp / "names").mkdir(exist_ok=True)
            pq.write_table(pa.table({c: pa.array(people[c].astype("string[pyarrow]").array)
                                     for c in ("name_fold", "name_key", "place_fold")}), tmp / "names" / name)
            households = _text_hash(people["household_id"])
            for cols in maps:
                for c in cols:
                    kinds.setdefault(c, _kind(people, c))
                key, ok = _combine([_registry_part(people, c, kinds[c]) for c in cols])
                at = np.flatnonzero(ok)
                extra = None
                if cols in ID_MAPS:     # the household of the person with that ID (`id_households`)
                    extra = {"household": pa.array(households[0].view(np.int64)[at], mask=~households[1][at])}
                _write_sorted(tmp / "maps" / map_name(cols) / name, key[at], rows[at], extra)
            at = np.flatnonzero(households[1])
            _write_sorted(tmp / "maps" / map_name(HOUSEHOLD) / name, households[0].view(np.int64)[at], rows[at])
            parts.append({"file": name, "first_row": offset, "rows": n})
            offset += n
            log.info("partitioned registry: %d people written (%.0f s)", offset, time.perf_counter() - t0)
            del index, people, table
        for cols in [*maps, HOUSEHOLD]:
            _add_block_sizes(tmp / "maps" / map_name(cols))
        meta = {"version": VERSION, "population": offset, "tone_style": style,
                "chance_agreement": _whole_agreements(tmp), "lexicon": sorted(words), "kinds": kinds,
                "maps": [list(m) for m in maps], "parts": parts, "rules": rules_digest(rules),
                "code": source_digest(), "registry": str(registry.resolve())}
        _count_names(tmp)
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


def _add_block_sizes(folder: Path) -> None:
    """Write beside each key the number of registry people with it (its block's size in the whole
    registry): a run leaves out blocks that their rules skip without reading them."""
    keys = _column(folder, "key").to_numpy()
    distinct, counts = np.unique(keys, return_counts=True)
    del keys
    for path in sorted(folder.glob("part-*.parquet")):
        table = pq.read_table(path)
        key = table.column("key").to_numpy()
        block = counts[np.searchsorted(distinct, key)].astype(np.int32)
        pq.write_table(table.append_column("block", pa.array(block)), path, row_group_size=1 << 20)


def _column(folder: Path, column: str) -> pa.ChunkedArray:
    """One column of every part of `folder`, in row order."""
    files = [str(f) for f in sorted(folder.glob("part-*.parquet"))]
    return ds.dataset(files, format="parquet").to_table(columns=[column]).column(column)


def _whole_agreements(store: Path) -> dict[str, float]:
    """The whole registry's chance agreements, a column (or two) at a time, by the same functions
    that an index of the whole registry uses."""
    out: dict[str, float] = {}
    for col in ("sex", "place_fold", "phone", "date_of_birth", "person_id", "household_id"):
        folder = store / ("names" if col == "place_fold" else "people")
        frame = _frame_of(folder, [col])
        out |= chance_agreements(frame)
    pair = _frame_of(store / "people", ["date_of_birth"])
    pair["name_fold"] = pd.Series(_column(store / "names", "name_fold").to_pandas(types_mapper=pd.ArrowDtype),
                                  dtype="string[pyarrow]")
    return out | {"date_of_birth|name": chance_agreements(pair)["date_of_birth|name"]}


def _frame_of(folder: Path, columns: list[str]) -> pd.DataFrame:
    """Columns of every part, in row order, in the types of `registry_frame`."""
    files = sorted(folder.glob("part-*.parquet"))
    table = pa.concat_tables([pq.read_table(f, columns=columns) for f in files])
    return pd.DataFrame({c: _dates(table.column(c)) if c == "date_of_birth" else
                         pd.Series(table.column(c).to_pandas(types_mapper=pd.ArrowDtype), dtype="string[pyarrow]")
                         for c in columns})


def _count_names(store: Path) -> None:
    """How many registry people have each folded name and each name key (`counts/<column>.parquet`)."""
    for col in ("name_fold", "name_key"):
        counts = pc.value_counts(pc.drop_null(_column(store / "names", col)))
        table = pa.table({"value": counts.field("values"), "count": counts.field("counts")})
        (store / "counts").mkdir(exist_ok=True)
        pq.write_table(table, store / "counts" / f"{col}.parquet")


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
        wanted = map_columns(rules)
        if [tuple(m) for m in meta["maps"]] != wanted:
            raise RegistryError(f"partitioned registry {path} has no keys for some blocking rules: {rebuild}")
        return cls(path, meta, rules, frozenset(meta["lexicon"]))

    @property
    def size(self) -> int:
        return int(self.meta["population"])

    @property
    def tone_style(self) -> str:
        return str(self.meta["tone_style"])

    def lexicon(self, rules: Rules | None = None) -> frozenset[str]:
        """The whole registry's name lexicon (as `RegistryIndex.lexicon`)."""
        return self._lexicon

    def _lookup(self, columns: tuple[str, ...], keys: np.ndarray, extra: tuple[str, ...] = ()) -> pa.Table:
        """The map rows of `columns` whose key is among `keys` (key, row, block size and `extra`),
        streamed part by part."""
        keys = np.unique(keys)
        names = ["key", "row", "block", *extra]
        if not len(keys):
            return pa.table({c: pa.array([], pa.int64()) for c in names})
        dataset = ds.dataset(self.path / "maps" / map_name(columns), format="parquet")
        return dataset.to_table(columns=names, filter=pc.field("key").isin(pa.array(keys)))

    def reach(self, profiles: pd.DataFrame, person_ids: pd.Series | None = None) -> Reach:
        """Who the export persons can be linked to: every registry person in a block of theirs that
        the rule does not skip (a block of at most `max_block` people of the whole registry), the
        people with the IDs they wrote and their households, and the people `person_ids` name."""
        blocking = self.rules.matching["blocking"]
        found: list[np.ndarray] = []
        blocks: dict[tuple[str, ...], tuple[np.ndarray, np.ndarray]] = {}
        written = {("person_id",): [profiles["id_personal"]], ("old_id",): [profiles["id_old"]]}
        if person_ids is not None:
            written[("person_id",)].append(pd.Series(person_ids, dtype="string[pyarrow]"))
        households = []
        for cols in map(tuple, self.meta["maps"]):
            rules = [r for r in blocking if tuple(r["registry"]) == cols]
            wanted = [self.export_keys(profiles, r) for r in rules]
            ids = [digit_key(v, -1, -1) for v in written.get(cols, [])]
            ids = [k[k >= 0] for k in ids]
            table = self._lookup(cols, np.concatenate([*wanted, *ids, np.array([], np.int64)]),
                                 ("household",) if cols in ID_MAPS else ())
            key, row, block = (table.column(c).to_numpy() for c in ("key", "row", "block"))
            limit = max((int(r["max_block"]) for r in rules), default=0)
            keep = block <= limit
            if ids:
                keep |= np.isin(key, np.concatenate(ids))
            found.append(row[keep])
            if rules:
                distinct, first = np.unique(key, return_index=True)
                blocks[cols] = (distinct, block[first])
            if cols in ID_MAPS:
                households.append(pc.drop_null(table.column("household")).to_numpy())
        if households:
            table = self._lookup(HOUSEHOLD, np.concatenate(households))
            key, row, block = (table.column(c).to_numpy() for c in ("key", "row", "block"))
            limit = max((int(r["max_block"]) for r in blocking if tuple(r["registry"]) == HOUSEHOLD), default=0)
            found.append(row[block <= limit])
            distinct, first = np.unique(key, return_index=True)
            blocks[HOUSEHOLD] = (distinct, block[first])
        rows = np.unique(np.concatenate(found)) if found else np.array([], np.int64)
        return Reach(rows, blocks)

    def export_keys(self, profiles: pd.DataFrame, rule: dict) -> np.ndarray:
        """The keys of `rule` that export persons have (the household rule's come from the IDs)."""
        if tuple(rule["registry"]) == HOUSEHOLD:
            return np.array([], np.int64)
        key, ok = _combine([_export_part(profiles[k], self.meta["kinds"][c])
                            for k, c in zip(rule["keys"], rule["registry"], strict=True)])
        return key[ok]

    def people(self, rows: np.ndarray) -> pd.DataFrame:
        """The registry rows `rows` (sorted), part by part, as `read_registry` gives them."""
        tables = []
        for part in self.meta["parts"]:
            lo, n = int(part["first_row"]), int(part["rows"])
            a, b = np.searchsorted(rows, [lo, lo + n])
            if a == b:
                continue
            table = pq.read_table(self.path / "people" / part["file"])
            tables.append(table.take(pa.array(rows[a:b] - lo)).drop_columns(["row"]))
        if not tables:
            schema = pq.read_schema(self.path / "people" / self.meta["parts"][0]["file"])
            tables.append(schema.empty_table().drop_columns(["row"]))
        return registry_frame(pa.concat_tables(tables))

    def index_of(self, rows: np.ndarray, blocks: dict | None = None, prepared: bool = True) -> RegistryIndex:
        """An index of the registry rows `rows`, carrying the whole registry's statistics and, for the
        blocking rules, the whole registry's block sizes (`blocks`, from `reach`); prepared for
        linking unless `prepared` is false (enough to look people up by ID)."""
        t0 = time.perf_counter()
        built = build_index(self.people(rows), self.rules, agreements=False)
        index = RegistryIndex(built.people, self.tone_style, dict(self.meta["chance_agreement"]), built._lookups)
        index._lookups["population"] = self.size
        index._lookups["lexicon"] = self._lexicon
        index._lookups["name_counts"] = {col: self._name_counts(col, built.people[col])
                                         for col in ("name_fold", "name_key")}
        index._lookups["registry_rows"] = rows
        if blocks is not None:
            index._lookups["block_sizes"] = {cols: self._sizes(cols, keys, sizes, index)
                                             for cols, (keys, sizes) in blocks.items()}
        if prepared:
            prepare(index, self.rules)
        log.info("registry: %d of %d people read from the partitioned registry in %.1f s",
                 index.size, self.size, time.perf_counter() - t0)
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
        """An index of the people with these person IDs (for the review queue), not prepared for linking."""
        key = digit_key(pd.Series(person_ids, dtype="string[pyarrow]"), -1, -1)
        rows = np.unique(self._lookup(("person_id",), key[key >= 0]).column("row").to_numpy())
        return self.index_of(rows, prepared=False)
