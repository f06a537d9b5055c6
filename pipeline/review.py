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
import pyarrow as pa
import pyarrow.compute as pc
import python_calamine
import xlsxwriter

from pipeline.link.index import RegistryIndex
from pipeline.normalize.ids import classify_ids
from pipeline.output import atomic_write
from pipeline.report import SEX_VI, print_setup, safe_text
from pipeline.state import Decision
from pipeline.text import fold_key

# "None of them", as officers write it: không khớp, không, không phải, không đúng, không ai, none.
NONE_WORDS = {"khongkhop", "none", "khong", "khongphai", "khongdung", "khongai"}
HEADERS = ["Tỉnh", "Mã hồ sơ", "Loại dòng", "Số định danh", "Họ tên", "Ngày sinh", "Giới tính", "Số giấy tờ / CMND cũ",
           "Họ tên khớp", "Ngày sinh khớp", "Giới tính khớp", "Số giấy tờ khớp", "Điểm", "Tệp và dòng",
           "QUYẾT ĐỊNH (số định danh hoặc \"không khớp\")"]
PERSON, CANDIDATE = "Đối tượng", "Ứng viên"
DECISION_COL = len(HEADERS) - 1


class ReviewFileError(Exception):
    """The workbook is not a review queue this tool wrote."""


def _agree(a: pd.Series, b: pd.Series) -> np.ndarray:
    """Per line: "?" where either side has no value, else whether they are equal."""
    a, b = a.reset_index(drop=True), b.reset_index(drop=True)
    equal = (a == b).fillna(False).to_numpy(dtype=bool)
    return np.where(a.isna().to_numpy() | b.isna().to_numpy(), "?", np.where(equal, "khớp", "khác"))


def _id_agree(written: pd.Series, person_id: pd.Series, old_id: pd.Series) -> np.ndarray:
    """The ID written in the export against the registry's person ID or old ID."""
    written, person_id, old_id = (v.reset_index(drop=True).astype("string[pyarrow]")
                                  for v in (written, person_id, old_id))
    same = ((written == person_id).fillna(False) | (written == old_id).fillna(False)).to_numpy(dtype=bool)
    return np.where(written.isna().to_numpy(), "?", np.where(same, "khớp", "khác"))


def _year_text(values: pd.Series) -> pd.Series:
    """Years as whole numbers ("2016", not "2016.0"); "" where missing or not a number."""
    years = np.trunc(pd.to_numeric(values.reset_index(drop=True), errors="coerce").astype("float64"))
    return years.astype("Int64").astype("string[pyarrow]").fillna("")


def _dob_text(values: pd.Series) -> pd.Series:
    """Dates as dd/mm/yyyy; "" where missing."""
    dates = pd.to_datetime(values.reset_index(drop=True), errors="coerce")
    return dates.dt.strftime("%d/%m/%Y").astype("string[pyarrow]").fillna("")


def _dob_agree(dob_a: pd.Series, year_a: pd.Series, dob_b: pd.Series, year_b: pd.Series) -> np.ndarray:
    """Full dates where both sides have one, else the years."""
    a, b = _dob_text(dob_a).to_numpy(dtype=object), _dob_text(dob_b).to_numpy(dtype=object)
    ya, yb = _year_text(year_a).to_numpy(dtype=object), _year_text(year_b).to_numpy(dtype=object)
    by_year = np.where((ya == "") | (yb == ""), "?", np.where(ya == yb, "khớp (năm)", "khác"))
    return np.where((a != "") & (b != ""), np.where(a == b, "khớp", "khác"), by_year)


def _shown_dob(dob: pd.Series, year: pd.Series) -> pd.Series:
    """The date of birth as shown: the full date, else the year."""
    text = _dob_text(dob)
    return text.where(text != "", _year_text(year))


def _folded_names(names: pd.Series) -> pd.Series:
    """`fold_key` of each name, computed once per distinct name; missing stays missing."""
    names = names.reset_index(drop=True).astype("string[pyarrow]")
    distinct = names.dropna().unique()
    folded = pd.Series([fold_key(str(n)) for n in distinct], index=distinct, dtype="string[pyarrow]")
    return pd.Series(folded.reindex(names).to_numpy(), dtype="string[pyarrow]")


def build_cases(df: pd.DataFrame, index: RegistryIndex) -> pd.DataFrame:
    """One line per case and per candidate, in the order the workbook shows them: cases by case
    key, each followed by its candidates found in the registry, in the linker's order. Built
    column by column: one registry lookup for every candidate of every case."""
    rev = df[df["status"] == "review"]
    if not len(rev):
        return pd.DataFrame()
    rev = rev.sort_values("case_key", kind="stable")
    keys = rev["case_key"].to_numpy(dtype=object)
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    first = rev.iloc[starts].reset_index(drop=True)
    # "file dòng row; ..." over every row of a case, joined by Arrow within each case.
    spots = (rev["source_file"].astype("string[pyarrow]") + " dòng "
             + rev["source_row"].astype("Int64").astype("string[pyarrow]"))
    offsets = pa.array(np.r_[starts, len(rev)].astype(np.int32))
    where = pc.binary_join(pa.ListArray.from_arrays(offsets, pa.array(spots.array, type=pa.string())), "; ")
    cands = [list(c) if c is not None else [] for c in first["candidate_ids"]]
    persons = pd.DataFrame({
        "kind": PERSON, "case": first["case_key"].to_numpy(dtype=object), "pid": "",
        "name": first["full_name"].to_numpy(dtype=object),
        "dob": _shown_dob(first["date_of_birth"], first["birth_year"]).to_numpy(dtype=object),
        "sex": first["sex"].map(SEX_VI).fillna("").to_numpy(dtype=object),
        "id": first["original_id_number"].fillna("").to_numpy(dtype=object),
        "where": where.to_numpy(zero_copy_only=False),
        "score": first["match_score"].astype(float).to_numpy(), "cands": cands, "agree": None,
        "_case": np.arange(len(first)), "_line": -1})

    case_of = np.repeat(np.arange(len(first)), [len(c) for c in cands])
    pids = pd.Series([pid for c in cands for pid in c], dtype="string[pyarrow]")
    rows = index.rows_of(pids, "person_id")
    found = rows >= 0
    case_of, pids, rows = case_of[found], pids[found].reset_index(drop=True), rows[found]
    people = index.people.iloc[rows][["person_id", "old_id", "full_name", "date_of_birth", "birth_year", "sex"]]
    people = people.reset_index(drop=True)
    asked = first.iloc[case_of].reset_index(drop=True)
    ids = people["person_id"].astype("string[pyarrow]")
    ids = ids.where(people["old_id"].isna(), ids + " / " + people["old_id"].astype("string[pyarrow]"))
    fields = (_agree(_folded_names(asked["full_name"]), _folded_names(people["full_name"])),
              _dob_agree(asked["date_of_birth"], asked["birth_year"], people["date_of_birth"], people["birth_year"]),
              _agree(asked["sex"], people["sex"]),
              _id_agree(asked["id_number"], people["person_id"], people["old_id"]))
    agree = list(zip(*(f.tolist() for f in fields), strict=True))
    candidates = pd.DataFrame({
        "kind": CANDIDATE, "case": asked["case_key"].to_numpy(dtype=object), "pid": pids.to_numpy(dtype=object),
        "name": people["full_name"].to_numpy(dtype=object),
        "dob": _shown_dob(people["date_of_birth"], people["birth_year"]).to_numpy(dtype=object),
        "sex": people["sex"].map(SEX_VI).fillna("").to_numpy(dtype=object), "id": ids.to_numpy(dtype=object),
        "where": "", "score": None, "cands": [[] for _ in range(len(people))], "agree": agree,
        "_case": case_of, "_line": np.arange(len(people))})
    lines = pd.concat([persons, candidates], ignore_index=True)
    lines = lines.sort_values(["_case", "_line"], kind="stable").drop(columns=["_case", "_line"])
    return lines.reset_index(drop=True)


def write_review(df: pd.DataFrame, province: str, path: Path, index: RegistryIndex) -> int:
    """Write the review workbook; return the number of cases."""
    lines = build_cases(df, index)

    def build(tmp: Path) -> None:
        wb = xlsxwriter.Workbook(str(tmp), {"strings_to_numbers": False, "strings_to_formulas": False,
                                            "strings_to_urls": False})
        head = wb.add_format({"bold": True, "bg_color": "#FCE4D6", "border": 1, "text_wrap": True})
        person = wb.add_format({"bold": True, "bg_color": "#F2F2F2"})
        # Text: an ID typed or picked from the list stays "079...", not the number 79... (Excel
        # turns digits typed into a General cell into a number and drops the leading zero).
        decide = wb.add_format({"bg_color": "#FFF2CC", "border": 1, "locked": False, "num_format": "@"})
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
                    "validate": "list", "source": choice_list(line["cands"]),
                    "error_title": "Quyết định không hợp lệ",
                    "error_message": "Chọn một số định danh trong danh sách, hoặc \"không khớp\"."})
        ws.autofilter(0, 0, max(len(lines), 1), len(HEADERS) - 1)
        wb.close()

    atomic_write(path, build)
    return int((lines["kind"] == PERSON).sum()) if len(lines) else 0


LIST_CHARS = 255     # Excel's limit on a validation list written in place (items and commas)


def choice_list(candidates: list[str]) -> list[str]:
    """The decision cell's drop-down: as many candidates, best first, as Excel's limit on such a
    list holds, then "không khớp" (any candidate of the case is accepted when typed, listed or not)."""
    none, listed = "không khớp", []
    used = len(none)
    for cand in candidates:
        used += len(cand) + 1          # the item and its comma
        if used > LIST_CHARS:
            break
        listed.append(cand)
    return [*listed, none]


def decision_ids(values: list[str]) -> list[str]:
    """Decision cells' IDs as the cases list them, repaired as export IDs are: where Excel made the
    typed ID a number (79090000123, 79090000123.0: the leading zero lost) or the officer typed
    spaces or dots in it. Anything that is no ID is returned as it is."""
    repaired = classify_ids(pd.Series(values, dtype="string[pyarrow]"))["id_number"]
    return [v if pd.isna(r) else str(r) for v, r in zip(values, repaired, strict=True)]


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
    decided = {key: case for key, case in cases.items() if case["decision"]}
    as_ids = dict(zip(decided, decision_ids([c["decision"] for c in decided.values()]), strict=True))
    decisions, problems = [], []
    for key, case in decided.items():
        value = case["decision"]
        if fold_key(value) in NONE_WORDS:
            decision = "none"
        elif as_ids[key] in case["cands"]:
            decision = as_ids[key]
        else:
            problems.append(f"dòng {case['row']}: \"{value}\" không phải là số định danh của ứng viên nào trong hồ sơ này")
            continue
        decisions.append(Decision(case["province"], key, decision, tuple(case["cands"]), decided_by, stamp, path.name))
    return ReadResult(decisions, problems)
