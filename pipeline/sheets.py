"""Large row lists into XLSX and CSV without a Python call per cell.

xlsxwriter lays out each workbook (sheets, header rows, formats, column
widths, frozen panes, filters, print set-up) but writes cells one Python call
at a time, about 15 µs each: a province's report of half a million rows would
take minutes. Here the data rows of each list sheet are built as worksheet XML
with Arrow string kernels (the same inline-string cells xlsxwriter writes in
its constant-memory mode) and put into the workbook after xlsxwriter has
closed it. CSV copies go through Arrow's CSV writer.

Every text value goes through the same formula guard as `safe_text`: a cell
starting with = + - @ or a tab or line break gets a leading apostrophe, so no
spreadsheet runs it. Characters XML 1.0 cannot hold (control characters other
than tab and line breaks) are dropped, and a text longer than Excel's 32,767
characters is cut there (the CSV copies keep it whole).
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from pipeline.text import arrow_text

MAX_ROWS = 1_048_576            # rows in an Excel sheet, the header row included
MAX_CELL_CHARS = 32_767        # Excel's limit: a longer cell makes it "repair" the workbook; cut there
EXCEL_EPOCH = dt.date(1899, 12, 30)
_FORMULA_RE = "^[=+\\-@\t\r\n]"
_BAD_XML_RE = "[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]"


@dataclass(frozen=True)
class Column:
    title: str
    kind: str                   # "text", "int" or "date"
    values: pa.Array


def column_letter(j: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA."""
    out = ""
    j += 1
    while j:
        j, rem = divmod(j - 1, 26)
        out = chr(65 + rem) + out
    return out


def to_arrow(values: pd.Series, kind: str) -> pa.Array:
    """A frame column as the Arrow array a Column needs (text, int64 or date32), nulls kept."""
    if kind == "int":
        return pa.array(pd.to_numeric(values, errors="coerce").astype("Int64"), type=pa.int64())
    if kind == "date":
        stamps = pd.to_datetime(values, errors="coerce")
        return pa.array(stamps.astype("datetime64[s]"), type=pa.timestamp("s")).cast(pa.date32())
    return arrow_text(values)


def safe_strings(values: pa.Array) -> pa.Array:
    """Text no spreadsheet runs as a formula: a leading = + - @ tab or line break gets an apostrophe."""
    values = pc.cast(values, pa.string())
    risky = pc.fill_null(pc.match_substring_regex(values, _FORMULA_RE), False)
    return pc.if_else(risky, pc.binary_join_element_wise("'", values, ""), values)


def _xml_text(values: pa.Array) -> pa.Array:
    text = pc.replace_substring_regex(values, _BAD_XML_RE, "")
    text = pc.replace_substring(text, "&", "&amp;")
    text = pc.replace_substring(text, "<", "&lt;")
    return pc.replace_substring(text, ">", "&gt;")


def _cells(col: Column, letter: str, rownums: pa.Array, date_style: int) -> pa.Array:
    """One cell's XML per row; null where the value is null or empty (no cell written)."""
    ref = pc.binary_join_element_wise(f'<c r="{letter}', rownums, "")
    if col.kind == "int":
        v = pc.cast(col.values, pa.string())
        return pc.binary_join_element_wise(ref, '"><v>', v, "</v></c>", "")
    if col.kind == "date":
        # Excel's serial day; it counts a 29 February 1900 that never was, so earlier dates are
        # one less, and dates before 1900 (which Excel cannot hold) are written as text.
        days = pc.cast(pc.cast(col.values, pa.date32()), pa.int32())
        serial = pc.add(days, (dt.date(1970, 1, 1) - EXCEL_EPOCH).days)
        serial = pc.if_else(pc.less(serial, 61), pc.subtract(serial, 1), serial)
        number = pc.binary_join_element_wise(ref, f'" s="{date_style}"><v>', pc.cast(serial, pa.string()), "</v></c>", "")
        shown = pc.strftime(pc.cast(col.values, pa.timestamp("s")), format="%d/%m/%Y")
        text = pc.binary_join_element_wise(ref, '" t="inlineStr"><is><t>', shown, "</t></is></c>", "")
        return pc.if_else(pc.less(serial, 1), text, number)
    text = pc.utf8_slice_codeunits(safe_strings(col.values), 0, MAX_CELL_CHARS)
    text = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
    return pc.binary_join_element_wise(ref, '" t="inlineStr"><is><t xml:space="preserve">', _xml_text(text),
                                       "</t></is></c>", "")


def rows_xml(columns: list[Column], first_row: int, date_style: int) -> bytes:
    """`<row>` elements for the data rows, numbered from `first_row` (1-based, as Excel shows them)."""
    n = len(columns[0].values) if columns else 0
    if n == 0:
        return b""
    rownums = pa.array(np.arange(first_row, first_row + n, dtype=np.int64)).cast(pa.string())
    cells = [_cells(c, column_letter(j), rownums, date_style) for j, c in enumerate(columns)]
    opts = pc.JoinOptions(null_handling="skip")
    body = pc.binary_join_element_wise(*cells, "", options=opts)
    rows = pc.binary_join_element_wise('<row r="', rownums, '">', body, "</row>", "")
    rows = pc.cast(rows, pa.large_string())
    if isinstance(rows, pa.ChunkedArray):
        rows = rows.combine_chunks()
    offsets = np.frombuffer(rows.buffers()[1], dtype=np.int64)[rows.offset: rows.offset + len(rows) + 1]
    return memoryview(rows.buffers()[2])[int(offsets[0]): int(offsets[-1])].tobytes()


def chunks(n_rows: int) -> list[tuple[int, int]]:
    """(start, stop) of the data rows each sheet holds: a sheet takes at most 1,048,575 under its header."""
    per = MAX_ROWS - 1
    return [(s, min(s + per, n_rows)) for s in range(0, max(n_rows, 1), per)]


def sheet_names(name: str, n_rows: int) -> list[str]:
    """'Sửa họ tên', then 'Sửa họ tên (2)', ... for lists longer than one sheet (31 characters at most)."""
    parts = chunks(n_rows)
    if len(parts) == 1:
        return [name]
    return [name if k == 0 else f"{name[:31 - len(f' ({k + 1})')]} ({k + 1})" for k in range(len(parts))]


_DIMENSION = re.compile(rb'<dimension ref="[^"]*"/>')


ROWS_PER_SLICE = 100_000         # sheet rows turned into XML at a time


def fill_sheets(path: Path, fills: dict[int, tuple[list[Column], tuple[int, int], int]]) -> None:
    """Put data rows into sheets of a closed xlsxwriter workbook, in place.

    `fills` maps a sheet's position (1-based, the order of `add_worksheet`) to its
    columns, the row range (start, stop) of those columns it holds, and the date
    style index. The sheet must have been written with its header row only.
    Rows are turned into XML `ROWS_PER_SLICE` at a time and the slices written one after another:
    a sheet's XML is held once, not also as Arrow text, per-column cells and a joined copy.
    """
    tmp = path.with_name(path.name + ".fill")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            m = re.fullmatch(r"xl/worksheets/sheet(\d+)\.xml", info.filename)
            if not (m and int(m.group(1)) in fills):
                dst.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=1)
                continue
            columns, (start, stop), style = fills[int(m.group(1))]
            last = f"{column_letter(len(columns) - 1)}{stop - start + 1}".encode()
            data = _DIMENSION.sub(b'<dimension ref="A1:' + last + b'"/>', data, count=1)
            head, sep, tail = data.rpartition(b"</sheetData>")
            if not sep:
                raise ValueError(f"{path}: sheet {m.group(1)} has no sheetData")
            slices = [head]
            for s in range(start, stop, ROWS_PER_SLICE):
                part = [Column(c.title, c.kind, c.values.slice(s, min(ROWS_PER_SLICE, stop - s))) for c in columns]
                slices.append(rows_xml(part, 2 + s - start, style))
            slices.append(sep + tail)
            # What writestr does with `info`, the data written in pieces: the size set first (so
            # Zip64 only where writestr would use it), then the entry opened for writing.
            info.compress_type = zipfile.ZIP_DEFLATED
            info._compresslevel = 1  # type: ignore[attr-defined]
            info.file_size = sum(map(len, slices))
            with dst.open(info, "w") as fh:
                for piece in slices:
                    fh.write(piece)
    shutil.move(tmp, path)


def csv_bytes(columns: list[Column]) -> bytes:
    """UTF-8 CSV with a BOM (Excel reads it as UTF-8), CRLF line ends, formula-safe text, dd/mm/yyyy dates."""
    arrays = []
    for c in columns:
        if c.kind == "date":
            arrays.append(pc.strftime(pc.cast(c.values, pa.timestamp("s")), format="%d/%m/%Y"))
        elif c.kind == "int":
            arrays.append(c.values)
        else:
            arrays.append(safe_strings(c.values))
    table = pa.Table.from_arrays(arrays, names=[c.title for c in columns])
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink, pacsv.WriteOptions(eol="\r\n", quoting_style="needed"))
    return b"\xef\xbb\xbf" + sink.getvalue().to_pybytes()
