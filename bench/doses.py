"""The dose checks over a run's provinces: all at once, and in buckets of persons.

    python -m bench.doses [--rows 20000000] [--provinces 10] [--bucket-rows 0,1000000,250000] [--workers 1,2]

Generates once (seeded, under bench/cache/doses_r<ROWS>_p<PROVINCES>_s1/) each province's linked
rows as the dose checks read them: people with about two doses each, 5% of them vaccinated in
another province too, 1% of rows a repeat of another row's dose (in any province), 0.5% rejected
rows without an identity, dates partly outside the campaign, a few unknown vaccines. Then runs
`flows.reconcile.dose_checks` once per bucket size, each in a fresh process, and prints its
seconds, its peak memory (the process's high-water mark, and what the checks added to what the
process held before them), the rows flagged, and whether every province's dose codes are those
of the first bucket size. A bucket size of 0 checks every row at once (the code before buckets).
With `--workers`, each bucket size is also run as the nightly flow runs it on a cluster: a task per
province spilling its rows, a task per bucket checking them, a task per province gathering its
codes, on a local Dask cluster (started before the clock); the peak is the largest worker's, and
what it added the most any task added to its worker's memory before it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
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


def child(folder: Path, bucket_rows: int, workers: int) -> None:
    """One configuration in this process; prints its figures as JSON."""
    from flows.reconcile import dose_checks
    from pipeline.memory import peak_gb, reset_peak
    from pipeline.rules import DEFAULT_RULES_DIR

    codes = sorted(p.name for p in (folder / "work").iterdir())
    rows = sum(pq.ParquetFile(folder / "work" / c / "linked.parquet").metadata.num_rows for c in codes)
    if workers:
        _on_workers(folder, codes, rows, bucket_rows or rows, workers)
        return
    before = _rss_gb()
    reset_peak()
    t = time.perf_counter()
    checked = dose_checks(folder, codes, DEFAULT_RULES_DIR, RUN_DATE, bucket_rows or rows)
    seconds = time.perf_counter() - t
    peak = peak_gb()
    print(json.dumps({"rows": rows, "seconds": seconds, "peak_gb": peak, "added_gb": (peak or 0.0) - before,
                      "digests": checked.digests, "buckets": checked.buckets, "flagged": _flagged(folder, codes)}))


def _flagged(folder: Path, codes: list[str]) -> dict[str, int]:
    """Rows flagged per dose code, over the provinces' written codes."""
    flagged: dict[str, int] = {}
    for code in codes:
        flat = pc.list_flatten(pq.read_table(folder / "work" / code / "dose_codes.parquet").column(0))
        for entry in flat.value_counts().to_pylist():
            flagged[entry["values"]] = flagged.get(entry["values"], 0) + entry["counts"]
    return flagged


def _step(name: str, *args: object) -> tuple[object, float | None, float]:
    """One step of the dose checks (a function of `flows.reconcile`) on a worker: its value, the
    worker's peak memory during it and its resident memory before it."""
    import flows.reconcile
    from pipeline.memory import peak_gb, reset_peak

    before = _rss_gb()
    reset_peak()
    value = getattr(flows.reconcile, name)(*args)
    return value, peak_gb(), before


def _on_workers(folder: Path, codes: list[str], rows: int, bucket_rows: int, workers: int) -> None:
    """The three steps as a cluster runs them (`flows.nightly.run_dose_checks`), on a local Dask
    cluster of `workers` single-threaded processes (each with its share of the cores for Arrow, as
    `vaxrecon run --workers` starts them) started before the clock; prints as `child`."""
    from distributed import Client, LocalCluster

    from flows.nightly import worker_env
    from flows.reconcile import dose_buckets, dose_spill
    from pipeline.rules import DEFAULT_RULES_DIR

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      env=worker_env(workers)) as cluster, Client(cluster) as client:
        client.run(_warm)   # the workers import the pipeline before the clock starts
        t = time.perf_counter()
        buckets, sizes = dose_buckets(folder, codes, bucket_rows)
        spill = dose_spill(folder)
        try:
            def run(name: str, calls: list[tuple]) -> list:
                return client.gather([client.submit(_step, name, *a, pure=False) for a in calls])

            spilled = run("spill_doses", [(folder, c, p, buckets, bucket_rows, spill) for p, c in enumerate(codes)])
            checked = run("check_dose_bucket", [(spill, len(codes), b, buckets, DEFAULT_RULES_DIR, RUN_DATE)
                                                for b in range(buckets)])
            written = run("write_dose_codes", [(folder, c, p, sizes[c], spill, buckets) for p, c in enumerate(codes)])
        finally:
            shutil.rmtree(spill, ignore_errors=True)
        seconds = time.perf_counter() - t
    steps = [*spilled, *checked, *written]
    print(json.dumps({"rows": rows, "seconds": seconds, "peak_gb": max(s[1] or 0.0 for s in steps),
                      "added_gb": max((s[1] or 0.0) - s[2] for s in steps),
                      "digests": {c: w[0] for c, w in zip(codes, written, strict=True)}, "buckets": buckets,
                      "flagged": _flagged(folder, codes), "workers": workers}))


def _warm() -> None:
    import flows.reconcile  # noqa: F401


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
    ap.add_argument("--workers", default="",
                    help="comma-separated worker counts: each bucket size above 0 is also run as a cluster runs "
                         "it, one task per province and per bucket on a local Dask cluster of that many "
                         "single-threaded workers (default: none)")
    ap.add_argument("--child", nargs=3, metavar=("FOLDER", "BUCKET_ROWS", "WORKERS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(Path(args.child[0]), int(args.child[1]), int(args.child[2]))
        return
    folder = generate(args.rows, args.provinces)
    workers = [int(w) for w in args.workers.split(",") if w.strip()]
    first = None
    print(f"{'bucket rows':>12}{'buckets':>9}  {'where':<13}{'seconds':>9}{'rows/s':>12}{'peak GB':>9}{'added GB':>10}"
          f"  same codes  rows flagged", flush=True)
    for size in (int(s) for s in args.bucket_rows.split(",")):
        for count in [0, *(workers if size else [])]:
            done = subprocess.run([sys.executable, "-m", "bench.doses", "--child", str(folder), str(size), str(count)],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(done.stderr[-4000:])
            r = json.loads(done.stdout.strip().splitlines()[-1])
            first = first or r["digests"]
            where = f"{count} worker{'s' if count > 1 else ''}" if count else "one process"
            print(f"{size or r['rows']:>12,}{r['buckets']:>9}  {where:<13}{r['seconds']:>9.1f}"
                  f"{r['rows'] / r['seconds']:>12,.0f}{r['peak_gb']:>9.2f}{r['added_gb']:>10.2f}"
                  f"  {'yes' if r['digests'] == first else 'NO':>10}"
                  f"  {', '.join(f'{k} {n:,}' for k, n in sorted(r['flagged'].items()))}", flush=True)

if __name__ == "__main__":
    main()
