"""Write synthetic export rows as the file kinds provinces really send.

Each file gets its own kind and encoding, header texts, date format, sex and
vaccine spellings and ID damage (numbers that lose leading zeros), as sites
exported them; names may be typed in a legacy font.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import xlsxwriter
import yaml

from pipeline.normalize.encodings import encode_legacy
from pipeline.rules import Rules

COLUMNS = ["full_name", "date_of_birth", "sex", "id_number", "phone", "address", "district", "ward",
           "dose_date", "dose_number", "vaccine", "lot_number", "site"]
TITLE = ["SỞ Y TẾ", "DANH SÁCH ĐỐI TƯỢNG ĐÃ TIÊM VẮC XIN COVID-19", ""]
DATE_FORMATS = {"dmy": "%d/%m/%Y", "dmy1": "%-d/%-m/%Y", "dmy-": "%d-%m-%Y", "iso": "%Y-%m-%d", "dmyy": "%d/%m/%y"}
SEX_STYLES = {"vi": ("Nam", "Nữ"), "VI": ("NAM", "NỮ"), "ascii": ("nam", "nu"), "mf": ("M", "F"), "en": ("Male", "Female")}
VACCINE_SPELLING = {
    "AstraZeneca": ["AstraZeneca", "Astra Zeneca", "AZ", "Vaxzevria"],
    "Pfizer": ["Pfizer", "Comirnaty", "Pfizer-BioNTech"], "Moderna": ["Moderna", "Spikevax"],
    "Vero Cell": ["Vero Cell", "Sinopharm", "VeroCell"], "Sputnik V": ["Sputnik V", "Sputnik"],
    "Abdala": ["Abdala"], "Hayat-Vax": ["Hayat-Vax", "Hayat Vax"], "Janssen": ["Janssen"],
}


@dataclass(frozen=True)
class FileSpec:
    """How one site's export file looks."""

    name: str
    kind: str            # xlsx | csv | txt | parquet
    encoding: str        # utf-8 | utf-8-sig | cp1258 | utf-16
    delimiter: str
    font: str            # unicode | tcvn3 | vni | nfd | utf8-as-cp1252
    date_format: str     # key of DATE_FORMATS, or "excel" (date cells / serial numbers)
    sex_style: str
    id_style: str        # text | number
    title_rows: bool
    headers: tuple[tuple[str, str], ...]   # (canonical, header text) in column order


KINDS = [
    ("xlsx", "utf-8", ",", "unicode", "excel", "number", True),
    ("xlsx", "utf-8", ",", "tcvn3", "dmy", "text", False),
    ("csv", "utf-8", ",", "vni", "dmy1", "number", False),
    ("csv", "utf-8-sig", ",", "nfd", "iso", "text", False),
    ("csv", "cp1258", ",", "unicode", "dmy-", "text", False),
    ("txt", "utf-16", "\t", "unicode", "dmyy", "text", False),
    ("csv", "utf-8", ";", "utf8-as-cp1252", "excel", "number", False),
    ("parquet", "utf-8", ",", "unicode", "iso", "text", False),
    ("xlsx", "utf-8", ",", "vni", "dmy", "number", True),
]


def make_specs(rng: np.random.Generator, province: str, n_files: int, rules: Rules) -> list[FileSpec]:
    """`n_files` file specs cycling through every kind, with varied headers and spellings."""
    originals = _original_aliases(rules)
    specs = []
    order = rng.permutation(len(KINDS))
    for i in range(n_files):
        kind, enc, delim, font, datefmt, id_style, title = KINDS[order[i % len(KINDS)]]
        cols = [c for c in COLUMNS if c in ("full_name", "date_of_birth", "id_number", "dose_date", "vaccine")
                or rng.random() < 0.85]
        if kind == "parquet":
            headers = tuple((c, c) for c in cols)
        else:
            headers = tuple((c, str(rng.choice(originals[c]))) for c in cols)
            if rng.random() < 0.5:
                headers = (("stt", "STT"), *headers, ("note", "Ghi chú"))
        ext = {"xlsx": "xlsx", "csv": "csv", "txt": "txt", "parquet": "parquet"}[kind]
        specs.append(FileSpec(
            name=f"{province}/diem_tiem_{i + 1:02d}_{kind}_{enc}.{ext}", kind=kind, encoding=enc,
            delimiter=delim, font=font, date_format=datefmt,
            sex_style=str(rng.choice(list(SEX_STYLES))), id_style=id_style, title_rows=title, headers=headers,
        ))
    return specs


def _original_aliases(rules: Rules) -> dict[str, list[str]]:
    """Header texts as written in rules/headers.yaml (with diacritics), by canonical column."""
    data = yaml.safe_load((rules.source_dir / "headers.yaml").read_text(encoding="utf-8"))
    return {k: list(v) for k, v in data["columns"].items()}


def encode_cp1258(text: str) -> bytes:
    """Windows-1258 bytes: precomposed base letters, tone marks as combining bytes."""
    out = bytearray()
    for ch in text.replace("Ð", "Đ").replace("ð", "đ"):  # no Eth in Windows-1258
        try:
            out += ch.encode("cp1258")
        except UnicodeEncodeError:
            parts = unicodedata.normalize("NFD", ch)
            base = unicodedata.normalize("NFC", "".join(c for c in parts if c not in "\u0300\u0301\u0303\u0309\u0323"))
            tones = "".join(c for c in parts if c in "\u0300\u0301\u0303\u0309\u0323")
            out += (base + tones).encode("cp1258")
    return bytes(out)


def style_names(rng: np.random.Generator, names: pd.Series, font: str) -> pd.Series:
    """File-level font plus per-row typing noise (case, spaces, NFD, Ð for Đ, tone placement)."""
    s = names.astype(object).copy()
    u = rng.random((len(s), 4))
    upper = u[:, 0] < 0.12
    s[upper] = s[upper].str.upper()
    lower = (u[:, 0] > 0.97)
    s[lower] = s[lower].str.lower()
    spaces = u[:, 1] < 0.05
    s[spaces] = "  " + s[spaces].str.replace(" ", "   ", regex=False) + " "
    eth = u[:, 2] < 0.3
    s[eth] = s[eth].str.replace("Đ", "Ð", regex=False)
    tone = u[:, 3] < 0.2
    s[tone] = (s[tone].str.replace("òa", "oà").str.replace("óa", "oá").str.replace("ủy", "uỷ")
               .str.replace("úy", "uý").str.replace("ỏa", "oả").str.replace("ọa", "oạ"))
    if font in ("tcvn3", "vni"):
        cache: dict[str, str] = {}
        s = s.map(lambda v: v if not isinstance(v, str) else cache.setdefault(v, encode_legacy(v, font)))
    elif font == "nfd":
        s = s.map(lambda v: unicodedata.normalize("NFD", v) if isinstance(v, str) else v)
    elif font == "utf8-as-cp1252":
        s = s.map(lambda v: as_cp1252_mojibake(v) if isinstance(v, str) and rng.random() < 0.5 else v)
    return s


def as_cp1252_mojibake(text: str) -> str:
    """UTF-8 bytes shown as Windows-1252 ('Nguyễn' -> 'Nguyá»…n'); undefined bytes as Latin-1."""
    out = []
    for b in text.encode("utf-8"):
        try:
            out.append(bytes([b]).decode("cp1252"))
        except UnicodeDecodeError:
            out.append(chr(b))
    return "".join(out)


def _fmt_date(values: pd.Series, fmt: str, year_only: pd.Series) -> pd.Series:
    ts = pd.to_datetime(values)
    if fmt == "excel":
        serial = (ts - pd.Timestamp("1899-12-30")).dt.days
        out = serial.astype("Int64").astype(object).where(ts.notna(), None)
    else:
        py = DATE_FORMATS[fmt].replace("%-d", "%d").replace("%-m", "%m")
        out = ts.dt.strftime(py).astype(object)
        if fmt == "dmy1":
            out = out.str.replace(r"^0", "", regex=True).str.replace(r"/0", "/", regex=True)
        out = out.where(ts.notna(), None)
    yo = year_only.to_numpy() & ts.notna().to_numpy()
    out[yo] = ts[yo].dt.year.astype(str).to_numpy()
    return out


def render_rows(rng: np.random.Generator, rows: pd.DataFrame, spec: FileSpec) -> pd.DataFrame:
    """The cell text (or typed cell value) of each column as this file writes it."""
    out = pd.DataFrame(index=rows.index)
    out["full_name"] = style_names(rng, rows["written_name"], spec.font)
    dob_fmt = spec.date_format
    if dob_fmt == "dmyy":
        dob_fmt = "dmy"  # two-digit years only for dose dates: a birth year needs its century
    out["date_of_birth"] = _fmt_date(rows["written_dob"], dob_fmt, rows["dob_year_only"])
    male, female = SEX_STYLES[spec.sex_style]
    out["sex"] = np.where(rows["written_sex"] == "M", male, female)
    ids = rows["written_id"].astype(object)
    if spec.id_style == "number":
        digits = ids.str.fullmatch(r"\d+").fillna(False).astype(bool)
        stripped = ids.str.lstrip("0").replace("", "0")  # Excel shows the number 0 for 000000000
        ids = ids.where(~digits, stripped)
    u = rng.random(len(ids))
    digits_only = ids.str.fullmatch(r"\d{9,12}").fillna(False).astype(bool)
    spaced, dotted, sci = (u < 0.02) & digits_only, (u >= 0.02) & (u < 0.035) & digits_only, (u >= 0.035) & (u < 0.045) & digits_only
    ids = ids.where(~spaced, ids.str.replace(r"(\d{3})(?=\d)", r"\1 ", regex=True))
    ids = ids.where(~dotted, ids.str.replace(r"(\d{3})(?=\d)", r"\1.", regex=True))
    full_sci = ids[sci].map(lambda v: f"{int(v):.{len(v.lstrip('0')) - 1}E}" if v.lstrip("0") else v)
    ids = ids.where(~sci, full_sci)  # scientific notation that kept every digit
    out["id_number"] = ids
    out["phone"] = rows["phone_written"]
    out["address"] = rows["ward"] + ", " + rows["district"]
    out["district"] = rows["district"]
    out["ward"] = rows["ward"]
    out["dose_date"] = rows["dose_date_text"].where(rows["dose_date_text"].notna(),
                                                   _fmt_date(rows["dose_date"], spec.date_format, pd.Series(False, index=rows.index)))
    mui = rng.random() < 0.5
    booster_word = np.where(rng.random(len(rows)) < 0.8, "Mũi nhắc lại", "Mũi bổ sung")
    out["dose_number"] = np.where((rows["dose_number"] == 3) & (rng.random(len(rows)) < 0.5), booster_word,
                                  ("Mũi " if mui else "") + rows["dose_number"].astype(str))
    spell = {k: v[int(rng.integers(0, len(v)))] for k, v in VACCINE_SPELLING.items()}
    out["vaccine"] = rows["vaccine_written"].map(lambda v: spell.get(v, v))
    out["lot_number"] = rows["lot_number"]
    out["site"] = rows["site"]
    out["stt"] = np.arange(1, len(rows) + 1).astype(str)
    out["note"] = ""
    return out


def write_file(root: Path, spec: FileSpec, cells: pd.DataFrame, rng: np.random.Generator) -> pd.Series:
    """Write one file; return the `source_row` of each data row (contract 3.1)."""
    path = root / spec.name
    path.parent.mkdir(parents=True, exist_ok=True)
    cols = [c for c, _ in spec.headers]
    header = [h for _, h in spec.headers]
    data = cells[cols]
    if spec.kind == "parquet":
        return _write_parquet(path, data)
    if spec.kind == "xlsx":
        return _write_xlsx(path, spec, header, data)
    return _write_csv(path, spec, header, data, rng)


def _write_parquet(path: Path, data: pd.DataFrame) -> pd.Series:
    arrays = {}
    for c in data.columns:
        col = data[c]
        if c in ("date_of_birth", "dose_date"):
            parsed = pd.to_datetime(col, format="%Y-%m-%d", errors="coerce")
            if parsed.notna().sum() == col.notna().sum():
                arrays[c] = pa.array(parsed.dt.date.where(parsed.notna(), None), type=pa.date32())
                continue
        arrays[c] = pa.array(col.map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)), type=pa.string())
    pq.write_table(pa.table(arrays), path)
    return pd.Series(np.arange(1, len(data) + 1), index=data.index)


def _write_xlsx(path: Path, spec: FileSpec, header: list[str], data: pd.DataFrame) -> pd.Series:
    wb = xlsxwriter.Workbook(str(path), {"constant_memory": True, "strings_to_numbers": False,
                                         "strings_to_formulas": False, "strings_to_urls": False})
    ws = wb.add_worksheet("Danh sach")
    date_fmt = wb.add_format({"num_format": "dd/mm/yyyy"})
    r = 0
    if spec.title_rows:
        for line in TITLE:
            if line:
                ws.write_string(r, 0, line)
            r += 1
    for j, h in enumerate(header):
        ws.write_string(r, j, h)
    r += 1
    first = r
    for row in data.itertuples(index=False):
        for j, (col, v) in enumerate(zip(data.columns, row, strict=True)):
            if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
                continue
            if col in ("date_of_birth", "dose_date") and spec.date_format == "excel" and not (isinstance(v, str) and len(v) == 4):
                if isinstance(v, int | np.integer) or (isinstance(v, str) and v.isdigit()):
                    ws.write_datetime(r, j, dt.datetime(1899, 12, 30) + dt.timedelta(days=int(v)), date_fmt)
                else:
                    ws.write_string(r, j, str(v))
            elif (col == "id_number" and spec.id_style == "number" and isinstance(v, str) and v.isdigit()) or (col == "date_of_birth" and isinstance(v, str) and len(v) == 4 and v.isdigit()):
                ws.write_number(r, j, int(v))
            else:
                ws.write_string(r, j, str(v))
        r += 1
    wb.close()
    return pd.Series(np.arange(first + 1, first + 1 + len(data)), index=data.index)


def _write_csv(path: Path, spec: FileSpec, header: list[str], data: pd.DataFrame, rng: np.random.Generator) -> pd.Series:
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=spec.delimiter, lineterminator="\r\n")
    w.writerow(header)
    line = 1
    rows = []
    blank = rng.random(len(data)) < 0.01
    for k, row in enumerate(data.itertuples(index=False)):
        if blank[k]:
            w.writerow([""] * len(header))
            line += 1
        w.writerow(["" if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)) else str(v) for v in row])
        line += 1
        rows.append(line)
    text = buf.getvalue()
    if spec.encoding == "cp1258":
        raw = encode_cp1258(unicodedata.normalize("NFC", text))
    elif spec.encoding == "utf-16":
        raw = text.encode("utf-16")  # with BOM, as Excel's "Unicode text"
    else:
        raw = text.encode(spec.encoding)
    path.write_bytes(raw)
    return pd.Series(rows, index=data.index)
