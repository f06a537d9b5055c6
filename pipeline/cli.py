"""Command line: `vaxrecon run`, `partition-registry`, `review apply`, `serve`, `dashboard`, `synth`."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
from pathlib import Path

from pipeline.memory import DEFAULT_DOSE_BUCKET_ROWS, DEFAULT_SLICE_PERSONS

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3


def _province_list(text: str) -> list[str]:
    codes = [c.strip() for c in text.split(",") if c.strip()]
    for c in codes:
        if not (len(c) == 2 and c.isdigit()):
            raise argparse.ArgumentTypeError(f"province code must be 2 digits, got {c!r}")
    return codes


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {text!r}") from exc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vaxrecon",
        description="Đối chiếu dữ liệu tiêm chủng COVID-19 với CSDL quốc gia về dân cư. "
                    "Reconcile provincial vaccination exports against the national population registry.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="more detail in the progress log")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="reconcile the export files once and write the results",
                         description="Read every file under EXPORTS/<province code>/, link each dose to a registry "
                                     "person, and write OUT/corrected/<PP>.parquet, OUT/run.json and "
                                     "OUT/quarantine/. The registry prepared for linking is kept in OUT/cache/ "
                                     "and reused by the next run while the registry file, rules and vaxrecon "
                                     "are unchanged (safe to delete: it is rebuilt). "
                                     "Exit status: 0 all done; 3 done, but some files were "
                                     "quarantined or a province failed; 2 usage error; 1 nothing could be done.")
    run.add_argument("--registry", required=True, type=Path,
                     help="registry Parquet file or folder of Parquet files, or a registry partitioned by "
                          "`vaxrecon partition-registry` (for registries too large to load whole)")
    run.add_argument("--exports", required=True, type=Path, help="folder with one sub-folder per province (01, 79, ...)")
    run.add_argument("--out", required=True, type=Path, help="folder for the results (created if missing)")
    run.add_argument("--province", action="append", type=_province_list, default=None, metavar="PP",
                     help="only this province (repeat, or comma-separate: --province 79 --province 01)")
    run.add_argument("--run-date", type=_date, default=None,
                     help="the date checks treat as today (YYYY-MM-DD); default: today")
    run.add_argument("--rules", type=Path, default=None, help="rules folder (default: the project's rules/)")
    run.add_argument("--state", default=None, metavar="URL",
                     help="state store (run history, review decisions): a SQLAlchemy URL such as "
                          "sqlite:////data/vaxrecon.sqlite or postgresql://user@host/db; default OUT/state.sqlite")
    run.add_argument("--no-validate", action="store_true", help="skip the Great Expectations suites (faster, for trials)")
    run.add_argument("--force", action="store_true",
                     help="recompute every province, even those whose files, registry, rules and review "
                          "decisions are unchanged since their last successful run (default: reuse them)")
    run.add_argument("--slice-persons", type=int, default=DEFAULT_SLICE_PERSONS, metavar="N",
                     help="link a province's export persons (the distinct people its rows describe) N at a time "
                          f"(default {DEFAULT_SLICE_PERSONS:,}): less memory for a large province, the same "
                          "results")
    run.add_argument("--dose-bucket-rows", type=int, default=DEFAULT_DOSE_BUCKET_ROWS, metavar="N",
                     help="check doses (duplicates and intervals across every province) about N dose rows at a "
                          f"time, a group of people after another (default {DEFAULT_DOSE_BUCKET_ROWS:,}: under "
                          "1 GB): less memory for a large run, the same results; with --workers or "
                          "--dask-address the groups are checked side by side on the workers")
    scale = run.add_mutually_exclusive_group()
    scale.add_argument("--workers", type=int, default=None, metavar="N",
                       help="run provinces in parallel on a local Dask cluster of N worker processes "
                            "(each given its share of this machine's cores)")
    scale.add_argument("--dask-address", default=None, metavar="tcp://HOST:PORT",
                       help="run provinces on an existing Dask cluster (its workers must see the same files; "
                            "a worker process works on one province at a time, so start them with "
                            "dask worker --nthreads 1)")

    part = sub.add_parser(
        "partition-registry", help="write the registry partitioned by blocking key, for registries too large to load",
        description="Write the registry once, a chunk at a time, as files partitioned by blocking key (the keys "
                    "that link a dose to a person: ID, name and date of birth, ...), with the whole registry's "
                    "statistics. Give the folder to `vaxrecon run --registry STORE`: each province then reads only "
                    "the people its keys reach, instead of the whole registry, and gets the same results. Build it "
                    "again whenever the registry, the rules or vaxrecon change (the run says so if it is stale). "
                    "Exit status: 0 written; 1 the registry cannot be used; 2 usage error.")
    part.add_argument("--registry", required=True, type=Path, help="registry Parquet file or folder of Parquet files")
    part.add_argument("--store", required=True, type=Path,
                      help="folder to write (replaced once the new one is complete)")
    part.add_argument("--rules", type=Path, default=None, help="rules folder (default: the project's rules/)")
    part.add_argument("--chunk-rows", type=int, default=2_000_000, metavar="N",
                      help="people read and keyed at a time (default 2000000: about 2 GB of memory)")

    review = sub.add_parser("review", help="read back a review queue an officer has filled in",
                            description="Officers answer OUT/review/<PP>.xlsx: in the column QUYẾT ĐỊNH they put the "
                                        "số định danh of the right candidate, or \"không khớp\". `vaxrecon review apply` "
                                        "checks the workbook and stores the decisions; the next run applies them.")
    review_sub = review.add_subparsers(dest="review_command", required=True)
    apply = review_sub.add_parser("apply", help="check a filled-in review workbook and store its decisions")
    apply.add_argument("file", type=Path, help="the filled-in OUT/review/<PP>.xlsx")
    apply.add_argument("--by", required=True, help="who decided (name or account of the officer)")
    apply.add_argument("--state", default=None, metavar="URL",
                       help="state store URL; default: state.sqlite in the run's OUT folder (the file's parent's parent)")

    serve = sub.add_parser("serve", help="serve the nightly deployment declared in flows/prefect.yaml",
                           description="Register the nightly deployment (schedule, time zone and parameters from "
                                       "flows/prefect.yaml and its config file) with the Prefect server at "
                                       "PREFECT_API_URL and run it on schedule until stopped (Ctrl+C). "
                                       "`make serve` starts a local server first.")
    serve.add_argument("--prefect-file", type=Path, default=None, help="default: the project's flows/prefect.yaml")
    serve.add_argument("--check", action="store_true", help="only check the deployment declaration and print it")

    synth = sub.add_parser("synth", help="generate a synthetic registry and export files with ground truth",
                           description="Write OUT/registry.parquet, OUT/exports/<PP>/* and OUT/truth.parquet.")
    synth.add_argument("--out", required=True, type=Path)
    synth.add_argument("--people", type=int, default=300_000, help="registry size (default 300000)")
    synth.add_argument("--doses", type=int, default=150_000, help="approximate dose rows (default 150000)")
    synth.add_argument("--provinces", type=_province_list, default=["01", "79", "48", "66", "92"],
                       help="exporting provinces, comma-separated (default 01,79,48,66,92)")
    synth.add_argument("--seed", type=int, default=1)
    synth.add_argument("--rows-per-file", type=int, default=2500)
    synth.add_argument("--run-date", type=_date, default=dt.date(2022, 5, 31),
                       help="last possible dose date (default 2022-05-31)")
    synth.add_argument("--no-corrupt", action="store_true", help="do not add unreadable files")
    synth.add_argument("--nights", type=int, default=0, metavar="N",
                       help="also write N-1 later nightly snapshots to OUT/nights/<k>/exports, in which officers "
                            "have fixed a growing share of the person errors (for the dashboard's trend)")
    synth.add_argument("--from", dest="from_dir", type=Path, default=None, metavar="DIR",
                       help="with --nights: take registry, exports and truth from DIR instead of generating them")

    dash = sub.add_parser("dashboard", help="serve the ministry dashboard (national aggregates, no personal data)",
                          description="Start the dashboard in the browser at http://127.0.0.1:PORT. It reads only the "
                                      "run history (counts per province and run) from the state store.")
    dash.add_argument("--state", required=True, metavar="URL",
                      help="state store written by the runs, e.g. sqlite:////data/out/state.sqlite "
                           "or postgresql+psycopg://user@host/db")
    dash.add_argument("--deadline", type=_date, default=None,
                      help="deadline for the projection (YYYY-MM-DD); default 1 June after the latest run")
    dash.add_argument("--port", type=int, default=8501, help="port to serve on (default 8501)")
    dash.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 to serve a network)")
    return parser


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)-7s %(name)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("httpx", "prefect", "great_expectations", "urllib3", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def cmd_run(args: argparse.Namespace) -> int:
    from pipeline.link.index import RegistryError
    from pipeline.rules import RulesError

    log = logging.getLogger("vaxrecon")
    if not args.exports.is_dir():
        log.error("exports folder not found: %s", args.exports)
        return EXIT_USAGE
    if args.workers is not None and args.workers < 1:
        log.error("--workers must be at least 1")
        return EXIT_USAGE
    for option, value in (("--slice-persons", args.slice_persons), ("--dose-bucket-rows", args.dose_bucket_rows)):
        if value < 1:
            log.error("%s must be at least 1", option)
            return EXIT_USAGE
    from flows.server import api, start_early

    server = start_early()   # Prefect's temporary server boots while the pipeline loads
    from flows.nightly import with_runner

    if server is not None and not args.no_validate:
        import great_expectations  # noqa: F401  (3 s of imports, overlapped with the server's start)

    provinces = sorted({c for group in args.province for c in group}) if args.province else None
    try:
        with api(server):
            summary = with_runner(args.workers, args.dask_address)(
                registry=args.registry, exports=args.exports, out=args.out, provinces=provinces,
                run_date=args.run_date, rules=args.rules, state=args.state, validate=not args.no_validate,
                force=args.force, slice_persons=args.slice_persons,
                dose_bucket_rows=args.dose_bucket_rows)
    except (RegistryError, RulesError) as exc:
        log.error("%s", exc)
        return EXIT_FAILED
    except Exception:  # a stage that failed for every province: exit 1 as the contract says
        log.exception("the run could not be completed")
        return EXIT_FAILED
    for code, prov in summary["provinces"].items():
        log.info("province %s: %s%s", code, prov["error"] or prov["rows_by_status"],
                 " (unchanged: outputs reused)" if prov["status"] == "reused" else "")
    return int(summary["exit_code"])


def cmd_serve(args: argparse.Namespace) -> int:
    from flows.deploy import DeploymentError, load_deployment, serve

    try:
        spec = load_deployment(args.prefect_file)
    except DeploymentError as exc:
        logging.getLogger("vaxrecon").error("%s", exc)
        return EXIT_USAGE
    if args.check:
        logging.getLogger("vaxrecon").info("deployment %s: %s", spec.name, spec.describe())
        return EXIT_OK
    serve(spec)
    return EXIT_OK


def cmd_partition(args: argparse.Namespace) -> int:
    from pipeline.link.index import RegistryError
    from pipeline.link.store import build_store
    from pipeline.rules import DEFAULT_RULES_DIR, RulesError, load_rules

    log = logging.getLogger("vaxrecon")
    if args.chunk_rows < 1:
        log.error("--chunk-rows must be at least 1")
        return EXIT_USAGE
    try:
        rules = load_rules(args.rules.resolve() if args.rules else DEFAULT_RULES_DIR)
        meta = build_store(args.registry, args.store, rules, args.chunk_rows)
    except (RegistryError, RulesError) as exc:
        log.error("%s", exc)
        return EXIT_FAILED
    log.info("partitioned registry of %d people written to %s; run with --registry %s", meta["population"],
             args.store, args.store)
    return EXIT_OK


def cmd_review(args: argparse.Namespace) -> int:
    from pipeline.review import ReviewFileError, read_decisions
    from pipeline.state import StateStore, default_url

    log = logging.getLogger("vaxrecon")
    if not args.file.is_file():
        log.error("review file not found: %s", args.file)
        return EXIT_USAGE
    try:
        result = read_decisions(args.file, args.by)
    except ReviewFileError as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    for problem in result.problems:
        log.error("%s: %s", args.file.name, problem)
    store = StateStore(args.state or default_url(args.file.resolve().parent.parent))
    stored = store.add_decisions(result.decisions)
    log.info("%s: %d decisions stored, %d rejected; the next run applies them", args.file.name, stored,
             len(result.problems))
    return EXIT_PARTIAL if result.problems else EXIT_OK


def cmd_dashboard(args: argparse.Namespace) -> int:
    app = Path(__file__).resolve().parent / "dashboard" / "app.py"
    env = {**os.environ, "VAXRECON_STATE": args.state}
    if args.deadline:
        env["VAXRECON_DEADLINE"] = args.deadline.isoformat()
    logging.getLogger("vaxrecon").info("dashboard: http://%s:%d (Ctrl+C to stop)", args.host, args.port)
    cmd = [sys.executable, "-m", "streamlit", "run", str(app), "--server.headless", "true",
           "--server.port", str(args.port), "--server.address", args.host, "--browser.gatherUsageStats", "false"]
    # The process becomes Streamlit (exec), so a stop signal reaches the server itself instead of
    # leaving it running orphaned behind a stopped `vaxrecon dashboard`.
    os.execve(sys.executable, cmd, env)
    return EXIT_OK  # not reached


def cmd_synth(args: argparse.Namespace) -> int:
    from pipeline.synth.generate import SynthConfig, generate
    from pipeline.synth.nights import write_nights

    if args.from_dir:
        if args.nights < 2:
            logging.getLogger("vaxrecon").error("--from needs --nights 2 or more")
            return EXIT_USAGE
        folders = write_nights(args.from_dir, args.out / "nights", args.nights, args.seed)
        logging.getLogger("vaxrecon").info("synth: %d nightly snapshots: %s", len(folders), [str(f) for f in folders])
        return EXIT_OK
    stats = generate(SynthConfig(out=args.out, people=args.people, doses=args.doses, provinces=tuple(args.provinces),
                                 seed=args.seed, run_date=args.run_date, corrupt_files=not args.no_corrupt,
                                 rows_per_file=args.rows_per_file))
    logging.getLogger("vaxrecon").info("synth: %s written to %s", stats, args.out)
    if args.nights > 1:
        write_nights(args.out, args.out / "nights", args.nights, args.seed)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_USAGE if exc.code not in (0, None) else EXIT_OK
    _setup_logging(args.verbose)
    handlers = {"run": cmd_run, "synth": cmd_synth, "review": cmd_review, "serve": cmd_serve,
                "dashboard": cmd_dashboard, "partition-registry": cmd_partition}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
