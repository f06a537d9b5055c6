"""The reconciliation run: ingest, normalise, link, dose checks, write.

`run_reconciliation` is what `vaxrecon run` and the nightly flow execute.
A province that fails is reported with its reason; the others complete.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.codes import code_lists, merge_code_lists
from pipeline.doses import dose_flags
from pipeline.ingest import IngestError, read_export
from pipeline.link.index import RegistryIndex, load_index
from pipeline.output import quarantine, write_json, write_parquet
from pipeline.reconcile import apply_decisions, assemble, link, normalise, to_arrow
from pipeline.report import write_report
from pipeline.review import write_review
from pipeline.rules import ALL_CODES, STATUSES, Rules, load_rules
from pipeline.state import Decision, StateStore, default_url
from pipeline.validate import Validator, codes_frame, input_frame, load_specs, output_frame

log = logging.getLogger("vaxrecon")
EXPORT_SUFFIXES = {".csv", ".txt", ".xlsx", ".xlsm", ".parquet", ".xls"}


@dataclass
class ProvinceRun:
    """What happened to one province in a run (aggregates only: no personal data)."""

    code: str
    files_read: list[str] = field(default_factory=list)
    files_quarantined: list[dict[str, str]] = field(default_factory=list)
    rows: int = 0
    rows_by_status: dict[str, int] = field(default_factory=dict)
    rows_by_code: dict[str, int] = field(default_factory=dict)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    frame: pd.DataFrame | None = None
    person_codes: pa.ListArray | None = None
    validation_failures: list[str] = field(default_factory=list)
    review_cases: int = 0
    decisions: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "files_read": self.files_read, "files_quarantined": self.files_quarantined,
            "rows": self.rows, "rows_by_status": self.rows_by_status, "rows_by_code": self.rows_by_code,
            "stage_seconds": {k: round(v, 3) for k, v in self.stage_seconds.items()},
            "status": "failed" if self.error else "ok", "error": self.error,
            "validation_failures": self.validation_failures, "review_cases": self.review_cases,
            "review_decisions": self.decisions,
        }


@dataclass
class RunResult:
    provinces: dict[str, ProvinceRun]
    summary: dict[str, Any]

    @property
    def exit_code(self) -> int:
        bad = any(p.error or p.files_quarantined for p in self.provinces.values())
        return 3 if bad else 0


class _Timer:
    def __init__(self, sink: dict[str, float], name: str) -> None:
        self.sink, self.name = sink, name

    def __enter__(self) -> None:
        self.t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.sink[self.name] = self.sink.get(self.name, 0.0) + time.perf_counter() - self.t0


def list_provinces(exports: Path, only: list[str] | None) -> list[str]:
    found = sorted(p.name for p in exports.iterdir() if p.is_dir() and p.name.isdigit() and len(p.name) == 2)
    return [p for p in found if not only or p in only]


def export_files(folder: Path) -> list[Path]:
    """Files of a province folder (and its sub-folders), hidden files and temporaries skipped."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith((".", "~$")))


def ingest_province(run: ProvinceRun, exports: Path, out: Path, rules: Rules,
                    validator: Validator | None) -> pd.DataFrame:
    """Read every file of the province; quarantine what cannot be read; validate what was read."""
    frames = []
    for k, path in enumerate(export_files(exports / run.code)):
        rel = path.relative_to(exports).as_posix()
        try:
            if path.suffix.lower() not in EXPORT_SUFFIXES:
                raise IngestError(f"not an export file kind ({path.suffix or 'no extension'})")
            result = read_export(path, rules)
        except IngestError as exc:
            quarantine(path, exports, out, str(exc))
            run.files_quarantined.append({"file": rel, "reason": str(exc)})
            log.warning("%s: quarantined: %s", rel, exc)
            continue
        frame = result.frame
        if validator is not None:
            failed = validator.run("input", f"{run.code}-input-{k:03d}", input_frame(frame))
            run.validation_failures += [f"{rel}: {f}" for f in failed]
        frame.insert(0, "source_file", rel)
        frames.append(frame)
        run.files_read.append(rel)
        log.info("%s: %d rows (%s%s)", rel, len(frame), result.kind, f", {result.encoding}" if result.encoding else "")
    if not frames:
        from pipeline.ingest.readers import CANONICAL

        return pd.DataFrame({c: pd.Series(dtype="string[pyarrow]") for c in ("source_file", *CANONICAL)}).assign(
            source_row=pd.Series(dtype="int64"))
    return pd.concat(frames, ignore_index=True)


def reconcile_province(run: ProvinceRun, exports: Path, out: Path, rules: Rules, index: RegistryIndex,
                       run_date: dt.date, validator: Validator | None, decisions: dict[str, Decision]) -> None:
    """Stages up to the corrected table (dose checks need every province, so they come later)."""
    t = run.stage_seconds
    with _Timer(t, "ingest"):
        raw = ingest_province(run, exports, out, rules, validator)
    with _Timer(t, "normalise"):
        norm = normalise(raw, rules, run_date, index.tone_style, index.lexicon(rules))
    with _Timer(t, "link"):
        result = link(norm, index, rules)
        run.decisions = apply_decisions(result, decisions, index)
        frame = assemble(raw, result, index, run.code)
    run.person_codes = frame.attrs.pop("person_codes")
    run.frame = frame
    run.rows = len(frame)
    log.info("province %s: %d rows read from %d files, %d quarantined; %d export persons",
             run.code, len(frame), len(run.files_read), len(run.files_quarantined), result.n_profiles)


def apply_dose_checks(runs: list[ProvinceRun], rules: Rules, run_date: dt.date) -> dict[str, pa.ListArray]:
    """Dose codes over all provinces together (a duplicate may cross provinces)."""
    frames = [r.frame.assign(_prov=r.code, _pos=range(len(r.frame))) for r in runs if r.frame is not None]
    if not frames:
        return {}
    cols = ["source_file", "source_row", "identity", "dose_date", "vaccine", "dose_number", "date_of_birth",
            "birth_year", "_prov", "_pos"]
    allrows = pd.concat([f[cols] for f in frames], ignore_index=True)
    allrows = allrows.sort_values(["source_file", "source_row"], kind="stable").reset_index(drop=True)
    flags = dose_flags(allrows, rules, run_date)
    out = {}
    for r in runs:
        if r.frame is None:
            continue
        sel = (allrows["_prov"] == r.code).to_numpy()
        order = allrows.loc[sel, "_pos"].to_numpy()
        sub = {k: v[sel] for k, v in flags.items()}
        back = {k: pd.Series(v, index=order).sort_index().to_numpy() for k, v in sub.items()}
        out[r.code] = code_lists(back, len(r.frame))
    return out


def write_province(run: ProvinceRun, dose_codes: pa.ListArray, out: Path, rules: Rules, index: RegistryIndex,
                   run_date: dt.date, validator: Validator | None) -> None:
    """Validate, then write the corrected Parquet, the error report and the review queue."""
    assert run.frame is not None and run.person_codes is not None
    with _Timer(run.stage_seconds, "validate"):
        codes = merge_code_lists(run.person_codes, dose_codes, ALL_CODES)
        table = to_arrow(run.frame, codes)
        check_conservation(run, table)
        df = table.to_pandas()
        if validator is not None:
            failed = validator.run("output", f"{run.code}-output", output_frame(df), {"rows_read": run.rows})
            failed += validator.run("output_codes", f"{run.code}-output-codes", codes_frame(df))
            if failed:
                run.validation_failures += failed
                raise RuntimeError(f"output expectations failed: {failed}")
    with _Timer(run.stage_seconds, "write"):
        write_report(df, run.code, out / "reports" / run.code, rules, run_date, run.files_read, run.files_quarantined)
        run.review_cases = write_review(df, run.code, out / "review" / f"{run.code}.xlsx", index)
        write_parquet(table, out / "corrected" / f"{run.code}.parquet")  # last: present only when all succeeded
    status = pd.Series(table.column("status").to_pylist()).value_counts()
    run.rows_by_status = {s: int(status.get(s, 0)) for s in STATUSES}
    flat = pc.list_flatten(table.column("error_codes")).to_pylist()
    counts = Counter(flat)
    run.rows_by_code = {c: int(counts.get(c, 0)) for c in ALL_CODES}


def check_conservation(run: ProvinceRun, table: pa.Table) -> None:
    """Data rows read per file = rows written per file, each (file, row) once."""
    files = pd.Series(table.column("source_file").to_pylist())
    rows = pd.Series(table.column("source_row").to_pylist())
    assert run.frame is not None
    read = run.frame.groupby("source_file", observed=True).size()
    written = files.value_counts()
    bad = [f for f in read.index if int(written.get(f, 0)) != int(read[f])]
    if bad or pd.DataFrame({"f": files, "r": rows}).duplicated().any():
        raise RuntimeError(f"row conservation violated for {bad or 'duplicate (file, row) keys'}")


def run_reconciliation(registry: Path, exports: Path, out: Path, provinces: list[str] | None = None,
                       run_date: dt.date | None = None, rules_dir: Path | None = None,
                       state_url: str | None = None, validate: bool = True) -> RunResult:
    """Reconcile every province folder of `exports` against `registry`, writing under `out`."""
    started = dt.datetime.now(dt.UTC)
    run_date = run_date or dt.date.today()
    out = Path(out).resolve()
    rules = load_rules(rules_dir)
    validator = Validator(out / "validation", load_specs(rules.source_dir)) if validate else None
    state = StateStore(state_url or default_url(out))
    t0 = time.perf_counter()
    index = load_index(registry, rules)
    index_seconds = time.perf_counter() - t0
    log.info("registry: %d people indexed in %.1f s", index.size, index_seconds)
    run_id = state.start_run(started.isoformat(timespec="seconds"), run_date, index.size)
    runs: list[ProvinceRun] = []
    for code in list_provinces(exports, provinces):
        run = ProvinceRun(code)
        runs.append(run)
        try:
            reconcile_province(run, exports, out, rules, index, run_date, validator, state.decisions(code))
        except Exception as exc:  # isolate the province; reported in run.json and the exit code
            run.error = f"{type(exc).__name__}: {exc}"
            run.frame = None
            log.error("province %s failed: %s\n%s", code, run.error, traceback.format_exc())
    ok_runs = [r for r in runs if r.error is None]
    t1 = time.perf_counter()
    dose_codes = apply_dose_checks(ok_runs, rules, run_date)
    dose_seconds = time.perf_counter() - t1
    for run in ok_runs:
        run.stage_seconds["dose_checks"] = dose_seconds
        try:
            write_province(run, dose_codes[run.code], out, rules, index, run_date, validator)
        except Exception as exc:  # a failed write or conservation check fails this province only
            run.error = f"{type(exc).__name__}: {exc}"
            log.error("province %s failed at write: %s", run.code, run.error)
    summary: dict[str, Any] = {
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "run_date": run_date.isoformat(),
        "registry": {"path": str(registry), "people": index.size, "index_seconds": round(index_seconds, 3)},
        "provinces": {r.code: r.summary() for r in runs},
    }
    if validator is not None:
        summary["validation"] = str(validator.build_docs().relative_to(out))
    result = RunResult({r.code: r for r in runs}, summary)
    state.finish_run(run_id, summary["finished_at"], result.exit_code, summary["provinces"])
    summary["run_id"] = run_id
    write_json(summary, out / "run.json")
    return result
