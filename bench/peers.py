"""vaxrecon next to Splink 5 (DuckDB backend) on the same data, with the same truth.

    python -m bench.peers [--people 300000 --doses 150000]

Splink runs in its own environment (bench/cache/peers-venv, created here with
`pip install splink` if missing): it is never needed by the product. It gets
the rows already decoded by vaxrecon's readers and normalisation (names
repaired and folded, IDs repaired, dates parsed), which is the most favourable
input it can have; its time covers reading those rows, training and predicting.
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
RUN_DATE = dt.date(2026, 11, 26)


def peers_python() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "splink>=5", "pyarrow", "pandas"], check=True)
    return python


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
    args = ap.parse_args()
    data = dataset(args.people, args.doses)
    python = peers_python()
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
    linked = rows.merge(links, left_on="uid", right_on="row", how="left")
    got = pd.Series(reg_ids[linked["registry_row"].fillna(0).astype("int64")], index=linked.index).where(
        linked["registry_row"].notna())
    in_reg = linked["true_person_id"].notna()
    right = (got == linked["true_person_id"]) & got.notna()
    s_prec = right.sum() / max(got.notna().sum(), 1)
    s_rec = (right & in_reg).sum() / max(in_reg.sum(), 1)
    link_part = sum(stages.values())
    print(f"{len(rows):,} dose rows against {args.people:,} registry people")
    print(f"{'':<34}{'seconds':>9}{'peak GB':>9}{'precision':>11}{'recall':>9}")
    print(f"{'vaxrecon run (whole, reports, GX)':<34}{ours:>9.1f}{our_mem:>9.2f}{res['precision']:>11.5f}"
          f"{res['recall']:>9.5f}")
    print(f"{'vaxrecon read-normalise-link':<34}{link_part:>9.1f}")
    print(f"{'Splink 5 read-train-predict':<34}{timings['total']:>9.1f}{splink_mem:>9.2f}{s_prec:>11.5f}{s_rec:>9.5f}")
    print(f"{'Splink process (incl. imports)':<34}{splink_s:>9.1f}")
    print(f"ratios: Splink / our read-normalise-link {timings['total'] / link_part:.2f}x; "
          f"Splink / our whole run {timings['total'] / ours:.2f}x (targets: >= 5x and >= 2x)")


if __name__ == "__main__":
    main()
