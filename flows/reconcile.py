"""The stages of a night's reconciliation, as units of work on storage.

`flows/nightly.py` wires these into the Prefect flow. Each stage reads what
it needs from disk and writes its result atomically, so a province's work can
run in any process (a Dask worker reads the registry itself), a crashed run
resumes from the stages that finished, and an unchanged province is reused.

    OUT/work/<PP>/linked.parquet    stage 1: ingest → normalise → link (per province)
    OUT/work/<PP>/prepare.json      its summary and fingerprint (written last)
    OUT/work/<PP>/dose_codes.parquet  stage 2: dose checks (all provinces together)
    OUT/work/<PP>/finish.json       stage 3: validation and outputs (written last)
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import pipeline
from pipeline.codes import code_lists, merge_code_lists
from pipeline.doses import (
    FLAG_NAMES,
    bucket_plan,
    check_bucket,
    flag_in_buckets,
    gather_flags,
    spill_province,
)
from pipeline.ingest import IngestError, ReadResult, read_export
from pipeline.link.index import RegistryIndex, registry_digest, registry_files
from pipeline.link.prepared import prepared_index, rules_digest
from pipeline.link.store import RegistryStore, is_store
from pipeline.memory import (
    DEFAULT_DOSE_BUCKET_ROWS,
    DEFAULT_SLICE_PERSONS,
    peak_gb,
    release,
    reset_peak,
)
from pipeline.output import quarantine, replace_dir, tree_digest, write_json, write_parquet
from pipeline.reconcile import apply_decisions, assemble, link, named_persons, normalise, to_arrow
from pipeline.report import write_report
from pipeline.review import write_review
from pipeline.rules import ALL_CODES, STATUSES, Rules, load_rules
from pipeline.state import Decision
from pipeline.validate import (
    Validator,
    codes_frame,
    input_frame,
    load_specs,
    output_frame,
    suite_columns,
)

log = logging.getLogger("vaxrecon")
EXPORT_SUFFIXES = {".csv", ".txt", ".xlsx", ".xlsm", ".parquet", ".xls"}
READERS = 2   # export files read at a time


@dataclass
class ProvinceRun:
    """What happened to one province in a run (aggregates only: no personal data)."""

    code: str
    files_read: list[str] = field(default_factory=list)
    files_quarantined: list[dict[str, str]] = field(default_factory=list)
    rows_read_by_file: dict[str, int] = field(default_factory=dict)
    rows: int = 0
    profiles: int = 0
    rows_by_status: dict[str, int] = field(default_factory=dict)
    people_by_status: dict[str, int] = field(default_factory=dict)
    rows_by_code: dict[str, int] = field(default_factory=dict)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    stage_peak_gb: dict[str, float] = field(default_factory=dict)   # this process's peak during each stage
    ingest_by_kind: dict[str, dict[str, float]] = field(default_factory=dict)  # kind -> files, rows, seconds
    error: str | None = None
    validation_failures: list[str] = field(default_factory=list)
    review_cases: int = 0
    decisions: dict[str, int] = field(default_factory=dict)
    fingerprint: str = ""
    reused: str | None = None   # None, "linking" (stage 1 reused) or "all" (outputs reused)
    reused_from: str | None = None
    computed_in: int | None = None   # the run that wrote the outputs

    @property
    def status(self) -> str:
        return "failed" if self.error else "reused" if self.reused == "all" else "ok"

    def summary(self) -> dict[str, Any]:
        return {
            "files_read": self.files_read, "files_quarantined": self.files_quarantined,
            "rows": self.rows, "rows_by_status": self.rows_by_status, "people_by_status": self.people_by_status,
            "rows_by_code": self.rows_by_code,
            "stage_seconds": {k: round(v, 3) for k, v in self.stage_seconds.items()},
            "stage_peak_gb": {k: round(v, 3) for k, v in self.stage_peak_gb.items()},
            "ingest_by_kind": self.ingest_by_kind,
            "status": self.status, "error": self.error, "reused": self.reused, "reused_from": self.reused_from,
            "validation_failures": self.validation_failures, "review_cases": self.review_cases,
            "review_decisions": self.decisions, "input_hash": self.fingerprint,
        }

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProvinceRun:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


class StageTimer:
    """Adds a stage's wall time to `seconds[name]` and keeps the process's peak memory during it
    in `peaks[name]` (the larger one where a stage runs more than once)."""

    def __init__(self, seconds: dict[str, float], name: str, peaks: dict[str, float] | None = None) -> None:
        self.seconds, self.name, self.peaks = seconds, name, peaks

    def __enter__(self) -> None:
        if self.peaks is not None:
            reset_peak()
        self.t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.seconds[self.name] = self.seconds.get(self.name, 0.0) + time.perf_counter() - self.t0
        if self.peaks is not None and (peak := peak_gb()) is not None:
            self.peaks[self.name] = max(self.peaks.get(self.name, 0.0), peak)


# ---------------------------------------------------------------- paths and fingerprints

def work_dir(out: Path, code: str) -> Path:
    return out / "work" / code


def _is_province_dir(path: Path) -> bool:
    return path.is_dir() and path.name.isdigit() and len(path.name) == 2


def list_provinces(exports: Path, only: list[str] | None) -> list[str]:
    found = sorted(p.name for p in exports.iterdir() if _is_province_dir(p))
    return [p for p in found if not only or p in only]


def ignored_entries(exports: Path) -> list[str]:
    """What sits in `exports` but is no province folder (a file, a folder not named by a 2-digit
    code), hidden entries aside: none of it is read, so the run says so."""
    return sorted(p.name + ("/" if p.is_dir() else "") for p in exports.iterdir()
                  if not p.name.startswith((".", "~$")) and not _is_province_dir(p))


# Files that Windows writes into any folder it shows (thumbnail cache, folder settings): never exports.
SYSTEM_FILES = frozenset({"thumbs.db", "ehthumbs.db", "desktop.ini"})


def export_files(folder: Path) -> list[Path]:
    """Files of a province folder (and its sub-folders); hidden files, Office's lock files (~$...)
    and Windows' folder files skipped."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith((".", "~$"))
                  and p.name.lower() not in SYSTEM_FILES)


def run_inputs_digest(registry: Path, rules_dir: Path, validate: bool) -> str:
    """What every province depends on: registry content, rules, code version, validation on or off."""
    reg = registry_digest(registry)
    rules = rules_digest(rules_for(rules_dir))
    return hashlib.blake2b(f"{reg}|{rules}|{pipeline.__version__}|{validate}".encode(), digest_size=16).hexdigest()


def province_fingerprint(code: str, exports: Path, common: str, run_date: dt.date,
                         decisions: dict[str, Decision]) -> str:
    """Stage 1 depends on the province's files, the common inputs, the run year (two-digit-year pivot)
    and the officers' review decisions for the province."""
    files = tree_digest(export_files(exports / code), exports)
    dec = json.dumps(sorted((d.case_key, d.decision, d.candidates) for d in decisions.values()))
    text = f"{code}|{files}|{common}|{run_date.year}|{dec}"
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def finish_fingerprint(prepared: ProvinceRun, dose_digest: str) -> str:
    return hashlib.blake2b(f"{prepared.fingerprint}|{dose_digest}".encode(), digest_size=16).hexdigest()


def stored_run(path: Path, fingerprint: str) -> ProvinceRun | None:
    """The stored summary at `path` if it was made from the same fingerprint."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return ProvinceRun.from_json(data) if data.get("fingerprint") == fingerprint else None


def province_outputs(out: Path, code: str, validate: bool) -> list[Path]:
    files = [out / "corrected" / f"{code}.parquet", out / "reports" / code / f"bao_cao_{code}.xlsx",
             out / "review" / f"{code}.xlsx"]
    return [*files, out / "validation" / code / "output" / "index.html"] if validate else files


# ---------------------------------------------------------------- shared, loaded once per process

@functools.lru_cache(maxsize=2)
def rules_for(rules_dir: Path) -> Rules:
    return load_rules(rules_dir)


def index_cache_dir(out: Path) -> Path:
    """Where prepared registry indexes are kept between runs (`pipeline.link.prepared`)."""
    return out / "cache"


F = TypeVar("F", bound=Callable[..., Any])
_PROVINCE = threading.Lock()
_INDEX = threading.Lock()


def one_province_at_a_time(stage: F) -> F:
    """Run `stage` only when no other province's stage runs in this process.

    The stages assume they have the process to themselves: the registry index is loaded once, the
    collector is frozen and thawed between provinces, each stage's peak memory is reset and read,
    and two large provinces side by side would not fit the memory a province is planned for. A
    Dask worker started with several threads (`dask worker` takes one per core) would otherwise
    run two provinces at once; its other threads wait instead."""
    @functools.wraps(stage)
    def alone(*args: Any, **kwargs: Any) -> Any:
        if not _PROVINCE.acquire(blocking=False):
            log.info("%s waits: another province is being worked on in this process", stage.__name__)
            _PROVINCE.acquire()
        try:
            return stage(*args, **kwargs)
        finally:
            _PROVINCE.release()
    return alone  # type: ignore[return-value]


def index_for(registry: Path, rules_dir: Path, common: str,
              cache_dir: Path | None = None) -> RegistryIndex | RegistryStore:
    """The prepared registry index, once per process: loaded from `cache_dir` when an earlier run
    prepared this registry with these rules and this code, else built (a Dask worker does the same
    from storage). A caller that comes while it is being loaded waits for that load instead of
    starting a second one (a province that failed before its index was ready leaves the load
    running in its thread). A registry partitioned by blocking key (`vaxrecon partition-registry`)
    is opened instead: each province then reads only the people its keys reach."""
    with _INDEX:
        return _index_for(registry, rules_dir, common, cache_dir)


@functools.lru_cache(maxsize=1)
def _index_for(registry: Path, rules_dir: Path, common: str, cache_dir: Path | None) -> RegistryIndex | RegistryStore:
    if is_store(registry):
        store = RegistryStore.open(registry, rules_for(rules_dir))
        log.info("registry: partitioned by blocking key, %d people; each province reads the people its keys reach",
                 store.size)
        return store
    t0 = time.perf_counter()
    index = prepared_index(registry, registry_files(registry), rules_for(rules_dir), cache_dir)
    log.info("registry: %d people ready in %.1f s", index.size, time.perf_counter() - t0)
    return index


# ---------------------------------------------------------------- stage 1: ingest, normalise, link

def ingest_province(run: ProvinceRun, exports: Path, out: Path, rules: Rules,
                    validator: Validator | None) -> pd.DataFrame:
    """Read every file of the province; quarantine what cannot be read; validate what was read.

    Two files are read at a time (calamine and Arrow leave the interpreter free while they parse);
    they are then checked and kept in file order."""
    frames = []
    checked_columns = suite_columns(validator.specs["input"]) if validator is not None else None
    files = export_files(exports / run.code)
    with ThreadPoolExecutor(max_workers=READERS, thread_name_prefix="read") as pool:
        for path, (outcome, seconds) in zip(files, pool.map(_read_timed, files, [rules] * len(files)), strict=True):
            rel = path.relative_to(exports).as_posix()
            if isinstance(outcome, IngestError):
                quarantine(path, exports, out, str(outcome))
                run.files_quarantined.append({"file": rel, "reason": str(outcome)})
                log.warning("%s: quarantined: %s", rel, outcome)
                continue
            _count(run.ingest_by_kind, outcome.kind, len(outcome.frame), seconds)
            frame = outcome.frame
            if validator is not None:
                t0 = time.perf_counter()
                failed = validator.run("input", f"{run.code}-input", input_frame(frame, checked_columns),
                                       batch=path.relative_to(exports / run.code).as_posix())
                _count(run.ingest_by_kind, "input_suite", len(frame), time.perf_counter() - t0)
                run.validation_failures += [f"{rel}: {f}" for f in failed]
            frame.insert(0, "source_file", rel)
            frames.append(frame)
            run.files_read.append(rel)
            run.rows_read_by_file[rel] = len(frame)
            log.info("%s: %d rows (%s%s)", rel, len(frame), outcome.kind,
                     f", {outcome.encoding}" if outcome.encoding else "")
            if outcome.sheet is not None:
                log.warning("%s: the first sheet has no header row; read sheet '%s'", rel, outcome.sheet)
            unsafe = frame["source_row"][frame["read_problem"].notna()]
            if len(unsafe):
                log.warning("%s: %d rows have more cells than the file has columns (a delimiter inside a value) "
                            "and are rejected, rows %s", rel, len(unsafe),
                            ", ".join(map(str, unsafe.iloc[:10])) + (", ..." if len(unsafe) > 10 else ""))
    if not frames:
        from pipeline.ingest.readers import CANONICAL, READ_PROBLEM

        return pd.DataFrame({c: pd.Series(dtype="string[pyarrow]") for c in ("source_file", *CANONICAL)}).assign(
            source_row=pd.Series(dtype="int64"), **{READ_PROBLEM: pd.Series(dtype="string[pyarrow]")})
    return pd.concat(frames, ignore_index=True)


def _read_timed(path: Path, rules: Rules) -> tuple[ReadResult | IngestError, float]:
    """One export file read (or the reason it cannot be), and the seconds it took."""
    t0 = time.perf_counter()
    try:
        if path.suffix.lower() not in EXPORT_SUFFIXES:
            raise IngestError(f"not an export file kind ({path.suffix or 'no extension'})")
        return read_export(path, rules), time.perf_counter() - t0
    except IngestError as exc:
        return exc, time.perf_counter() - t0
    except Exception as exc:  # a reader's fault on one file: that file is quarantined, not the province failed
        log.exception("%s: unexpected error while reading", path.name)
        return IngestError(f"unexpected error while reading ({type(exc).__name__}: {exc})"), time.perf_counter() - t0


def _count(sink: dict[str, dict[str, float]], key: str, rows: int, seconds: float) -> None:
    """Add one file's rows and seconds to `sink[key]` (ingest figures by file kind)."""
    entry = sink.setdefault(key, {"files": 0, "rows": 0, "seconds": 0.0})
    entry["files"] += 1
    entry["rows"] += rows
    entry["seconds"] = round(entry["seconds"] + seconds, 3)


def _validator(out: Path, rules: Rules, validate: bool) -> tuple[Validator | None, Path | None]:
    """A Validator writing its pages into a fresh folder that replaces the old one when complete."""
    if not validate:
        return None, None
    (out / "validation").mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".pages-", dir=out / "validation"))
    return Validator(tmp, load_specs(rules.source_dir)), tmp


@one_province_at_a_time
def prepare_province(code: str, exports: Path, out: Path, rules_dir: Path, registry: Path, common: str,
                     run_date: dt.date, decisions: dict[str, Decision], validate: bool,
                     fingerprint: str, slice_persons: int | None = None) -> ProvinceRun:
    """Stage 1 for one province: ingest, normalise, link; write OUT/work/<PP>/linked.parquet."""
    release(freeze=True, thaw=True)   # what the province before freed goes back before this one grows
    rules = rules_for(rules_dir)
    run = ProvinceRun(code, fingerprint=fingerprint)
    t = run.stage_seconds
    # The first province of a process reads its files while the registry index is loaded (or built)
    # in a second thread: unpickling is mostly reading the file, building mostly numpy and Arrow,
    # both of which leave the interpreter free. "index" is the wait that is left after reading.
    loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="registry-index")
    pending = loader.submit(index_for, registry, rules_dir, common, index_cache_dir(out))
    loader.shutdown(wait=False)
    validator, pages = _validator(out, rules, validate)
    try:
        with StageTimer(t, "ingest", run.stage_peak_gb):
            raw = ingest_province(run, exports, out, rules, validator)
        with StageTimer(t, "index", run.stage_peak_gb):
            source = pending.result()
        with StageTimer(t, "normalise", run.stage_peak_gb):
            norm = normalise(raw, rules, run_date, source.tone_style, source.lexicon(rules))
        with StageTimer(t, "link", run.stage_peak_gb):
            result = link(norm, source, rules, named_persons(decisions), slice_persons or DEFAULT_SLICE_PERSONS)
            run.decisions = apply_decisions(result, decisions, result.index)
            frame = assemble(raw, result, result.index, code)
        person_codes = frame.attrs.pop("person_codes")
        run.rows, run.profiles = len(frame), result.n_profiles
        table = pa.Table.from_pandas(frame, preserve_index=False).append_column("person_codes", person_codes)
        write_parquet(table, work_dir(out, code) / "linked.parquet")
        if validator is not None and pages is not None:
            validator.build_docs()
            replace_dir(pages, out / "validation" / code / "input")
    finally:
        if pages is not None and pages.exists():
            shutil.rmtree(pages, ignore_errors=True)
    write_json(run.to_json(), work_dir(out, code) / "prepare.json")   # last: marks stage 1 complete
    log.info("province %s: %d rows read from %d files, %d quarantined; %d export persons",
             code, run.rows, len(run.files_read), len(run.files_quarantined), result.n_profiles)
    return run


# ---------------------------------------------------------------- stage 2: dose checks, all provinces

class DoseChecks(NamedTuple):
    digests: dict[str, str]     # per province, a digest of its rows' dose codes
    rows: int
    buckets: int                # the buckets of people the rows were checked in


@one_province_at_a_time
def dose_checks(out: Path, codes: list[str], rules_dir: Path, run_date: dt.date,
                bucket_rows: int | None = None) -> DoseChecks:
    """Dose codes over all provinces together (a duplicate may cross provinces), checked
    `bucket_rows` rows at a time (default `DEFAULT_DOSE_BUCKET_ROWS`; see `flag_in_buckets`), in
    this process. On a cluster the flow runs the steps as tasks instead (`spill_doses`,
    `check_dose_bucket`, `write_dose_codes`), with the same result.

    Writes OUT/work/<PP>/dose_codes.parquet.
    """
    if not codes:
        return DoseChecks({}, 0, 0)
    spill = dose_spill(out)
    try:
        flags, buckets = flag_in_buckets({c: work_dir(out, c) / "linked.parquet" for c in codes},
                                         rules_for(rules_dir), run_date, bucket_rows or DEFAULT_DOSE_BUCKET_ROWS,
                                         spill)
    finally:
        shutil.rmtree(spill, ignore_errors=True)
    digests, flagged, rows = {}, dict.fromkeys(FLAG_NAMES, 0), 0
    for code in codes:
        digests[code], n, counts = _write_dose_codes(out, code, flags.pop(code))
        rows += n
        flagged = {k: flagged[k] + counts[k] for k in FLAG_NAMES}
    log.info("dose checks: %d rows of %d provinces%s; rows flagged: %s", rows, len(codes),
             f", in {buckets} buckets of persons" if buckets > 1 else "", flagged_text(flagged))
    return DoseChecks(digests, rows, buckets)


def dose_spill(out: Path) -> Path:
    """A new folder for the dose checks' spilled rows, in OUT/work (removed by whoever made it; a
    killed run's by `clean_leftovers`)."""
    (out / "work").mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".dose-buckets-", dir=out / "work"))


def dose_buckets(out: Path, codes: list[str], bucket_rows: int | None) -> tuple[int, dict[str, int]]:
    """The buckets the dose checks of `codes` take, and each province's linked rows."""
    return bucket_plan({c: work_dir(out, c) / "linked.parquet" for c in codes}, bucket_rows or DEFAULT_DOSE_BUCKET_ROWS)


@one_province_at_a_time
def spill_doses(out: Path, code: str, prov: int, buckets: int, bucket_rows: int | None, spill: Path) -> int:
    """Dose checks on a cluster, step 1 for province number `prov` (`pipeline.doses.spill_province`)."""
    rows = spill_province(work_dir(out, code) / "linked.parquet", prov, buckets,
                          bucket_rows or DEFAULT_DOSE_BUCKET_ROWS, spill)
    log.info("dose checks: province %s: %d rows spilled into %d buckets of persons", code, rows, buckets)
    return rows


@one_province_at_a_time
def check_dose_bucket(spill: Path, provinces: int, bucket: int, buckets: int, rules_dir: Path,
                      run_date: dt.date) -> tuple[int, dict[str, int]]:
    """Dose checks on a cluster, step 2 for one bucket (`pipeline.doses.check_bucket`)."""
    return check_bucket(spill, provinces, bucket, buckets, rules_for(rules_dir), run_date)


@one_province_at_a_time
def write_dose_codes(out: Path, code: str, prov: int, rows: int, spill: Path, buckets: int) -> str:
    """Dose checks on a cluster, step 3 for one province: its flags from every bucket
    (`pipeline.doses.gather_flags`) written as OUT/work/<PP>/dose_codes.parquet; their digest."""
    digest, _, flagged = _write_dose_codes(out, code, gather_flags(spill, buckets, prov, rows))
    log.info("dose checks: province %s: codes of %d rows written; rows flagged: %s", code, rows, flagged_text(flagged))
    return digest


def flagged_text(flagged: dict[str, int]) -> str:
    """Rows flagged per dose code, for the log."""
    return ", ".join(f"{k} {n}" for k, n in flagged.items())


def _write_dose_codes(out: Path, code: str, flags: dict[str, np.ndarray]) -> tuple[str, int, dict[str, int]]:
    """A province's dose codes from its flags, written; their digest, rows and rows per flag."""
    n = len(flags[FLAG_NAMES[0]])
    table = pa.table({"dose_codes": code_lists(flags, n)})
    write_parquet(table, work_dir(out, code) / "dose_codes.parquet")
    joined = pc.binary_join(table.column(0), ",").to_pandas()  # one string per row, no Python loop
    hashed = pd.util.hash_pandas_object(joined, index=False).to_numpy()
    digest = hashlib.blake2b(hashed.tobytes(), digest_size=16).hexdigest()
    return digest, n, {k: int(np.count_nonzero(v)) for k, v in flags.items()}


# ---------------------------------------------------------------- stage 3: validate and write

def check_conservation(rows_read_by_file: dict[str, int], table: pa.Table) -> None:
    """Data rows read per file = rows written per file, each (file, row) once; raises naming the files."""
    per_file = table.group_by("source_file").aggregate([("source_row", "count")]).to_pandas()
    written = dict(zip(per_file["source_file"], per_file["source_row_count"], strict=True))
    bad = sorted(f for f in set(rows_read_by_file) | set(written)
                 if int(written.get(f, 0)) != int(rows_read_by_file.get(f, 0)))
    if bad:
        raise RuntimeError(f"row conservation violated: rows read ≠ rows written for {', '.join(bad)}")
    keys = table.group_by(["source_file", "source_row"]).aggregate([])
    if keys.num_rows != table.num_rows:
        raise RuntimeError("row conservation violated: duplicate (source_file, source_row) keys")


def validate_output(df: pd.DataFrame, code: str, out: Path, rules: Rules, rows_read: int) -> list[str]:
    """Run the output suites; write their pages to OUT/validation/<PP>/output; return the failures."""
    validator, pages = _validator(out, rules, True)
    assert validator is not None and pages is not None
    try:
        failed = validator.run("output", f"{code}-output", output_frame(df), {"rows_read": rows_read})
        failed += validator.run("output_codes", f"{code}-output-codes", codes_frame(df))
        validator.build_docs()
        replace_dir(pages, out / "validation" / code / "output")
    finally:
        if pages.exists():
            shutil.rmtree(pages, ignore_errors=True)
    return failed


def review_candidates(table: pa.Table) -> pd.Series:
    """The person IDs that the corrected table lists as candidates of review rows, each once."""
    ids = pc.unique(pc.drop_null(pc.list_flatten(table.column("candidate_ids"))))
    return pd.Series(pd.array(ids.cast(pa.string()), dtype="string[pyarrow]"))


@one_province_at_a_time
def finish_province(prepared: ProvinceRun, out: Path, rules_dir: Path, registry: Path, common: str,
                    run_date: dt.date, validate: bool, fingerprint: str, run_id: int) -> ProvinceRun:
    """Stage 3 for one province: merge the codes, validate, write corrected records, report and review queue."""
    release(freeze=True)
    rules = rules_for(rules_dir)
    source = index_for(registry, rules_dir, common, index_cache_dir(out))
    run = ProvinceRun.from_json(prepared.to_json())
    code = run.code
    with StageTimer(run.stage_seconds, "validate", run.stage_peak_gb):
        linked = pq.read_table(work_dir(out, code) / "linked.parquet")
        dose_codes = pq.read_table(work_dir(out, code) / "dose_codes.parquet").column(0).combine_chunks()
        person_codes = linked.column("person_codes").combine_chunks()
        table = to_arrow(linked.drop_columns(["person_codes"]), merge_code_lists(person_codes, dose_codes, ALL_CODES))
        del linked, person_codes, dose_codes   # the sorted table replaces them: not held through the writing
        check_conservation(run.rows_read_by_file, table)
        df = table.to_pandas()
        if validate:
            failed = validate_output(df, code, out, rules, sum(run.rows_read_by_file.values()))
            if failed:
                run.validation_failures += failed
                raise RuntimeError(f"output expectations failed: {failed}")
    with StageTimer(run.stage_seconds, "write", run.stage_peak_gb), \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="write") as beside:
        # The report is mostly Arrow kernels and compression, which leave the interpreter free, so
        # the review queue, the corrected file and then the report's CSV copies are written beside
        # it in a second thread.
        index = source if isinstance(source, RegistryIndex) else source.with_ids(review_candidates(table))
        review = beside.submit(write_review, df, code, out / "review" / f"{code}.xlsx", index)
        corrected = beside.submit(write_parquet, table, out / "corrected" / f"{code}.parquet")
        write_report(df, code, out / "reports" / code, rules, run_date, run.files_read, run.files_quarantined,
                     beside)
        run.review_cases = review.result()
        corrected.result()
    status = df["status"]
    counts_by_status = status.value_counts()
    run.rows_by_status = {s: int(counts_by_status.get(s, 0)) for s in STATUSES}
    person = df["person_id"].fillna(df["case_key"])
    people = pd.DataFrame({"status": status, "person": person}).drop_duplicates()["status"].value_counts()
    run.people_by_status = {s: int(people.get(s, 0)) for s in STATUSES}
    counts = pc.list_flatten(table.column("error_codes")).to_pandas().value_counts()
    run.rows_by_code = {c: int(counts.get(c, 0)) for c in ALL_CODES}
    run.fingerprint, run.computed_in = fingerprint, run_id
    write_json(run.to_json(), work_dir(out, code) / "finish.json")   # last: marks the outputs complete
    log.info("province %s: %d rows validated and written (%s); %d review cases; %.1f s", code, len(df),
             ", ".join(f"{s} {n}" for s, n in run.rows_by_status.items()), run.review_cases,
             run.stage_seconds["validate"] + run.stage_seconds["write"])
    return run
