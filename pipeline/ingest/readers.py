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
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import python_calamine

from pipeline.ingest.headers import find_header, header_name, map_header
from pipeline.rules import Rules
from pipeline.text import fold_key

CANONICAL = ("full_name", "date_of_birth", "sex", "id_number", "phone", "address", "district", "ward",
             "dose_date", "dose_number", "vaccine", "lot_number", "site")
KIND_BY_SUFFIX = {".csv": "csv", ".txt": "csv", ".xlsx": "xlsx", ".xlsm": "xlsx", ".xls": "xlsx", ".parquet": "parquet"}


FAMILY_PART = "name_family_part"   # a column of family and middle names, joined to the given name of "Tên"
# Python's csv module refuses a field over 128 KiB, and would refuse a whole file for one such cell
# (a pasted document, a runaway quote). Arrow has no such limit; neither do we.
csv.field_size_limit(2**31 - 1)
READ_PROBLEM = "read_problem"   # the column saying why a row that was found cannot be read safely
OVERLONG = ("dòng có {cells} ô, nhiều hơn {width} cột của tệp: có dấu phân cách thừa (ví dụ dấu phẩy "
            "trong địa chỉ không nằm trong ngoặc kép) nên các ô bị lệch cột; sửa dòng này trong tệp")
REPEATED_HEADER = "dòng tiêu đề cột lặp lại giữa tệp (các tệp được nối với nhau?): không phải dòng tiêm chủng"


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
    sheet: str | None = None     # the worksheet read, where it is not the workbook's first


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
        return _blank_to_null(pa.array(values, pa.string()))
    return pa.array([cell_text(v) for v in values], pa.string())


def _blank_to_null(arr: pa.Array) -> pa.Array:
    """Text cells with nothing but white space become empty (null) cells."""
    blank = pc.fill_null(pc.equal(pc.utf8_trim_whitespace(arr), ""), True)
    return pc.if_else(blank, pa.scalar(None, pa.string()), arr)


def _check_required(mapping: dict[int, str], rules: Rules) -> None:
    if not set(mapping.values()) & set(rules.required_any):
        raise IngestError("no column for the name (Họ và tên) or the ID number (Số CMND/CCCD)")


def _header(rows: Sequence[Sequence[object]], rules: Rules, unit: str) -> tuple[int, dict[int, str], list[object]]:
    """(offset, column map, header cells) of the header row among the first rows, or IngestError."""
    found = find_header(rows, rules)
    if found is None:
        raise IngestError(f"no header row naming at least {rules.min_known_columns} known columns "
                          f"in the first {rules.header_search_rows} {unit}")
    _check_required(found[1], rules)
    return found


def _columns_frame(columns: Sequence[pa.Array], numbers: np.ndarray, mapping: dict[int, str],
                   header: Sequence[object], rules: Rules, problems: pa.Array | None = None) -> pd.DataFrame:
    """The canonical columns of the data rows (`numbers`: the row number a person sees for each);
    rows whose every cell is blank are left out. A name split over two columns is joined
    (`split_name`); several ID columns give one ID (`_one_id`). `problems`: why a row cannot be
    read safely (null where it can), kept as the `read_problem` column."""
    keep = np.zeros(len(numbers), dtype=bool)
    for col in columns:
        keep |= col.is_valid().to_numpy(zero_copy_only=False)
    mask, n = pa.array(keep), int(keep.sum())
    column_of = {c: i for i, c in mapping.items()}
    frame = pd.DataFrame({
        c: pd.array(columns[column_of[c]].filter(mask) if column_of.get(c, len(columns)) < len(columns)
                    else pa.nulls(n, pa.string()), dtype="string[pyarrow]")
        for c in CANONICAL})
    if split_name(header, column_of) and max(column_of["full_name"], column_of[FAMILY_PART]) < len(columns):
        frame["full_name"] = pd.array(_joined_name(columns[column_of[FAMILY_PART]].filter(mask),
                                                   columns[column_of["full_name"]].filter(mask)), dtype="string[pyarrow]")
    id_columns = [i for i, cell in enumerate(header) if i < len(columns) and cell is not None
                  and header_name(cell, rules) == "id_number"]
    if len(id_columns) > 1:
        frame["id_number"] = pd.array(_one_id([columns[i].filter(mask) for i in id_columns]), dtype="string[pyarrow]")
    frame["source_row"] = pd.array(numbers[keep], dtype="int64")
    repeated = _repeated_header(columns, mapping, header, rules)
    if repeated is not None:
        problems = repeated if problems is None else pc.coalesce(problems, repeated)
    frame[READ_PROBLEM] = pd.array(problems.filter(mask) if problems is not None else pa.nulls(n, pa.string()),
                                   dtype="string[pyarrow]")
    return frame


def _repeated_header(columns: Sequence[pa.Array], mapping: dict[int, str], header: Sequence[object],
                     rules: Rules) -> pa.Array | None:
    """Why each data row that repeats the header is no data row (null for the others), or None when
    none does. Exports joined end to end carry their header again below the first one's rows: a row
    whose cells are the header's own texts in as many named columns as a header must name is such a
    copy."""
    same = np.zeros(len(columns[0]) if columns else 0, dtype=np.int64)
    for i in mapping:
        if i < len(columns) and header[i] is not None:
            title = str(header[i]).strip()
            same += pc.fill_null(pc.equal(pc.utf8_trim_whitespace(columns[i]), title), False).to_numpy(zero_copy_only=False)
    hit = same >= min(rules.min_known_columns, len(mapping))
    if not hit.any():
        return None
    return pc.if_else(pa.array(hit), pa.scalar(REPEATED_HEADER), pa.scalar(None, pa.string()))


def _one_id(candidates: Sequence[pa.Array]) -> pa.Array:
    """One ID per row from several ID columns ('Số CMND' and 'Số CCCD'): the first cell holding a
    personal number (10 to 12 digits: lost leading zeros included), else the first non-empty one."""
    personal = []
    for cells in candidates:
        n = pc.utf8_length(pc.replace_substring_regex(cells, r"[^0-9]", ""))
        personal.append(pc.if_else(pc.fill_null(pc.and_(pc.greater_equal(n, 10), pc.less_equal(n, 12)), False),
                                   cells, pa.scalar(None, pa.string())))
    return pc.coalesce(*personal, *candidates)


def split_name(header: Sequence[object], column_of: dict[str, int]) -> bool:
    """The name is split in two columns: family and middle names, and the given name under "Tên"
    alone (a file with "Họ và tên" has the whole name in it, whatever other columns say)."""
    return (FAMILY_PART in column_of and "full_name" in column_of
            and fold_key(str(header[column_of["full_name"]])) == "ten")


def _joined_name(family: pa.Array, given: pa.Array) -> pa.Array:
    """'Nguyễn Văn' + 'An' -> 'Nguyễn Văn An' (either part alone where the other is empty)."""
    both = pc.binary_join_element_wise(family, given, " ")
    return pc.coalesce(both, given, family)


def _overlong_rows(columns: Sequence[pa.Array], header_width: int) -> pa.Array | None:
    """For CSV records with more cells than the file's columns: the reason they are not read (null
    for the others), or None when every record fits. A delimiter inside an unquoted value (a comma
    in an address) shifts every cell after it into the wrong column, and which cell took the extra
    delimiter cannot be known, so such a record is rejected rather than read shifted.

    A record's width is up to its last non-empty cell (a trailing delimiter shifts nothing). The
    file's width is the header's, or the width most records have where that is more (a last
    column whose header cell was left out is a column, not a shift)."""
    used = np.zeros(len(columns[0]) if columns else 0, dtype=np.int64)
    for j, col in enumerate(columns):
        used = np.where(col.is_valid().to_numpy(zero_copy_only=False), j + 1, used)
    if not (used > header_width).any():
        return None
    width = max(header_width, int(np.bincount(used).argmax()))
    over = used > width
    if not over.any():
        return None
    text = np.array([OVERLONG.format(cells=n, width=width) for n in used[over]], dtype=object)
    out = np.full(len(used), None, dtype=object)
    out[over] = text
    return pa.array(out, pa.string())


def _table_frame(rows: Sequence[Sequence[object]], numbers_of: Sequence[int], rules: Rules, unit: str = "rows",
                 ) -> tuple[pd.DataFrame, int, dict[int, str], list[object]]:
    """Header detection and data-row extraction shared by every text-table reader, column by column.

    `numbers_of[k]` is the row (or line) number a person sees for raw row k. For CSV records
    (`unit` "lines"), one with more cells than the header is marked (`_overlong_rows`); a sheet's
    cells keep their columns, so a value right of the header there is only an unnamed column.
    """
    offset, mapping, header = _header(rows, rules, unit)
    data = rows[offset + 1:]
    columns = [column_text(col) for col in itertools.zip_longest(*data, fillvalue=None)]
    numbers = np.asarray(numbers_of[offset + 1:], dtype=np.int64)
    problems = _overlong_rows(columns, len(header)) if unit == "lines" else None
    return (_columns_frame(columns, numbers, mapping, header, rules, problems), numbers_of[offset], mapping, header)


def read_xlsx(path: Path, rules: Rules) -> ReadResult:
    """First sheet of a workbook (.xlsx, or a legacy .xls), read with calamine (Rust).

    Where the first sheet has no header row (a cover or instructions page), the first other
    visible worksheet that has one is read, and named in the result; otherwise the first sheet's
    problem is raised."""
    try:
        book = python_calamine.CalamineWorkbook.from_path(str(path))
        rows = _sheet_rows(book.get_sheet_by_index(0))
    except Exception as exc:  # calamine raises its own error types for every kind of damage
        raise IngestError(f"not a readable XLSX workbook: {exc}") from exc
    sheet = None
    try:
        frame, header_no, mapping, header = _table_frame(rows, range(1, len(rows) + 1), rules)
    except IngestError as first_problem:
        for k, meta in enumerate(book.sheets_metadata[1:], start=1):
            if meta.typ != python_calamine.SheetTypeEnum.WorkSheet or meta.visible != python_calamine.SheetVisibleEnum.Visible:
                continue
            try:
                rows = _sheet_rows(book.get_sheet_by_index(k))
                frame, header_no, mapping, header = _table_frame(rows, range(1, len(rows) + 1), rules)
            except Exception:  # any other sheet's problem (calamine errors included): try the next one
                continue
            sheet = meta.name
            break
        else:
            raise first_problem from None
    return ReadResult(frame, "xlsx", None, header_no, {c: str(header[i]) for i, c in mapping.items()}, sheet)


def _sheet_rows(sheet: python_calamine.CalamineSheet) -> Sequence[Sequence[object]]:
    """A sheet's cells from A1, with each cell merged down over several rows (a vaccine or dose date
    written once for a block of rows, a header cell spanning a two-row header) repeated in the
    rows below it that hold anything else; only its first column is, so that a note merged across
    a row does not fill the row's fields."""
    cells = sheet.to_python(skip_empty_area=False)
    down = [m for m in sheet.merged_cell_ranges or [] if m[1][0] > m[0][0]]
    if not down:
        return cells
    rows: list[list[object]] = [list(r) for r in cells]
    for (r0, c0), (r1, _c1) in down:
        if r0 >= len(rows) or c0 >= len(rows[r0]) or rows[r0][c0] in (None, ""):
            continue
        value = rows[r0][c0]
        for r in range(r0 + 1, min(r1, len(rows) - 1) + 1):
            row = rows[r]
            if c0 < len(row) and row[c0] in (None, "") and any(v not in (None, "") for j, v in enumerate(row) if j != c0):
                row[c0] = value
    return rows


# Control bytes that text never holds (NUL apart): a file with more than a few of them is not text.
_CONTROL = bytes(b for b in range(1, 32) if b not in b"\t\n\r\x0c\x1a")


def without_stray_nul(raw: bytes) -> tuple[bytes, int]:
    """(bytes, NULs removed) of a text file that holds stray NUL bytes: padding after a copy that
    was cut short, or one typed into a cell. UTF-16 text (whose NULs are half its characters) and
    binary content are returned as they are: binary content has other control bytes too, or more
    than one NUL in a hundred bytes once trailing padding is set aside."""
    if b"\x00" not in raw or raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return raw, 0
    head = raw[:4000]
    if _utf16_without_bom(head[: len(head) // 2 * 2]) is not None:
        return raw, 0
    body = raw.rstrip(b"\x00")
    nuls = body.count(0)
    if nuls > len(body) / 100 or len(body.translate(None, _CONTROL)) < len(body) - len(body) // 1000:
        return raw, 0
    return body.replace(b"\x00", b""), len(raw) - len(body) + nuls


def detect_encoding(raw: bytes) -> tuple[str, str]:
    """(codec, label): BOMs first, then UTF-16 without one (by where its NUL bytes fall), strict
    UTF-8, else Windows-1258."""
    if raw.startswith(codecs.BOM_UTF8):
        return "utf-8-sig", "utf-8-sig"
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16", "utf-16"
    head = raw[:4000]
    if b"\x00" in head:
        codec = _utf16_without_bom(head[: len(head) // 2 * 2])
        if codec is None:
            raise IngestError("binary content (NUL bytes) without a UTF-16 byte-order mark")
        return codec, f"{codec} (no byte-order mark)"
    try:
        raw.decode("utf-8")
        return "utf-8", "utf-8"
    except UnicodeDecodeError:
        return "cp1258", "cp1258"


def _utf16_without_bom(head: bytes) -> str | None:
    """'utf-16-le' or 'utf-16-be' where the NUL bytes are the high bytes of UTF-16 code units:
    at least a fifth of the units have one (spaces, digits, Latin letters and tabs are below
    U+0100; Vietnamese letters are not, but every line has digits and separators), nearly none
    are on the other side, and the start decodes. Anything else stays unreadable."""
    units = len(head) // 2
    if not units:
        return None
    odd, even = head[1::2].count(0), head[0::2].count(0)
    for codec, high, low in (("utf-16-le", odd, even), ("utf-16-be", even, odd)):
        if high >= units / 5 and low <= units / 100:
            try:   # not final: a surrogate pair cut at the sample's end is no reason to refuse
                codecs.getincrementaldecoder(codec)().decode(head, final=False)
            except UnicodeDecodeError:
                return None
            return codec
    return None


# A Vietnamese letter with its tone mark (U+1EA0-U+1EF9) in UTF-8. In Windows-1258 text these
# three bytes would be a letter followed by two symbols, and in TCVN3 text three toned vowels in a
# row: neither occurs in names, so a line holding them that decodes as UTF-8 is UTF-8.
_UTF8_TONED = re.compile(rb"\xe1[\xba\xbb][\x80-\xbf]")


def decode_legacy(raw: bytes) -> tuple[str, str]:
    """(text, label) of a file that is not UTF-8 as a whole: Windows-1258, or UTF-8 lines mixed
    with Windows-1258 ones (files joined end to end), each line decoded by what it is. A byte that
    Windows-1258 leaves undefined becomes U+FFFD in its row, never a reason to refuse the file."""
    if _UTF8_TONED.search(raw):
        lines: list[str] = []
        legacy = 0
        for line in raw.split(b"\n"):
            try:
                lines.append(line.decode("utf-8"))
            except UnicodeDecodeError:
                lines.append(unicodedata.normalize("NFC", line.decode("cp1258", errors="replace")))
                legacy += 1
        text, label = "\n".join(lines), f"utf-8, {legacy} lines cp1258"
    else:
        text, label = unicodedata.normalize("NFC", raw.decode("cp1258", errors="replace")), "cp1258"
    replaced = text.count("\ufffd")
    return text, label + (f", {replaced} undefined bytes replaced" if replaced else "")


def sniff_delimiter(lines: Sequence[str]) -> str:
    """The delimiter that splits the most of the first lines into the most fields."""
    best, best_score = ",", -1
    for delim in ("\t", ";", ",", "|"):
        counts = [len(next(csv.reader([ln], delimiter=delim))) for ln in lines if ln.strip()]
        score = sum(c for c in counts if c > 2)
        if score > best_score:
            best, best_score = delim, score
    return best


def read_csv(path: Path, rules: Rules) -> ReadResult:
    """CSV or Excel 'Unicode text', encoding and delimiter detected."""
    raw, nuls = without_stray_nul(path.read_bytes())
    codec, label = detect_encoding(raw)
    if codec == "cp1258":
        text, label = decode_legacy(raw)
    else:
        try:
            text = raw.decode(codec)
        except UnicodeDecodeError as exc:
            raise IngestError(f"cannot decode as {label}: {exc}") from exc
    if nuls:
        label += f", {nuls} NUL bytes removed"
    delim = sniff_delimiter(text[:1_000_000].splitlines()[:30])
    fast = _plain_csv(text, delim, rules)
    if fast is not None:
        frame, header_no, mapping, header = fast
    else:
        frame, header_no, mapping, header = _table_frame(*_csv_rows(text, delim), rules, "lines")
    return ReadResult(frame, "csv", label, header_no,
                      {c: str(header[i]) for i, c in mapping.items()})


def _csv_rows(text: str, delim: str) -> tuple[list[list[str]], list[int]]:
    """Every record of the text by Python's csv module, and the line each starts on."""
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
    return rows, starts


def _plain_csv(text: str, delim: str, rules: Rules,
               ) -> tuple[pd.DataFrame, int, dict[int, str], list[object]] | None:
    """The file parsed by Arrow when each record below the header is one line: record k is then
    line header + 1 + k. None when the csv module must read it (a record over several lines, a blank
    line or a lone carriage return below the header, a line with another number of fields, or a NUL
    character)."""
    if "\x00" in text or text.count("\r") != text.count("\r\n"):
        return None
    head = text.split("\n", rules.header_search_rows)
    rows, _ = _csv_rows("\n".join(head[:rules.header_search_rows]), delim)
    offset, mapping, header = _header(rows, rules, "lines")
    if any('"' in line for line in head[:offset + 1]):   # the header may be a record over several lines
        return None
    data = "\n".join(head[offset + 1:])
    if not data.strip() or data.startswith(("\n", "\r\n")) or "\n\n" in data or "\n\r\n" in data:
        return None
    raw = data.encode("utf-8")
    names = [f"c{i}" for i in range(len(header))]
    try:
        table = pacsv.read_csv(
            io.BytesIO(raw), read_options=pacsv.ReadOptions(column_names=names),
            parse_options=pacsv.ParseOptions(delimiter=delim, newlines_in_values=True, ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()),
                                                 strings_can_be_null=False, quoted_strings_can_be_null=False))
    except pa.ArrowInvalid:
        return None
    # Every record takes at least one line and no line is blank, so as many records as lines means
    # one record per line; Arrow and the csv module then split a line alike, quotes included
    # (tests/test_ingest.py compares them on random quoted text).
    if table.num_rows != raw.count(b"\n") + (not raw.endswith(b"\n")):
        return None
    columns = [_blank_to_null(table.column(i).combine_chunks()) for i in range(len(names))]
    numbers = np.arange(offset + 2, offset + 2 + table.num_rows, dtype=np.int64)
    return _columns_frame(columns, numbers, mapping, header, rules), offset + 1, mapping, header


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
    frame[READ_PROBLEM] = pd.Series([None] * n, dtype="string[pyarrow]")
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
