"""The state store: run history and reviewers' decisions (SQLAlchemy; SQLite by default, PostgreSQL by URL).

Only aggregates and review decisions are kept here; the national dashboard
reads run history and never a person's name or date of birth.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

metadata = sa.MetaData()

runs = sa.Table(
    "runs", metadata,
    sa.Column("run_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("started_at", sa.String(40), nullable=False),
    sa.Column("finished_at", sa.String(40)),
    sa.Column("run_date", sa.String(10), nullable=False),
    sa.Column("registry_people", sa.Integer),
    sa.Column("exit_code", sa.Integer),
)

province_runs = sa.Table(
    "province_runs", metadata,
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.run_id"), primary_key=True),
    sa.Column("province", sa.String(2), primary_key=True),
    sa.Column("status", sa.String(10), nullable=False),          # ok | failed | reused
    sa.Column("error", sa.Text),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("rows_by_status", sa.Text, nullable=False),        # JSON
    sa.Column("rows_by_code", sa.Text, nullable=False),          # JSON
    sa.Column("files_read", sa.Integer, nullable=False),
    sa.Column("files_quarantined", sa.Text, nullable=False),     # JSON [{file, reason}]
    sa.Column("stage_seconds", sa.Text, nullable=False),         # JSON
    sa.Column("input_hash", sa.String(64)),
    sa.Column("people_by_status", sa.Text),                      # JSON: distinct persons per status
    sa.Column("review_cases", sa.Integer),                       # review backlog (export persons)
    sa.Column("finished_at", sa.String(40)),
)
ADDED_COLUMNS = {"people_by_status": "TEXT", "review_cases": "INTEGER", "finished_at": "VARCHAR(40)"}

review_decisions = sa.Table(
    "review_decisions", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("province", sa.String(2), nullable=False),
    sa.Column("case_key", sa.String(40), nullable=False),        # export-person key (no personal data)
    sa.Column("decision", sa.String(20), nullable=False),        # a candidate person_id, or 'none'
    sa.Column("candidates", sa.Text, nullable=False),            # JSON list offered to the officer
    sa.Column("decided_by", sa.String(200), nullable=False),
    sa.Column("decided_at", sa.String(40), nullable=False),
    sa.Column("source_file", sa.String(500), nullable=False),
    sa.Index("ix_decisions_case", "province", "case_key"),
)


def default_url(out: Path) -> str:
    """SQLite file beside the outputs: OUT/state.sqlite."""
    return f"sqlite:///{(out / 'state.sqlite').resolve()}"


@dataclass(frozen=True)
class Decision:
    province: str
    case_key: str
    decision: str          # person_id or "none"
    candidates: tuple[str, ...]
    decided_by: str
    decided_at: str
    source_file: str


class StateStore:
    """Thin access layer over the tables above."""

    def __init__(self, url: str) -> None:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.engine = sa.create_engine(url, future=True)
        metadata.create_all(self.engine)
        self._add_missing_columns()

    def _add_missing_columns(self) -> None:
        """A store written by an earlier version lacks the newer province_runs columns: add them."""
        have = {c["name"] for c in sa.inspect(self.engine).get_columns("province_runs")}
        with self.engine.begin() as con:
            for name, kind in ADDED_COLUMNS.items():
                if name not in have:
                    con.execute(sa.text(f"ALTER TABLE province_runs ADD COLUMN {name} {kind}"))

    def start_run(self, started_at: str, run_date: dt.date, registry_people: int) -> int:
        with self.engine.begin() as con:
            res = con.execute(runs.insert().values(started_at=started_at, run_date=run_date.isoformat(),
                                                   registry_people=registry_people))
            key = res.inserted_primary_key
            assert key is not None
            return int(key[0])

    def finish_run(self, run_id: int, finished_at: str, exit_code: int, provinces: dict[str, dict[str, Any]]) -> None:
        with self.engine.begin() as con:
            con.execute(runs.update().where(runs.c.run_id == run_id).values(finished_at=finished_at, exit_code=exit_code))
            for code, p in provinces.items():
                con.execute(province_runs.insert().values(
                    run_id=run_id, province=code, status=p["status"], error=p.get("error"), rows=p["rows"],
                    rows_by_status=json.dumps(p["rows_by_status"]), rows_by_code=json.dumps(p["rows_by_code"]),
                    files_read=len(p["files_read"]), files_quarantined=json.dumps(p["files_quarantined"], ensure_ascii=False),
                    stage_seconds=json.dumps(p["stage_seconds"]), input_hash=p.get("input_hash"),
                    people_by_status=json.dumps(p.get("people_by_status", {})), review_cases=p.get("review_cases"),
                    finished_at=finished_at))

    def add_decisions(self, decisions: Iterable[Decision]) -> int:
        rows = [d.__dict__ | {"candidates": json.dumps(list(d.candidates))} for d in decisions]
        if not rows:
            return 0
        with self.engine.begin() as con:
            con.execute(review_decisions.insert(), rows)
        return len(rows)

    def decisions(self, province: str) -> dict[str, Decision]:
        """The latest decision per case of a province."""
        q = sa.select(review_decisions).where(review_decisions.c.province == province).order_by(review_decisions.c.id)
        out: dict[str, Decision] = {}
        with self.engine.connect() as con:
            for r in con.execute(q).mappings():
                out[r["case_key"]] = Decision(r["province"], r["case_key"], r["decision"],
                                              tuple(json.loads(r["candidates"])), r["decided_by"], r["decided_at"],
                                              r["source_file"])
        return out

    def history(self) -> list[dict[str, Any]]:
        """Every province run, newest last (aggregates only)."""
        q = sa.select(runs.c.run_id, runs.c.started_at, runs.c.run_date, province_runs).join(
            province_runs, runs.c.run_id == province_runs.c.run_id).order_by(runs.c.run_id)
        with self.engine.connect() as con:
            return [dict(r) for r in con.execute(q).mappings()]
