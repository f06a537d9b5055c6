"""Readers: every kind and encoding returns the same text and the row numbers a person sees."""

from __future__ import annotations

import codecs
import csv
import io
import unicodedata
import zipfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xlsxwriter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.ingest import IngestError, read_export
from pipeline.synth.files import encode_cp1258

HEADER = ["STT", "Họ và tên", "Ngày sinh", "Số CMND/CCCD", "Ghi chú"]
COLS = ["full_name", "date_of_birth", "id_number"]
WORDS = ["Nguyễn", "Trần", "Thị", "Văn", "Hùng", "Đặng", "Ánh", "Quỳnh", "O'Neil", "a,b", 'say "hi"', "x;y"]

cell = st.one_of(st.none(), st.lists(st.sampled_from(WORDS), min_size=1, max_size=3).map(" ".join),
                 st.from_regex(r"0[0-9]{11}", fullmatch=True), st.from_regex(r"[0-3][0-9]/[01][0-9]/19[0-9]{2}", fullmatch=True))
row = st.tuples(cell, cell, cell)
table = st.lists(st.tuples(row, st.booleans()), min_size=1, max_size=12)


def _write_csv(path: Path, rows, blank_before, encoding: str, delim: str) -> list[int]:
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delim, lineterminator="\r\n")
    w.writerow(HEADER)
    line, numbers = 1, []
    for i, (r, blank) in enumerate(zip(rows, blank_before, strict=True)):
        if blank:
            w.writerow([""] * len(HEADER))
            line += 1
        w.writerow([str(i + 1), *["" if v is None else v for v in r], ""])
        line += 1
        numbers.append(line)
    text = buf.getvalue()
    data = {"cp1258": lambda t: encode_cp1258(t), "utf-16": lambda t: t.encode("utf-16"),
            "utf-8-sig": lambda t: t.encode("utf-8-sig"), "utf-8": lambda t: t.encode("utf-8")}[encoding](text)
    path.write_bytes(data)
    return numbers


def _write_xlsx(path: Path, rows, blank_before, title_rows: int) -> list[int]:
    wb = xlsxwriter.Workbook(str(path), {"strings_to_numbers": False, "strings_to_formulas": False})
    ws = wb.add_worksheet()
    for t in range(title_rows):
        ws.write_string(t, 0, "DANH SÁCH ĐỐI TƯỢNG ĐÃ TIÊM VẮC XIN COVID-19" if t == 0 else "")
    r0 = title_rows
    for j, h in enumerate(HEADER):
        ws.write_string(r0, j, h)
    r, numbers = r0 + 1, []
    for i, (values, blank) in enumerate(zip(rows, blank_before, strict=True)):
        r += blank
        ws.write_number(r, 0, i + 1)
        for j, v in enumerate(values):
            if v is not None:
                ws.write_string(r, j + 1, v)
        numbers.append(r + 1)
        r += 1
    wb.close()
    return numbers


def _write_parquet(path: Path, rows) -> list[int]:
    cols = {c: pa.array([r[k] for r in rows], type=pa.string()) for k, c in enumerate(COLS)}
    pq.write_table(pa.table(cols), path)
    return list(range(1, len(rows) + 1))


KINDS = [("csv", "utf-8", ","), ("csv", "utf-8-sig", ","), ("csv", "cp1258", ","), ("txt", "utf-16", "\t"),
         ("csv", "utf-8", ";"), ("xlsx", 0, None), ("xlsx", 3, None), ("parquet", None, None)]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=table, kind=st.sampled_from(KINDS))
def test_rows_come_back_with_the_same_text_and_row_numbers(tmp_path, rules, data, kind):
    rows = [r for r, _ in data]
    blanks = [b for _, b in data]
    ext, enc, delim = kind
    path = tmp_path / f"f_{ext}_{enc}_{delim!s:.1}.{ext}".replace(";", "semi").replace("\t", "tab")
    if ext in ("csv", "txt"):
        numbers = _write_csv(path, rows, blanks, enc, delim)
    elif ext == "xlsx":
        numbers = _write_xlsx(path, rows, blanks, enc)
    else:
        numbers = _write_parquet(path, rows)
    kept = [(r, n) for r, n in zip(rows, numbers, strict=True) if ext != "parquet" or any(v is not None for v in r)]
    result = read_export(path, rules)
    frame = result.frame
    assert frame["source_row"].tolist() == [n for _, n in kept]
    for k, col in enumerate(COLS):
        expect = [None if r[k] is None else unicodedata.normalize("NFC", r[k]) for r, _ in kept]
        got = [None if pd.isna(v) else v for v in frame[col].astype(object).tolist()]
        assert got == expect, col


def test_header_row_is_found_below_title_rows_and_excel_numbers_are_text(tmp_path, rules):
    path = tmp_path / "x.xlsx"
    wb = xlsxwriter.Workbook(str(path))
    ws = wb.add_worksheet()
    ws.write_string(0, 0, "SỞ Y TẾ")
    ws.write_string(1, 0, "DANH SÁCH ĐỐI TƯỢNG ĐÃ TIÊM VẮC XIN COVID-19")
    for j, h in enumerate(["STT", "Họ tên", "Năm sinh", "CCCD", "Ngày tiêm"]):
        ws.write_string(3, j, h)
    ws.write_row(4, 0, [1, "Lê Văn A", 1950, 79093001234, "01/08/2021"])
    wb.close()
    res = read_export(path, rules)
    assert res.header_row == 4
    assert res.frame["source_row"].tolist() == [5]
    assert res.frame[["full_name", "date_of_birth", "id_number", "dose_date"]].iloc[0].tolist() == [
        "Lê Văn A", "1950", "79093001234", "01/08/2021"]
    assert res.columns["id_number"] == "CCCD"


def test_a_workbook_whose_first_sheet_is_a_cover_page_is_read_from_its_data_sheet(tmp_path, rules):
    path = tmp_path / "cover.xlsx"
    wb = xlsxwriter.Workbook(str(path))
    cover = wb.add_worksheet("Hướng dẫn")
    cover.write_string(0, 0, "Hướng dẫn nhập liệu: ghi Họ và tên, Ngày sinh, Số CMND/CCCD")
    hidden = wb.add_worksheet("Cũ")
    hidden.write_row(0, 0, ["Họ và tên", "Ngày sinh", "Số CMND/CCCD"])
    hidden.write_row(1, 0, ["Không Đọc", "01/01/1990", "001090000001"])
    hidden.hide()
    data = wb.add_worksheet("Danh sách")
    data.write_row(0, 0, ["STT", "Họ và tên", "Ngày sinh", "Số CMND/CCCD"])
    data.write_row(1, 0, [1, "Lê Văn A", "02/01/1990", "001090000777"])
    wb.close()
    res = read_export(path, rules)
    assert res.sheet == "Danh sách"
    assert res.frame["full_name"].tolist() == ["Lê Văn A"] and res.frame["source_row"].tolist() == [2]
    # no sheet with a header row: the first sheet's problem is the file's
    path = tmp_path / "none.xlsx"
    wb = xlsxwriter.Workbook(str(path))
    wb.add_worksheet("A").write_string(0, 0, "trống")
    wb.add_worksheet("B").write_row(0, 0, ["STT", "Ngày tiêm"])
    wb.close()
    with pytest.raises(IngestError, match="no header row"):
        read_export(path, rules)


def test_a_name_split_into_family_and_given_columns_is_joined(tmp_path, rules):
    path = tmp_path / "split.csv"
    path.write_text("STT,Họ và tên đệm,Tên,Ngày sinh,Số CMND/CCCD\n"
                    "1,Nguyễn Văn,An,05/03/1985,079085001234\n"
                    "2,,Khôi,14/07/2003,079203000111\n"
                    "3,Trần Thị,,20/11/1985,079185004321\n", encoding="utf-8")
    frame = read_export(path, rules).frame
    assert frame["full_name"].tolist() == ["Nguyễn Văn An", "Khôi", "Trần Thị"]
    # with the whole name in "Họ và tên", a separate "Tên" (kept for sorting) changes nothing
    path.write_text("Họ và tên,Họ,Tên,Ngày sinh,Số CMND/CCCD\n"
                    "Nguyễn Văn An,Nguyễn,An,05/03/1985,079085001234\n", encoding="utf-8")
    assert read_export(path, rules).frame["full_name"].tolist() == ["Nguyễn Văn An"]


def test_separate_old_and_new_id_columns_give_the_personal_number_where_there_is_one(tmp_path, rules):
    path = tmp_path / "two_ids.csv"
    path.write_text("Họ và tên,Ngày sinh,Số CMND,Số CCCD\n"
                    "Nguyễn Văn An,05/03/1985,025123456,079085001234\n"
                    "Huỳnh Văn Đức,06/06/1970,023456789,\n"
                    "Đặng Minh Khôi,14/07/2003,,79203000111\n"
                    "Lê Văn Bình,1990,,\n", encoding="utf-8")
    res = read_export(path, rules)
    ids = res.frame["id_number"].tolist()
    assert ids[:3] == ["079085001234", "023456789", "79203000111"] and pd.isna(ids[3])
    assert res.columns["id_number"] == "Số CMND"


def test_headers_with_annotations_and_line_breaks_are_recognised(tmp_path, rules):
    path = tmp_path / "annotated.xlsx"
    wb = xlsxwriter.Workbook(str(path))
    ws = wb.add_worksheet()
    ws.write_row(0, 0, ["STT", "Họ và tên (*)", "Ngày sinh\n(dd/mm/yyyy)", "Giới tính [Nam/Nữ]", "Số CMND/\nCCCD *",
                        "Ghi chú (Số điện thoại)", "Ngày tiêm", "CCCD (người giám hộ)", "Họ tên (cha/mẹ)"])
    ws.write_row(1, 0, [1, "Lê Văn A", "02/01/1990", "Nam", "001090000777", "0903123456", "01/08/2021",
                        "001070000001", "Lê Văn B"])
    wb.close()
    res = read_export(path, rules)
    assert res.columns == {"full_name": "Họ và tên (*)", "date_of_birth": "Ngày sinh\n(dd/mm/yyyy)",
                           "sex": "Giới tính [Nam/Nữ]", "id_number": "Số CMND/\nCCCD *", "dose_date": "Ngày tiêm"}
    assert res.frame[["full_name", "date_of_birth", "sex", "id_number"]].iloc[0].tolist() == [
        "Lê Văn A", "02/01/1990", "Nam", "001090000777"]
    assert res.frame["phone"].isna().all()   # a note's annotation does not make it the phone column
    # a guardian's ID or a parent's name is not the vaccinated person's, wherever the column stands
    from pipeline.ingest.headers import header_name

    assert header_name("CCCD (người giám hộ)", rules) is None and header_name("Họ tên (cha/mẹ)", rules) is None
    assert header_name("Số CMND/CCCD (nếu có)", rules) == "id_number"
    assert header_name("Họ và tên (người được tiêm)", rules) == "full_name"


@pytest.mark.parametrize(("name", "content", "problem"), [
    ("broken.xlsx", b"PK\x03\x04 not a workbook", "not a readable XLSX"),
    ("no_columns.csv", "STT,Ngày tiêm,Vắc xin\n1,01/01/2022,AZ\n".encode(), "no header row"),
    ("no_name_no_id.csv", "Ngày sinh,Giới tính,Ngày tiêm,Vắc xin\n1990,Nam,01/01/2022,AZ\n".encode(), "no column for the name"),
    ("empty.csv", b"", "empty file"),
    ("binary.csv", b"\x00\x01\x02" * 50, "binary content"),
    ("notes.docx", b"whatever", "unsupported file kind"),
])
def test_unreadable_files_raise_a_reason(tmp_path, rules, name, content, problem):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(IngestError, match=problem):
        read_export(path, rules)


def test_stray_nul_bytes_are_removed_but_binary_content_is_still_refused(tmp_path, rules):
    """A NUL typed into a cell, and NUL padding after a copy cut short, cost neither the file nor a
    row: they are removed and counted. A ZIP (an .xlsx renamed .csv) keeps its NULs and is refused."""
    body = "Họ và tên,Giới tính,Số CMND/CCCD\nĐỗ Thị Hà,Nữ\x00,001190000001\nLê Văn An,Nam,001090000002\n"
    path = tmp_path / "nul.csv"
    path.write_bytes(body.encode() + b"\x00" * 600)
    res = read_export(path, rules)
    assert res.encoding == "utf-8, 601 NUL bytes removed"
    assert res.frame["sex"].tolist() == ["Nữ", "Nam"]
    assert res.frame["source_row"].tolist() == [2, 3]
    zipped = tmp_path / "renamed.csv"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("xl/worksheets/sheet1.xml", bytes(range(256)) * 40)
    zipped.write_bytes(buf.getvalue())
    with pytest.raises(IngestError, match="binary content"):
        read_export(zipped, rules)


def test_a_cell_longer_than_the_csv_modules_limit_is_read(tmp_path, rules):
    """Python's csv module refuses fields over 128 KiB by default: one such cell (a pasted text, a
    runaway quote) failed the whole province. The row is read like any other."""
    path = tmp_path / "long.csv"
    long_note = "x" * 300_000
    path.write_text("Họ và tên,Ngày sinh,Số CMND/CCCD,Ghi chú\n\"Lê Văn\nAn\",1990,001090000002,ok\n"
                    f"Đỗ Thị Hà,1990,001190000001,\"{long_note}\"\nTrần Bình,1990,001090000003,\n", encoding="utf-8")
    res = read_export(path, rules)
    assert res.frame["full_name"].tolist() == ["Lê Văn\nAn", "Đỗ Thị Hà", "Trần Bình"]
    assert res.frame["source_row"].tolist() == [2, 4, 5]


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_a_header_repeated_below_joined_exports_is_marked_not_read_as_a_person(tmp_path, rules, kind):
    """Two exports joined end to end: the second one's title and header come up as rows. The
    header copy is marked (and rejected downstream); a row sharing one or two texts with the
    header is data."""
    head = ["STT", "Họ và tên", "Ngày sinh", "Số CMND/CCCD"]
    rows = [head, ["1", "Lê Văn An", "1990", "001090000002"], ["DANH SÁCH TIÊM CHỦNG", None, None, None], head,
            ["2", "Họ và tên", "Ngày sinh", "001190000001"]]
    path = tmp_path / f"joined.{kind}"
    if kind == "csv":
        path.write_text("\n".join(",".join(c or "" for c in r) for r in rows) + "\n", encoding="utf-8")
    else:
        wb = xlsxwriter.Workbook(str(path))
        ws = wb.add_worksheet()
        for i, r in enumerate(rows):
            ws.write_row(i, 0, r)
        wb.close()
    from pipeline.ingest.readers import READ_PROBLEM, REPEATED_HEADER

    frame = read_export(path, rules).frame
    assert frame["source_row"].tolist() == [2, 3, 4, 5]
    assert frame[READ_PROBLEM].fillna("").tolist() == ["", "", REPEATED_HEADER, ""]


def test_csv_headers_in_canonical_english_and_official_form_wording_are_recognised(tmp_path, rules):
    """A system that writes Parquet with the contract's names writes its CSV the same way; the
    official form says 'Họ, chữ đệm và tên' and offers a passport under the ID."""
    path = tmp_path / "canonical.csv"
    path.write_text("full_name,date_of_birth,sex,id_number,dose_date,vaccine,lot_number\n"
                    "Lê Văn An,01/02/1990,Nam,001090000002,15/08/2021,Pfizer,FF1234\n", encoding="utf-8")
    res = read_export(path, rules)
    assert res.frame.loc[0, ["full_name", "date_of_birth", "sex", "id_number", "dose_date", "vaccine", "lot_number"]].tolist() == [
        "Lê Văn An", "01/02/1990", "Nam", "001090000002", "15/08/2021", "Pfizer", "FF1234"]
    path = tmp_path / "form.csv"
    path.write_text("STT,\"Họ, chữ đệm và tên\",Ngày sinh,Nam/Nữ,Số CMND/CCCD/Hộ chiếu,Mũi tiêm thứ,Mã số BHXH\n"
                    "1,Lê Văn An,1990,Nam,001090000002,2,7912345678\n", encoding="utf-8")
    res = read_export(path, rules)
    assert res.columns == {"full_name": "Họ, chữ đệm và tên", "date_of_birth": "Ngày sinh", "sex": "Nam/Nữ",
                           "id_number": "Số CMND/CCCD/Hộ chiếu", "dose_number": "Mũi tiêm thứ"}
    assert res.frame.loc[0, "id_number"] == "001090000002"     # not the social-insurance number


def test_cells_merged_down_a_block_of_rows_count_for_each_row_of_it(tmp_path, rules):
    """A two-row header whose name and birth date cells span both rows, with the dose fields
    under a merged 'Thông tin tiêm'; the vaccine and dose date written once, merged down a block of
    rows that ends below the last person; a note merged across a row. Each person's row gets the
    block's vaccine and date; the merged header cells name their columns; the note fills nothing
    and the empty rows under the block stay empty."""
    path = tmp_path / "merged.xlsx"
    wb = xlsxwriter.Workbook(str(path))
    ws = wb.add_worksheet()
    for col, title in ((0, "STT"), (1, "Họ và tên"), (2, "Ngày sinh"), (3, "Số CMND/CCCD")):
        ws.merge_range(0, col, 1, col, title)
    ws.merge_range(0, 4, 0, 5, "Thông tin tiêm")
    ws.write_row(1, 4, ["Ngày tiêm", "Tên vắc xin"])
    people = [("1", "Lê Văn An", "1990", "001090000002"), ("2", "Đỗ Thị Hà", "1991", "001191000003"),
              ("3", "Trần Bình", "1992", "001092000004")]
    for i, p in enumerate(people):
        ws.write_row(2 + i, 0, p)
    ws.merge_range(2, 4, 6, 4, "15/08/2021")     # rows 3-7: two rows below the last person
    ws.merge_range(2, 5, 6, 5, "AstraZeneca")
    ws.merge_range(8, 1, 8, 5, "Ghi chú: danh sách đã được kiểm tra")
    wb.close()
    res = read_export(path, rules)
    assert res.header_row == 2 and res.columns["full_name"] == "Họ và tên" and res.columns["vaccine"] == "Tên vắc xin"
    f = res.frame
    assert f["source_row"].tolist() == [3, 4, 5, 9]
    assert f["full_name"].tolist()[:3] == ["Lê Văn An", "Đỗ Thị Hà", "Trần Bình"]
    assert f["vaccine"].tolist()[:3] == ["AstraZeneca"] * 3 and f["dose_date"].tolist()[:3] == ["15/08/2021"] * 3
    assert f.loc[3, "full_name"] == "Ghi chú: danh sách đã được kiểm tra"
    assert f.loc[3, ["date_of_birth", "id_number", "dose_date", "vaccine"]].isna().all()


def test_a_csv_header_over_two_lines_names_the_columns_of_both(tmp_path, rules):
    """The CSV Excel writes from a two-row header: group titles and the first row's names above,
    the dose fields' names below. The line under a header that is data is never taken for more
    header, even when the cells it leaves blank are under named columns."""
    path = tmp_path / "two_lines.csv"
    path.write_text("STT,Họ và tên,Ngày sinh,Số CMND/CCCD,Thông tin tiêm,\n,,,,Ngày tiêm,Tên vắc xin\n"
                    "1,Lê Văn An,1990,001090000002,15/08/2021,Pfizer\n", encoding="utf-8")
    res = read_export(path, rules)
    assert res.header_row == 2 and set(res.columns) == {"full_name", "date_of_birth", "id_number", "dose_date", "vaccine"}
    assert res.frame[["full_name", "vaccine"]].values.tolist() == [["Lê Văn An", "Pfizer"]]
    assert res.frame["source_row"].tolist() == [3]
    path.write_text("STT,Họ và tên,Ngày sinh,Số CMND/CCCD,Ngày tiêm\n1,Lê Văn An,,,Tên vắc xin\n", encoding="utf-8")
    res = read_export(path, rules)
    assert res.header_row == 1 and res.frame["source_row"].tolist() == [2]


@pytest.mark.parametrize(("text", "header_row"), [
    ("sep=;\nHọ và tên;Ngày sinh;Số CMND/CCCD\nLê Văn An;1990;001090000002\n", 2),   # Excel's separator line
    ("Họ và tên|Ngày sinh|Số CMND/CCCD\nLê Văn An|1990|001090000002\n", 1),           # a database dump
])
def test_an_excel_separator_line_and_pipe_separated_text_are_read(tmp_path, rules, text, header_row):
    path = tmp_path / "x.csv"
    path.write_text(text, encoding="utf-8")
    res = read_export(path, rules)
    assert res.header_row == header_row
    assert res.frame[["full_name", "id_number"]].values.tolist() == [["Lê Văn An", "001090000002"]]


def test_utf16_without_tabs_and_bom_detection(tmp_path, rules):
    path = tmp_path / "u.txt"
    path.write_bytes(codecs.BOM_UTF16_LE + "Họ và tên\tNgày sinh\tSố CMND/CCCD\nĐỗ Thị Hà\t1/2/1990\t001190000001\n".encode("utf-16-le"))
    res = read_export(path, rules)
    assert res.encoding == "utf-16"
    assert res.frame["full_name"].tolist() == ["Đỗ Thị Hà"]
    assert res.frame["source_row"].tolist() == [2]


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_unicode_text_saved_without_a_byte_order_mark_is_read(tmp_path, rules, codec):
    path = tmp_path / "u.txt"
    text = "Họ và tên\tNgày sinh\tSố CMND/CCCD\r\nĐỗ Thị Hà\t1/2/1990\t001190000001\r\nLê Văn Ánh\t1990\t\r\n"
    path.write_bytes(text.encode(codec))
    res = read_export(path, rules)
    assert res.encoding == f"{codec} (no byte-order mark)"
    assert res.frame["full_name"].tolist() == ["Đỗ Thị Hà", "Lê Văn Ánh"]
    assert res.frame["source_row"].tolist() == [2, 3]


def test_utf8_lines_mixed_with_windows_1258_lines_are_each_read(tmp_path, rules):
    """Exports joined end to end: a UTF-8 file followed by a Windows-1258 one. Each line is read in
    its own encoding; refusing the file would lose every good row with the bad."""
    path = tmp_path / "joined.csv"
    header = "Họ và tên,Ngày sinh,Số CMND/CCCD\n".encode()
    utf8 = "Nguyễn Văn An,05/03/1985,079085001234\n".encode()
    legacy = encode_cp1258("Huỳnh Văn Đức,06/06/1970,079070555666\nTrần Thị Thuỷ,20/11/1985,079185004321\n")
    path.write_bytes(header + utf8 + legacy + "Lê Hoàng Phúc,02/01/1990,001090000777\n".encode())
    res = read_export(path, rules)
    assert res.encoding == "utf-8, 2 lines cp1258"
    assert res.frame["full_name"].tolist() == ["Nguyễn Văn An", "Huỳnh Văn Đức", "Trần Thị Thuỷ", "Lê Hoàng Phúc"]
    assert res.frame["source_row"].tolist() == [2, 3, 4, 5]


def test_a_byte_windows_1258_leaves_undefined_spoils_its_row_not_the_file(tmp_path, rules):
    path = tmp_path / "legacy.csv"
    body = encode_cp1258("Họ và tên;Ngày sinh;Số CMND/CCCD\r\nĐỗ Thị Hà;1/2/1990;001190000001\r\n")
    path.write_bytes(body + b"L\x81 V\x8dn;1990;001090000777\r\n")   # 0x81 and 0x8D are undefined
    res = read_export(path, rules)
    assert res.encoding == "cp1258, 2 undefined bytes replaced"
    assert res.frame["full_name"].tolist() == ["Đỗ Thị Hà", "L\ufffd V\ufffdn"]
    assert res.frame["id_number"].tolist() == ["001190000001", "001090000777"]


def test_a_csv_record_with_more_cells_than_the_header_is_marked_not_read_shifted(tmp_path, rules):
    """'Số 5, Phường 7' unquoted: every cell after the comma moves one column right. The record
    is kept (every row reaches the output) with the reason it cannot be read; records with only
    empty cells past the header (a trailing comma) and short records are read as usual."""
    path = tmp_path / "ragged.csv"
    path.write_text("Họ và tên,Ngày sinh,Địa chỉ,Số CMND/CCCD,Ngày tiêm\n"
                    "Nguyễn Văn An,05/03/1985,Quận 1,079085001234,15/08/2021\n"
                    "Trần Thị Thủy,20/11/1985,Số 5, Phường 7,079185004321,02/09/2021\n"
                    "Đặng Minh Khôi,14/07/2003,Quận 1,079203000111,01/12/2021,,\n"
                    "Lê Văn Bình,1990\n", encoding="utf-8")
    frame = read_export(path, rules).frame
    assert frame["source_row"].tolist() == [2, 3, 4, 5]
    problems = frame["read_problem"].tolist()
    assert pd.isna(problems[0]) and pd.isna(problems[2]) and pd.isna(problems[3])
    assert problems[1].startswith("dòng có 6 ô, nhiều hơn 5 cột của tệp")
    assert frame["id_number"].iloc[2] == "079203000111" and pd.isna(frame["id_number"].iloc[3])
    # A last column whose header cell was left out: most records have it, so it is a column, and
    # only the record with one cell more than that is marked.
    path.write_text("Họ và tên,Ngày sinh,Số CMND/CCCD\n"
                    "Nguyễn Văn An,05/03/1985,079085001234,ghi chú\n"
                    "Trần Thị Thủy,20/11/1985,079185004321,ghi chú\n"
                    "Đặng Minh Khôi,14/07/2003,079203000111,\n"
                    "Lê Văn Bình,1990,001090000777,ghi, chú\n", encoding="utf-8")
    frame = read_export(path, rules).frame
    assert frame["read_problem"].isna().tolist() == [True, True, True, False]
    assert frame["id_number"].tolist()[:3] == ["079085001234", "079185004321", "079203000111"]


# ---------------------------------------------------------------- CSV: Arrow and the csv module agree

raw_cell = st.lists(st.sampled_from(['a', 'é', ' ', '"', ',', ';', '\t', 'Ng', '""']), max_size=6).map("".join)
raw_line = st.lists(raw_cell, min_size=4, max_size=5)


def _both_ways(text: str, delim: str, rules):
    from pipeline.ingest import readers

    fast = readers._plain_csv(text, delim, rules)
    slow = readers._table_frame(*readers._csv_rows(text, delim), rules, "lines")
    return fast, slow


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(st.one_of(raw_line, st.just([])), min_size=1, max_size=8),
       delim=st.sampled_from([",", ";", "\t"]), newline=st.sampled_from(["\n", "\r\n"]),
       title=st.booleans(), end=st.booleans())
def test_arrow_reads_a_csv_as_the_csv_module_does_or_leaves_it_to_it(rules, lines, delim, newline, title, end):
    """Random lines with quotes anywhere (doubled, unbalanced, mid-field), blank lines, ragged lines:
    wherever the Arrow path takes a file, its rows, text and line numbers are the csv module's."""
    header = delim.join(["STT", "Họ và tên", "Ngày sinh", "Số CMND/CCCD"])
    body = [delim.join(cells) for cells in lines]
    text = newline.join((["DANH SÁCH"] if title else []) + [header] + body) + (newline if end else "")
    fast, slow = _both_ways(text, delim, rules)
    if fast is not None:
        pd.testing.assert_frame_equal(fast[0], slow[0])
        assert fast[1:] == slow[1:]


@pytest.mark.parametrize(("body", "arrow"), [
    ('1,"Trần Thị B","1/2/1990","Phường 2, Quận 5"\n2,Lê Văn C,1990,Q1\n', True),   # quoted commas: one line each
    ('1,Trần Thị B,1990,x\n\n2,Lê Văn C,1990,y\n', False),                             # a blank line
    ('1,"Trần Thị\nB",1990,x\n2,Lê Văn C,1990,y\n', False),                           # a record over two lines
    ('1,Trần Thị B,1990,x,extra\n2,Lê Văn C,1990,y\n', False),                         # another number of fields
    ('1,Trần Thị B,1990,x\r2,Lê Văn C,1990,y\r\n', False),                             # a lone carriage return
])
def test_which_csv_files_arrow_reads(rules, body, arrow):
    text = "STT,Họ và tên,Ngày sinh,Địa chỉ\n" + body
    fast, slow = _both_ways(text, ",", rules)
    assert (fast is not None) == arrow
    if fast is not None:
        pd.testing.assert_frame_equal(fast[0], slow[0])
        assert fast[0]["source_row"].tolist() == [2, 3]
        assert fast[0]["address"].tolist() == ["Phường 2, Quận 5", "Q1"]
