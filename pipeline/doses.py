"""Dose-level checks of contract 3.3 over all provinces of a run."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.rules import Rules
from pipeline.text import text_hashes

log = logging.getLogger("vaxrecon")


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


# ---------------------------------------------------------------- over a run's provinces, in buckets

# The columns the dose checks read from each province's linked rows, as they are spilled.
DOSE_SCHEMA = pa.schema([
    ("source_file", pa.large_string()), ("source_row", pa.int64()), ("identity", pa.large_string()),
    ("dose_date", pa.timestamp("ms")), ("vaccine", pa.large_string()), ("dose_number", pa.int16()),
    ("date_of_birth", pa.timestamp("ms")), ("birth_year", pa.int16()),
])
DOSE_COLUMNS = DOSE_SCHEMA.names
FLAG_NAMES = ("DOSE_DUPLICATE", "DOSE_DATE_INVALID", "DOSE_INTERVAL", "VACCINE_UNKNOWN")
MAX_BUCKETS = 512   # each batch split this many ways at most, one flags file (one task) each: beyond, buckets grow


SPILL_SCHEMA = DOSE_SCHEMA.append(pa.field("_prov", pa.int32())).append(pa.field("_pos", pa.int64()))
FLAGS_SCHEMA = pa.schema([("_prov", pa.int32()), ("_pos", pa.int64()), ("flags", pa.uint8())])
FLAG_BITS = {name: np.uint8(1 << i) for i, name in enumerate(FLAG_NAMES)}


def flag_in_buckets(sources: dict[str, Path], rules: Rules, run_date: dt.date, bucket_rows: int,
                    spill: Path) -> tuple[dict[str, dict[str, np.ndarray]], int]:
    """`dose_flags` over the rows of every province, at most about `bucket_rows` rows at a time.

    `sources` maps each province to its linked rows (a Parquet file with `DOSE_COLUMNS`). A
    duplicate or a short interval is between doses of one person (`identity`), and every other
    check looks at one row, so the rows are split into buckets by a hash of their identity and each
    bucket is checked alone, its rows in the order of (source_file, source_row) as over the whole
    run: the flags are those of one `dose_flags` call over every row, whatever the bucket count.
    Rows without an identity are spread by position. With more than one bucket (at most
    `MAX_BUCKETS`), each province's rows are read `bucket_rows` at a time and spilled to Arrow files
    under `spill` (a folder the caller owns and removes), so that no more than a batch, a bucket and
    the flags (four bytes a row) are held at once.

    The three steps (`spill_province`, `check_bucket`, `gather_flags`) are run here one after
    another in this process; a cluster runs them as tasks instead, the provinces' spills side by
    side, then the buckets, then each province's gathering (`flows.nightly`).

    Returns, per province, each flag as a boolean array over its rows in file order; and the
    number of buckets.
    """
    buckets, sizes = bucket_plan(sources, bucket_rows)
    codes = list(sources)
    if buckets == 1:    # every row held at once, nothing spilled
        table = pa.concat_tables([part for p, code in enumerate(codes)
                                  for part in _province_rows(sources[code], p, bucket_rows)]) \
            if codes else SPILL_SCHEMA.empty_table()
        prov, pos, bits = flag_rows(table, rules, run_date)
        del table
        return {code: _unpack(pos[prov == p], bits[prov == p], sizes[code]) for p, code in enumerate(codes)}, 1
    for p, code in enumerate(codes):
        spill_province(sources[code], p, buckets, bucket_rows, spill)
    for b in range(buckets):
        check_bucket(spill, len(codes), b, buckets, rules, run_date)
    return {code: gather_flags(spill, buckets, p, sizes[code]) for p, code in enumerate(codes)}, buckets


def bucket_plan(sources: dict[str, Path], bucket_rows: int) -> tuple[int, dict[str, int]]:
    """The buckets the dose rows of `sources` (province -> linked Parquet) take, and each
    province's rows, read from the files' footers."""
    sizes = {code: pq.ParquetFile(path).metadata.num_rows for code, path in sources.items()}
    return bucket_count(sum(sizes.values()), bucket_rows), sizes


def _province_rows(source: Path, prov: int, batch_rows: int) -> Iterator[pa.Table]:
    """A province's dose rows, `batch_rows` at a time, with its number and each row's position."""
    start = 0
    for batch in pq.ParquetFile(source).iter_batches(batch_size=batch_rows, columns=DOSE_COLUMNS):
        part = pa.Table.from_batches([batch]).select(DOSE_COLUMNS).cast(DOSE_SCHEMA)
        pos = np.arange(start, start + part.num_rows, dtype=np.int64)
        start += part.num_rows
        yield part.append_column("_prov", pa.array(np.full(part.num_rows, prov, np.int32))) \
                  .append_column("_pos", pa.array(pos))


def _rows_path(spill: Path, prov: int) -> Path:
    return spill / f"rows-{prov}.arrow"


def _buckets_path(spill: Path, prov: int) -> Path:
    """The bucket of each record batch in `_rows_path(spill, prov)`."""
    return spill / f"rows-{prov}.npy"


def _flags_path(spill: Path, bucket: int) -> Path:
    return spill / f"flags-{bucket}.arrow"


def spill_province(source: Path, prov: int, buckets: int, batch_rows: int, spill: Path) -> int:
    """Step 1, per province: its rows, read `batch_rows` at a time, written to one zstd-compressed
    Arrow file under `spill` (some 16 bytes a row on disk, not 104), each record batch the rows of
    one bucket, with a list of the batches' buckets beside it (written last: the spill is complete
    when the list is there). Returns the province's rows."""
    path = _rows_path(spill, prov)
    tmp = path.with_name(path.name + ".tmp")
    batch_buckets: list[int] = []
    rows = 0
    with pa.ipc.new_file(str(tmp), SPILL_SCHEMA, options=pa.ipc.IpcWriteOptions(compression="zstd")) as writer:
        for part in _province_rows(source, prov, batch_rows):
            bucket = _bucket_of(part.column("identity"), part.column("_pos").to_numpy(), buckets)
            order = np.argsort(bucket, kind="stable")
            bounds = np.searchsorted(bucket[order], np.arange(buckets + 1))
            part = part.take(pa.array(order))
            for b in np.flatnonzero(np.diff(bounds)):
                for batch in part.slice(bounds[b], bounds[b + 1] - bounds[b]).to_batches():
                    writer.write_batch(batch)
                    batch_buckets.append(int(b))
            rows += part.num_rows
    tmp.replace(path)
    np.save(_buckets_path(spill, prov), np.asarray(batch_buckets, dtype=np.int32))
    return rows


def check_bucket(spill: Path, provinces: int, bucket: int, buckets: int, rules: Rules,
                 run_date: dt.date) -> tuple[int, dict[str, int]]:
    """Step 2, per bucket: the bucket's rows from the spills of provinces 0..`provinces`-1, checked
    together; the flagged rows (province, position, flags as bits) written to one Arrow file under
    `spill`, sorted by province. Returns the bucket's rows and the rows flagged per flag."""
    parts = []
    for p in range(provinces):
        listed = np.flatnonzero(np.load(_buckets_path(spill, p)) == bucket)
        if len(listed):
            with pa.OSFile(str(_rows_path(spill, p))) as source:
                reader = pa.ipc.open_file(source)
                parts += [reader.get_batch(int(i)) for i in listed]
    table = pa.Table.from_batches(parts, SPILL_SCHEMA)
    del parts
    prov, pos, bits = flag_rows(table, rules, run_date)
    order = np.argsort(prov, kind="stable")
    flagged = pa.table({"_prov": prov[order], "_pos": pos[order], "flags": bits[order]}, schema=FLAGS_SCHEMA)
    path = _flags_path(spill, bucket)
    tmp = path.with_name(path.name + ".tmp")
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, FLAGS_SCHEMA) as writer:
        writer.write_table(flagged)
    tmp.replace(path)
    log.info("dose checks: bucket %d of %d, %d rows", bucket + 1, buckets, table.num_rows)
    return table.num_rows, {k: int(np.count_nonzero(bits & bit)) for k, bit in FLAG_BITS.items()}


def flag_rows(table: pa.Table, rules: Rules, run_date: dt.date) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`dose_flags` over `table` (rows with `SPILL_SCHEMA`) in (source_file, source_row) order: the
    province, position and flags (as `FLAG_BITS`) of each flagged row."""
    rows = table.to_pandas().sort_values(["source_file", "source_row"], kind="stable").reset_index(drop=True)
    found = dose_flags(rows, rules, run_date)
    bits = np.zeros(len(rows), dtype=np.uint8)
    for k, bit in FLAG_BITS.items():
        bits[found[k]] |= bit
    hit = np.flatnonzero(bits)
    return rows["_prov"].to_numpy()[hit], rows["_pos"].to_numpy()[hit], bits[hit]


def gather_flags(spill: Path, buckets: int, prov: int, rows: int) -> dict[str, np.ndarray]:
    """Step 3, per province: its flags from every bucket's file, as a boolean array per flag over
    its `rows` rows in file order."""
    pos, bits = [], []
    for b in range(buckets):
        with pa.memory_map(str(_flags_path(spill, b))) as source:
            table = pa.ipc.open_file(source).read_all()
            at = table.column("_prov").to_numpy()
            lo, hi = np.searchsorted(at, [prov, prov + 1])
            pos.append(table.column("_pos").to_numpy()[lo:hi].copy())
            bits.append(table.column("flags").to_numpy()[lo:hi].copy())
            del table, at
    return _unpack(np.concatenate(pos) if pos else np.array([], np.int64),
                   np.concatenate(bits) if bits else np.array([], np.uint8), rows)


def _unpack(pos: np.ndarray, bits: np.ndarray, rows: int) -> dict[str, np.ndarray]:
    """The flags of `rows` rows from the positions and bits of the flagged ones."""
    packed = np.zeros(rows, dtype=np.uint8)
    packed[pos] = bits
    return {k: (packed & bit) != 0 for k, bit in FLAG_BITS.items()}


def bucket_count(rows: int, bucket_rows: int) -> int:
    """The buckets `rows` dose rows are checked in, about `bucket_rows` each (at most `MAX_BUCKETS`)."""
    return min(MAX_BUCKETS, max(1, -(-rows // bucket_rows)))


def _bucket_of(identity: pa.ChunkedArray, pos: np.ndarray, buckets: int) -> np.ndarray:
    """Each row's bucket: a hash of its identity, the same for the same identity in any province;
    rows without one by position."""
    bucket = (text_hashes(identity) % np.uint64(buckets)).astype(np.int64)
    missing = identity.is_null().to_numpy(zero_copy_only=False)
    bucket[missing] = pos[missing] % buckets
    return bucket
