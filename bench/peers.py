"""vaxrecon next to Splink 5 (DuckDB backend) and the recordlinkage toolkit on the same data and truth.

    python -m bench.peers [--people 300000 --doses 150000] [--rl-limit 0]

Each peer runs in its own environment, created here if missing and never
needed by the product: Splink in bench/cache/peers-venv (`pip install splink`),
recordlinkage 0.16 in bench/cache/rl-venv (it pins pandas < 3). Both get the
rows already decoded by vaxrecon's readers and normalisation (names repaired
and folded, IDs repaired, dates parsed), the most favourable input they can
have; their times cover reading those rows, blocking, training and predicting.
recordlinkage links the first --rl-limit export rows only (0: all), its
precision and recall are measured on those rows.
Prints wall time, peak memory, precision and recall of each, and the ratios.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

from bench.common import CACHE, dataset, measure
from pipeline.evaluate import compare, load_corrected

VENV = CACHE / "peers-venv"
RL_VENV = CACHE / "rl-venv"
RUN_DATE = dt.date(2026, 11, 26)


def peers_python(venv: Path = VENV, packages: tuple[str, ...] = ("splink>=5", "pyarrow", "pandas")) -> Path:
    """The Python of a peer's own environment, created with its packages if missing."""
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], check=True)
    return python


def accuracy(rows: pd.DataFrame, links: pd.DataFrame, reg_ids: object) -> tuple[float, float]:
    """Precision and recall of a peer's links (export row -> registry row) against the truth."""
    import numpy as np

    ids = np.asarray(reg_ids)
    linked = rows.merge(links, left_on="uid", right_on="row", how="left")
    got = pd.Series(ids[linked["registry_row"].fillna(0).astype("int64")], index=linked.index).where(
        linked["registry_row"].notna())
    in_reg = linked["true_person_id"].notna()
    right = (got == linked["true_person_id"]) & got.notna()
    return float(right.sum() / max(got.notna().sum(), 1)), float((right & in_reg).sum() / max(in_reg.sum(), 1))


def prepare(data: Path, folder: Path) -> pd.DataFrame:
    """Decoded export rows and registry for Splink; returns the truth per export row."""
    from flows.reconcile import ProvinceRun, ingest_province, list_provinces
    from pipeline.link.index import load_index
    from pipeline.reconcile import normalise
    from pipeline.rules import default_rules
    from pipeline.text import fold_series

    rules = default_rules()
    index = load_index(data / "registry.parquet", rules)
    frames = []
    with tempfile.TemporaryDirectory() as tmp:
        for code in list_provinces(data / "exports", None):
            raw = ingest_province(ProvinceRun(code), data / "exports", Path(tmp), rules, None)
            norm = normalise(raw, rules, RUN_DATE, index.tone_style, index.lexicon(rules))
            frames.append(pd.DataFrame({
                "source_file": raw["source_file"].to_numpy(), "source_row": raw["source_row"].to_numpy(),
                "name_fold": norm["name_fold"].to_numpy(),
                "dob": pd.to_datetime(norm["dob_date"]).dt.strftime("%Y-%m-%d").to_numpy(),
                "sex": norm["sex"].astype("string").to_numpy(), "person_id": norm["id_number"].to_numpy()}))
    exports = pd.concat(frames, ignore_index=True)
    exports.insert(0, "uid", range(len(exports)))
    exports.drop(columns=["source_file", "source_row"]).astype({"uid": "int64"}).to_parquet(folder / "exports.parquet")
    reg = pd.read_parquet(data / "registry.parquet", columns=["person_id", "full_name", "date_of_birth", "sex"])
    pd.DataFrame({"uid": range(len(reg)), "name_fold": fold_series(reg["full_name"]).to_numpy(),
                  "dob": pd.to_datetime(reg["date_of_birth"]).dt.strftime("%Y-%m-%d").to_numpy(),
                  "sex": reg["sex"].to_numpy(), "person_id": reg["person_id"].to_numpy()}).to_parquet(
        folder / "registry.parquet")
    truth = pd.read_parquet(data / "truth.parquet")[["source_file", "source_row", "true_person_id"]]
    return exports[["uid", "source_file", "source_row"]].merge(truth, how="left").assign(
        registry_ids=lambda d: d["true_person_id"])


def run_child(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall seconds and peak resident memory (GB) of a command and all its descendants."""
    seconds, peak, _ = measure(cmd, env)
    return seconds, peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--people", type=int, default=300_000)
    ap.add_argument("--doses", type=int, default=150_000)
    ap.add_argument("--rl-limit", type=int, default=0, help="export rows recordlinkage links (0: all)")
    args = ap.parse_args()
    data = dataset(args.people, args.doses)
    python = peers_python()
    rl_python = peers_python(RL_VENV, ("recordlinkage==0.16", "pandas<3", "pyarrow"))
    with tempfile.TemporaryDirectory() as tmp:
        folder, out = Path(tmp) / "splink", Path(tmp) / "out"
        folder.mkdir()
        env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"} | {"PREFECT_LOGGING_LEVEL": "WARNING"}
        ours, our_mem = run_child([sys.executable, "-m", "pipeline.cli", "run", "--registry",
                                   str(data / "registry.parquet"), "--exports", str(data / "exports"), "--out",
                                   str(out), "--run-date", RUN_DATE.isoformat()], env)
        summary = json.loads((out / "run.json").read_text(encoding="utf-8"))
        stages = {s: sum(p["stage_seconds"].get(s, 0.0) for p in summary["provinces"].values())
                  for s in ("index", "ingest", "normalise", "link")}
        res = compare(load_corrected(out), pd.read_parquet(data / "truth.parquet"))
        rows = prepare(data, folder)
        splink_s, splink_mem = run_child([str(python), str(Path(__file__).with_name("peer_splink.py")), str(folder)])
        timings = json.loads((folder / "splink.json").read_text(encoding="utf-8"))
        links = pd.read_parquet(folder / "splink_links.parquet")
        reg_ids = pd.read_parquet(folder / "registry.parquet", columns=["person_id"])["person_id"].to_numpy()
        rl_cmd = [str(rl_python), str(Path(__file__).with_name("peer_recordlinkage.py")), str(folder)]
        rl_s, rl_mem = run_child(rl_cmd + (["--limit", str(args.rl_limit)] if args.rl_limit else []))
        rl_timings = json.loads((folder / "rl.json").read_text(encoding="utf-8"))
        rl_links = pd.read_parquet(folder / "rl_links.parquet")
    s_prec, s_rec = accuracy(rows, links, reg_ids)
    rl_rows = rows.iloc[: rl_timings["rows"]]
    r_prec, r_rec = accuracy(rl_rows, rl_links, reg_ids)
    link_part = sum(stages.values())
    print(f"{len(rows):,} dose rows against {args.people:,} registry people")
    print(f"{'':<34}{'seconds':>9}{'peak GB':>9}{'precision':>11}{'recall':>9}")
    print(f"{'vaxrecon run (whole, reports, GX)':<34}{ours:>9.1f}{our_mem:>9.2f}{res['precision']:>11.5f}"
          f"{res['recall']:>9.5f}")
    print(f"{'vaxrecon read-normalise-link':<34}{link_part:>9.1f}")
    print(f"{'Splink 5 read-train-predict':<34}{timings['total']:>9.1f}{splink_mem:>9.2f}{s_prec:>11.5f}{s_rec:>9.5f}")
    print(f"{'Splink process (incl. imports)':<34}{splink_s:>9.1f}")
    print(f"{'recordlinkage index-compare-ECM':<34}{rl_timings['total']:>9.1f}{rl_mem:>9.2f}{r_prec:>11.5f}{r_rec:>9.5f}"
          f"   ({rl_timings['rows']:,} export rows, {rl_timings['pairs']:,} candidate pairs)")
    print(f"{'recordlinkage process (incl. imports)':<34}{rl_s:>9.1f}")
    print(f"ratios: Splink / our read-normalise-link {timings['total'] / link_part:.2f}x; "
          f"Splink / our whole run {timings['total'] / ours:.2f}x (targets: >= 5x and >= 2x); "
          f"recordlinkage / our read-normalise-link {rl_timings['total'] / link_part * len(rows) / rl_timings['rows']:.2f}x "
          f"(per row)")


if __name__ == "__main__":
    main()
