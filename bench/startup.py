"""The fixed cost of starting a run: `vaxrecon run` on a one-province, few-row input.

Prints the wall time of a whole CLI run in a fresh process (Prefect's temporary server
included, as a data officer or the scheduler without a server would see it), split into
the time until the server answered, the flow itself, and the rest, and the same run again
when nothing changed (every province reused). Then what importing each core
library costs a fresh process (best of three, Python's own start subtracted):
the part of the fixed cost that no change to vaxrecon's code can remove.

    python -m bench.startup
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample"


def _run(exports: Path, out: Path, *extra: str) -> tuple[float, str]:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env |= {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "PREFECT_LOGGING_LEVEL": "WARNING"}
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "run", "--registry", str(SAMPLE / "registry.parquet"),
                           "--exports", str(exports), "--out", str(out), "--run-date", "2026-11-26", *extra],
                          env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t
    if proc.returncode not in (0, 3):
        raise SystemExit(proc.stderr)
    return seconds, proc.stderr


LIBRARIES = ("pandas", "pyarrow", "rapidfuzz", "prefect", "great_expectations")


def fresh_interpreter_seconds(code: str, repeat: int = 3) -> float:
    """Best wall time of a fresh interpreter running `code`."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        exports = Path(tmp) / "exports"
        shutil.copytree(SAMPLE / "exports" / "66", exports / "66")
        rows = sum(1 for _ in exports.rglob("*.*"))
        for label, extra in (("first run", ()), ("nothing changed", ()), ("--no-validate", ("--force", "--no-validate"))):
            seconds, log = _run(exports, Path(tmp) / "out", *extra)
            ready = re.search(r"server ready at \S+ \(([\d.]+) s after start\)", log)
            summary = json.loads((Path(tmp) / "out" / "run.json").read_text(encoding="utf-8"))
            flow = sum(summary["provinces"]["66"]["stage_seconds"].values())
            print(f"{label:<16} whole command {seconds:5.1f} s; Prefect server ready after "
                  f"{float(ready.group(1)) if ready else float('nan'):.1f} s; province work {flow:.1f} s "
                  f"({summary['provinces']['66']['rows']} rows, {rows} files, status {summary['provinces']['66']['status']})")
    start = fresh_interpreter_seconds("pass")   # the interpreter's own start, taken off each import
    costs = {m: fresh_interpreter_seconds(f"import {m}") - start for m in LIBRARIES}
    together = fresh_interpreter_seconds(f"import {', '.join(LIBRARIES)}") - start
    print("importing, each in a fresh process: " + "; ".join(f"{m} {s:.2f} s" for m, s in costs.items())
          + f"; all together {together:.2f} s")


if __name__ == "__main__":
    main()
