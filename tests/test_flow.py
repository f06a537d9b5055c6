"""The nightly Prefect flow: incremental runs, failure isolation, retries, artifacts, Dask, crash safety."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from flows import reconcile as stages
from flows.nightly import is_transient, nightly_reconciliation
from pipeline.state import StateStore, default_url

from .conftest import RUN_DATE, SAMPLE


def _exports(tmp_path: Path, codes: tuple[str, ...] = ("66", "79")) -> Path:
    root = tmp_path / "exports"
    for code in codes:
        shutil.copytree(SAMPLE / "exports" / code, root / code)
    return root


def _run(exports: Path, out: Path, **kw):
    kw.setdefault("validate", False)
    return nightly_reconciliation(SAMPLE / "registry.parquet", exports, out, run_date=RUN_DATE, **kw)


def _same_outputs(a: Path, b: Path, codes) -> None:
    for code in codes:
        assert pq.read_table(a / "corrected" / f"{code}.parquet").equals(pq.read_table(b / "corrected" / f"{code}.parquet"))
        for csv in sorted((a / "reports" / code).glob("*.csv")):
            assert csv.read_bytes() == (b / "reports" / code / csv.name).read_bytes(), csv.name
        sheets_a = pd.read_excel(a / "review" / f"{code}.xlsx", sheet_name=None, dtype=str)
        sheets_b = pd.read_excel(b / "review" / f"{code}.xlsx", sheet_name=None, dtype=str)
        assert sheets_a.keys() == sheets_b.keys()
        assert all(sheets_a[k].equals(sheets_b[k]) for k in sheets_a)


def test_unchanged_provinces_are_reused_and_a_changed_one_recomputed(tmp_path):
    exports, out = _exports(tmp_path), tmp_path / "out"
    first = _run(exports, out)
    assert {c: p["status"] for c, p in first["provinces"].items()} == {"66": "ok", "79": "ok"}
    before = {c: (out / "corrected" / f"{c}.parquet").stat().st_mtime_ns for c in ("66", "79")}

    second = _run(exports, out)
    assert {c: p["status"] for c, p in second["provinces"].items()} == {"66": "reused", "79": "reused"}
    assert second["provinces"]["66"]["reused_from"] == str(first["run_id"])
    assert {c: (out / "corrected" / f"{c}.parquet").stat().st_mtime_ns for c in ("66", "79")} == before

    # Same timestamps, different content: one row of one 79 file changes; 66 stays reused.
    target = sorted((exports / "79").glob("*.csv"))[0]
    stat = target.stat()
    data = target.read_bytes()
    target.write_bytes(data.replace(b"1", b"7", 1))
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    third = _run(exports, out)
    assert third["provinces"]["66"]["status"] == "reused"
    assert third["provinces"]["79"]["status"] == "ok" and third["provinces"]["79"]["reused"] is None

    forced = _run(exports, out, force=True)
    assert {c: p["status"] for c, p in forced["provinces"].items()} == {"66": "ok", "79": "ok"}
    history = StateStore(default_url(out)).history()
    assert [h["status"] for h in history if h["province"] == "66"] == ["ok", "reused", "reused", "ok"]


def test_a_review_decision_makes_the_province_recompute(tmp_path):
    from pipeline.state import Decision

    exports, out = _exports(tmp_path, ("66",)), tmp_path / "out"
    _run(exports, out)
    case = pd.read_parquet(out / "corrected" / "66.parquet")["case_key"].iloc[0]
    StateStore(default_url(out)).add_decisions([Decision("66", case, "none", (), "officer", "2026-11-26", "66.xlsx")])
    again = _run(exports, out)
    assert again["provinces"]["66"]["status"] == "ok"
    assert again["provinces"]["66"]["review_decisions"]["applied"] == 1


def test_a_registry_change_recomputes_every_province(tmp_path):
    exports, out = _exports(tmp_path, ("66",)), tmp_path / "out"
    registry = tmp_path / "registry.parquet"
    shutil.copyfile(SAMPLE / "registry.parquet", registry)
    nightly_reconciliation(registry, exports, out, run_date=RUN_DATE, validate=False)
    table = pq.read_table(registry)
    pq.write_table(table.slice(0, table.num_rows - 1), registry)
    again = nightly_reconciliation(registry, exports, out, run_date=RUN_DATE, validate=False)
    assert again["provinces"]["66"]["status"] == "ok" and again["registry"]["people"] == table.num_rows - 1


def test_a_crashing_province_fails_alone_and_bad_data_is_not_retried(tmp_path, monkeypatch):
    exports, out = _exports(tmp_path), tmp_path / "out"
    calls = {"79": 0, "66": 0}
    real = stages.normalise

    def broken(raw, *a, **kw):
        code = raw["source_file"].iloc[0][:2]
        calls[code] += 1
        if code == "79":
            raise ValueError("simulated bug in normalisation")
        return real(raw, *a, **kw)

    monkeypatch.setattr(stages, "normalise", broken)
    result = _run(exports, out)
    assert result["exit_code"] == 3
    assert result["provinces"]["79"]["status"] == "failed"
    assert "simulated bug" in result["provinces"]["79"]["error"]
    assert calls["79"] == 1, "a ValueError is not transient: no retry"
    assert result["provinces"]["66"]["status"] == "ok"
    assert (out / "corrected" / "66.parquet").exists() and not (out / "corrected" / "79.parquet").exists()
    assert json.loads((out / "run.json").read_text(encoding="utf-8"))["provinces"]["79"]["status"] == "failed"


def test_a_reader_crashing_on_one_file_quarantines_that_file_not_the_province(tmp_path, monkeypatch):
    """A fault of ours in a reader (not a refused file) costs its file, named with the error, and
    the province's other files are read, linked and written."""
    exports, out = _exports(tmp_path, ("79",)), tmp_path / "out"
    real = stages.read_export
    victim = "diem_tiem_03_xlsx_utf-8.xlsx"

    def flaky(path, rules):
        if path.name == victim:
            raise KeyError("simulated reader bug")
        return real(path, rules)

    monkeypatch.setattr(stages, "read_export", flaky)
    result = _run(exports, out)
    entry = result["provinces"]["79"]
    assert result["exit_code"] == 3 and entry["status"] == "ok"
    assert entry["files_quarantined"] == [{"file": f"79/{victim}",
                                           "reason": "unexpected error while reading (KeyError: 'simulated reader bug')"}]
    assert (out / "quarantine" / "79" / victim).exists()
    corrected = pq.read_table(out / "corrected" / "79.parquet").to_pandas()
    assert len(corrected) == entry["rows"] > 0 and len(entry["files_read"]) == 8
    assert sorted(set(corrected["source_file"])) == entry["files_read"] and f"79/{victim}" not in entry["files_read"]


def test_a_transient_error_is_retried(tmp_path, monkeypatch):
    exports, out = _exports(tmp_path, ("66",)), tmp_path / "out"
    calls = []
    real = stages.normalise

    def flaky(raw, *a, **kw):
        calls.append(1)
        if len(calls) == 1:
            raise OSError("simulated: network share went away")
        return real(raw, *a, **kw)

    monkeypatch.setattr(stages, "normalise", flaky)
    result = _run(exports, out)
    assert len(calls) == 2 and result["provinces"]["66"]["status"] == "ok" and result["exit_code"] == 0


def test_each_stage_logs_its_progress_with_counts(tmp_path, caplog):
    import logging

    exports, out = _exports(tmp_path), tmp_path / "out"
    with caplog.at_level(logging.INFO, logger="vaxrecon"):
        summary = _run(exports, out)
    rows = {c: p["rows"] for c, p in summary["provinces"].items()}
    assert all(n > 0 for n in rows.values())
    for code, n in rows.items():
        assert f"province {code}: {n} rows read from" in caplog.text                  # stage 1
        review = summary["provinces"][code]["review_cases"]
        written = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"province {code}: {n} rows validated")]
        assert len(written) == 1 and f"; {review} review cases;" in written[0]       # stage 3
    assert f"dose checks: {sum(rows.values())} rows of 2 provinces; rows flagged: DOSE_DUPLICATE" in caplog.text


def test_transient_errors_are_told_from_bad_data():
    assert is_transient(OSError("disk")) and is_transient(MemoryError()) and is_transient(TimeoutError())
    assert not is_transient(ValueError("bad value")) and not is_transient(RuntimeError("expectations failed"))


def test_the_run_publishes_a_table_and_a_markdown_artifact(tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    exports, out = _exports(tmp_path, ("66",)), tmp_path / "out"
    state = _run(exports, out, return_state=True)
    assert state.is_completed()
    # This run's artifacts only: other tests of the session publish under the same keys, and the
    # server's default order (by random UUID) says nothing about which one is the latest.
    this_run = ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])
    with get_client(sync_client=True) as client:
        found = {}
        for key in ("vaxrecon-provinces", "vaxrecon-summary"):
            arts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]), flow_run_id=this_run))
            assert len(arts) == 1, (key, len(arts))
            found[key] = arts[0]
    table, md = found["vaxrecon-provinces"], found["vaxrecon-summary"]
    rows = json.loads(table.data) if isinstance(table.data, str) else table.data
    assert any(r["Tỉnh"] == "66" and r["Số dòng"] > 0 for r in rows)
    assert "bao_cao_66.xlsx" in md.data and "Tỉnh" in md.data


def test_dask_local_cluster_gives_the_same_outputs_as_a_sequential_run(tmp_path):
    from flows.nightly import with_runner

    exports = _exports(tmp_path)
    seq, par = tmp_path / "seq", tmp_path / "par"
    _run(exports, seq)
    # the doses checked some 50 rows at a time: a task per province and per bucket on the workers
    summary = with_runner(workers=2)(SAMPLE / "registry.parquet", exports, par, run_date=RUN_DATE, validate=False,
                                     dose_bucket_rows=50)
    assert summary["exit_code"] == 0
    stage = json.loads((par / "run.json").read_text(encoding="utf-8"))["dose_checks"]
    assert stage["buckets"] > 1 and stage["tasks"] == 2 * 2 + stage["buckets"], stage
    assert stage["rows"] == sum(pq.ParquetFile(par / "corrected" / f"{c}.parquet").metadata.num_rows for c in ("66", "79"))
    assert list((par / "work").glob(".dose-buckets-*")) == []   # the spilled rows are removed
    _same_outputs(seq, par, ("66", "79"))


def _arrow_threads() -> int:
    import pyarrow as pa

    return pa.cpu_count()


def _arrow_pool() -> str:
    import pyarrow as pa

    return str(pa.default_memory_pool().backend_name)


def test_local_dask_workers_share_the_cores_for_arrow():
    # Dask starts a worker with OMP_NUM_THREADS=1, which Arrow takes as its thread count: a worker
    # alone on this machine would read and compress on one core. `--workers N` gives each its share.
    import os

    from distributed import Client, LocalCluster

    from flows.nightly import with_runner

    cores = os.cpu_count() or 1
    for workers in (1, 2 * cores):
        kwargs = with_runner(workers=workers).task_runner.cluster_kwargs
        assert kwargs["env"] == {"OMP_NUM_THREADS": str(max(1, cores // workers))}
    with LocalCluster(**with_runner(workers=1).task_runner.cluster_kwargs) as cluster, Client(cluster) as client:
        assert list(client.run(_arrow_threads).values()) == [cores]
        # and, having imported vaxrecon to run its tasks, allocates from the pool that hands freed
        # memory back (pipeline.memory.use_returning_memory_pool), as the command does
        expected = _arrow_pool() if os.environ.get("ARROW_DEFAULT_MEMORY_POOL") else "jemalloc"
        assert list(client.run(_arrow_pool).values()) == [expected]


def test_provinces_run_one_at_a_time_in_a_process_even_on_several_threads(tmp_path, monkeypatch):
    # A Dask worker started with several threads (`dask worker` takes one per core) runs several
    # tasks at once. Each province's stages must still have the process to themselves, and the
    # registry index must be loaded once, not once per thread.
    import threading

    from prefect.task_runners import ThreadPoolTaskRunner

    guard, active, most, loads = threading.Lock(), [0], [0], []

    def alone(real):
        def inner(*args, **kwargs):
            with guard:
                active[0] += 1
                most[0] = max(most[0], active[0])
            try:
                time.sleep(0.3)   # wide enough for a second thread to come in if it could
                return real(*args, **kwargs)
            finally:
                with guard:
                    active[0] -= 1
        return inner

    def loading(*args, **kwargs):
        loads.append(args[0])
        time.sleep(0.3)
        return real_index(*args, **kwargs)

    real_index = stages.prepared_index
    monkeypatch.setattr(stages, "link", alone(stages.link))
    monkeypatch.setattr(stages, "write_report", alone(stages.write_report))
    monkeypatch.setattr(stages, "prepared_index", loading)
    stages._index_for.cache_clear()   # earlier tests may have loaded this registry already
    exports = _exports(tmp_path)
    threaded = nightly_reconciliation.with_options(task_runner=ThreadPoolTaskRunner(max_workers=2))
    summary = threaded(SAMPLE / "registry.parquet", exports, tmp_path / "par", run_date=RUN_DATE, validate=False)
    assert summary["exit_code"] == 0
    assert most[0] == 1, "two provinces were worked on at once in one process"
    assert len(loads) == 1, f"the registry index was loaded {len(loads)} times"
    _run(exports, tmp_path / "seq")
    _same_outputs(tmp_path / "seq", tmp_path / "par", ("66", "79"))


def test_a_second_caller_waits_for_the_registry_index_being_loaded(tmp_path, monkeypatch):
    # A province that fails before its index is ready leaves the load running in its thread; the
    # next province's loader must wait for it, not load a second copy beside it.
    from concurrent.futures import ThreadPoolExecutor

    from pipeline.rules import DEFAULT_RULES_DIR

    loads = []

    def loading(*args, **kwargs):
        loads.append(args[0])
        time.sleep(0.5)
        return real_index(*args, **kwargs)

    real_index = stages.prepared_index
    monkeypatch.setattr(stages, "prepared_index", loading)
    stages._index_for.cache_clear()
    call = (SAMPLE / "registry.parquet", DEFAULT_RULES_DIR, "digest", tmp_path / "cache")
    with ThreadPoolExecutor(2) as pool:
        first, second = pool.submit(stages.index_for, *call), pool.submit(stages.index_for, *call)
        assert first.result() is second.result()
    assert len(loads) == 1
    stages._index_for.cache_clear()   # its "digest" is not a real run's


def _cli(out: Path, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}  # its own temporary server, as in production
    cmd = [sys.executable, "-m", "pipeline.cli", "run", "--registry", str(SAMPLE / "registry.parquet"),
           "--exports", str(SAMPLE / "exports"), "--out", str(out), "--run-date", RUN_DATE.isoformat()]
    with open(log, "ab") as sink:
        return subprocess.Popen(cmd, env=env, start_new_session=True, stdout=sink, stderr=subprocess.STDOUT)


def test_a_run_killed_part_way_then_rerun_ends_identical_to_an_uninterrupted_run(tmp_path, sample_run):
    _, reference = sample_run
    out, log = tmp_path / "out", tmp_path / "run.log"
    t0 = time.time()
    proc = _cli(out, log)
    while not (out / "corrected" / "01.parquet").exists():  # province 01 written, 66 and 79 not yet
        assert proc.poll() is None, log.read_text(encoding="utf-8")
        assert time.time() < t0 + 240
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the run and its Prefect server, mid-run
    proc.wait()
    killed_after = time.time() - t0
    assert not (out / "run.json").exists()
    again = _cli(out, log)
    assert again.wait(timeout=240) == 3, log.read_text(encoding="utf-8")  # the sample's two unreadable files
    print(f"killed after {killed_after:.1f} s; rerun finished {time.time() - t0:.1f} s after the first start")
    _same_outputs(reference, out, ("01", "66", "79"))
    leftovers = [p for p in out.rglob(".*") if p.name.endswith(".tmp") or p.name.startswith((".pages-", ".dose-buckets-"))]
    assert leftovers == []
    summary = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert {c: p["rows"] for c, p in summary["provinces"].items()} == {
        c: p["rows"] for c, p in json.loads((reference / "run.json").read_text(encoding="utf-8"))["provinces"].items()}


def test_the_deployment_declares_the_nightly_schedule_and_its_config():
    from flows.deploy import load_config, load_deployment

    spec = load_deployment()
    assert (spec.cron, spec.timezone) == ("0 1 * * *", "Asia/Ho_Chi_Minh")
    config = load_config(spec.parameters["config"])
    assert Path(config["registry"]).is_absolute() and config["validate"] is True


def test_a_bad_config_is_refused_with_every_problem(tmp_path):
    from flows.deploy import DeploymentError, load_config

    bad = tmp_path / "bad.yaml"
    bad.write_text("registry: r.parquet\nprovinces: [01, 79]\nworkrs: 2\n", encoding="utf-8")
    with pytest.raises(DeploymentError, match=r"unknown key 'workrs'.*'exports' is required.*'out' is required"):
        load_config(bad)
    bad.write_text("registry: r\nexports: e\nout: o\nslice_persons: 0\nworkers: two\ndose_bucket_rows: -5\n",
                   encoding="utf-8")
    with pytest.raises(DeploymentError, match=r"'workers' must be a whole number.*'two'.*'slice_persons' must be"
                                              r".*'dose_bucket_rows' must be.*-5"):
        load_config(bad)
    bad.write_text("registry: r\nexports: e\nout: o\nprovinces: [01, 79]\nslice_persons: 100000\n"
                   "dose_bucket_rows: 200000\n", encoding="utf-8")
    good = load_config(bad)
    assert (good["provinces"], good["slice_persons"], good["dose_bucket_rows"]) == (["01", "79"], 100000, 200000)


def test_serve_check_reads_the_deployment(capsys):
    from pipeline.cli import main

    assert main(["serve", "--check"]) == 0
