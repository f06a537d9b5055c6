"""Dose-level checks of contract 3.3 over all provinces of a run."""

from __future__ import annotations

import datetime as dt
import logging
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
MAX_BUCKETS = 512   # spill files open at once; more rows than that many buckets hold make the buckets larger


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

    Returns, per province, each flag as a boolean array over its rows in file order; and the
    number of buckets.
    """
    sizes = {code: pq.ParquetFile(path).metadata.num_rows for code, path in sources.items()}
    buckets = bucket_count(sum(sizes.values()), bucket_rows)
    codes = list(sources)
    held: list[pa.Table] = []    # one bucket: the batches, kept in memory rather than spilled
    writers: list[pa.ipc.RecordBatchFileWriter] = []
    schema = DOSE_SCHEMA.append(pa.field("_prov", pa.int32())).append(pa.field("_pos", pa.int64()))
    try:
        if buckets > 1:
            compressed = pa.ipc.IpcWriteOptions(compression="zstd")   # some 16 bytes a row on disk, not 104
            writers = [pa.ipc.new_file(spill / f"bucket-{b}.arrow", schema, options=compressed) for b in range(buckets)]
        for p, code in enumerate(codes):
            start = 0
            for batch in pq.ParquetFile(sources[code]).iter_batches(batch_size=bucket_rows, columns=DOSE_COLUMNS):
                part = pa.Table.from_batches([batch]).select(DOSE_COLUMNS).cast(DOSE_SCHEMA)
                pos = np.arange(start, start + part.num_rows, dtype=np.int64)
                part = part.append_column("_prov", pa.array(np.full(part.num_rows, p, np.int32))) \
                           .append_column("_pos", pa.array(pos))
                start += part.num_rows
                if buckets == 1:
                    held.append(part)
                    continue
                bucket = _bucket_of(part.column("identity"), pos, buckets)
                order = np.argsort(bucket, kind="stable")
                bounds = np.searchsorted(bucket[order], np.arange(buckets + 1))
                part = part.take(pa.array(order))
                for b, w in enumerate(writers):
                    if bounds[b + 1] > bounds[b]:
                        w.write_table(part.slice(bounds[b], bounds[b + 1] - bounds[b]))
    finally:
        for w in writers:
            w.close()
    flags = {code: {k: np.zeros(n, dtype=bool) for k in FLAG_NAMES} for code, n in sizes.items()}
    for b in range(buckets):
        if buckets == 1:
            table = pa.concat_tables(held) if held else schema.empty_table()
            held = []
        else:
            with pa.OSFile(str(spill / f"bucket-{b}.arrow")) as source:
                table = pa.ipc.open_file(source).read_all()
        rows = table.to_pandas().sort_values(["source_file", "source_row"], kind="stable").reset_index(drop=True)
        del table
        found = dose_flags(rows, rules, run_date)
        prov, pos = rows["_prov"].to_numpy(), rows["_pos"].to_numpy()
        for k in FLAG_NAMES:
            hit = np.flatnonzero(found[k])
            for p in np.unique(prov[hit]):
                flags[codes[p]][k][pos[hit[prov[hit] == p]]] = True
        if buckets > 1:
            log.info("dose checks: bucket %d of %d, %d rows", b + 1, buckets, len(rows))
    return flags, buckets


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
