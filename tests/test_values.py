"""IDs, dates, sex, phones, vaccines and dose numbers: table tests and properties."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.normalize.codes import (
    normalize_dose_numbers,
    normalize_phones,
    normalize_sex,
    normalize_vaccines,
)
from pipeline.normalize.dates import normalize_dates
from pipeline.normalize.ids import normalize_ids
from pipeline.rules import default_rules

RUN = dt.date(2026, 11, 26)


@pytest.mark.parametrize(("raw", "digits", "kind"), [
    ("079093001234", "079093001234", "personal"),
    ("79093001234", "079093001234", "personal"),         # leading zero lost
    ("1093001234", "001093001234", "personal"),          # two leading zeros lost (Hà Nội 001)
    ("79093001234.0", "079093001234", "personal"),       # Excel number cell
    ("7.9093001234E+10", "079093001234", "personal"),    # scientific notation with every digit
    ("7.9093E+10", None, "invalid"),                     # scientific notation that lost digits
    ("079 093 001 234", "079093001234", "personal"),
    ("079.093.001.234", "079093001234", "personal"),
    ("25123456", "025123456", "old"),                    # 9-digit CMND that lost its zero
    ("225123456", "225123456", "old"),
    ("000000000000", "000000000000", "placeholder"),
    ("111111111111", "111111111111", "placeholder"),
    ("123456789", "123456789", "placeholder"),
    ("0", "000000000", "placeholder"),
    ("1234567890123", None, "invalid"),
    ("CMND123", None, "invalid"),
    # a label written with the number; of two numbers in one cell, the one personal number
    ("CCCD: 079093001234", "079093001234", "personal"),
    ("Số CMND 025123456", "025123456", "old"),
    ("079 093 001 234 (CCCD)", "079093001234", "personal"),
    ("Căn cước công dân 079093001234", "079093001234", "personal"),
    ("025123456 / 079093001234", "079093001234", "personal"),
    ("079093001234 / 079093001235", None, "invalid"),      # two personal numbers: which is theirs?
    ("079093001234 mẹ", None, "invalid"),                  # another word than a label
    ("CCCD: 111111111111", "111111111111", "placeholder"),
    # the letter O typed for a zero; a stray mark before or after the number
    ("O79093001234", "079093001234", "personal"),
    ("079o93001234", "079093001234", "personal"),
    ("OOOOOOOOO", None, "invalid"),
    ("#079093001234", "079093001234", "personal"),
    ("079093001234;", "079093001234", "personal"),
    ("", None, "missing"),
    (None, None, "missing"),
])
def test_id_repair_and_classification(raw, digits, kind):
    out = normalize_ids(pd.Series([raw], dtype=object))
    assert out["id_kind"].iloc[0] == kind
    assert (out["id_number"].iloc[0] if pd.notna(out["id_number"].iloc[0]) else None) == digits


def test_personal_id_structure_is_decoded():
    out = normalize_ids(pd.Series(["079193001234", "001305001234", "099093001234"]))
    assert out["id_sex"].tolist()[:2] == ["F", "F"]
    assert out["id_birth_year"].tolist()[:2] == [1993, 2005]
    assert out["id_province"].iloc[0] == "79"
    assert out["id_structure_ok"].tolist() == [True, True, False]  # 99 is no province


@pytest.mark.parametrize(("raw", "date", "year", "precision"), [
    ("05/03/1985", "1985-03-05", 1985, "day"),
    ("5/3/1985", "1985-03-05", 1985, "day"),
    ("05-03-1985", "1985-03-05", 1985, "day"),
    ("1985-03-05", "1985-03-05", 1985, "day"),           # ISO is year-month-day, never 3 May
    ("1985-03-05 00:00:00", "1985-03-05", 1985, "day"),
    ("05/03/85", "1985-03-05", 1985, "day"),
    ("05/03/22", "2022-03-05", 2022, "day"),             # pivot: the run year
    ("31111", "1985-03-05", 1985, "day"),                # Excel serial
    ("1950", None, 1950, "year"),                        # a bare year, not 1 January
    ("1950.0", None, 1950, "year"),
    # a time of day after the date is dropped: vaccination systems, Vietnamese Excel (SA / CH)
    ("15/08/2021 09:35", "2021-08-15", 2021, "day"),
    ("05/03/1985 12:00:00 SA", "1985-03-05", 1985, "day"),
    ("5/3/1985 2:30:15 CH", "1985-03-05", 1985, "day"),
    ("2021-08-15T09:35:12.5+07:00", "2021-08-15", 2021, "day"),
    ("05.03.1985 0:00 AM", "1985-03-05", 1985, "day"),
    # the month named: a custom date format saved to CSV, or the date written out in Vietnamese
    ("05-Mar-1985", "1985-03-05", 1985, "day"),
    ("5 March 85", "1985-03-05", 1985, "day"),
    ("12-dec-2001", "2001-12-12", 2001, "day"),
    ("ngày 5 tháng 3 năm 1985", "1985-03-05", 1985, "day"),
    ("05 tháng 03 1985", "1985-03-05", 1985, "day"),
    # the year alone written as a date: day and month zero where unknown, or month and year
    ("00/00/1945", None, 1945, "year"),
    ("00/03/1945", None, 1945, "year"),
    ("03/1985", None, 1985, "year"),
    ("1985-03", None, 1985, "year"),
    # eight digits, year first or last (no Excel serial has eight digits)
    ("19850305", "1985-03-05", 1985, "day"),
    ("05031985", "1985-03-05", 1985, "day"),
    ("19121962", "1962-12-19", 1962, "day"),             # not 1912-19-62
    # typed variations: Excel's text apostrophe, a stop after the date, spaces or other separators
    ("'05/03/1985", "1985-03-05", 1985, "day"),
    ("05/03/1985.", "1985-03-05", 1985, "day"),
    ("05 / 03 / 1985", "1985-03-05", 1985, "day"),
    ("05/03 /1985", "1985-03-05", 1985, "day"),
    ("05 03 1985", "1985-03-05", 1985, "day"),
    ("05,03,1985", "1985-03-05", 1985, "day"),
    ("1985 03 05", "1985-03-05", 1985, "day"),
    # an unknown day or month written as '?' or 'x'; the year as a word
    ("??/03/1945", None, 1945, "year"),
    ("xx/xx/1945", None, 1945, "year"),
    ("năm 1945", None, 1945, "year"),
])
def test_dates_in_every_format(raw, date, year, precision):
    out = normalize_dates(pd.Series([raw]), run_date=RUN)
    got = out["date"].iloc[0]
    assert (None if pd.isna(got) else got.date().isoformat()) == date
    assert out["year"].iloc[0] == year
    assert out["precision"].iloc[0] == precision
    assert pd.isna(out["date_error"].iloc[0])


@pytest.mark.parametrize(("raw", "error"), [("31/02/1990", "impossible date"), ("13/13/2000", "impossible date"),
                                             ("không rõ", "unreadable date"), ("10:30", "unreadable date"),
                                             ("05/03/1985 25", "unreadable date"), ("31-Feb-1990", "impossible date"),
                                             ("xx-Mar-1985", "unreadable date"), ("00/13/1945", "impossible date"),
                                             ("13/1985", "unreadable date"), ("12345678", "Excel serial out of range"),
                                             ("19851305", "Excel serial out of range"), ("x/y/1985", "unreadable date")])
def test_impossible_dates_are_rejected_with_a_reason(raw, error):
    out = normalize_dates(pd.Series([raw]), run_date=RUN)
    assert pd.isna(out["date"].iloc[0]) and pd.isna(out["year"].iloc[0])
    assert out["date_error"].iloc[0] == error


def test_swappable_dates_are_marked():
    out = normalize_dates(pd.Series(["05/03/1985", "25/03/1985", "03/03/1985", "05-Mar-1985", "ngày 5 tháng 3 năm 1985"]),
                          run_date=RUN)
    assert out["swappable"].tolist() == [True, False, False, False, False]   # a named month is no day


def test_year_only_is_not_a_dose_date():
    out = normalize_dates(pd.Series(["2021", "00/00/2021", "08/2021"]), run_date=RUN, allow_year_only=False)
    assert out["year"].isna().all() and (out["date_error"] == "year only").all()


@settings(max_examples=200, deadline=None)
@given(d=st.dates(min_value=dt.date(1901, 1, 1), max_value=dt.date(2025, 12, 31)),
       fmt=st.sampled_from(["%d/%m/%Y", "%d-%m-%Y", "%Y-%m-%d", "%Y%m%d", "%d%m%Y", "%d %m %Y", "serial"]))
def test_any_written_date_reads_back(d, fmt):
    text = str((d - dt.date(1899, 12, 30)).days) if fmt == "serial" else d.strftime(fmt)
    out = normalize_dates(pd.Series([text]), run_date=RUN)
    if fmt == "serial" and 1900 <= int(text) <= 2030:
        assert out["precision"].iloc[0] == "year"  # the contract reads such a number as a year
    else:
        assert out["date"].iloc[0].date() == d


def test_sex_values():
    out = normalize_sex(pd.Series(["Nam", "NỮ", "nu", "Nữ", "M", "f", "Male", "FEMALE", "Nam giới", "nữ giới",
                                   "x", "N", None]))
    assert out["sex"].tolist()[:10] == ["M", "F", "F", "F", "M", "F", "M", "F", "M", "F"]
    assert out["sex_known"].tolist()[10:] == [False, False, False]   # 'N' could be Nam or Nữ


def test_phone_numbers_and_the_2018_prefix_change():
    out = normalize_phones(pd.Series(["0912345678", "+84 912 345 678", "01623456789", "0120 123 4567", "12345"]))
    assert out["phone"].tolist()[:4] == ["0912345678", "0912345678", "0323456789", "0701234567"]
    assert not out["phone_known"].iloc[4]


@pytest.mark.parametrize(("raw", "phone"), [
    ("0084 912 345 678", "0912345678"),          # the international call prefix
    ("84912345678", "0912345678"),
    ("849123456", "0849123456"),                 # a 084 number that lost its zero, not +84
    ("841623456789", "0323456789"),
    ("0912345678 / 0987654321", "0912345678"),   # two numbers: the first is the row's
    ("0912 345 678 hoặc 0987654321", "0912345678"),
    ("0912-345-678; 0987654321", "0912345678"),
    ("0912 - 345 - 678", "0912345678"),          # one number, written with spaced dashes
])
def test_phone_numbers_as_typed(raw, phone):
    assert normalize_phones(pd.Series([raw]))["phone"].iloc[0] == phone


def test_vaccine_spellings_and_unknowns():
    out = normalize_vaccines(pd.Series(["Astra Zeneca", "AZ", "Vero Cell", "COMIRNATY", "Spikevax", "Sputnik V",
                                        "Hayat-Vax", "Janssen", "Covaxin"]))
    assert out["vaccine"].tolist()[:8] == ["AstraZeneca", "AstraZeneca", "Vero Cell", "Pfizer", "Moderna",
                                           "Sputnik V", "Hayat-Vax", "Janssen"]
    assert not out["vaccine_known"].iloc[8] and pd.isna(out["vaccine"].iloc[8])


def test_dose_numbers():
    out = normalize_dose_numbers(pd.Series(["1", "Mũi 2", "Mũi nhắc lại", "Mũi bổ sung", "Mũi nhắc lại lần 2", "?"]))
    assert out["dose_number"].tolist()[:5] == [1, 2, 3, 3, 4]
    assert pd.isna(out["dose_number"].iloc[5])


def test_sex_and_dose_numbers_typed_in_a_legacy_font_are_read():
    """A file typed in TCVN3 or VNI has every cell in the font, not only the names: 'Nữ' is 'N÷'
    or 'Nöõ', 'Mũi nhắc lại' is 'Mòi nh¾c l¹i'. Read as the names are; what no font makes a known
    value of stays unknown."""
    from pipeline.normalize.codes import normalize_sex
    from pipeline.normalize.encodings import encode_legacy

    sexes = [encode_legacy(v, font) for font in ("tcvn3", "vni") for v in ("Nữ", "Nam", "NỮ")] + ["Ná»¯", "x", "N"]
    assert normalize_sex(pd.Series(sexes)).sex.fillna("?").tolist() == ["F", "M", "F", "F", "M", "F", "F", "?", "?"]
    doses = [encode_legacy(v, font) for font in ("tcvn3", "vni") for v in ("Mũi nhắc lại", "Mũi thứ hai")] + ["?"]
    assert normalize_dose_numbers(pd.Series(doses)).dose_number.fillna(0).tolist() == [3, 2, 3, 2, 0]


def test_a_numbered_booster_is_counted_from_the_third_dose():
    out = normalize_dose_numbers(pd.Series(["Mũi nhắc 1", "Mũi nhắc 2", "Nhắc lần 1", "Booster 1", "Mũi 1"]))
    assert out["dose_number"].tolist() == [3, 4, 3, 3, 1]


def test_development_codes_name_their_vaccine():
    out = normalize_vaccines(pd.Series(["AZD1222", "BNT162b2", "mRNA-1273", "BBIBP-CorV"]))
    assert out["vaccine"].tolist() == ["AstraZeneca", "Pfizer", "Moderna", "Vero Cell"]


def test_dose_numbers_written_out_as_words():
    out = normalize_dose_numbers(pd.Series(["Mũi thứ nhất", "Mũi thứ hai", "MŨI MỘT", "Mũi ba", "Mũi nhắc lại lần thứ hai",
                                            "Mũi nhắc lại lần thứ nhất"]))
    assert out["dose_number"].tolist() == [1, 2, 1, 3, 4, 3]


def test_boosters_written_as_tang_cuong_count_from_the_third_dose():
    out = normalize_dose_numbers(pd.Series(["Tăng cường 1", "Mũi tăng cường lần 2", "Mũi tăng cường", "Booster 2",
                                            "Mũi 3 (nhắc lại lần 1)"]))
    assert out["dose_number"].tolist() == [3, 4, 3, 4, 3]


def test_the_childrens_pfizer_and_bracketed_brand_names_are_known():
    out = normalize_vaccines(pd.Series(["Pfizer (trẻ em)", "Pfizer nhi", "Pfizer (5-11 tuổi)", "Vero Cell (Sinopharm)",
                                        "Moderna (Spikevax)", "Sinovac"]))
    assert out["vaccine"].tolist()[:5] == ["Pfizer", "Pfizer", "Pfizer", "Vero Cell", "Moderna"]
    assert not out["vaccine_known"].iloc[5], "a vaccine not in the catalogue is flagged, not guessed"


@settings(max_examples=200, deadline=None)
@given(digits=st.from_regex(r"0[0-9]{11}|[0-9]{9}", fullmatch=True))
def test_id_repair_is_idempotent_and_keeps_canonical_values(digits):
    once = normalize_ids(pd.Series([digits]))
    assert once["id_number"].iloc[0] == digits
    twice = normalize_ids(once["id_number"])
    assert twice["id_number"].iloc[0] == digits and twice["id_kind"].iloc[0] == once["id_kind"].iloc[0]


@settings(max_examples=100, deadline=None)
@given(d=st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2026, 1, 1)))
def test_date_parsing_is_idempotent_on_iso_output(d):
    once = normalize_dates(pd.Series([d.strftime("%d/%m/%Y")]), run_date=RUN)["date"].iloc[0]
    twice = normalize_dates(pd.Series([once.date().isoformat()]), run_date=RUN)["date"].iloc[0]
    assert once == twice and once.date() == d


_PATTERN_TEXT = st.text(alphabet="0123456789./-,eE+ \nx\u0663", max_size=14)


@pytest.mark.parametrize("pattern", [
    "dates._DMY", "dates._YMD", "dates._DMYY", "dates._NUMBER", "ids._SCI", r"(?P<digits>[0-9]+)"])
@given(values=st.lists(st.one_of(st.none(), _PATTERN_TEXT), max_size=30))
@settings(max_examples=150, deadline=None)
def test_arrow_extract_agrees_with_pandas_extract(pattern, values):
    """Arrow's RE2 extract gives pandas' (Python re) answer for every pattern the normalisers use
    on the stripped text they hand it, optional groups that took no part included, with other
    scripts' digits among the characters."""
    import re

    from pipeline.normalize import dates, ids
    from pipeline.text import extract

    if "." in pattern and not pattern.startswith("("):
        module, name = pattern.split(".")
        pattern = getattr({"dates": dates, "ids": ids}[module], name)
    text = pd.Series(values, dtype="string[pyarrow]").str.strip()
    got = extract(text, pattern)
    want = text.astype(object).str.extract(re.sub(r"\?P<[a-z]+>", "", pattern))
    assert list(got.columns) == list(want.columns)
    for column in got.columns:
        assert [None if pd.isna(v) else v for v in got[column]] == [None if pd.isna(v) else v for v in want[column]]


def test_arrow_extract_anchors_end_at_the_end_of_the_text():
    """The documented difference: Python's `$` also matches before a final newline, RE2's does not
    (callers strip first)."""
    from pipeline.text import extract

    text = pd.Series(["1985\n", "1985"], dtype="string[pyarrow]")
    assert extract(text, r"^(?P<year>[0-9]+)$")[0].tolist() == [pd.NA, "1985"]


def test_arrow_extract_refuses_unnamed_groups():
    from pipeline.text import extract

    with pytest.raises(ValueError, match="named"):
        extract(pd.Series(["12"], dtype="string[pyarrow]"), r"(?P<a>[0-9])([0-9])")


def test_a_vaccine_named_inside_a_longer_value_is_known_unless_two_are_named():
    out = normalize_vaccines(pd.Series(["Astrazeneca (AZD1222)", "Vắc xin Pfizer", "SPIKEVAX - Moderna (mRNA)",
                                        "Vaccine Vero Cell - Sinopharm", "COVID-19 vaccine Janssen (J&J)",
                                        "AstraZeneca / Pfizer", "Sinovac CoronaVac", "Covaxin (Bharat)", None]))
    assert out["vaccine"].tolist()[:5] == ["AstraZeneca", "Pfizer", "Moderna", "Vero Cell", "Janssen"]
    # two vaccines named, no vaccine of the catalogue (twice), no value
    assert out["vaccine"].iloc[5:].isna().all() and not out["vaccine_known"].iloc[5:].any()


@pytest.mark.parametrize(("raw", "vaccine"), [
    ("Phizer", "Pfizer"), ("Pfizerr", "Pfizer"), ("Modena", "Moderna"), ("Astrazenca", "AstraZeneca"),
    ("AstraZeneka", "AstraZeneca"), ("Sinophram", "Vero Cell"), ("Verro Cell", "Vero Cell"), ("Jansen", "Janssen"),
    ("Abdalla", "Abdala"), ("Vắc xin Astra Zenca", "AstraZeneca"), ("Jcovden", "Janssen"),   # Janssen's brand name
    # not a letter or two from one catalogue vaccine: unknown
    ("Sinovac", None), ("Novavax", None), ("Nanocovax", None), ("Covivac", None), ("Covaxin", None),
    ("XYZ-Vac", None), ("Pfizr / Modrna", None), ("Vera", None), ("Azz", None),
    ("Sputnik Light", None), ("Sputnik V", "Sputnik V"),   # the single-dose vaccine is not Sputnik V
])
def test_a_vaccine_name_misspelt_by_a_letter_or_two_is_that_vaccine_and_no_other(raw, vaccine):
    out = normalize_vaccines(pd.Series([raw]))
    assert (None if pd.isna(out["vaccine"].iloc[0]) else out["vaccine"].iloc[0]) == vaccine
    assert out["vaccine_known"].iloc[0] == (vaccine is not None)


def test_invisible_characters_copied_into_cells_are_ignored():
    """A zero-width space between words is a space; joiners, word joiners and a byte-order mark
    inside a cell are nothing: the values read as if they were not there."""
    import datetime as dt

    from pipeline.normalize.records import normalize_exports

    z, bom, zwj = "\u200b", "\ufeff", "\u200d"
    raw = pd.DataFrame({
        "full_name": [f"Đặng{z}Minh Khôi", f"{bom}Nguyễn Văn An", f"Lê Thị{zwj} Lan", "Trần An"],
        "id_number": [f"079{z}203000111", f"{bom}079085001234", f"079085001234{z}", "079085001234"],
        "date_of_birth": [f"14/07/2003{z}", f"{bom}05/03/1985", "05/03/1985", "05/03/1985"],
        "dose_date": [f"{zwj}01/12/2021", "01/12/2021", "01/12/2021", "01/12/2021"],
        "sex": [f"Nam{z}", "Nam", "Nữ", "Nam"], "phone": [f"0903{zwj}123456", None, None, None],
        "vaccine": [f"Moderna{z}", "AZ", "AZ", "AZ"], "dose_number": [f"{bom}2", "1", "1", "1"],
    }, dtype="string[pyarrow]")
    out = normalize_exports(raw, run_date=dt.date(2026, 11, 26))
    assert out["full_name"].tolist()[:3] == ["Đặng Minh Khôi", "Nguyễn Văn An", "Lê Thị Lan"]
    assert out["id_number"].tolist() == ["079203000111", "079085001234", "079085001234", "079085001234"]
    assert out["dob_date"].tolist()[:2] == [pd.Timestamp("2003-07-14"), pd.Timestamp("1985-03-05")]
    assert out["dose_date"].iloc[0] == pd.Timestamp("2021-12-01")
    assert out["sex"].iloc[0] == "M" and out["phone"].iloc[0] == "0903123456"
    assert out["vaccine"].iloc[0] == "Moderna" and out["dose_number"].iloc[0] == 2


def test_excel_text_formulas_in_csv_cells_are_unwrapped():
    """CSV exports write ="079085001234" so that Excel keeps the leading zero: read the text."""
    import datetime as dt

    from pipeline.normalize.records import normalize_exports
    from pipeline.text import unwrap_excel_text

    raw = pd.DataFrame({
        "full_name": ["Nguyễn Văn An", '="Lê Thị ""Lan"""'], "id_number": ['="079085001234"', ' = "001150000888" '],
        "date_of_birth": ['="05/03/1985"', "1950"], "dose_date": ["01/12/2021", '="01/12/2021"'],
        "sex": ["Nam", '="Nữ"'], "phone": ['="0903123456"', None], "vaccine": ["AZ", "AZ"], "dose_number": ['="2"', "1"],
    }, dtype="string[pyarrow]")
    out = normalize_exports(raw, run_date=dt.date(2026, 11, 26))
    assert out["id_number"].tolist() == ["079085001234", "001150000888"]
    assert out["dob_date"].iloc[0] == pd.Timestamp("1985-03-05") and out["dose_date"].iloc[1] == pd.Timestamp("2021-12-01")
    assert out["sex"].tolist() == ["M", "F"] and out["phone"].iloc[0] == "0903123456"
    assert out["dose_number"].iloc[0] == 2
    # a formula that is not a quoted text, or an '=' inside a value, is left as it is
    kept = pd.Series(["=SUM(A1:A3)", "x=1", '="a" & "b"', None], dtype="string[pyarrow]")
    assert unwrap_excel_text(kept).tolist() == ["=SUM(A1:A3)", "x=1", '="a" & "b"', pd.NA]


def test_full_width_digits_and_signs_are_read_as_ascii_in_number_and_date_fields():
    """Typed with an East Asian input method: '０７９２０３０００１１１', '１４／０７／２００３'."""
    import datetime as dt

    from pipeline.normalize.records import normalize_exports
    from pipeline.text import fold_fullwidth

    raw = pd.DataFrame({
        "full_name": ["Đặng Minh Khôi", "Lê Hoàng Phúc"], "id_number": ["０７９２０３０００１１１", "001090000777"],
        "date_of_birth": ["１４／０７／２００３", "02/01/1990"], "dose_date": ["０１-１２-２０２１", "01/12/2021"],
        "sex": ["Nam", "Nam"], "phone": ["＋８４ ９０３ １２３ ４５６", None], "vaccine": ["AZ", "AZ"],
        "dose_number": ["２", "1"],
    }, dtype="string[pyarrow]")
    out = normalize_exports(raw, run_date=dt.date(2026, 11, 26))
    assert out["id_number"].tolist() == ["079203000111", "001090000777"]
    assert out["dob_date"].iloc[0] == pd.Timestamp("2003-07-14") and out["dose_date"].iloc[0] == pd.Timestamp("2021-12-01")
    assert out["phone"].iloc[0] == "0903123456" and out["dose_number"].iloc[0] == 2
    # other text keeps its characters ('µ' is TCVN3's 'à' and must not become Greek 'μ')
    assert fold_fullwidth(pd.Series(["Hoµng", "Ａ1", None], dtype="string[pyarrow]")).tolist() == ["Hoµng", "A1", pd.NA]


def test_an_id_cell_saying_there_is_none_is_a_missing_id_not_an_invalid_one():
    from pipeline.normalize.ids import normalize_ids

    raw = ["không có", "Chưa có", "N/A", "-", "...", "KHONG", "x", "CCCD: 0790", "0", "079085001234", None]
    out = normalize_ids(pd.Series(raw, dtype="string[pyarrow]"))
    assert out["id_kind"].tolist() == ["missing"] * 6 + ["invalid", "invalid", "placeholder", "personal", "missing"]


_ID_CELLS = st.one_of(
    st.from_regex(r"[0-9]{12}|[0-9]{9}", fullmatch=True),                      # plain numbers
    st.sampled_from(["000000000000", "111111111", "123456789", "012345678", "999999999999"]),
    st.from_regex(r"[0-9]{1,13}", fullmatch=True),                             # lost zeros, too long
    st.from_regex(r"[0-9]{3}[ .][0-9]{3}[ .][0-9]{3}([ .][0-9]{3})?", fullmatch=True),
    st.sampled_from(["'079093001234", "79093001234.0", "7.9093001234E+10", "CCCD: 079093001234", "không có",
                     "-", "O79093001234", "012345678 / 079090000123", " 079093001234 ", "", "０７９０９３００１２３４"]),
    st.none())


@settings(max_examples=200, deadline=None)
@given(values=st.lists(_ID_CELLS, min_size=1, max_size=25))
def test_plain_numbers_are_classified_as_every_repair_would_classify_them(values):
    """The short way for cells of 9 or 12 digits gives what the whole repair gives them."""
    from pipeline.normalize.ids import _classify_written, classify_ids, decode_personal_ids

    raw = pd.Series(values, dtype="string[pyarrow]", index=range(100, 100 + len(values)))
    got = classify_ids(raw)
    whole = _classify_written(raw.reset_index(drop=True), default_rules())
    whole = pd.concat([whole, decode_personal_ids(whole["id_number"].where(whole["id_kind"] == "personal"))], axis=1)
    whole.index = raw.index
    pd.testing.assert_frame_equal(got, whole)


_PHONE_CELLS = st.one_of(
    st.from_regex(r"0[1-9][0-9]{8}", fullmatch=True),                           # as it should be
    st.from_regex(r"(\+84|84|0084|0)?[0-9]{8,11}(\.0)?", fullmatch=True),
    st.sampled_from(["0912 345 678", "0912.345.678", "01689123456", "0912345678 / 0987654321", "0084912345",
                     "không có", "", "84912345678", "0000000000"]),
    st.none())


@settings(max_examples=200, deadline=None)
@given(values=st.lists(_PHONE_CELLS, min_size=1, max_size=25))
def test_plain_phone_numbers_are_kept_as_every_repair_would_keep_them(values):
    from pipeline.normalize.codes import _repaired_phones

    raw = pd.Series(values, dtype="string[pyarrow]")
    got = normalize_phones(raw)
    present = raw.dropna()
    whole = _repaired_phones(present.reset_index(drop=True), default_rules())
    whole.index = present.index
    whole = whole.reindex(raw.index)
    pd.testing.assert_frame_equal(got, whole, check_dtype=True)


def test_text_hashes_depend_on_the_text_alone_and_spread_evenly():
    import numpy as np
    import pyarrow as pa

    from pipeline.text import text_hashes

    ids = [f"0790{n:08d}" for n in range(0, 2_000_000, 20)]   # 100,000 IDs that differ in a few digits
    whole = text_hashes(pa.array(ids, pa.string()))
    assert len(np.unique(whole)) == len(ids)
    # the same text, the same hash: in a large_string array, a slice with an offset, chunks
    assert (text_hashes(pa.array(ids, pa.large_string())) == whole).all()
    assert (text_hashes(pa.array(["x", *ids], pa.string()).slice(1)) == whole).all()
    assert (text_hashes(pa.array(["x", *ids], pa.large_string()).slice(1)) == whole).all()
    assert (text_hashes(pa.chunked_array([pa.array(ids[:7]), pa.array(ids[7:])])) == whole).all()
    assert text_hashes(pa.array([None, "", "ab", "ba", "Nguyễn"])).tolist()[:2] == [0, 0]
    assert len(set(text_hashes(pa.array(["ab", "ba", "Nguyễn", "Nguyen"])).tolist())) == 4
    assert len(text_hashes(pa.array([], pa.string()))) == 0
    # buckets of a hash modulo 20 take 5% of the IDs each, give or take a tenth
    counts = np.bincount((whole % np.uint64(20)).astype(np.int64), minlength=20)
    assert counts.min() > 0.9 * len(ids) / 20 and counts.max() < 1.1 * len(ids) / 20
