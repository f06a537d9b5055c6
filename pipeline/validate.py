"""Validation with Great Expectations 1.x: an input suite per file, an output suite per province.

Suites are declared in `rules/expectations.yaml` and built as expectation
classes, so a misspelt expectation fails at start instead of being dropped.
Results are written as Data Docs under OUT/validation/ (index.html).
"""

from __future__ import annotations

import functools
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

log = logging.getLogger(__name__)
# GX's regex metric calls pandas str.contains with a pattern that has groups; the warning is about GX's code.
warnings.filterwarnings("ignore", message="This pattern is interpreted as a regular expression, and has match groups")


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


_page_templates: dict[str, bytes] = {}   # compiled Data Docs templates, by Jinja's cache key


@functools.lru_cache(maxsize=1)
def _compile_page_templates_once() -> None:
    """Data Docs pages are rendered from about a hundred Jinja templates, and Great Expectations
    makes a new Jinja environment for every view it renders, so every page build parsed and
    compiled them all again (0.29 s a build against 0.11 s, two builds a province). Its
    environments share one in-memory bytecode cache for the process instead; Jinja checks each
    entry against the template's source. The pages are the same."""
    import jinja2  # Great Expectations' own renderer: installed with it
    from great_expectations.render.view import view

    class TemplateCache(jinja2.BytecodeCache):
        def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
            if (code := _page_templates.get(bucket.key)) is not None:
                bucket.bytecode_from_string(code)

        def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
            _page_templates[bucket.key] = bucket.bytecode_to_string()

    cache = TemplateCache()

    class CachedEnvironment(jinja2.Environment):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("bytecode_cache", cache)
            super().__init__(*args, **kwargs)

    if getattr(view, "Environment", None) is jinja2.Environment:   # as GX 1.x imports it; else leave it
        setattr(view, "Environment", CachedEnvironment)  # noqa: B010 - a module attribute, typed as a class


@dataclass
class Validator:
    """One ephemeral GX context per run, writing Data Docs to `docs_dir`."""

    docs_dir: Path
    specs: dict[str, SuiteSpec]
    _definitions: dict[str, tuple[Any, dict[str, Any]]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)
        _compile_page_templates_once()
        self.ctx = gx.get_context(mode="ephemeral")
        self.ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
        self.ctx.add_data_docs_site(site_name="vaxrecon", site_config={
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                              "base_directory": str(self.docs_dir.resolve())},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"}})
        self.source = self.ctx.data_sources.add_pandas("exports")

    def run(self, suite_key: str, name: str, frame: pd.DataFrame, params: dict[str, Any] | None = None,
            batch: str | None = None) -> list[str]:
        """Validate `frame` against suite `suite_key` as `name`; return the failed expectations as
        readable strings.

        `batch` names one of several frames validated under the same `name` (a province's export
        files): the suite, asset and validation definition are then built once for all of them and
        each frame's result gets its own page, titled `batch`. Re-creating them per file cost about
        a quarter of the input suite's time (0.17 against 0.13 s a file)."""
        import great_expectations as gx
        from great_expectations.core.run_identifier import RunIdentifier

        params = params or {}
        built = self._definitions.get(name)
        if built is None:
            asset = self.source.add_dataframe_asset(name)
            whole = asset.add_batch_definition_whole_dataframe(f"{name}-all")
            suite = self.ctx.suites.add(_build(self.specs[suite_key], name, params))
            built = self._definitions[name] = (
                self.ctx.validation_definitions.add(gx.ValidationDefinition(name=name, data=whole, suite=suite)), params)
        elif built[1] != params:
            raise ValueError(f"validation {name!r} was built with {built[1]}, not {params}")
        # Counts only: sample values would put names and IDs into the national validation pages.
        result = built[0].run(batch_parameters={"dataframe": frame},
                              result_format={"result_format": "SUMMARY", "partial_unexpected_count": 0},
                              run_id=RunIdentifier(run_name=page_title(batch)) if batch is not None else None)
        failed = [f"{_describe(r.expectation_config)}: {r.result.get('unexpected_count', r.result.get('observed_value'))}"
                  for r in result.results if not r.success]
        return failed

    def build_docs(self) -> Path:
        self.ctx.build_data_docs(site_names=["vaxrecon"])
        return self.docs_dir / "index.html"


def page_title(batch: str) -> str:
    """A batch's name as Data Docs can store it (a run name is a folder there: no slashes)."""
    return batch.replace("/", " › ").replace("\\", " › ")


def _describe(config: Any) -> str:
    return "?" if config is None else f"{config.type} {config.kwargs.get('column', '')}".strip()


def suite_columns(spec: SuiteSpec) -> list[str]:
    """The columns a suite's expectations name, in order of first mention."""
    named: list[str] = []
    for entry in spec.entries:
        named += [entry["column"]] if "column" in entry else list(entry.get("column_list", []))
    return list(dict.fromkeys(named))


def input_frame(raw: pd.DataFrame, columns: list[str] | None = None) -> pd.DataFrame:
    """Raw text of one file as GX reads it: the `columns` the suite checks where given (GX converts
    and hashes every column it is handed), else all of them; Arrow strings, whose regular
    expressions run in Arrow rather than value by value (the same counts as object columns)."""
    frame = raw.drop(columns=["source_file"], errors="ignore")
    if columns is not None:
        frame = frame[[c for c in columns if c in frame.columns]]
    return frame.astype("string[pyarrow]")


def output_frame(table_df: pd.DataFrame) -> pd.DataFrame:
    """Corrected rows plus the derived columns the output suite checks."""
    linked = table_df["status"].isin(["matched", "corrected"])
    text = "string[pyarrow]"   # as for inputs: Arrow strings, the same counts as object columns, faster
    return pd.DataFrame({
        "source_file": table_df["source_file"].astype(text), "source_row": table_df["source_row"].astype("int64"),
        "status": table_df["status"].astype(text), "match_score": table_df["match_score"].astype(float),
        "linked_person_id": table_df["person_id"].where(linked).astype(text),
        "unlinked_person_id": table_df["person_id"].where(~linked).astype(text),
    })


def codes_frame(table_df: pd.DataFrame) -> pd.DataFrame:
    """One row per error code given (the output_codes suite)."""
    codes = table_df["error_codes"].explode().dropna()
    return pd.DataFrame({"error_code": codes.astype(object).to_numpy()})


def write_index(folder: Path, provinces: dict[str, dict[str, Any]]) -> Path:
    """OUT/validation/index.html: one line per province linking its input and output pages (counts only)."""
    from html import escape

    from pipeline.output import atomic_write

    rows = []
    for code, p in sorted(provinces.items()):
        links = " · ".join(f'<a href="{code}/{part}/index.html">{label}</a>'
                           for part, label in (("input", "tệp đầu vào"), ("output", "kết quả đầu ra"))
                           if (folder / code / part / "index.html").exists())
        failed = len(p.get("validation_failures") or [])
        verdict = "đạt" if not failed and not p.get("error") else f"{failed} kiểm định không đạt"
        if p.get("error"):
            verdict += f"; lỗi: {escape(p['error'])}"
        rows.append(f"<tr><td>{code}</td><td>{verdict}</td><td>{links or 'không có'}</td></tr>")
    html = ("<!doctype html><html lang=\"vi\"><head><meta charset=\"utf-8\"><title>Kết quả kiểm định dữ liệu</title>"
            "<style>body{font-family:sans-serif;margin:2em}td,th{border:1px solid #ccc;padding:.3em .6em}"
            "table{border-collapse:collapse}</style></head><body><h1>Kết quả kiểm định dữ liệu</h1>"
            "<table><tr><th>Tỉnh</th><th>Kết quả</th><th>Trang chi tiết</th></tr>"
            + "".join(rows) + "</table></body></html>\n")
    path = folder / "index.html"
    atomic_write(path, lambda p: p.write_text(html, encoding="utf-8"))
    return path
