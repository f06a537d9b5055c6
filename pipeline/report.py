"""The province's error report for its data officers, in Vietnamese (XLSX + CSV copies).

Rows to fix are grouped by what the officer must do; each shows the file and
row, what was written, what the registry holds and the suggested correction.
Every text cell is written as text (IDs keep their zeros) and made safe
against formula injection.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from concurrent.futures import Executor, Future, wait
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import xlsxwriter

from pipeline.output import atomic_write
from pipeline.rules import ALL_CODES, STATUSES, Rules
from pipeline.sheets import Column, chunks, csv_bytes, fill_sheets, sheet_names, to_arrow

FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")
SEX_VI = {"M": "Nam", "F": "Nữ"}


def safe_text(value: object) -> str:
    """Text that no spreadsheet will run as a formula ('=1+1' -> "'=1+1")."""
    text = "" if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NA else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


@dataclass(frozen=True)
class Group:
    sheet: str          # sheet name (Vietnamese, <= 31 characters)
    slug: str           # CSV file name
    codes: tuple[str, ...]
    statuses: tuple[str, ...]
    field: str | None   # which corrected value is the suggestion


GROUPS = (
    Group("Sửa số giấy tờ", "sua_so_giay_to", ("ID_MISSING", "ID_INVALID", "ID_OLD", "ID_WRONG"), (), "id_number"),
    Group("Sửa họ tên", "sua_ho_ten", ("NAME_DIACRITICS", "NAME_WRONG"), (), "full_name"),
    Group("Sửa ngày sinh", "sua_ngay_sinh", ("DOB_MISSING", "DOB_WRONG"), (), "date_of_birth"),
    Group("Sửa giới tính", "sua_gioi_tinh", ("SEX_WRONG",), (), "sex"),
    Group("Kiểm tra mũi tiêm", "kiem_tra_mui_tiem", ("DOSE_DUPLICATE", "DOSE_DATE_INVALID", "DOSE_INTERVAL", "VACCINE_UNKNOWN"), (), None),
    Group("Cần xem xét", "can_xem_xet", (), ("review",), None),
    Group("Không tìm thấy", "khong_tim_thay", (), ("unmatched",), None),
    Group("Không xử lý được", "khong_xu_ly_duoc", (), ("rejected",), None),
)

COLUMNS = [
    ("Tệp", "source_file", 34), ("Dòng", "source_row", 7), ("Trạng thái", "status_vi", 22),
    ("Lỗi", "codes_vi", 40), ("Họ tên đã ghi", "original_full_name", 26), ("Họ tên trong CSDL", "reg_full_name", 26),
    ("Ngày sinh đã ghi", "original_date_of_birth", 14), ("Ngày sinh trong CSDL", "reg_date_of_birth", 14),
    ("Giới tính đã ghi", "original_sex", 10), ("Giới tính trong CSDL", "reg_sex", 10),
    ("Số giấy tờ đã ghi", "original_id_number", 16), ("Số định danh trong CSDL", "reg_id_number", 16),
    ("Đề xuất sửa", "suggestion", 26), ("Ngày tiêm", "dose_date", 12), ("Vắc xin", "vaccine", 12),
    ("Giải thích", "match_reason", 60),
]


def _registry_side(df: pd.DataFrame) -> pd.DataFrame:
    """Registry values are the corrected values of linked rows; blank for others."""
    linked = df["status"].isin(["matched", "corrected"])
    out = pd.DataFrame(index=df.index)
    out["reg_full_name"] = df["full_name"].where(linked)
    out["reg_date_of_birth"] = df["date_of_birth"].where(linked)
    out["reg_sex"] = df["sex"].map(SEX_VI).where(linked)
    out["reg_id_number"] = df["person_id"].where(linked)
    return out


def _suggestion(df: pd.DataFrame, group: Group) -> pd.Series:
    linked = df["status"].isin(["matched", "corrected"])
    if group.field is None:
        return pd.Series("", index=df.index)
    if group.field == "sex":
        return df["sex"].map(SEX_VI).where(linked, "")
    if group.field == "date_of_birth":
        dob = pd.to_datetime(df["date_of_birth"]).dt.strftime("%d/%m/%Y")
        year = df["birth_year"].astype("Int64").astype("string")
        return dob.fillna(year).where(linked, "")
    if group.field == "id_number":
        return df["person_id"].where(linked, "Bổ sung số định danh cá nhân (12 số)")
    return df[group.field].where(linked, "")


@dataclass(frozen=True)
class RowCodes:
    """Every row's error codes: flattened with the row each came from, and joined with '|'."""

    flat: np.ndarray
    parents: np.ndarray
    joined: np.ndarray

    @classmethod
    def of(cls, df: pd.DataFrame) -> RowCodes:
        """Built with Arrow list kernels, no Python call per row."""
        lists = pa.array(list(df["error_codes"]) if len(df) else [], type=pa.list_(pa.string()))
        return cls(pc.list_flatten(lists).to_numpy(zero_copy_only=False).astype(object),
                   pc.list_parent_indices(lists).to_numpy(),
                   pc.binary_join(lists, "|").to_numpy(zero_copy_only=False).astype(object))


def rows_for(df: pd.DataFrame, group: Group, rules: Rules, codes: RowCodes | None = None) -> pd.DataFrame:
    """The rows a group lists, with the report's columns."""
    codes = codes or RowCodes.of(df)
    in_group = np.zeros(len(df), dtype=bool)
    in_group[codes.parents[np.isin(codes.flat, list(group.codes))]] = True
    hit = in_group | df["status"].isin(group.statuses).to_numpy()
    sub = df[hit].copy()
    labels = rules.labels_codes
    # Codes in Vietnamese: one join per distinct combination of codes, mapped to the rows.
    joined = pd.Series(codes.joined[hit], index=sub.index, dtype=object)
    combos = {k: "; ".join(labels[x] for x in k.split("|") if x) for k in joined.unique()}
    sub["codes_vi"] = joined.map(combos)
    sub["status_vi"] = sub["status"].map(rules.labels_statuses)
    sub = pd.concat([sub, _registry_side(sub)], axis=1)
    sub["suggestion"] = _suggestion(sub, group)
    return sub


def print_setup(ws: xlsxwriter.worksheet.Worksheet) -> None:
    """Landscape, one page wide, header row on every printed page: officers print these lists."""
    ws.set_landscape()
    ws.set_paper(9)  # A4
    ws.fit_to_pages(1, 0)
    ws.repeat_rows(0)


KINDS = {"source_row": "int", "reg_date_of_birth": "date", "dose_date": "date"}


def list_columns(rows: pd.DataFrame) -> list[Column]:
    """The report's columns of a list as Arrow arrays (dates as dates, the row number as a number)."""
    return [Column(title, KINDS.get(key, "text"), to_arrow(rows[key], KINDS.get(key, "text"))) for title, key, _ in COLUMNS]


def _write_sheet(wb: xlsxwriter.Workbook, name: str, n_rows: int, fmt: dict) -> None:
    """The sheet's layout and header; its rows are filled in after the workbook closes (`fill_sheets`)."""
    ws = wb.add_worksheet(name)
    print_setup(ws)
    for j, (title, _, width) in enumerate(COLUMNS):
        ws.write_string(0, j, title, fmt["header"])
        ws.set_column(j, j, width)
    ws.freeze_panes(1, 0)
    ws.autofilter(0, 0, max(n_rows, 1), len(COLUMNS) - 1)


def _summary(wb: xlsxwriter.Workbook, df: pd.DataFrame, codes: RowCodes, province: str, rules: Rules, run_date: dt.date,
             files_read: Iterable[str], quarantined: list[dict[str, str]], fmt: dict) -> None:
    ws = wb.add_worksheet("Tổng hợp")
    print_setup(ws)
    ws.set_column(0, 0, 48)
    ws.set_column(1, 2, 18)
    ws.write_string(0, 0, f"BÁO CÁO ĐỐI CHIẾU DỮ LIỆU TIÊM CHỦNG – {rules.provinces.get(province, province)} ({province})", fmt["title"])
    ws.write_string(1, 0, f"Ngày chạy: {run_date.strftime('%d/%m/%Y')} – Tổng số dòng: {len(df)}")
    r = 3
    ws.write_row(r, 0, ["Trạng thái", "Mã", "Số dòng"], fmt["header"])
    counts = df["status"].value_counts()
    for s in STATUSES:
        r += 1
        ws.write_row(r, 0, [rules.labels_statuses[s], s])
        ws.write_number(r, 2, int(counts.get(s, 0)))
    r += 2
    ws.write_row(r, 0, ["Lỗi", "Mã", "Số dòng"], fmt["header"])
    code_counts = pd.Series(codes.flat).value_counts()
    for c in ALL_CODES:
        r += 1
        ws.write_row(r, 0, [rules.labels_codes[c], c])
        ws.write_number(r, 2, int(code_counts.get(c, 0)))
    r += 2
    ws.write_row(r, 0, ["Tệp đã đọc", "Số dòng"], fmt["header"])
    per_file = df["source_file"].value_counts()
    for f in files_read:
        r += 1
        ws.write_string(r, 0, safe_text(f))
        ws.write_number(r, 1, int(per_file.get(f, 0)))
    r += 2
    ws.write_row(r, 0, ["Tệp không đọc được (đã cách ly)", "Lý do"], fmt["header"])
    for q in quarantined:
        r += 1
        ws.write_string(r, 0, safe_text(q["file"]))
        ws.write_string(r, 1, safe_text(q["reason"]))


def write_report(df: pd.DataFrame, province: str, folder: Path, rules: Rules, run_date: dt.date,
                 files_read: Iterable[str], quarantined: list[dict[str, str]], beside: Executor | None = None) -> Path:
    """Write reports/<PP>/bao_cao_<PP>.xlsx and one UTF-8-with-BOM CSV per list.

    A list longer than an Excel sheet continues on sheets named '<list> (2)', ...; its CSV holds it whole.
    With `beside` (an executor whose thread is otherwise idle), the CSV copies are written there
    while the workbook is built: both are mostly Arrow kernels and compression, which leave the
    interpreter free. Either way every file is complete when this returns.
    """
    path = folder / f"bao_cao_{province}.xlsx"
    codes = RowCodes.of(df)
    lists = [(group, list_columns(rows_for(df, group, rules, codes))) for group in GROUPS]  # built once, written twice

    def write_csv(columns: list[Column], csv_path: Path) -> None:
        atomic_write(csv_path, partial(Path.write_bytes, data=csv_bytes(columns)))

    copies: list[Future[None]] = []
    if beside is not None:
        copies = [beside.submit(write_csv, columns, folder / f"{group.slug}.csv") for group, columns in lists]

    def build(tmp: Path) -> None:
        wb = xlsxwriter.Workbook(str(tmp), {"constant_memory": True, "strings_to_numbers": False,
                                            "strings_to_formulas": False, "strings_to_urls": False})
        fmt = {"header": wb.add_format({"bold": True, "bg_color": "#DDEBF7", "border": 1, "text_wrap": True}),
               "date": wb.add_format({"num_format": "dd/mm/yyyy"}), "title": wb.add_format({"bold": True, "font_size": 13})}
        date_style = fmt["date"]._get_xf_index()   # fixed now, so the filled cells can name it
        _summary(wb, df, codes, province, rules, run_date, files_read, quarantined, fmt)
        fills, position = {}, 1
        for group, columns in lists:
            n = len(columns[0].values)
            for name, span in zip(sheet_names(group.sheet, n), chunks(n), strict=True):
                position += 1
                _write_sheet(wb, name, span[1] - span[0], fmt)
                fills[position] = (columns, span, date_style)
        wb.close()
        fill_sheets(tmp, fills)

    try:
        atomic_write(path, build)
    except BaseException:
        wait(copies)                 # no copy is still being written behind the error
        raise
    for copy in copies:
        copy.result()                # a copy's error is raised here
    if beside is None:
        for group, columns in lists:
            write_csv(columns, folder / f"{group.slug}.csv")
    return path
