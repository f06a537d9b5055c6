"""The nightly deployment: flows/prefect.yaml declares it, flows/nightly.yaml holds its parameters.

`vaxrecon serve` (and `make serve`) reads the same declaration and serves it
from this process, so the schedule and time zone live in one file only.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from prefect import flow

from flows.nightly import with_runner

PROJECT = Path(__file__).resolve().parent.parent
PREFECT_FILE = PROJECT / "flows" / "prefect.yaml"
CONFIG_KEYS = {"registry", "exports", "out", "provinces", "state", "validate", "workers", "dask_address", "rules",
               "slice_persons", "dose_bucket_rows"}


class DeploymentError(ValueError):
    """flows/prefect.yaml or the config file it names is not usable; the message lists every problem."""


@dataclass(frozen=True)
class DeploymentSpec:
    name: str
    description: str
    cron: str
    timezone: str
    parameters: dict[str, Any]

    def describe(self) -> str:
        return f"cron {self.cron!r} ({self.timezone}), parameters {self.parameters}"


def load_config(path: str | Path) -> dict[str, Any]:
    """The run parameters from a config file; relative paths are taken from the project folder."""
    path = Path(path) if Path(path).is_absolute() else PROJECT / path
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise DeploymentError(f"config {path}: {exc}") from exc
    problems = [f"unknown key {k!r}" for k in data if k not in CONFIG_KEYS]
    problems += [f"{k!r} is required" for k in ("registry", "exports", "out") if not data.get(k)]
    for key in ("workers", "slice_persons", "dose_bucket_rows"):
        value = data.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            problems.append(f"{key!r} must be a whole number of at least 1, or null; got {value!r}")
    if problems:
        raise DeploymentError(f"config {path}: " + "; ".join(problems))
    for key in ("registry", "exports", "out", "rules"):
        if data.get(key) and not Path(data[key]).is_absolute():
            data[key] = str(PROJECT / data[key])
    if data.get("provinces") is not None:  # YAML reads 01 as the number 1
        data["provinces"] = [str(p).zfill(2) for p in data["provinces"]]
    return data


def load_deployment(prefect_file: Path | None = None, name: str = "nightly") -> DeploymentSpec:
    path = prefect_file or PREFECT_FILE
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        dep = next(d for d in doc["deployments"] if d["name"] == name)
        sched = dep["schedules"][0]
        cron, tz = str(sched["cron"]), str(sched.get("timezone", "UTC"))
    except (OSError, yaml.YAMLError, KeyError, IndexError, StopIteration, TypeError) as exc:
        raise DeploymentError(f"{path}: no usable deployment {name!r} with a schedule ({exc!r})") from exc
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise DeploymentError(f"{path}: unknown time zone {tz!r}") from exc
    fields = cron.split()
    if len(fields) != 5:
        raise DeploymentError(f"{path}: cron {cron!r} must have five fields")
    params = dict(dep.get("parameters") or {})
    load_config(params.get("config", "flows/nightly.yaml"))  # fail now, not at 01:00
    return DeploymentSpec(name, str(dep.get("description", "")), cron, tz, params)


@flow(name="scheduled-night")
def scheduled_night(config: str = "flows/nightly.yaml", provinces: list[str] | None = None,
                    force: bool = False) -> dict[str, Any]:
    """The scheduled entry point: read the config file, then run the nightly reconciliation for today.

    `provinces` (for a run started by hand) overrides the config file's list.
    """
    c = load_config(config)
    if provinces:
        c["provinces"] = [str(p).zfill(2) for p in provinces]
    runner = with_runner(c.get("workers"), c.get("dask_address"))
    today = dt.datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")).date()
    return runner(registry=c["registry"], exports=c["exports"], out=c["out"], provinces=c.get("provinces"),
                  run_date=today, rules=c.get("rules"), state=c.get("state"), validate=c.get("validate", True),
                  force=force, slice_persons=c.get("slice_persons"), dose_bucket_rows=c.get("dose_bucket_rows"))


def serve(spec: DeploymentSpec) -> None:
    """Serve the deployment from this process until stopped."""
    from prefect.schedules import Cron

    scheduled_night.serve(name=spec.name, description=spec.description, parameters=spec.parameters,
                          schedules=[Cron(spec.cron, timezone=spec.timezone)])
