"""Scale: the whole reconciliation on registries of growing size, against the hardware floor.

    python -m bench.scale [--sizes 1000000,3000000,10000000] [--dose-share 0.15] [--workers 1,2]

For each registry size (seeded, cached under bench/cache/) with exports of
`dose-share` × size dose rows, runs `vaxrecon run --force` in a fresh process twice
into one output folder: cold (the registry index is built, and kept in OUT/cache)
then warm (the next night: loaded from there, every province recomputed), and
prints for each per stage (summed over provinces, from run.json) the wall time, rows
per second and the process's peak memory during the stage (ingest also by file
kind, and the cross-province dose checks), the whole run's wall time and peak
memory (the run, its Prefect server and any workers together), and the
floor: the least work the job needs (reading the same files with
calamine/pyarrow and an exact-ID hash join against the registry's IDs), with
the ratio run / floor. Then how cost grows with size. With `--registry partitioned` (or `both`), the registry
is first partitioned by blocking key (`vaxrecon partition-registry`: time, peak memory,
size on disk) and one night runs against it, printing also how much of the registry
each province read (each slice of its export persons, `vaxrecon run --slice-persons`).
`--slice-persons 250000,1000000` runs every night once per slice size (against the
same partitioned registry), to set memory against time; `--workers 1,2` adds a night
on a local Dask cluster per worker count (with the first slice size). `--provinces 79` puts
every dose row in one province (default: five provinces), to see what one large province costs.
"""

from __future__ import annotations

import argparse
import codecs
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from bench.common import dataset, measure

STAGES = ("index", "ingest", "normalise", "link", "validate", "write")


def _id_column(names: list[str]) -> int:
    return next((i for i, c in enumerate(names) if "CMND" in c.upper() or "CCCD" in c.upper()
                 or "ĐỊNH DANH" in c.upper() or "DINH" in c.upper() or "id" in c.lower()), 0)


def floor_seconds(data: Path) -> tuple[float, int]:
    """The least work the job needs: read every export file with the fastest readers (calamine for
    workbooks, Arrow for CSV and Parquet), take its ID column as text, and hash-join all the IDs to
    the registry's once."""
    from python_calamine import CalamineWorkbook

    t = time.perf_counter()
    ids = pq.read_table(data / "registry.parquet", columns=["person_id"])
    rows, probes = 0, []
    for path in sorted((data / "exports").rglob("*.*")):
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            column = table.column(_id_column(table.column_names)).cast(pa.string())
            n = table.num_rows
        elif path.suffix in (".xlsx", ".xls"):
            sheet = CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0).to_python(skip_empty_area=True)
            j = _id_column([str(h) for h in sheet[0]])
            column = pa.array([str(r[j]) for r in sheet[1:]])
            n = len(sheet) - 1
        else:
            head = path.read_bytes()[:65536]
            enc = "utf-16" if head[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf8"
            if enc == "utf8":
                try:  # incremental: the 64 KiB may end inside a character
                    codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
                except UnicodeDecodeError:
                    enc = "cp1258"
            text = head.decode(enc, errors="ignore")
            delim = max(",;\t|", key=text.count)
            table = pacsv.read_csv(path, read_options=pacsv.ReadOptions(encoding=enc),
                                   parse_options=pacsv.ParseOptions(delimiter=delim, invalid_row_handler=lambda r: "skip"),
                                   convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
            column = table.column(_id_column(table.column_names)).cast(pa.string())
            n = table.num_rows
        probes.append(column)
        rows += n
    chunks = [c for col in probes for c in (col.chunks if isinstance(col, pa.ChunkedArray) else [col])]
    probe = pa.table({"person_id": pa.chunked_array(chunks, type=pa.string())})
    probe.join(ids, "person_id", join_type="left semi")
    return time.perf_counter() - t, rows


def stage_table(summary: dict, people: int, rows: int) -> str:
    """Per stage: seconds summed over provinces, rows per second, and the process's peak memory
    during that stage in the province where it took longest (run.json); ingest also by file kind."""
    provinces = list(summary["provinces"].values())
    lines = [f"{'stage':<32}{'seconds':>9}{'rows/s':>12}{'peak GB':>9}"]

    def line(name: str, seconds: float, n: int, peak: float | None) -> None:
        per = f"{n / seconds:,.0f}" if seconds else "-"
        lines.append(f"{name:<32}{seconds:>9.1f}{per:>12}{peak if peak is not None else float('nan'):>9.2f}")

    for stage in STAGES:
        seconds = sum(p["stage_seconds"].get(stage, 0.0) for p in provinces)
        # the peak of the province where the stage took longest (for the index: where it was built
        # or loaded; later provinces' index peaks only show what earlier stages left resident)
        longest = max(provinces, key=lambda p: p["stage_seconds"].get(stage, 0.0), default={})
        line(stage, seconds, people if stage == "index" else rows, longest.get("stage_peak_gb", {}).get(stage))
        if stage == "ingest":
            kinds: dict[str, list[float]] = {}
            for p in provinces:
                for kind, k in p.get("ingest_by_kind", {}).items():
                    acc = kinds.setdefault(kind, [0, 0, 0.0])
                    acc[0], acc[1], acc[2] = acc[0] + k["files"], acc[1] + k["rows"], acc[2] + k["seconds"]
            if kinds:   # files are read two at a time while the main thread checks the last one
                lines.append("  (per kind: seconds of the thread doing it; they overlap, so they exceed ingest)")
            for kind, (files, n, seconds) in sorted(kinds.items()):
                what = "input suite (GX)" if kind == "input_suite" else f"read {kind}"
                line(f"  {what}, {int(files)} files", seconds, int(n), None)
    dose = summary.get("dose_checks") or {}
    if dose:
        buckets = dose.get("buckets", 1)
        line("dose checks (all)" + (f", {buckets} buckets" if buckets > 1 else ""), dose.get("seconds", 0.0), rows,
             dose.get("peak_gb"))
    return "\n".join(lines)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    return env | {"PREFECT_LOGGING_LEVEL": "WARNING", "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}


def run_once(data: Path, out: Path, workers: int | None, registry: Path | None = None,
             slice_persons: int | None = None) -> tuple[float, float, dict, str]:
    """One `vaxrecon run --force` (against `registry`, default the set's registry.parquet): wall
    seconds, peak memory in GB, run.json and the run's log."""
    cmd = [sys.executable, "-m", "pipeline.cli", "run", "--registry", str(registry or data / "registry.parquet"),
           "--exports", str(data / "exports"), "--out", str(out), "--run-date", "2026-11-26", "--force"]
    if slice_persons:
        cmd += ["--slice-persons", str(slice_persons)]
    if workers:
        cmd += ["--workers", str(workers)]
    seconds, peak_gb, err = measure(cmd, _env())
    return seconds, peak_gb, json.loads((out / "run.json").read_text(encoding="utf-8")), err


REACH = re.compile(r"(\d+) export persons reach (\d+) of (\d+) people \(keys read in ([\d.]+) s\)")
# the people a slice of export persons reaches (not those its decisions name, read after: another ending)
READ = re.compile(r"people read from the partitioned registry in ([\d.]+) s, indexed in ([\d.]+) s$", re.M)


def partitioned(data: Path, size: int, floor: float, slices: list[int | None], workers: list[int]) -> None:
    """The registry partitioned by blocking key (`vaxrecon partition-registry`), then a night
    against it per slice size, and one per Dask worker count (with the first slice size): build
    time, peak memory and size on disk; the night's stages; the share of the registry each slice
    of each province read."""
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        seconds, peak, _ = measure([sys.executable, "-m", "pipeline.cli", "partition-registry", "--registry",
                                    str(data / "registry.parquet"), "--store", str(store)], _env())
        disk = sum(f.stat().st_size for f in store.rglob("*") if f.is_file()) / 1e9
        print(f"\n== {size:,} people: registry partitioned by blocking key in {seconds:.1f} s, peak memory "
              f"{peak:.2f} GB, {disk:.2f} GB on disk")
        nights = [(s, None) for s in slices] + [(slices[0], w) for w in workers]
        for slice_persons, worker_count in nights:
            seconds, peak, summary, err = run_once(data, Path(tmp) / "out", worker_count, store, slice_persons)
            rows = sum(p["rows"] for p in summary["provinces"].values())
            sliced = f"{slice_persons:,}" if slice_persons else "the default number of"
            dask = f", Dask {worker_count} worker(s)" if worker_count else ""
            print(f"\n== {size:,} people, {rows:,} dose rows, against the partitioned registry{dask}, {sliced} "
                  "export persons linked at a time: each slice reads the people its keys reach")
            print(stage_table(summary, size, rows))
            # stage 1 (linking) runs for every province before stage 3 reads the review queues'
            # candidates, so the first READ lines are the slices', in the same order
            # (not with Dask: the workers' lines interleave)
            for (persons, read, people, keys), (taken, indexed) in zip(REACH.findall(err) if not worker_count else [],
                                                                       READ.findall(err), strict=False):
                print(f"  {int(persons):,} export persons reached {int(read):,} of {int(people):,} registry people "
                      f"({int(read) / int(people):.0%}): keys {keys} s, people read {taken} s, indexed {indexed} s")
            print(f"whole run {seconds:.1f} s, peak memory {peak:.2f} GB (run, its Prefect server and Dask "
                  f"workers together); floor {floor:.1f} s; ratio run/floor {seconds / floor:.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000000,3000000")
    ap.add_argument("--dose-share", type=float, default=0.15)
    ap.add_argument("--workers", default="", help="also run with these Dask worker counts, e.g. 1,2")
    ap.add_argument("--registry", choices=("whole", "partitioned", "both"), default="whole",
                    help="load the registry whole (cold and warm runs), partition it by blocking key first "
                         "(vaxrecon partition-registry; one run against it), or both (default whole)")
    ap.add_argument("--slice-persons", default="", metavar="N[,N...]",
                    help="export persons linked at a time (vaxrecon run --slice-persons); several: one run "
                         "each against the partitioned registry, the whole registry's runs take the first "
                         "(default: vaxrecon's default)")
    ap.add_argument("--provinces", default="01,79,48,66,92", metavar="PP[,PP...]",
                    help="the provinces the dose rows are spread over (default 01,79,48,66,92; one code: a "
                         "single large province)")
    args = ap.parse_args()
    slices: list[int | None] = [int(n) for n in args.slice_persons.split(",") if n] or [None]
    worker_counts = [int(w) for w in args.workers.split(",") if w]
    results = []
    for size in [int(x) for x in args.sizes.split(",")]:
        doses = int(size * args.dose_share)
        data = dataset(size, doses, tuple(args.provinces.split(",")), rows_per_file=50_000)
        floor, _ = floor_seconds(data)
        if args.registry != "whole":
            partitioned(data, size, floor, slices, worker_counts)
        if args.registry == "partitioned":
            continue
        for workers in [None, *worker_counts]:
            with tempfile.TemporaryDirectory() as tmp:
                # cold: a new output folder, the registry index is built (and kept in OUT/cache);
                # warm: the next night on the same registry, every province recomputed (--force).
                for state in ("cold", "warm"):
                    seconds, peak, summary, _ = run_once(data, Path(tmp), workers, None, slices[0])
                    rows = sum(p["rows"] for p in summary["provinces"].values())
                    label = f"{size:,} people, {rows:,} dose rows" + (f", Dask {workers} worker(s)" if workers else "")
                    index = ("registry index built and written to OUT/cache" if state == "cold"
                             else "registry index prepared by the run before, loaded from OUT/cache")
                    print(f"\n== {label}, {state}: {index}")
                    print(stage_table(summary, size, rows))
                    print(f"whole run {seconds:.1f} s, peak memory {peak:.2f} GB (run, its Prefect server and Dask "
                          f"workers together); floor {floor:.1f} s; ratio run/floor {seconds / floor:.1f}")
                    results.append((size, rows, workers, state, seconds, peak))
    for state in ("cold", "warm"):
        base = [r for r in results if r[2] is None and r[3] == state]
        if len(base) > 1:
            (s0, _, _, _, t0, _), (s1, _, _, _, t1, _) = base[0], base[-1]
            print(f"\ngrowth {s0:,} -> {s1:,} people ({s1 / s0:.1f}x), {state}: run time x{t1 / t0:.2f}")


if __name__ == "__main__":
    main()
