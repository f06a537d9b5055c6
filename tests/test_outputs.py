"""Error report, review round trip, validation and state store."""

from __future__ import annotations

import re
import shutil
from urllib.parse import unquote

import openpyxl
import pandas as pd
import pytest

from pipeline.report import safe_text
from pipeline.rules import ALL_CODES

from .conftest import RUN_DATE, SAMPLE

FORMULA_START = ("=", "+", "-", "@")


def test_report_workbook_contents_and_safety(sample_run):
    _, out = sample_run
    path = out / "reports" / "79" / "bao_cao_79.xlsx"
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames[0] == "Tổng hợp"
    assert {"Sửa số giấy tờ", "Sửa họ tên", "Sửa ngày sinh", "Sửa giới tính", "Kiểm tra mũi tiêm",
            "Cần xem xét", "Không tìm thấy", "Không xử lý được"} <= set(wb.sheetnames)
    summary = [[c for c in row] for row in wb["Tổng hợp"].iter_rows(values_only=True)]
    corrected = pd.read_parquet(out / "corrected" / "79.parquet")
    status_rows = {r[1]: r[2] for r in summary if r[1] in ("matched", "corrected", "review", "unmatched", "rejected")}
    assert status_rows == {s: int((corrected["status"] == s).sum()) for s in status_rows}
    code_rows = {r[1]: r[2] for r in summary if r[1] in ALL_CODES}
    assert code_rows["NAME_WRONG"] == int(corrected["error_codes"].map(lambda c: "NAME_WRONG" in c).sum())
    assert any(r[0] == "Đã sửa theo CSDL dân cư" for r in summary)
    ids = wb["Sửa số giấy tờ"]
    assert ids.freeze_panes == "A2" and ids.auto_filter.ref
    header = [c.value for c in ids[1]]
    assert header[:2] == ["Tệp", "Dòng"]
    n_id_rows = int(corrected["error_codes"].map(lambda c: any(x.startswith("ID_") for x in c)).sum())
    assert ids.max_row - 1 == n_id_rows
    reg_col = header.index("Số định danh trong CSDL") + 1
    dob_col = header.index("Ngày sinh trong CSDL") + 1
    linked_cells = [r for r in ids.iter_rows(min_row=2) if r[reg_col - 1].value]
    assert linked_cells and all(r[reg_col - 1].data_type == "s" and len(r[reg_col - 1].value) == 12 for r in linked_cells)
    assert any(r[dob_col - 1].is_date for r in linked_cells)
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (ws.title, cell.coordinate)
                if isinstance(cell.value, str):
                    assert not cell.value.startswith(FORMULA_START), (ws.title, cell.coordinate, cell.value)
    csv_text = (out / "reports" / "79" / "sua_so_giay_to.csv").read_bytes()
    assert csv_text.startswith(b"\xef\xbb\xbf")
    assert len(csv_text.decode("utf-8-sig").splitlines()) == n_id_rows + 1


def test_formula_injection_is_neutralised():
    assert safe_text("=HYPERLINK(\"x\")") == "'=HYPERLINK(\"x\")"
    assert safe_text("+84912345678") == "'+84912345678"
    assert safe_text("Nguyễn Văn A") == "Nguyễn Văn A"
    assert safe_text(None) == ""


def test_validation_pages_are_written_and_name_no_one(sample_run):
    _, out = sample_run
    index = out / "validation" / "index.html"
    assert index.exists()
    pages = " ".join(p.read_text(encoding="utf-8", errors="ignore") for p in (out / "validation").rglob("*.html"))
    assert "79-output" in pages
    registry = pd.read_parquet(SAMPLE / "registry.parquet", columns=["person_id"])
    assert not any(pid in pages for pid in registry["person_id"].head(2000))


def test_a_failed_output_expectation_fails_the_province(tmp_path):
    from flows.nightly import nightly_reconciliation

    rules = tmp_path / "rules"
    shutil.copytree(SAMPLE.parent.parent / "rules", rules)
    text = (rules / "expectations.yaml").read_text(encoding="utf-8")
    text = text.replace("value_set: [matched, corrected, review, unmatched, rejected]", "value_set: [matched]")
    (rules / "expectations.yaml").write_text(text, encoding="utf-8")
    result = nightly_reconciliation(SAMPLE / "registry.parquet", SAMPLE / "exports", tmp_path / "out", ["66"],
                                    RUN_DATE, rules)
    assert result["exit_code"] == 3
    assert "output expectations failed" in result["provinces"]["66"]["error"]
    assert not (tmp_path / "out" / "corrected" / "66.parquet").exists()


def test_a_misspelt_expectation_fails_at_start(tmp_path):
    from pipeline.validate import ExpectationsError, load_specs

    (tmp_path / "expectations.yaml").write_text("output:\n  - {type: ExpectColumnToBeGreen, column: x}\n", encoding="utf-8")
    with pytest.raises(ExpectationsError, match="ExpectColumnToBeGreen"):
        load_specs(tmp_path)


def test_review_round_trip(tmp_path):
    """Run, answer the review queue, apply it, run again: the officer's decisions are applied."""
    from pipeline.cli import main
    from pipeline.state import StateStore, default_url

    out = tmp_path / "out"
    args = ["run", "--registry", str(SAMPLE / "registry.parquet"), "--exports", str(SAMPLE / "exports"),
            "--out", str(out), "--run-date", RUN_DATE.isoformat(), "--province", "01", "--no-validate"]
    main(args)
    first = pd.read_parquet(out / "corrected" / "01.parquet")
    review = first[first["status"] == "review"]
    assert len(review) >= 2
    cases = review.drop_duplicates("case_key")
    pick, reject = cases.iloc[0], cases.iloc[1]
    path = out / "review" / "01.xlsx"
    wb = openpyxl.load_workbook(path)
    ws = wb.active
    header = [c.value for c in ws[1]]
    assert header[-1].startswith("QUYẾT ĐỊNH")
    assert ws.data_validations.dataValidation, "the decision cell offers the candidates"
    for row in ws.iter_rows(min_row=2):
        if row[2].value == "Đối tượng":
            assert row[-1].number_format == "@", "the decision cell keeps a typed ID as text"
        if row[2].value == "Đối tượng" and row[1].value == pick["case_key"]:
            # as a spreadsheet without the text format stores a typed ID: a number, leading zero lost
            row[-1].value = float(pick["candidate_ids"][0])
        elif row[2].value == "Đối tượng" and row[1].value == reject["case_key"]:
            row[-1].value = "Không khớp"
    extra = ws.max_row + 1
    ws.cell(extra, 1, "01")
    ws.cell(extra, 2, "Xdoesnotexist")
    ws.cell(extra, 3, "Đối tượng")
    ws.cell(extra, len(header), "001999999999")
    wb.save(path)
    assert main(["review", "apply", str(path), "--by", "Cán bộ Lan"]) == 3  # one decision rejected, two stored
    stored = StateStore(default_url(out)).decisions("01")
    assert stored[pick["case_key"]].decision == pick["candidate_ids"][0]
    assert stored[reject["case_key"]].decision == "none"
    assert "Xdoesnotexist" not in stored
    main(args)
    second = pd.read_parquet(out / "corrected" / "01.parquet")
    picked = second[second["case_key"] == pick["case_key"]]
    assert (picked["person_id"] == pick["candidate_ids"][0]).all()
    assert picked["status"].isin(["matched", "corrected"]).all()
    assert picked["match_reason"].str.contains("theo quyết định của Cán bộ Lan").all()
    rejected = second[second["case_key"] == reject["case_key"]]
    assert (rejected["status"] == "unmatched").all() and rejected["match_reason"].str.contains("không khớp").all()
    import json

    summary = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert summary["provinces"]["01"]["review_decisions"]["applied"] == len(picked) + len(rejected)


def test_decision_list_fits_excels_limit_and_ids_excel_turned_into_numbers_are_read():
    from pipeline.review import LIST_CHARS, choice_list, decision_ids

    many = [f"0790900001{k:02d}" for k in range(20)]
    choices = choice_list(many)
    assert choices[-1] == "không khớp" and choices[:-1] == many[:len(choices) - 1]
    assert len(",".join(choices)) <= LIST_CHARS < len(",".join([*many, "không khớp"]))
    assert choice_list(many[:3]) == [*many[:3], "không khớp"]
    assert decision_ids(["79090000123", "79090000123.0", "079 090 000 123", "25123456", "không khớp"]) == [
        "079090000123", "079090000123", "079090000123", "025123456", "không khớp"]
    from pipeline.review import NONE_WORDS
    from pipeline.text import fold_key

    assert all(fold_key(v) in NONE_WORDS for v in ("Không khớp", "KHÔNG PHẢI", "không đúng", "Không ai", "none"))
    assert fold_key("079090000123") not in NONE_WORDS and fold_key("có") not in NONE_WORDS


def test_state_store_keeps_run_history(sample_run):
    from pipeline.state import StateStore, default_url

    _, out = sample_run
    history = StateStore(default_url(out)).history()
    assert {h["province"] for h in history} == {"01", "66", "79"}
    assert all(h["status"] == "ok" for h in history)


def test_a_decision_about_a_person_no_longer_in_the_registry_is_reported_not_applied(tmp_path):
    from flows.nightly import nightly_reconciliation
    from pipeline.state import Decision, StateStore, default_url

    out = tmp_path / "out"
    first = nightly_reconciliation(SAMPLE / "registry.parquet", SAMPLE / "exports", out, ["66"], RUN_DATE,
                                   validate=False)
    assert first["exit_code"] == 0
    df = pd.read_parquet(out / "corrected" / "66.parquet")
    case = df["case_key"].iloc[0]
    before = df[df["case_key"] == case][["status", "person_id"]].reset_index(drop=True)
    StateStore(default_url(out)).add_decisions([Decision("66", case, "001999999990", ("001999999990",), "x", "2026-11-26", "66.xlsx"),
                                                Decision("66", "Xgone", "none", (), "x", "2026-11-26", "66.xlsx")])
    again = nightly_reconciliation(SAMPLE / "registry.parquet", SAMPLE / "exports", out, ["66"], RUN_DATE,
                                   validate=False)
    assert again["provinces"]["66"]["review_decisions"] == {"applied": 0, "stale_person": 1, "stale_case": 1}
    after = pd.read_parquet(out / "corrected" / "66.parquet")
    assert after[after["case_key"] == case][["status", "person_id"]].reset_index(drop=True).equals(before)


def test_row_conservation_violation_names_the_file():
    import pyarrow as pa

    from flows.reconcile import check_conservation

    read = {"79/a.csv": 2, "79/b.csv": 1}
    with pytest.raises(RuntimeError, match=r"79/a\.csv"):
        check_conservation(read, pa.table({"source_file": ["79/a.csv", "79/b.csv"], "source_row": [2, 2]}))
    with pytest.raises(RuntimeError, match="duplicate"):
        check_conservation(read, pa.table({"source_file": ["79/a.csv", "79/a.csv", "79/b.csv"], "source_row": [2, 2, 2]}))
    check_conservation(read, pa.table({"source_file": ["79/a.csv", "79/a.csv", "79/b.csv"], "source_row": [2, 3, 2]}))


def test_postgresql_state_store_round_trip():
    """Needs a PostgreSQL server: VAXRECON_TEST_PG_URL, e.g. postgresql+psycopg://postgres@localhost/postgres."""
    import os

    url = os.environ.get("VAXRECON_TEST_PG_URL")
    if not url:
        pytest.skip("no PostgreSQL server configured (set VAXRECON_TEST_PG_URL); SQLite is tested everywhere else")
    from pipeline.state import Decision, StateStore

    store = StateStore(url)
    store.add_decisions([Decision("79", "Xpg", "none", (), "tester", "2026-11-26", "79.xlsx")])
    assert store.decisions("79")["Xpg"].decided_by == "tester"


def test_review_lines_show_years_as_years_and_compare_each_field():
    from pipeline.review import _agree, _dob_agree, _id_agree, _shown_dob, _year_text

    assert _year_text(pd.Series([2016.0, None, 1985])).tolist() == ["2016", "", "1985"]
    none, full = pd.Series([None, None], dtype="datetime64[s]"), pd.Series(pd.to_datetime(["2016-05-20", "2015-05-20"]))
    assert _shown_dob(none, pd.Series([2016.0, None])).tolist() == ["2016", ""]
    assert _shown_dob(full, pd.Series([2016, 2015])).tolist() == ["20/05/2016", "20/05/2015"]
    assert _dob_agree(none, pd.Series([2016.0, 2016.0]), full, pd.Series([2016, 2015])).tolist() == ["khớp (năm)", "khác"]
    assert _dob_agree(full, pd.Series([2016, 2016]), full.iloc[[0, 0]], pd.Series([2016, 2016])).tolist() == ["khớp", "khác"]
    assert _dob_agree(none, pd.Series([None, None]), full, pd.Series([2016, 2015])).tolist() == ["?", "?"]
    text = "string[pyarrow]"
    assert _agree(pd.Series(["M", None, "F"], dtype=text), pd.Series(["M", "F", "M"], dtype=text)).tolist() == \
        ["khớp", "?", "khác"]
    written = pd.Series(["001085012345", "123456789", None, "079000000001"], dtype=text)
    pid = pd.Series(["001085012345", "001085099999", "001085012345", "079000000002"], dtype=text)
    old = pd.Series([None, "123456789", None, None], dtype=text)
    assert _id_agree(written, pid, old).tolist() == ["khớp", "khớp", "?", "khác"]


@pytest.mark.parametrize("per_slice", [100_000, 1])
def test_fast_sheet_cells_are_escaped_typed_and_formula_safe(tmp_path, monkeypatch, per_slice):
    """The vectorised sheet writer: XML-escaped text, numbers, dates, blanks, guarded formulas,
    and a list longer than a sheet continued on further sheets; the same when a sheet's rows are
    turned into XML one row at a time."""
    import datetime as dt

    import pyarrow as pa
    import python_calamine
    import xlsxwriter

    from pipeline import sheets

    monkeypatch.setattr(sheets, "MAX_ROWS", 3)   # two data rows per sheet
    monkeypatch.setattr(sheets, "ROWS_PER_SLICE", per_slice)
    text = ["a<b & c>d", "=SUM(A1)", None, "x\x01y", "Nguyễn"]
    columns = [sheets.Column("Chữ", "text", pa.array(text)),
               sheets.Column("Số", "int", pa.array([1, 2, None, 4, 5], pa.int64())),
               sheets.Column("Ngày", "date", pa.array([dt.date(2021, 5, 11), None, dt.date(1900, 2, 28),
                                                       dt.date(2022, 5, 31), dt.date(1899, 5, 1)], pa.date32()))]
    path = tmp_path / "t.xlsx"
    wb = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    style = wb.add_format({"num_format": "dd/mm/yyyy"})._get_xf_index()
    names = sheets.sheet_names("Danh sách rất dài cần chia nhiều trang", 5)
    assert names[0] == "Danh sách rất dài cần chia nhiều trang" and names[1].endswith(" (2)") and len(names) == 3
    names = [n[:31] for n in names]
    fills = {}
    for k, (name, span) in enumerate(zip(names, sheets.chunks(5), strict=True), start=1):
        ws = wb.add_worksheet(name)
        ws.write_row(0, 0, [c.title for c in columns])
        fills[k] = (columns, span, style)
    wb.close()
    sheets.fill_sheets(path, fills)

    wb_o = openpyxl.load_workbook(path)
    rows = [r for ws in wb_o.worksheets for r in ws.iter_rows(min_row=2, values_only=True)]
    assert [r[0] for r in rows] == ["a<b & c>d", "'=SUM(A1)", None, "xy", "Nguyễn"]
    assert [r[1] for r in rows] == [1, 2, None, 4, 5]
    assert [r[2].date() if isinstance(r[2], dt.datetime) else r[2] for r in rows] == [
        dt.date(2021, 5, 11), None, dt.date(1900, 2, 28), dt.date(2022, 5, 31), "01/05/1899"]
    assert all(c.data_type != "f" for ws in wb_o.worksheets for r in ws.iter_rows() for c in r)
    cal = python_calamine.CalamineWorkbook.from_path(str(path))
    assert cal.get_sheet_by_index(0).to_python()[1][0] == "a<b & c>d"

    data = sheets.csv_bytes(columns).decode("utf-8-sig").splitlines()
    assert data[0] == '"Chữ","Số","Ngày"'
    assert data[1] == '"a<b & c>d",1,"11/05/2021"' and data[2].startswith('"\'=SUM(A1)",2,')


def test_a_text_longer_than_an_excel_cell_is_cut_to_excels_limit(tmp_path):
    """Excel holds at most 32,767 characters in a cell and 'repairs' a workbook with a longer one;
    the sheet writer cuts there, the CSV copy keeps the text whole."""
    import pyarrow as pa
    import python_calamine
    import xlsxwriter

    from pipeline import sheets

    long = "Nguyễn " * 6000          # 42,000 characters
    columns = [sheets.Column("Ghi chú", "text", pa.array([long, "ngắn"]))]
    path = tmp_path / "t.xlsx"
    wb = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    ws = wb.add_worksheet("a")
    ws.write_row(0, 0, ["Ghi chú"])
    style = wb.add_format({"num_format": "dd/mm/yyyy"})._get_xf_index()
    wb.close()
    sheets.fill_sheets(path, {1: (columns, (0, 2), style)})
    cells = [r[0] for r in python_calamine.CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0).to_python()[1:]]
    assert cells == [long[:sheets.MAX_CELL_CHARS], "ngắn"] and len(cells[0]) == 32_767
    assert long in sheets.csv_bytes(columns).decode("utf-8-sig")


def test_input_suite_checks_only_its_columns_and_still_fails_bad_files(tmp_path):
    from pipeline.rules import default_rules
    from pipeline.validate import Validator, input_frame, load_specs, suite_columns

    specs = load_specs(default_rules().source_dir)
    columns = suite_columns(specs["input"])
    assert set(columns) == {"full_name", "id_number", "date_of_birth", "dose_date"}
    raw = pd.DataFrame({"source_file": "79/a.csv", "full_name": ["Nguyễn Văn An", "Lê Thị Bình"] * 10,
                        "id_number": ["079085001234", "CMND cũ?"] * 10, "date_of_birth": "05/03/1985",
                        "dose_date": "2021-08-01", "lot_number": "=cmd()"}, dtype="string[pyarrow]")
    checked = input_frame(raw, columns)
    assert list(checked.columns) == ["full_name", "id_number", "date_of_birth", "dose_date"]
    validator = Validator(tmp_path / "pages", specs)
    # One province's files share one validation; each file is judged alone and has its own page.
    failed = validator.run("input", "79-input", checked, batch="Quận 1/Điểm tiêm số 2.csv")
    assert failed == ["expect_column_values_to_match_regex id_number: 10"]   # half the rows: below mostly 0.95
    assert validator.run("input", "79-input", checked.iloc[::2], batch="b.csv") == []
    assert validator.run("input", "79-input", input_frame(raw.head(0).assign(full_name=pd.Series(dtype=object)),
                                                          columns), batch="c.csv") == []
    with pytest.raises(ValueError, match="79-input"):
        validator.run("input", "79-input", checked, {"rows_read": 3}, batch="d.csv")
    index = validator.build_docs().read_text(encoding="utf-8")
    pages = {unquote(link) for link in re.findall(r'validations/[^"\']+?[.]html', index)}
    assert {page.split("/")[2] for page in pages} == {"Quận 1 › Điểm tiêm số 2.csv", "b.csv", "c.csv"}
    assert all((tmp_path / "pages" / page).is_file() for page in pages)


def test_page_templates_are_compiled_once_per_process_and_the_pages_are_the_same(tmp_path):
    import jinja2
    from great_expectations.render.view import view

    from pipeline import validate
    from pipeline.rules import default_rules

    specs = validate.load_specs(default_rules().source_dir)
    frame = validate.input_frame(pd.DataFrame({"full_name": ["Lê Thị Bình"], "id_number": ["x"], "date_of_birth": "1985",
                                               "dose_date": "2021-08-01"}, dtype="string[pyarrow]"))

    def build(folder):
        validator = validate.Validator(folder, specs)
        assert validator.run("input", "79-input", frame, batch="a.csv") == [
            "expect_column_values_to_match_regex id_number: 1"]
        validator.build_docs()
        stamp = r"[0-9]{8}T[0-9]{6}[.][0-9]+Z|[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9:.+]+|_run_time_sort': [0-9.]+"
        return {re.sub(stamp, "", p.relative_to(folder).as_posix()): re.sub(stamp, "", p.read_text(encoding="utf-8"))
                for p in folder.rglob("*.html")}

    first = build(tmp_path / "first")
    assert view.Environment is not jinja2.Environment and issubclass(view.Environment, jinja2.Environment)
    compiled = dict(validate._page_templates)
    assert len(compiled) > 20                  # the page, section and component templates
    second = build(tmp_path / "second")
    assert all(validate._page_templates[k] is code for k, code in compiled.items())   # loaded, not compiled again
    assert second == first and len(first) >= 3   # index, suite and validation pages


def test_review_cases_list_each_case_then_its_registry_candidates_field_by_field():
    """Cases in case-key order with every row's file and line; candidates in the linker's order,
    one not in the registry left out; agreement worked by hand."""
    from pipeline.link.index import build_index
    from pipeline.review import CANDIDATE, PERSON, build_cases

    from .test_link import REG

    text = "string[pyarrow]"
    rows = pd.DataFrame({
        "status": ["review", "matched", "review", "review"],
        "case_key": ["Xb", "Xa", "Xa", "Xb"],
        "source_file": ["01/b.csv", "01/a.csv", "01/a.csv", "01/c.xlsx"], "source_row": [7, 2, 3, 9],
        "candidate_ids": [["001190000003", "079190000004"], [], ["001080000001", "001999999999", "001212000002"],
                          ["001190000003", "079190000004"]],
        "full_name": pd.Series(["Lê Thị Lan", "x", "Nguyễn Văn Hung", "Lê Thị Lan"], dtype=text),
        "date_of_birth": pd.to_datetime([None, None, "1980-05-04", None]),
        "birth_year": pd.Series([1990, None, 1980, 1990], dtype="Int16"),
        "sex": pd.Series(["F", None, "M", "F"], dtype=text),
        "id_number": pd.Series([None, None, "012345671", None], dtype=text),
        "original_id_number": pd.Series([None, None, "12345671", None], dtype=text),
        "match_score": [0.5, 1.0, 0.75, 0.5]})
    lines = build_cases(rows, build_index(REG))
    assert lines["kind"].tolist() == [PERSON, CANDIDATE, CANDIDATE, PERSON, CANDIDATE, CANDIDATE]
    assert lines["case"].tolist() == ["Xa"] * 3 + ["Xb"] * 3
    assert lines["pid"].tolist() == ["", "001080000001", "001212000002", "", "001190000003", "079190000004"]
    person_a, person_b = lines.iloc[0], lines.iloc[3]
    assert (person_a["where"], person_a["dob"], person_a["sex"], person_a["id"], person_a["score"]) == \
        ("01/a.csv dòng 3", "04/05/1980", "Nam", "12345671", 0.75)
    assert person_a["cands"] == ["001080000001", "001999999999", "001212000002"]
    assert (person_b["where"], person_b["dob"], person_b["id"]) == ("01/b.csv dòng 7; 01/c.xlsx dòng 9", "1990", "")
    assert lines.iloc[1][["name", "dob", "id"]].tolist() == ["Nguyễn Văn Hưng", "04/05/1980", "001080000001 / 012345671"]
    assert lines.iloc[1]["agree"] == ("khớp", "khớp", "khớp", "khớp")       # folded names, the old ID
    assert lines.iloc[2]["agree"] == ("khớp", "khác", "khớp", "khác")       # Hùng folds to Hung
    assert lines.iloc[4]["agree"] == ("khớp", "khớp (năm)", "khớp", "?")    # year only; no ID written
    assert build_cases(rows[rows["status"] == "matched"], build_index(REG)).empty
    nameless = build_cases(rows.assign(full_name=pd.Series([pd.NA] * 4, dtype=text)), build_index(REG))
    assert [a[0] for a in nameless["agree"].dropna()] == ["?"] * 4, "no name to compare: '?', not 'khác'"
    no_list = rows.copy()
    no_list["candidate_ids"] = [None, [], ["001080000001"], None]
    lines = build_cases(no_list, build_index(REG))
    assert lines["kind"].tolist() == [PERSON, CANDIDATE, PERSON] and lines.iloc[2]["cands"] == []


def _sheet_entries(path):
    import zipfile

    with zipfile.ZipFile(path) as z:    # the sheets themselves (docProps hold the time of writing)
        return {n: z.read(n) for n in z.namelist() if n.startswith("xl/worksheets/")}


def test_the_report_written_with_its_csv_copies_beside_is_the_same_report(sample_run, tmp_path, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    from pipeline import report
    from pipeline.rules import default_rules

    _, out = sample_run
    df = pd.read_parquet(out / "corrected" / "79.parquet")
    rules = default_rules()
    args = (df, "79", rules, RUN_DATE, sorted(df["source_file"].unique()), [])

    def write(folder, beside=None):
        return report.write_report(args[0], args[1], folder, *args[2:], beside=beside)

    alone = write(tmp_path / "alone")
    with ThreadPoolExecutor(max_workers=1) as beside:
        together = write(tmp_path / "beside", beside)
    assert _sheet_entries(together) == _sheet_entries(alone)
    csvs = sorted(p.name for p in (tmp_path / "alone").glob("*.csv"))
    assert csvs and csvs == sorted(p.name for p in (tmp_path / "beside").glob("*.csv"))
    for name in csvs:
        assert (tmp_path / "beside" / name).read_bytes() == (tmp_path / "alone" / name).read_bytes()

    def broken(columns):
        raise OSError("disk full")

    monkeypatch.setattr(report, "csv_bytes", broken)
    with ThreadPoolExecutor(max_workers=1) as beside, pytest.raises(OSError, match="disk full"):
        write(tmp_path / "failing", beside)
