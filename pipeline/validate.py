"""Validation with Great Expectations 1.x: an input suite per file, an output suite per province.

Suites are declared in `rules/expectations.yaml` and built as expectation
classes, so a misspelt expectation fails at start instead of being dropped.
Results are written as Data Docs under OUT/validation/ (index.html).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

log = logging.getLogger(__name__)


class ExpectationsError(ValueError):
    """rules/expectations.yaml declares something Great Expectations does not have."""


@dataclass
class SuiteSpec:
    name: str
    entries: list[dict[str, Any]]


def load_specs(rules_dir: Path) -> dict[str, SuiteSpec]:
    """Read and check the suites; every problem is reported at once."""
    import great_expectations as gx

    data = yaml.safe_load((rules_dir / "expectations.yaml").read_text(encoding="utf-8"))
    problems = []
    for suite, entries in data.items():
        for i, entry in enumerate(entries):
            cls = getattr(gx.expectations, str(entry.get("type")), None)
            if cls is None:
                problems.append(f"expectations.yaml: {suite}[{i}]: no expectation {entry.get('type')!r}")
    if problems:
        raise ExpectationsError("; ".join(problems))
    return {k: SuiteSpec(k, list(v)) for k, v in data.items()}


def _build(spec: SuiteSpec, name: str, params: dict[str, Any]):
    import great_expectations as gx

    suite = gx.ExpectationSuite(name=name)
    for entry in spec.entries:
        kwargs = {k: v for k, v in entry.items() if k != "type"}
        kwargs = {k: (params[v[1:-1]] if isinstance(v, str) and v.startswith("{") and v.endswith("}") else v)
                  for k, v in kwargs.items()}
        suite.add_expectation(getattr(gx.expectations, entry["type"])(**kwargs))
    return suite


@dataclass
class Validator:
    """One ephemeral GX context per run, writing Data Docs to `docs_dir`."""

    docs_dir: Path
    specs: dict[str, SuiteSpec]
    failures: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.ctx = gx.get_context(mode="ephemeral")
        self.ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
        self.ctx.add_data_docs_site(site_name="vaxrecon", site_config={
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                              "base_directory": str(self.docs_dir.resolve())},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"}})
        self.source = self.ctx.data_sources.add_pandas("exports")

    def run(self, suite_key: str, name: str, frame: pd.DataFrame, params: dict[str, Any] | None = None) -> list[str]:
        """Validate `frame`; return the failed expectations as readable strings."""
        import great_expectations as gx

        asset = self.source.add_dataframe_asset(name)
        batch = asset.add_batch_definition_whole_dataframe(f"{name}-all")
        suite = self.ctx.suites.add(_build(self.specs[suite_key], name, params or {}))
        vd = self.ctx.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))
        # Counts only: sample values would put names and IDs into the national validation pages.
        result = vd.run(batch_parameters={"dataframe": frame},
                        result_format={"result_format": "SUMMARY", "partial_unexpected_count": 0})
        failed = [f"{_describe(r.expectation_config)}: {r.result.get('unexpected_count', r.result.get('observed_value'))}"
                  for r in result.results if not r.success]
        if failed:
            self.failures[name] = failed
        return failed

    def build_docs(self) -> Path:
        self.ctx.build_data_docs(site_names=["vaxrecon"])
        return self.docs_dir / "index.html"


def _describe(config: Any) -> str:
    return "?" if config is None else f"{config.type} {config.kwargs.get('column', '')}".strip()


def input_frame(raw: pd.DataFrame) -> pd.DataFrame:
    """Raw text of one file as GX reads it (object columns)."""
    return raw.drop(columns=["source_file"], errors="ignore").astype(object).where(raw.notna(), None)


def output_frame(table_df: pd.DataFrame) -> pd.DataFrame:
    """Corrected rows plus the derived columns the output suite checks."""
    linked = table_df["status"].isin(["matched", "corrected"])
    return pd.DataFrame({
        "source_file": table_df["source_file"].astype(object), "source_row": table_df["source_row"].astype("int64"),
        "status": table_df["status"].astype(object), "match_score": table_df["match_score"].astype(float),
        "linked_person_id": table_df["person_id"].where(linked).astype(object),
        "unlinked_person_id": table_df["person_id"].where(~linked).astype(object),
    })


def codes_frame(table_df: pd.DataFrame) -> pd.DataFrame:
    """One row per error code given (the output_codes suite)."""
    codes = table_df["error_codes"].explode().dropna()
    return pd.DataFrame({"error_code": codes.astype(object).to_numpy()})
