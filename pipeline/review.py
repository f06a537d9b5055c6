"""The review queue: cases the linker would not decide, for an officer to answer and feed back.

`OUT/review/<PP>.xlsx` lists each case (an export person) with its values and
each candidate's registry values side by side, with per-field agreement, and
a decision cell: a candidate's ID, or "không khớp" (none of them).
`read_decisions` validates a filled-in workbook; decisions are stored in the
state store and applied by the next run.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import python_calamine
import xlsxwriter

from pipeline.link.index import RegistryIndex
from pipeline.output import atomic_write
from pipeline.report import SEX_VI, print_setup, safe_text
from pipeline.state import Decision
from pipeline.text import fold_key

NONE_WORDS = {"khongkhop", "none", "khong"}
HEADERS = ["Tỉnh", "Mã hồ sơ", "Loại dòng", "Số định danh", "Họ tên", "Ngày sinh", "Giới tính", "Số giấy tờ / CMND cũ",
           "Họ tên khớp", "Ngày sinh khớp", "Giới tính khớp", "Số giấy tờ khớp", "Điểm", "Tệp và dòng",
           "QUYẾT ĐỊNH (số định danh hoặc \"không khớp\")"]
PERSON, CANDIDATE = "Đối tượng", "Ứng viên"
DECISION_COL = len(HEADERS) - 1


class ReviewFileError(Exception):
    """The workbook is not a review queue this tool wrote."""


def _agree(a: object, b: object) -> str:
    if a is None or b is None or a is pd.NA or b is pd.NA or (isinstance(a, float) and np.isnan(a)):
        return "?"
    return "khớp" if a == b else "khác"


def _id_agree(written: object, person_id: object, old_id: object) -> str:
    if written is None or pd.isna(written):
        return "?"
    known = {str(v) for v in (person_id, old_id) if v is not None and not pd.isna(v)}
    return "khớp" if str(written) in known else "khác"


def _year_text(value: object) -> str:
    return "" if value is None or pd.isna(value) else str(int(float(str(value))))


def _dob_agree(row: pd.Series, person: pd.Series) -> str:
    """Full dates where both sides have one, else the years."""
    a, b = _dob_text(row["date_of_birth"]), _dob_text(person["date_of_birth"])
    if a and b:
        return "khớp" if a == b else "khác"
    ya, yb = _year_text(row["birth_year"]), _year_text(person["birth_year"])
    if not ya or not yb:
        return "?"
    return "khớp (năm)" if ya == yb else "khác"


def _dob_text(value: object) -> str:
    return "" if value is None or pd.isna(value) else pd.Timestamp(value).strftime("%d/%m/%Y")


def build_cases(df: pd.DataFrame, index: RegistryIndex) -> pd.DataFrame:
    """One line per case and per candidate, in the order the workbook shows them."""
    rev = df[df["status"] == "review"]
    lines = []
    people = index.people
    for key, grp in rev.groupby("case_key", sort=True):
        first = grp.iloc[0]
        where = "; ".join(f"{f} dòng {r}" for f, r in zip(grp["source_file"], grp["source_row"], strict=True))
        cands = list(first["candidate_ids"])
        lines.append({"kind": PERSON, "case": key, "pid": "", "name": first["full_name"],
                      "dob": _dob_text(first["date_of_birth"]) or _year_text(first["birth_year"]),
                      "sex": SEX_VI.get(first["sex"], ""), "id": first["original_id_number"] or "", "where": where,
                      "score": float(first["match_score"]), "cands": cands})
        rows = index.rows_of(pd.Series(cands, dtype="string[pyarrow]"), "person_id")
        for pid, row in zip(cands, rows, strict=True):
            if row < 0:
                continue
            p = people.iloc[int(row)]
            ids = str(p["person_id"]) + (f" / {p['old_id']}" if pd.notna(p["old_id"]) else "")
            lines.append({"kind": CANDIDATE, "case": key, "pid": pid, "name": p["full_name"],
                          "dob": _dob_text(p["date_of_birth"]) or _year_text(p["birth_year"]),
                          "sex": SEX_VI.get(p["sex"], ""), "id": ids, "where": "", "score": None, "cands": [],
                          "agree": (_agree(fold_key(str(first["full_name"] or "")), fold_key(str(p["full_name"]))),
                                    _dob_agree(first, p),
                                    _agree(first["sex"], p["sex"]),
                                    _id_agree(first["id_number"], p["person_id"], p["old_id"]))})
    return pd.DataFrame(lines)


def write_review(df: pd.DataFrame, province: str, path: Path, index: RegistryIndex) -> int:
    """Write the review workbook; return the number of cases."""
    lines = build_cases(df, index)

    def build(tmp: Path) -> None:
        wb = xlsxwriter.Workbook(str(tmp), {"strings_to_numbers": False, "strings_to_formulas": False,
                                            "strings_to_urls": False})
        head = wb.add_format({"bold": True, "bg_color": "#FCE4D6", "border": 1, "text_wrap": True})
        person = wb.add_format({"bold": True, "bg_color": "#F2F2F2"})
        decide = wb.add_format({"bg_color": "#FFF2CC", "border": 1, "locked": False})
        ws = wb.add_worksheet("Cần xem xét")
        print_setup(ws)
        for j, h in enumerate(HEADERS):
            ws.write_string(0, j, h, head)
        ws.set_column(0, 2, 10)
        ws.set_column(3, 3, 15)
        ws.set_column(4, 4, 26)
        ws.set_column(5, 12, 12)
        ws.set_column(13, 13, 40)
        ws.set_column(DECISION_COL, DECISION_COL, 28)
        ws.set_column(1, 1, 10, None, {"hidden": True})
        ws.freeze_panes(1, 0)
        for i, line in enumerate(lines.to_dict("records"), start=1):
            is_person = line["kind"] == PERSON
            f = person if is_person else None
            values = [province, line["case"], line["kind"], line["pid"], line["name"], line["dob"], line["sex"], line["id"]]
            for j, v in enumerate(values):
                ws.write_string(i, j, safe_text(v), f)
            if not is_person:
                for j, a in enumerate(line["agree"], start=8):
                    ws.write_string(i, j, a)
            else:
                ws.write_number(i, 12, round(line["score"], 4), f)
                ws.write_string(i, 13, safe_text(line["where"]), f)
                ws.write_blank(i, DECISION_COL, None, decide)
                ws.data_validation(i, DECISION_COL, i, DECISION_COL, {
                    "validate": "list", "source": [*line["cands"], "không khớp"][:20],
                    "error_title": "Quyết định không hợp lệ",
                    "error_message": "Chọn một số định danh trong danh sách, hoặc \"không khớp\"."})
        ws.autofilter(0, 0, max(len(lines), 1), len(HEADERS) - 1)
        wb.close()

    atomic_write(path, build)
    return int((lines["kind"] == PERSON).sum()) if len(lines) else 0


@dataclass(frozen=True)
class ReadResult:
    decisions: list[Decision]
    problems: list[str]      # "row 7: ..." for each decision that cannot be accepted


def read_decisions(path: Path, decided_by: str, now: dt.datetime | None = None) -> ReadResult:
    """Validate a filled-in review workbook; return the decisions and every problem found."""
    try:
        rows = python_calamine.CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0).to_python(skip_empty_area=False)
    except Exception as exc:  # calamine raises its own error types
        raise ReviewFileError(f"{path}: not a readable workbook: {exc}") from exc
    if not rows or [str(c) for c in rows[0][: len(HEADERS)]] != HEADERS:
        raise ReviewFileError(f"{path}: not a review queue written by vaxrecon (header row differs)")
    stamp = (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds")
    cases: dict[str, dict] = {}
    for n, row in enumerate(rows[1:], start=2):
        cells = [("" if c is None else str(c)).strip() for c in row] + [""] * len(HEADERS)
        case = cases.setdefault(cells[1], {"province": cells[0], "cands": [], "decision": None, "row": n})
        if cells[2] == PERSON:
            case["decision"] = cells[DECISION_COL]
            case["row"] = n
        elif cells[2] == CANDIDATE:
            case["cands"].append(cells[3])
    decisions, problems = [], []
    for key, case in cases.items():
        value = case["decision"]
        if not value:
            continue
        if fold_key(value) in NONE_WORDS:
            decision = "none"
        elif value in case["cands"]:
            decision = value
        else:
            problems.append(f"dòng {case['row']}: \"{value}\" không phải là số định danh của ứng viên nào trong hồ sơ này")
            continue
        decisions.append(Decision(case["province"], key, decision, tuple(case["cands"]), decided_by, stamp, path.name))
    return ReadResult(decisions, problems)
