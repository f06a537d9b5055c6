"""The nightly reconciliation as a Prefect 3 flow.

One task per province links its exports (stage 1), one task checks doses
across all provinces (stage 2; on a cluster, when the doses take several
buckets of people, one task per province and per bucket), one task per
province validates and writes its outputs (stage 3). Tasks pass paths and small summaries, never data: a
Dask worker reads the registry and the stage files from storage itself.
A province whose inputs, registry, rules and review decisions are unchanged
since its last successful run is reused, not recomputed (`force=True`
recomputes).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.futures import PrefectFuture
from prefect.task_runners import ThreadPoolTaskRunner

from flows.reconcile import (
    ProvinceRun,
    StageTimer,
    check_dose_bucket,
    dose_buckets,
    dose_checks,
    dose_spill,
    finish_fingerprint,
    finish_province,
    flagged_text,
    ignored_entries,
    list_provinces,
    prepare_province,
    province_fingerprint,
    province_outputs,
    rules_for,
    run_inputs_digest,
    spill_doses,
    stored_run,
    work_dir,
    write_dose_codes,
)
from pipeline.doses import FLAG_NAMES
from pipeline.link.index import registry_people
from pipeline.link.prepared import wait_for_writes
from pipeline.link.store import RegistryStore, is_store
from pipeline.output import clean_leftovers, write_json
from pipeline.rules import ALL_CODES, DEFAULT_RULES_DIR, STATUSES
from pipeline.state import StateStore, default_url
from pipeline.validate import write_index

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
log = logging.getLogger("vaxrecon")
TRANSIENT_NAMES = {"KilledWorker", "CommClosedError", "StreamClosedError"}
T = TypeVar("T")


def is_transient(exc: BaseException) -> bool:
    """Errors a retry can cure: I/O, memory pressure, a lost Dask worker. Bad data is not retried."""
    return isinstance(exc, OSError | MemoryError | TimeoutError) or type(exc).__name__ in TRANSIENT_NAMES


def _retry_when_transient(task: Any, task_run: Any, state: Any) -> bool:
    try:
        exc = state.result(raise_on_failure=False)
    except Exception as err:  # the state could not give its exception back: retry, as Prefect would
        exc = err
    return not isinstance(exc, BaseException) or is_transient(exc)


@task(name="link-province", task_run_name="link-{code}", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=5,
      retry_condition_fn=_retry_when_transient)
def link_province(code: str, exports: Path, out: Path, rules_dir: Path, registry: Path, common: str,
                  run_date: dt.date, decisions: dict, validate: bool, fingerprint: str,
                  slice_persons: int | None = None) -> ProvinceRun:
    """Ingest, normalise and link one province (stage 1)."""
    return prepare_province(code, exports, out, rules_dir, registry, common, run_date, decisions, validate,
                            fingerprint, slice_persons)


def _timed(step: Callable[..., T], *args: Any) -> tuple[T, float, float | None]:
    """`step(*args)`, its seconds and this process's peak memory during it."""
    seconds: dict[str, float] = {}
    peaks: dict[str, float] = {}
    with StageTimer(seconds, "step", peaks):
        value = step(*args)
    return value, seconds["step"], peaks.get("step")


@task(name="check-doses", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=5,
      retry_condition_fn=_retry_when_transient)
def check_doses(out: Path, codes: list[str], rules_dir: Path, run_date: dt.date,
                bucket_rows: int | None = None) -> tuple[dict[str, str], dict]:
    """Dose-level codes across every linked province (stage 2): each province's digest, and the
    stage's seconds, peak memory, rows and buckets (for run.json)."""
    checked, seconds, peak = _timed(dose_checks, out, codes, rules_dir, run_date, bucket_rows)
    return checked.digests, {"seconds": round(seconds, 3), "peak_gb": peak, "rows": checked.rows,
                             "buckets": checked.buckets, "provinces": len(codes)}


@task(name="spill-doses", task_run_name="spill-doses-{code}", cache_policy=NO_CACHE, retries=1,
      retry_delay_seconds=5, retry_condition_fn=_retry_when_transient)
def spill_doses_task(out: Path, code: str, prov: int, buckets: int, bucket_rows: int | None,
                     spill: Path) -> tuple[int, float, float | None]:
    """Dose checks on a cluster, step 1: one province's rows spilled by bucket of people."""
    return _timed(spill_doses, out, code, prov, buckets, bucket_rows, spill)


@task(name="check-dose-bucket", task_run_name="check-doses-{bucket}", cache_policy=NO_CACHE, retries=1,
      retry_delay_seconds=5, retry_condition_fn=_retry_when_transient)
def check_bucket_task(spill: Path, provinces: int, bucket: int, buckets: int, rules_dir: Path,
                      run_date: dt.date) -> tuple[tuple[int, dict[str, int]], float, float | None]:
    """Dose checks on a cluster, step 2: one bucket of people, every province's rows of it."""
    return _timed(check_dose_bucket, spill, provinces, bucket, buckets, rules_dir, run_date)


@task(name="write-dose-codes", task_run_name="dose-codes-{code}", cache_policy=NO_CACHE, retries=1,
      retry_delay_seconds=5, retry_condition_fn=_retry_when_transient)
def dose_codes_task(out: Path, code: str, prov: int, rows: int, spill: Path,
                    buckets: int) -> tuple[str, float, float | None]:
    """Dose checks on a cluster, step 3: one province's flags gathered from every bucket and written."""
    return _timed(write_dose_codes, out, code, prov, rows, spill, buckets)


def _on_cluster() -> bool:
    """Whether this flow run's tasks go to a cluster (Dask) rather than run one at a time here."""
    ctx = FlowRunContext.get()
    return ctx is not None and not isinstance(ctx.task_runner, ThreadPoolTaskRunner)


def run_dose_checks(out: Path, codes: list[str], rules_dir: Path, run_date: dt.date,
                    bucket_rows: int | None) -> tuple[dict[str, str], dict[str, Any]]:
    """Stage 2: each province's dose-code digest, and the stage's figures for run.json.

    One task in this process (`check_doses`), unless the flow runs on a cluster and the rows take
    more than one bucket: then one task per province spills its rows, one per bucket checks them,
    and one per province gathers and writes its codes, on whichever workers are free. The codes
    are the same either way (`pipeline.doses.flag_in_buckets`)."""
    buckets, sizes = dose_buckets(out, codes, bucket_rows) if codes and _on_cluster() else (1, {})
    if buckets == 1:
        digests, stage = check_doses.submit(out, codes, rules_dir, run_date, bucket_rows).result()
        return digests, {**stage, "tasks": 1}
    tasks = 2 * len(codes) + buckets
    t0 = time.perf_counter()
    spill = dose_spill(out)
    try:
        spilled = [f.result() for f in [spill_doses_task.submit(out, code, p, buckets, bucket_rows, spill)
                                        for p, code in enumerate(codes)]]
        if [rows for rows, _, _ in spilled] != [sizes[c] for c in codes]:
            raise RuntimeError("dose checks: a province's linked rows changed while they were spilled")
        checked = [f.result() for f in [check_bucket_task.submit(spill, len(codes), b, buckets, rules_dir, run_date)
                                        for b in range(buckets)]]
        written = [f.result() for f in [dose_codes_task.submit(out, code, p, sizes[code], spill, buckets)
                                        for p, code in enumerate(codes)]]
    finally:
        shutil.rmtree(spill, ignore_errors=True)
    flagged = {k: sum(counts[k] for (_, counts), _, _ in checked) for k in FLAG_NAMES}
    rows = sum(sizes.values())
    log.info("dose checks: %d rows of %d provinces, in %d buckets of persons on the cluster (%d tasks); "
             "rows flagged: %s", rows, len(codes), buckets, tasks, flagged_text(flagged))
    peaks = [peak for _, _, peak in [*spilled, *checked, *written] if peak is not None]
    return {code: digest for code, (digest, _, _) in zip(codes, written, strict=True)}, {
        "seconds": round(time.perf_counter() - t0, 3), "peak_gb": max(peaks) if peaks else None, "rows": rows,
        "buckets": buckets, "provinces": len(codes), "tasks": tasks}


@task(name="write-province", task_run_name="write-{prepared.code}", cache_policy=NO_CACHE, retries=1,
      retry_delay_seconds=5, retry_condition_fn=_retry_when_transient)
def write_province(prepared: ProvinceRun, out: Path, rules_dir: Path, registry: Path, common: str,
                   run_date: dt.date, validate: bool, fingerprint: str, run_id: int) -> ProvinceRun:
    """Validate and write one province's corrected records, report and review queue (stage 3)."""
    return finish_province(prepared, out, rules_dir, registry, common, run_date, validate, fingerprint, run_id)


def _gather(futures: dict[str, PrefectFuture], runs: dict[str, ProvinceRun]) -> None:
    """Wait for every province; a failure is recorded on that province and stops no other."""
    for code, fut in futures.items():
        value = fut.result(raise_on_failure=False)
        if isinstance(value, ProvinceRun):
            runs[code] = value
        else:
            old = runs.get(code, ProvinceRun(code))
            old.error = f"{type(value).__name__}: {value}"
            runs[code] = old
            log.error("province %s failed: %s", code, old.error)


@flow(name="nightly-reconciliation", task_runner=ThreadPoolTaskRunner(max_workers=1),  # type: ignore[arg-type]
      validate_parameters=False)
def nightly_reconciliation(registry: str | Path, exports: str | Path, out: str | Path,
                           provinces: list[str] | None = None, run_date: dt.date | str | None = None,
                           rules: str | Path | None = None, state: str | None = None, validate: bool = True,
                           force: bool = False, slice_persons: int | None = None,
                           dose_bucket_rows: int | None = None) -> dict[str, Any]:
    """Reconcile every province folder of `exports` against `registry`, writing under `out`.

    A province's export persons are linked `slice_persons` at a time (default
    `DEFAULT_SLICE_PERSONS`): what linking holds at once is bounded, the results do not change.
    The doses of every province are checked about `dose_bucket_rows` rows at a time (default
    `DEFAULT_DOSE_BUCKET_ROWS`), a bucket of people after another (on a Dask cluster, the buckets
    side by side on its workers): the same bound, the same results.

    Returns the run summary (also written to OUT/run.json); its `exit_code` is 0 when every province
    completed and every file was read, 3 when a province failed or a file was quarantined.
    """
    started = dt.datetime.now(dt.UTC)
    registry, exports, out = Path(registry).resolve(), Path(exports).resolve(), Path(out).resolve()
    run_date = dt.date.fromisoformat(run_date) if isinstance(run_date, str) else run_date or dt.date.today()
    rules_dir = Path(rules).resolve() if rules else DEFAULT_RULES_DIR
    rules_for(rules_dir)  # a bad rules folder fails here, before any work, with every problem listed
    people = registry_people(registry)   # an unusable registry fails the run here (exit 1)
    if is_store(registry):
        RegistryStore.open(registry, rules_for(rules_dir))   # so does a partitioned one built for other rules or code
    if (stale := clean_leftovers(out)):
        log.warning("removed %d half-written files left by an interrupted run", stale)
    store = StateStore(state or default_url(out))
    common = run_inputs_digest(registry, rules_dir, validate)
    run_id = store.start_run(started.isoformat(timespec="seconds"), run_date, people)
    codes = list_provinces(exports, provinces)
    log.info("run %d: %d provinces, registry of %d people, run date %s", run_id, len(codes), people, run_date)
    ignored = ignored_entries(exports)
    for name in ignored:
        log.warning("%s in the exports folder is not a province folder (named by its 2-digit code): not read", name)
    unknown = [c for c in codes if c not in rules_for(rules_dir).provinces]
    for code in unknown:
        log.warning("folder %s is not a province code of rules/provinces.csv: read as province %s", code, code)

    runs: dict[str, ProvinceRun] = {}
    futures: dict[str, PrefectFuture] = {}
    for code in codes:
        decisions = store.decisions(code)
        fp = province_fingerprint(code, exports, common, run_date, decisions)
        kept = None if force else stored_run(work_dir(out, code) / "prepare.json", fp)
        if kept is not None and (work_dir(out, code) / "linked.parquet").exists():
            kept.reused, kept.stage_seconds = "linking", {}
            runs[code] = kept
            log.info("province %s: inputs unchanged, linking reused", code)
        else:
            futures[code] = link_province.submit(code, exports, out, rules_dir, registry, common, run_date,
                                                 decisions, validate, fp, slice_persons)
    _gather(futures, runs)

    linked = [c for c in codes if runs[c].error is None]
    dose_digests, dose_stage = run_dose_checks(out, linked, rules_dir, run_date, dose_bucket_rows)
    futures = {}
    for code in linked:
        prepared = runs[code]
        fp2 = finish_fingerprint(prepared, dose_digests[code])
        done = None if force else stored_run(work_dir(out, code) / "finish.json", fp2)
        if done is not None and prepared.reused and all(p.exists() for p in province_outputs(out, code, validate)):
            done.reused, done.reused_from, done.stage_seconds = "all", str(done.computed_in), {}
            runs[code] = done
            log.info("province %s: nothing changed, outputs of run %s reused", code, done.computed_in)
        else:
            futures[code] = write_province.submit(prepared, out, rules_dir, registry, common, run_date, validate,
                                                  fp2, run_id)
    _gather(futures, runs)
    wait_for_writes()   # a registry index prepared by this run is on disk for the next one
    return _finish(store, run_id, started, run_date, registry, people, out, [runs[c] for c in codes], validate,
                   dose_stage, ignored)


def _finish(store: StateStore, run_id: int, started: dt.datetime, run_date: dt.date, registry: Path, people: int,
            out: Path, runs: list[ProvinceRun], validate: bool, dose_stage: dict | None = None,
            ignored: list[str] | None = None) -> dict[str, Any]:
    """run.json, run history, validation index and the run's artifacts. `ignored`: entries of the
    exports folder that are no province folder (listed in run.json, never read)."""
    bad = any(r.error or r.files_quarantined for r in runs)
    exit_code = 3 if bad else 0
    summary: dict[str, Any] = {
        "run_id": run_id,
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "run_date": run_date.isoformat(),
        "registry": {"path": str(registry), "people": people},
        "exit_code": exit_code,
        "provinces": {r.code: r.summary() for r in runs},
        "dose_checks": dose_stage or {},
        "not_read": ignored or [],
    }
    if validate:
        summary["validation"] = str(write_index(out / "validation", summary["provinces"]).relative_to(out))
    store.finish_run(run_id, summary["finished_at"], exit_code, summary["provinces"])
    write_json(summary, out / "run.json")
    publish_artifacts(summary, out)
    return summary


def publish_artifacts(summary: dict[str, Any], out: Path) -> None:
    """A table (province × statuses and codes) and a markdown summary linking reports and validation pages."""
    table = []
    for code, p in summary["provinces"].items():
        row: dict[str, Any] = {"Tỉnh": code, "Trạng thái": p["status"], "Số dòng": p["rows"]}
        row |= {s: p["rows_by_status"].get(s, 0) for s in STATUSES}
        row |= {c: p["rows_by_code"].get(c, 0) for c in ALL_CODES}
        table.append(row)
    create_table_artifact(table=table, key="vaxrecon-provinces",
                          description=f"Kết quả đối chiếu ngày {summary['run_date']} theo tỉnh")
    create_markdown_artifact(markdown=summary_markdown(summary, out), key="vaxrecon-summary",
                             description="Tóm tắt lần chạy đối chiếu")


def summary_markdown(summary: dict[str, Any], out: Path) -> str:
    lines = [f"# Đối chiếu tiêm chủng – ngày {summary['run_date']}", "",
             f"CSDL dân cư: {summary['registry']['people']:,} người. Mã thoát: {summary['exit_code']}.", "",
             "| Tỉnh | Trạng thái | Số dòng | Báo cáo | Cần xem xét | Kiểm định |", "|---|---|---|---|---|---|"]
    labels = {"ok": "hoàn tất", "reused": "không đổi, dùng lại kết quả", "failed": "LỖI"}
    for code, p in summary["provinces"].items():
        report = (out / "reports" / code / f"bao_cao_{code}.xlsx").as_uri()
        review = (out / "review" / f"{code}.xlsx").as_uri()
        pages = (out / "validation" / code / "output" / "index.html").as_uri()
        state = labels[p["status"]] + (f": {p['error']}" if p["error"] else "")
        lines.append(f"| {code} | {state} | {p['rows']:,} | [báo cáo]({report}) | [{p['review_cases']} ca]({review}) "
                     f"| [trang kiểm định]({pages}) |")
    quarantined = [q for p in summary["provinces"].values() for q in p["files_quarantined"]]
    if quarantined:
        lines += ["", f"## Tệp không đọc được ({len(quarantined)})", ""]
        lines += [f"- `{q['file']}`: {q['reason']}" for q in quarantined]
    return "\n".join(lines) + "\n"


def with_runner(workers: int | None = None, dask_address: str | None = None) -> Any:
    """The flow on a Dask cluster (an address, or a local cluster of `workers` processes), else sequential."""
    if not workers and not dask_address:
        return nightly_reconciliation
    from prefect_dask import DaskTaskRunner

    runner = (DaskTaskRunner(address=dask_address) if dask_address else
              DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True,
                                             "dashboard_address": None, "env": worker_env(workers or 1)}))
    return nightly_reconciliation.with_options(task_runner=runner)  # type: ignore[arg-type]


def worker_env(workers: int) -> dict[str, str]:
    """Environment of each of `workers` local Dask worker processes: its share of this machine's
    cores for Arrow's thread pool (reading Parquet, compressing, casting). Dask starts a worker with
    OMP_NUM_THREADS=1, which Arrow takes as its thread count, so a worker alone on two cores would
    leave one idle."""
    return {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // max(1, workers)))}
