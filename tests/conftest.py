"""Shared fixtures: the rules, and one run of `vaxrecon run` on the committed sample."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pandas as pd
import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample"
RUN_DATE = dt.date(2026, 11, 26)


@pytest.fixture(scope="session", autouse=True)
def prefect_server():
    """One Prefect test server for the whole session (its start costs seconds)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


@pytest.fixture(scope="session")
def rules():
    from pipeline.rules import default_rules

    return default_rules()


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory):
    """(exit code, OUT folder) of one CLI run on data/sample."""
    from pipeline.cli import main

    out = tmp_path_factory.mktemp("sample_out")
    code = main(["run", "--registry", str(SAMPLE / "registry.parquet"), "--exports", str(SAMPLE / "exports"),
                 "--out", str(out), "--run-date", RUN_DATE.isoformat()])
    return code, out


@pytest.fixture(scope="session")
def sample_truth() -> pd.DataFrame:
    return pd.read_parquet(SAMPLE / "truth.parquet")
