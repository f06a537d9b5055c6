"""Readers for every export file kind of contract 1.2.

Each reader returns raw cell text (str, or None for an empty cell) for the
canonical columns plus `source_row` exactly as contract 3.1 defines it:
the spreadsheet's row number for XLSX, the physical line number for CSV
(header line 1), and the 1-based row position for Parquet. Rows whose cells
are all empty are not data rows.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import itertools
import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import python_calamine

from pipeline.ingest.headers import find_header, map_header
from pipeline.rules import Rules

CANONICAL = ("full_name", "date_of_birth", "sex", "id_number", "phone", "address", "district", "ward",
             "dose_date", "dose_number", "vaccine", "lot_number", "site")
KIND_BY_SUFFIX = {".csv": "csv", ".txt": "csv", ".xlsx": "xlsx", ".xlsm": "xlsx", ".xls": "xlsx", ".parquet": "parquet"}


class IngestError(Exception):
    """A file that cannot be read; the message names the problem for the quarantine reason."""


@dataclass(frozen=True)
class ReadResult:
    """Raw text of one file's data rows."""

    frame: pd.DataFrame          # canonical columns (string) + source_row (int64)
    kind: str
    encoding: str | None
    header_row: int              # the row / line number of the header (0 for Parquet)
    columns: dict[str, str]      # canonical -> header text as written


def cell_text(value: object) -> str | None:
    """The text a person sees for a cell value read by calamine or pyarrow."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return str(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value)
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return str(value)
    text = str(value)
    return text if text.strip() else None


def column_text(values: Sequence[object]) -> pa.Array:
    """`cell_text` of a column of cells: a column of text cells (every CSV column, most sheet
    columns) is converted by Arrow in one step; any other column cell by cell."""
    if set(map(type, values)) <= {str, type(None)}:
        arr = pa.array(values, pa.string())
        blank = pc.fill_null(pc.equal(pc.utf8_trim_whitespace(arr), ""), True)
        return pc.if_else(blank, pa.scalar(None, pa.string()), arr)
    return pa.array([cell_text(v) for v in values], pa.string())


def _check_required(mapping: dict[int, str], rules: Rules) -> None:
    if not set(mapping.values()) & set(rules.required_any):
        raise IngestError("no column for the name (Họ và tên) or the ID number (Số CMND/CCCD)")


def _table_frame(rows: Sequence[Sequence[object]], numbers_of: Sequence[int], rules: Rules, unit: str = "rows",
                 ) -> tuple[pd.DataFrame, int, dict[int, str], list[object]]:
    """Header detection and data-row extraction shared by every text-table reader, column by column.

    `numbers_of[k]` is the row (or line) number a person sees for raw row k. Rows whose
    every cell is blank are left out.
    """
    found = find_header(rows, rules)
    if found is None:
        raise IngestError(f"no header row naming at least {rules.min_known_columns} known columns "
                          f"in the first {rules.header_search_rows} {unit}")
    offset, mapping = found
    _check_required(mapping, rules)
    data = rows[offset + 1:]
    columns = [column_text(col) for col in itertools.zip_longest(*data, fillvalue=None)]
    keep = np.zeros(len(data), dtype=bool)
    for col in columns:
        keep |= col.is_valid().to_numpy(zero_copy_only=False)
    mask, n = pa.array(keep), int(keep.sum())
    column_of = {c: i for i, c in mapping.items()}
    frame = pd.DataFrame({
        c: pd.array(columns[column_of[c]].filter(mask) if column_of.get(c, len(columns)) < len(columns)
                    else pa.nulls(n, pa.string()), dtype="string[pyarrow]")
        for c in CANONICAL})
    frame["source_row"] = pd.array(np.asarray(numbers_of[offset + 1:], dtype=np.int64)[keep], dtype="int64")
    return frame, numbers_of[offset], mapping, list(rows[offset])


def read_xlsx(path: Path, rules: Rules) -> ReadResult:
    """First sheet of a workbook (.xlsx, or a legacy .xls), read with calamine (Rust)."""
    try:
        book = python_calamine.CalamineWorkbook.from_path(str(path))
        sheet = book.get_sheet_by_index(0)
        rows = sheet.to_python(skip_empty_area=False)
    except Exception as exc:  # calamine raises its own error types for every kind of damage
        raise IngestError(f"not a readable XLSX workbook: {exc}") from exc
    frame, header_no, mapping, header = _table_frame(rows, range(1, len(rows) + 1), rules)
    return ReadResult(frame, "xlsx", None, header_no,
                      {c: str(header[i]) for i, c in mapping.items()})


def detect_encoding(raw: bytes) -> tuple[str, str]:
    """(codec, label): BOMs first, then strict UTF-8, else Windows-1258."""
    if raw.startswith(codecs.BOM_UTF8):
        return "utf-8-sig", "utf-8-sig"
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16", "utf-16"
    if b"\x00" in raw[:4000]:
        raise IngestError("binary content (NUL bytes) without a UTF-16 byte-order mark")
    try:
        raw.decode("utf-8")
        return "utf-8", "utf-8"
    except UnicodeDecodeError:
        return "cp1258", "cp1258"


def sniff_delimiter(lines: Sequence[str]) -> str:
    """The delimiter that splits the most of the first lines into the most fields."""
    best, best_score = ",", -1
    for delim in ("\t", ";", ","):
        counts = [len(next(csv.reader([ln], delimiter=delim))) for ln in lines if ln.strip()]
        score = sum(c for c in counts if c > 2)
        if score > best_score:
            best, best_score = delim, score
    return best


def read_csv(path: Path, rules: Rules) -> ReadResult:
    """CSV or Excel 'Unicode text', encoding and delimiter detected."""
    raw = path.read_bytes()
    codec, label = detect_encoding(raw)
    try:
        text = raw.decode(codec)
    except UnicodeDecodeError as exc:
        raise IngestError(f"cannot decode as {label}: {exc}") from exc
    text = unicodedata.normalize("NFC", text) if codec == "cp1258" else text
    delim = sniff_delimiter(text.splitlines()[:30])
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim)
    rows: list[list[str]] = []
    starts: list[int] = []
    last = 0
    try:
        for row in reader:
            starts.append(last + 1)
            last = reader.line_num
            rows.append(row)
    except csv.Error as exc:
        raise IngestError(f"line {reader.line_num}: malformed CSV: {exc}") from exc
    frame, header_no, mapping, header = _table_frame(rows, starts, rules, "lines")
    return ReadResult(frame, "csv", label, header_no,
                      {c: str(header[i]) for i, c in mapping.items()})


def read_parquet(path: Path, rules: Rules) -> ReadResult:
    """Parquet with canonical (or aliased) column names; dates may be date32."""
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise IngestError(f"not a readable Parquet file: {exc}") from exc
    mapping = map_header(table.column_names, rules)
    for i, name in enumerate(table.column_names):
        if name in CANONICAL and name not in mapping.values():
            mapping[i] = name
    _check_required(mapping, rules)
    cols: dict[str, pd.Series] = {}
    for i, canonical in mapping.items():
        col = table.column(i)
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            s = col.to_pandas(types_mapper=pd.ArrowDtype).astype("string[pyarrow]")
        else:
            s = pd.Series([cell_text(v) for v in col.to_pylist()], dtype="string[pyarrow]")
        cols[canonical] = s.mask(s.str.strip() == "")
    n = table.num_rows
    frame = pd.DataFrame({c: cols.get(c, pd.Series([None] * n, dtype="string[pyarrow]")) for c in CANONICAL})
    frame["source_row"] = pd.array(range(1, n + 1), dtype="int64")
    empty = frame[list(CANONICAL)].isna().all(axis=1)
    return ReadResult(frame[~empty].reset_index(drop=True), "parquet", None, 0,
                      {c: table.column_names[i] for i, c in mapping.items()})


def read_export(path: Path, rules: Rules) -> ReadResult:
    """Read one export file of any supported kind; raise IngestError naming the problem."""
    kind = KIND_BY_SUFFIX.get(path.suffix.lower())
    if kind is None:
        raise IngestError(f"unsupported file kind {path.suffix!r} (expected .xlsx, .xls, .csv, .txt or .parquet)")
    if path.stat().st_size == 0:
        raise IngestError("empty file")
    reader = {"xlsx": read_xlsx, "csv": read_csv, "parquet": read_parquet}[kind]
    return reader(path, rules)
