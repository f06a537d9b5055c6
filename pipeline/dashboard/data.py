"""Aggregates for the ministry dashboard, from the state store's run history only.

Nothing here reads a corrected file, a report or a review queue: the history
holds counts per province and run, never a person.

Definitions (also shown on the dashboard):
- a row is *verified* when its status is `matched`: linked, and the export agrees with the
  registry; every other row is *unresolved* (`corrected` rows still need the fix made in the
  source system; `review`, `unmatched` and `rejected` rows need an officer);
- a province is *stale* when its last successful run finished more than 24 hours ago;
- the projection fits a straight line to the unresolved rows of the province's last
  successful runs (at most `window`) against the run date, and extends it to zero.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipeline.rules import ALL_CODES, STATUSES, Rules, default_rules
from pipeline.state import StateStore

OK_STATUSES = ("ok", "reused")
_RULES = default_rules()
STATUS_VI = dict(_RULES.labels_statuses)   # Vietnamese labels from rules/labels_vi.yaml
CODE_VI = dict(_RULES.labels_codes)


@dataclass(frozen=True)
class History:
    """One row per (run, province) with counts as columns; only successful province runs."""

    runs: pd.DataFrame
    failed: pd.DataFrame

    @property
    def empty(self) -> bool:
        return self.runs.empty


def load_history(url: str) -> History:
    """Read the run history from the state store at `url` and flatten its JSON counts."""
    rows = StateStore(url).history()
    frame = pd.DataFrame(rows)
    if frame.empty:
        empty = pd.DataFrame(columns=["run_id", "province", "run_date", "rows"])
        return History(empty, empty)
    frame["run_date"] = pd.to_datetime(frame["run_date"], format="%Y-%m-%d")
    frame["finished_at"] = pd.to_datetime(frame.get("finished_at"), utc=True, errors="coerce")
    for col, keys in (("rows_by_status", STATUSES), ("rows_by_code", ALL_CODES)):
        parsed = frame[col].map(json.loads)
        for k in keys:
            frame[k] = parsed.map(lambda d, k=k: int(d.get(k, 0))).astype("int64")
    people = frame["people_by_status"].map(lambda v: json.loads(v) if isinstance(v, str) else {})
    for k in STATUSES:
        frame[f"people_{k}"] = people.map(lambda d, k=k: int(d.get(k, 0))).astype("int64")
    frame["people"] = frame[[f"people_{k}" for k in STATUSES]].sum(axis=1)
    frame["review_cases"] = pd.to_numeric(frame.get("review_cases"), errors="coerce").fillna(0).astype("int64")
    frame["unresolved"] = frame["rows"] - frame["matched"]
    ok = frame["status"].isin(OK_STATUSES)
    keep = ["run_id", "province", "run_date", "finished_at", "status", "rows", "people", "unresolved",
            "review_cases", *STATUSES, *[f"people_{k}" for k in STATUSES], *ALL_CODES]
    return History(frame.loc[ok, keep].reset_index(drop=True),
                   frame.loc[~ok, ["run_id", "province", "run_date", "finished_at", "error"]].reset_index(drop=True))


def province_names(rules: Rules | None = None) -> dict[str, str]:
    return dict((rules or default_rules()).provinces)


def latest(history: History) -> pd.DataFrame:
    """The last successful run of each province."""
    runs = history.runs.sort_values(["run_date", "run_id"])
    return runs.groupby("province", sort=True).tail(1).set_index("province").sort_index()


def national_table(history: History, now: dt.datetime, names: dict[str, str]) -> pd.DataFrame:
    """Per province: rows and people by status, share verified, codes, review backlog, last run, stale."""
    last = latest(history)
    out = pd.DataFrame(index=last.index)
    out["Tỉnh"] = [f"{c} – {names.get(c, '?')}" for c in last.index]
    out["Số dòng"] = last["rows"]
    out["Số người"] = last["people"]
    out["Tỷ lệ đã xác minh (%)"] = (100 * last["matched"] / last["rows"].where(last["rows"] > 0)).round(1)
    for k in STATUSES:
        out[f"Dòng: {STATUS_VI[k]}"] = last[k]
    for k in STATUSES:
        out[f"Người: {STATUS_VI[k]}"] = last[f"people_{k}"]
    out["Chưa giải quyết (dòng)"] = last["unresolved"]
    out["Tồn đọng xem xét (ca)"] = last["review_cases"]
    for code in ALL_CODES:
        out[CODE_VI.get(code, code)] = last[code]
    out["Lần chạy thành công gần nhất"] = last["finished_at"].dt.tz_convert("Asia/Ho_Chi_Minh").dt.strftime(
        "%d/%m/%Y %H:%M")
    age = pd.Timestamp(now) - last["finished_at"]
    out["Quá hạn (> 24 giờ)"] = np.where(age > pd.Timedelta(hours=24), "QUÁ HẠN", "")
    return out.reset_index(drop=True)


def unresolved_series(history: History) -> pd.DataFrame:
    """Unresolved rows per run date (rows) and province (columns), the last run of each day,
    carried forward over days a province did not run; plus the national total."""
    runs = history.runs.sort_values(["run_date", "run_id"])
    daily = runs.groupby(["run_date", "province"]).tail(1).pivot(index="run_date", columns="province",
                                                                  values="unresolved")
    daily = daily.sort_index().ffill()
    daily["Toàn quốc"] = daily.sum(axis=1, min_count=1)
    return daily


def project(series: pd.Series, deadline: dt.date, window: int = 7) -> dict[str, Any]:
    """Projected day the unresolved count reaches zero at the recent rate, against `deadline`."""
    s = series.dropna().tail(window)
    last = float(s.iloc[-1]) if len(s) else float("nan")
    result: dict[str, Any] = {"unresolved": last, "rate_per_day": float("nan"), "zero_on": None,
                              "misses_deadline": None}
    if len(s) == 0:
        return result
    if last <= 0:
        result |= {"rate_per_day": 0.0, "zero_on": s.index[-1].date(), "misses_deadline": False}
        return result
    if len(s) < 2:
        return result  # one run: no rate yet
    days = (s.index - s.index[0]).days.to_numpy(dtype=float)
    slope = float(np.polyfit(days, s.to_numpy(dtype=float), 1)[0]) if days[-1] > 0 else float("nan")
    result["rate_per_day"] = slope
    if not slope < 0:
        result["misses_deadline"] = True  # not going down: it never reaches zero
        return result
    zero = s.index[-1].date() + dt.timedelta(days=int(np.ceil(last / -slope - 1e-9)))
    result |= {"zero_on": zero, "misses_deadline": zero > deadline}
    return result


def deadline_table(history: History, deadline: dt.date, names: dict[str, str]) -> pd.DataFrame:
    """Per province and nationally: unresolved rows now, rate, projected zero date, on time or not."""
    daily = unresolved_series(history)
    rows = []
    for col in daily.columns:
        p = project(daily[col], deadline)
        label = col if col == "Toàn quốc" else f"{col} – {names.get(col, '?')}"
        verdict = {None: "chưa đủ số liệu", True: "KHÔNG KỊP", False: "kịp hạn"}[p["misses_deadline"]]
        rows.append({"Tỉnh": label, "Chưa giải quyết (dòng)": p["unresolved"],
                     "Giảm mỗi ngày (dòng)": round(-p["rate_per_day"], 1) if p["rate_per_day"] == p["rate_per_day"]
                     else None,
                     "Dự kiến hết vào ngày": p["zero_on"].strftime("%d/%m/%Y") if p["zero_on"] else "không xác định",
                     "Hạn chót": deadline.strftime("%d/%m/%Y"), "Đánh giá": verdict})
    return pd.DataFrame(rows)


def default_deadline(history: History) -> dt.date:
    """1 June on or after the latest run date (the 2022 campaign's deadline day)."""
    last = history.runs["run_date"].max().date() if not history.empty else dt.date.today()
    june = dt.date(last.year, 6, 1)
    return june if june >= last else dt.date(last.year + 1, 6, 1)


def province_codes_over_time(history: History, province: str) -> pd.DataFrame:
    """Rows per error code and status over the province's successful runs (one row per run date)."""
    runs = history.runs[history.runs["province"] == province].sort_values(["run_date", "run_id"])
    runs = runs.groupby("run_date").tail(1).set_index("run_date")
    return runs[["rows", "unresolved", "review_cases", *STATUSES, *ALL_CODES]].rename(columns=CODE_VI)
