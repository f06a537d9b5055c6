"""The dose checks over a run's provinces: all at once, and in buckets of persons.

    python -m bench.doses [--rows 20000000] [--provinces 10] [--bucket-rows 0,1000000,250000]

Generates once (seeded, under bench/cache/doses_r<ROWS>_p<PROVINCES>_s1/) each province's linked
rows as the dose checks read them: people with about two doses each, 5% of them vaccinated in
another province too, 1% of rows a repeat of another row's dose (in any province), 0.5% rejected
rows without an identity, dates partly outside the campaign, a few unknown vaccines. Then runs
`flows.reconcile.dose_checks` once per bucket size, each in a fresh process, and prints its
seconds, its peak memory (the process's high-water mark, and what the checks added to what the
process held before them), the rows flagged, and whether every province's dose codes are those
of the first bucket size. A bucket size of 0 checks every row at once (the code before buckets).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bench.common import CACHE

RUN_DATE = dt.date(2022, 6, 1)
ROWS_PER_FILE = 200_000


def generate(rows: int, provinces: int, seed: int = 1) -> Path:
    """OUT/work/<PP>/linked.parquet for `provinces` provinces of `rows` dose rows in all (cached)."""
    from pipeline.doses import DOSE_SCHEMA
    from pipeline.rules import default_rules

    out = CACHE / f"doses_r{rows}_p{provinces}_s{seed}"
    if (out / "done").exists():
        return out
    t = time.perf_counter()
    rng = np.random.default_rng(seed)
    people = max(1, rows // 2)
    person = rng.integers(0, people, rows)
    home = person % provinces
    province = np.where(rng.random(rows) < 0.05, rng.integers(0, provinces, rows), home)
    start = np.datetime64("2021-03-10")   # the last few days fall after the run date
    date = start + rng.integers(0, 460, rows).astype("timedelta64[D]")
    vaccines = np.array(sorted(default_rules().vaccines), dtype=object)
    vaccine = vaccines[rng.integers(0, len(vaccines), rows)]
    vaccine[rng.random(rows) < 0.01] = None
    repeat = np.flatnonzero(rng.random(rows) < 0.01)   # the same dose again, from another row
    source = rng.integers(0, rows, len(repeat))
    person[repeat], date[repeat], vaccine[repeat] = person[source], date[source], vaccine[source]
    identity = pc.utf8_lpad(pa.array(person).cast(pa.string()), 12, "0")
    identity = pc.if_else(pa.array(rng.random(rows) < 0.005), pa.scalar(None, pa.string()), identity)
    dob = np.datetime64("1940-01-01") + (person * 7919 % 25_000).astype("timedelta64[D]")
    number = rng.integers(1, 5, rows).astype(np.int16)
    table = pa.table({
        "identity": identity, "dose_date": pa.array(date.astype("datetime64[ms]")),
        "vaccine": pa.array(vaccine, type=pa.string()),
        "dose_number": pa.array(number, mask=rng.random(rows) < 0.03),
        "date_of_birth": pa.array(dob.astype("datetime64[ms]")),
        "birth_year": pa.array((dob.astype("datetime64[Y]").astype(int) + 1970).astype(np.int16)),
    })
    order = np.argsort(province, kind="stable")
    bounds = np.searchsorted(province[order], np.arange(provinces + 1))
    for p in range(provinces):
        code = f"{p + 1:02d}"
        part = table.take(pa.array(order[bounds[p]:bounds[p + 1]]))
        n = part.num_rows
        at = np.arange(n)
        files = pa.array([f"{code}/diem_tiem_{k:03d}.csv" for k in range(n // ROWS_PER_FILE + 1)])
        part = part.append_column("source_file", files.take(pa.array(at // ROWS_PER_FILE))) \
                   .append_column("source_row", pa.array(at % ROWS_PER_FILE + 2))
        (out / "work" / code).mkdir(parents=True, exist_ok=True)
        pq.write_table(part.select(DOSE_SCHEMA.names).cast(DOSE_SCHEMA), out / "work" / code / "linked.parquet")
    (out / "done").write_text("")
    print(f"generated {rows:,} dose rows in {provinces} provinces in {time.perf_counter() - t:.1f} s: {out}",
          flush=True)
    return out


def child(folder: Path, bucket_rows: int) -> None:
    """One configuration in this process; prints its figures as JSON."""
    from flows.reconcile import dose_checks
    from pipeline.memory import peak_gb, reset_peak
    from pipeline.rules import DEFAULT_RULES_DIR

    codes = sorted(p.name for p in (folder / "work").iterdir())
    rows = sum(pq.ParquetFile(folder / "work" / c / "linked.parquet").metadata.num_rows for c in codes)
    before = _rss_gb()
    reset_peak()
    t = time.perf_counter()
    checked = dose_checks(folder, codes, DEFAULT_RULES_DIR, RUN_DATE, bucket_rows or rows)
    seconds = time.perf_counter() - t
    peak = peak_gb()
    flagged: dict[str, int] = {}
    for code in codes:
        flat = pc.list_flatten(pq.read_table(folder / "work" / code / "dose_codes.parquet").column(0))
        for entry in flat.value_counts().to_pylist():
            flagged[entry["values"]] = flagged.get(entry["values"], 0) + entry["counts"]
    print(json.dumps({"rows": rows, "seconds": seconds, "peak_gb": peak, "before_gb": before,
                      "digests": checked.digests, "buckets": checked.buckets, "flagged": flagged}))


def _rss_gb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / 1e9
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=20_000_000, help="dose rows of the run (default 20,000,000)")
    ap.add_argument("--provinces", type=int, default=10, help="provinces they are spread over (default 10)")
    ap.add_argument("--bucket-rows", default="0,1000000,250000",
                    help="comma-separated bucket sizes to run, 0 = every row at once (default 0,1000000,250000)")
    ap.add_argument("--child", nargs=2, metavar=("FOLDER", "BUCKET_ROWS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(Path(args.child[0]), int(args.child[1]))
        return
    folder = generate(args.rows, args.provinces)
    first = None
    print(f"{'bucket rows':>12}{'buckets':>9}{'seconds':>9}{'rows/s':>12}{'peak GB':>9}{'added GB':>10}"
          f"  same codes  rows flagged", flush=True)
    for size in (int(s) for s in args.bucket_rows.split(",")):
        done = subprocess.run([sys.executable, "-m", "bench.doses", "--child", str(folder), str(size)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(done.stderr[-4000:])
        r = json.loads(done.stdout.strip().splitlines()[-1])
        first = first or r["digests"]
        print(f"{size or r['rows']:>12,}{r['buckets']:>9}{r['seconds']:>9.1f}{r['rows'] / r['seconds']:>12,.0f}"
              f"{r['peak_gb']:>9.2f}{r['peak_gb'] - r['before_gb']:>10.2f}  {'yes' if r['digests'] == first else 'NO':>10}"
              f"  {', '.join(f'{k} {n:,}' for k, n in sorted(r['flagged'].items()))}", flush=True)


if __name__ == "__main__":
    main()
