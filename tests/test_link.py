"""The linker on hand-made registries: the cases exact-ID matching gets wrong."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from pipeline.link.index import build_index
from pipeline.reconcile import assemble, link, normalise

RUN = dt.date(2022, 6, 1)


def registry(rows):
    cols = ["person_id", "old_id", "full_name", "date_of_birth", "birth_year", "sex", "province_code",
            "district", "ward", "household_id", "phone"]
    reg = pd.DataFrame(rows, columns=cols)
    reg["date_of_birth"] = pd.to_datetime(reg["date_of_birth"]).astype("datetime64[s]")
    reg["birth_year"] = reg["birth_year"].astype("Int16")
    for c in cols:
        if c not in ("date_of_birth", "birth_year"):
            reg[c] = reg[c].astype("string[pyarrow]")
    given = ["An", "Bình", "Cường", "Dũng", "Giang", "Hải", "Khoa", "Lâm", "Minh", "Nam", "Phong", "Quân"]
    family = ["Trần", "Phạm", "Vũ", "Bùi", "Đỗ", "Hồ", "Ngô", "Dương"]
    filler = [(f"0010{50 + i % 60:02d}{i:06d}", None, f"{family[i % 8]} Văn {given[(i // 8) % 12]}",
               f"{1950 + i % 60}-{1 + i % 12:02d}-{1 + i % 28:02d}", 1950 + i % 60, "M", "01", "Quận 1",
               f"Phường {i % 20}", f"HKF{i}", None) for i in range(3000)]
    fill = pd.DataFrame(filler, columns=cols)
    fill["date_of_birth"] = pd.to_datetime(fill["date_of_birth"]).astype("datetime64[s]")
    fill["birth_year"] = fill["birth_year"].astype("Int16")
    return pd.concat([reg, fill.astype(reg.dtypes.to_dict())], ignore_index=True)


REG = registry([
    ("001080000001", "012345671", "Nguyễn Văn Hưng", "1980-05-04", 1980, "M", "01", "Quận 1", "Phường 1", "HK1", "0912000001"),
    ("001212000002", None, "Nguyễn Văn Hùng", "2012-07-09", 2012, "M", "01", "Quận 1", "Phường 1", "HK1", None),
    ("001190000003", None, "Lê Thị Lan", "1990-02-14", 1990, "F", "01", "Quận 2", "Phường 3", "HK2", None),
    ("079190000004", None, "Lê Thị Lan", "1990-02-14", 1990, "F", "79", "Quận 5", "Phường 9", "HK3", None),
    ("001175000005", None, "Đoàn Thị Mai", "1975-11-03", 1975, "F", "01", "Quận 3", "Phường 2", "HK4", None),
])


def export_rows(rows, problems=None, dose_dates=None) -> pd.DataFrame:
    """Raw export rows of province 01 from (name, birth date, sex, ID, phone, ward) tuples."""
    cols = ["full_name", "date_of_birth", "sex", "id_number", "phone", "ward"]
    raw = pd.DataFrame(rows, columns=cols)
    raw["district"] = "Quận 2"
    for c in ("address", "dose_date", "dose_number", "vaccine", "lot_number", "site"):
        raw[c] = None
    if dose_dates is not None:
        raw["dose_date"] = dose_dates
    raw = raw.astype("string[pyarrow]")
    raw["source_file"] = "01/t.csv"
    raw["source_row"] = range(2, 2 + len(raw))
    if problems is not None:
        raw["read_problem"] = pd.array(problems, dtype="string[pyarrow]")
    return raw


def run_rows(rows, reg: pd.DataFrame = REG, problems=None, dose_dates=None):
    raw = export_rows(rows, problems, dose_dates)
    index = build_index(reg)
    from pipeline.rules import default_rules

    rules = default_rules()
    norm = normalise(raw, rules, RUN, index.tone_style, index.lexicon(rules))
    out = assemble(raw, link(norm, index, rules), index, "01")
    out["codes"] = list(out.attrs["person_codes"].to_pylist())
    return out


def test_child_written_with_a_parents_id_goes_to_the_child():
    out = run_rows([("Nguyễn Văn Hùng", "09/07/2012", "Nam", "001080000001", None, "Phường 1")])
    assert out["status"].iloc[0] == "corrected"
    assert out["person_id"].iloc[0] == "001212000002"
    assert out["codes"].iloc[0] == ["ID_WRONG"]
    assert out["match_reason"].iloc[0].startswith("số giấy tờ của người cùng hộ khẩu")


def test_exact_id_with_someone_elses_name_and_birth_date_is_not_linked_to_the_id_owner():
    out = run_rows([("Phạm Thị Ngọc", "01/01/2015", "Nữ", "001175000005", None, None)])
    assert out["person_id"].isna().iloc[0]
    assert out["status"].iloc[0] in ("unmatched", "review")


def test_namesakes_born_the_same_day_go_to_review_without_an_id():
    out = run_rows([("Lê Thị Lan", "14/02/1990", "Nữ", None, None, None)])
    assert out["status"].iloc[0] == "review"
    assert sorted(out["candidate_ids"].iloc[0]) == ["001190000003", "079190000004"]
    assert out["codes"].iloc[0] == ["ID_MISSING"]


@pytest.mark.parametrize(("name", "dob", "sex", "pid", "expected_codes"), [
    ("Nguyen Van Hung", "04/05/1980", "Nam", "001080000001", ["NAME_DIACRITICS"]),
    ("Nguyễn Văn Hưng", "05/04/1980", "Nam", "001080000001", ["DOB_WRONG"]),       # day and month swapped
    ("Nguyễn Văn Hưng", "1980", "Nam", "12345671", ["ID_OLD"]),                   # old CMND, lost its zero
    ("Văn Hưng Nguyễn", "04/05/1980", "Nữ", "001080000001", ["NAME_WRONG", "SEX_WRONG"]),
    ("Ðoàn Thị Mai", "03/11/1975", "Nữ", "001175000006", ["ID_WRONG"]),          # one digit off
    ("Ðoàn Thị Mai", "03/11/1975", "Nữ", "0011750000012345", ["ID_INVALID"]),
    ("Doãn Thị Mai", "03/11/1975", "Nữ", "001175000005", ["NAME_DIACRITICS"]),    # contract: equal once folded
])
def test_error_codes_of_linked_rows(name, dob, sex, pid, expected_codes):
    out = run_rows([(name, dob, sex, pid, None, None)])
    assert out["status"].iloc[0] == "corrected"
    assert out["codes"].iloc[0] == expected_codes


def test_rows_with_neither_name_nor_id_are_rejected():
    out = run_rows([(None, "01/01/1990", "Nam", None, None, None), (None, "01/01/1990", "Nam", "000000000000", None, None),
                    ("(2)", "(3)", "(4)", "(5)", None, None)])   # a column-numbering row under the header
    assert out["status"].tolist() == ["rejected", "rejected", "rejected"]
    assert out["codes"].tolist() == [["ID_MISSING"], ["ID_INVALID"], ["ID_INVALID", "DOB_MISSING"]]
    assert out["match_reason"].str.contains("không").all()


def test_a_name_alone_with_nothing_of_a_dose_is_rejected_as_no_dose_row():
    """A total line or a signature under the list ('Người lập biểu', then the officer's name) is a
    name with no ID, birth date, phone or dose: rejected, saying so. The same name with a dose
    date, or with a phone, is a dose row and is linked or not as usual."""
    from pipeline.reconcile import NOT_A_DOSE_REASON

    rows = [("Đoàn Thị Mai", None, None, None, None, None), ("Tổng cộng: 6 người", None, None, None, None, None),
            ("Đoàn Thị Mai", None, "Nữ", None, None, None), ("Đoàn Thị Mai", None, None, None, None, None),
            ("Đoàn Thị Mai", None, None, None, "0912000005", None)]
    out = run_rows(rows, dose_dates=[None, None, "không rõ", "15/08/2021", None])
    assert out["status"].tolist()[:3] == ["rejected"] * 3
    assert (out["match_reason"].iloc[:3] == NOT_A_DOSE_REASON).all()
    # a name alone is no evidence enough to link (the registry's only Đoàn Thị Mai): unmatched
    assert out["status"].tolist()[3:] == ["unmatched", "unmatched"]


def test_of_two_rows_claiming_one_person_with_conflicting_details_the_one_that_agrees_keeps_the_link():
    """Nguyễn Văn Hưng's own row, and a row with his ID but a mistyped name and another birth year
    (twice damaged, or a relative's): the second goes to review, his own stays linked."""
    out = run_rows([("Nguyễn Văn Hưng", "04/05/1980", "Nam", "001080000001", None, None),
                    ("Nguyễn Văn Hưn", "04/05/1981", "Nam", "001080000001", None, None)])
    assert out["status"].tolist() == ["matched", "review"]
    assert out["person_id"].iloc[0] == "001080000001" and pd.isna(out["person_id"].iloc[1])
    assert out["match_reason"].iloc[1].startswith("hai người khác nhau cùng nhận một người trong CSDL")
    # neither agrees in every respect: both go to review, as before
    out = run_rows([("Nguyễn Văn Hưng", "04/05/1979", "Nam", "001080000001", None, None),
                    ("Nguyễn Văn Hưn", "04/05/1981", "Nam", "001080000001", None, None)])
    assert out["status"].tolist() == ["review", "review"]


def test_a_name_without_its_middle_name_links_only_with_the_persons_own_number():
    """'Lê Lan' for 'Lê Thị Lan': with her ID and birth date she is linked (NAME_WRONG, the
    registry's name written back); without an ID the two Lê Thị Lan born that day compete."""
    out = run_rows([("Lê Lan", "14/02/1990", "Nữ", "001190000003", None, None),
                    ("Lê Lan", "14/02/1990", "Nữ", None, None, None),
                    ("Lê Thị Thu Lan", "14/02/1990", "Nữ", "001190000003", None, None)])
    assert out["status"].tolist()[0] == "corrected" and out["person_id"].iloc[0] == "001190000003"
    assert out["codes"].iloc[0] == ["NAME_WRONG"] and out["full_name"].iloc[0] == "Lê Thị Lan"
    assert "thiếu hoặc thừa tên đệm" in out["match_reason"].iloc[0]
    assert out["status"].iloc[1] == "review" and pd.isna(out["person_id"].iloc[1])
    assert out["person_id"].iloc[2] == "001190000003"   # an extra middle word, the other way round


def test_middle_left_out_needs_the_same_family_and_given_name_and_whole_middle_words():
    import numpy as np

    from pipeline.link.scoring import middle_left_out

    pairs = [("nguyen lan", "nguyen thi lan", True), ("tran thu ha", "tran thi thu ha", True),
             ("nguyen van an", "nguyen an", True), ("nguyen ha", "nguyen thi thu ha", True),
             ("tran thi ha", "tran thu ha", False),         # same length: a different middle name
             ("le an", "le van binh", False),               # another given name
             ("nguyen lan", "tran thi lan", False),         # another family name
             ("nguyen lan", "nguyen thi lan anh", False),   # 'lan' is a middle word there
             ("tran hu ha", "tran thi thu ha", False),      # 'hu' is part of a word, not a word
             ("h hen nie", "h hen", False), ("", "nguyen an", False)]
    got = middle_left_out(np.array([a for a, _, _ in pairs], dtype=object), np.array([b for _, b, _ in pairs], dtype=object))
    assert got.tolist() == [e for _, _, e in pairs]


def test_a_row_the_reader_could_not_read_safely_is_rejected_with_its_reason():
    """Its cells are shifted: 'Lê Thị Lan 14/02/1990' is read, but the ID cell holds part of an
    address. Whatever its cells would link to, the row is rejected and says why."""
    import pyarrow as pa

    from pipeline.ingest.readers import OVERLONG

    rows = [("Lê Thị Lan", "14/02/1990", "Nữ", "001190000003", None, "Phường 3")] * 2
    problem = OVERLONG.format(cells=9, width=8)
    out = run_rows(rows, problems=pa.array([None, problem], pa.string()))
    assert out["status"].tolist() == ["matched", "rejected"]
    assert pd.isna(out["person_id"].iloc[1])
    assert out["match_reason"].iloc[1] == problem


def test_a_row_that_lost_its_id_follows_the_same_persons_other_rows():
    """Alone, 'Lê Thị Lan 14/02/1990' without an ID is a namesake case; with her other dose
    (same place, with her ID) it is her."""
    out = run_rows([
        ("Lê Thị Lan", "14/02/1990", "Nữ", "001190000003", None, "Phường 3"),
        ("Lê Thị Lan", "14/02/1990", "Nữ", None, None, "Phường 3"),
        ("Lê Thị Lan", "14/02/1990", "Nữ", None, None, "Phường 7"),   # elsewhere: still undecided
    ])
    assert out["person_id"].tolist()[:2] == ["001190000003", "001190000003"]
    assert out["match_reason"].iloc[1].startswith("cùng người")
    assert out["status"].iloc[2] == "review"


def test_birth_date_agreement_is_measured_within_name_groups():
    from pipeline.link.index import _pair_agreement_within

    people = pd.DataFrame({"name": ["a", "a", "a", "b", "b"],
                           "dob": pd.to_datetime(["2000-01-01", "2000-01-01", "1990-05-05", "1980-01-01", None])})
    # name a: 3 pairs, 1 shares a date; name b: 1 pair, none (one date unknown)
    assert _pair_agreement_within(people, "name", "dob") == 1 / 4


def _small_registry() -> pd.DataFrame:
    """The five people above and 95 of the sample registry's people: 100 in all."""
    from .conftest import SAMPLE

    sample = pd.read_parquet(SAMPLE / "registry.parquet").head(95)
    sample["date_of_birth"] = pd.to_datetime(sample["date_of_birth"]).astype("datetime64[s]")
    head = REG.head(5)
    return pd.concat([head, sample[head.columns].astype(head.dtypes.to_dict())], ignore_index=True)


SMALL = _small_registry()


def test_a_registry_of_a_hundred_people_links_clear_cases_and_keeps_namesakes_apart():
    """The null weight grows with the registry (log2 N * absent / (1 - absent)); with 100 people a
    clear case must still be linked, and namesakes born the same day still need an ID."""
    assert len(SMALL) == 100
    out = run_rows([
        ("Nguyen Van Hung", "04/05/1980", "Nam", "001080000001", None, "Phường 1"),   # no diacritics
        ("ĐOÀN THỊ MAI", "03/11/1975", "Nữ", "1175000005", None, None),               # ID lost its zeros
        ("Đoàn Thị Mai", "03/11/1975", "Nữ", None, None, None),                       # no ID
        ("Lê Thị Lan", "14/02/1990", "Nữ", None, None, None),                         # two namesakes
        ("Đoàn Thị Mai", "03/11/1975", "Nữ", "079175123456", None, None),             # someone else's ID
    ], SMALL)
    assert out["status"].tolist()[:3] == ["corrected", "matched", "corrected"], out[["status", "match_score"]]
    assert out["person_id"].tolist()[:3] == ["001080000001", "001175000005", "001175000005"]
    assert out["codes"][0] == ["NAME_DIACRITICS"] and out["codes"][2] == ["ID_MISSING"]
    assert out["status"][3] == "review" and sorted(out["candidate_ids"][3]) == ["001190000003", "079190000004"]
    assert out["status"][4] not in ("matched", "corrected")


def test_a_level_that_only_says_how_the_name_was_written_weighs_the_name_not_the_style():
    """`u: tf_style`: the weight of 'written without diacritics' is log2(1/tf) whatever share of
    rows is written so (a stranger's row is as often written so as the person's own); `u: tf`
    keeps log2(m/tf), so a rarer level weighs less."""
    import numpy as np

    from pipeline.link.scoring import level_weights

    levels = np.array(["fold", "fold", "exact"], dtype=object)
    tf = np.array([1e-3, 1e-5, 1e-3])
    for m_fold in (0.02, 0.3):
        comparisons = {"name": {"exact": {"m": 0.85, "u": "tf"}, "fold": {"m": m_fold, "u": "tf_style"}}}
        w = level_weights(comparisons, "name", levels, tf, 1e-7)
        assert np.allclose(w, [np.log2(1e3), np.log2(1e5), np.log2(0.85 / 1e-3)])
    comparisons = {"name": {"fold": {"m": 0.02, "u": "tf"}}}
    assert np.allclose(level_weights(comparisons, "name", levels[:1], tf[:1], 1e-7), [np.log2(0.02 / 1e-3)])


def test_a_registry_whose_person_ids_are_not_unique_is_reported(caplog):
    """The contract's registry has unique numbers; one that does not is named in the log (from the
    chance-agreement count the index makes anyway), and a unique one is not."""
    import logging

    with caplog.at_level(logging.WARNING, logger="pipeline.link.index"):
        build_index(REG)
        assert not caplog.records
        shared = REG.copy()
        shared.loc[3, "person_id"] = shared.loc[2, "person_id"]
        build_index(shared)
    assert [r.getMessage() for r in caplog.records] == [
        "registry: person_id is not unique (contract 1.1): some numbers belong to more than one row; "
        "a dose linked to such a number cannot tell them apart"]


@pytest.mark.parametrize("written", ["CCCD: 001080000001", "O01080000001", "#001080000001", "012345671 / 001080000001"])
def test_a_number_recovered_from_other_text_links_but_is_invalid_as_written(written):
    """The digits say whose the row is; the value as written still has to be fixed at the source."""
    out = run_rows([("Nguyễn Văn Hưng", "04/05/1980", "Nam", written, None, "Phường 1")])
    assert out["status"].iloc[0] == "corrected" and out["person_id"].iloc[0] == "001080000001"
    assert out["codes"].iloc[0] == ["ID_INVALID"]
    assert out["match_reason"].iloc[0].startswith("số giấy tờ ghi kèm chữ hoặc ký hiệu thừa; số định danh trùng")


def test_spreadsheet_damage_to_an_id_is_repaired_without_a_code():
    out = run_rows([("Nguyễn Văn Hưng", "04/05/1980", "Nam", written, None, "Phường 1")
                    for written in ("1080000001", "001 080 000 001", "001.080.000.001", "'001080000001")])
    assert out["status"].tolist() == ["matched"] * 4 and out["codes"].tolist() == [[]] * 4
    assert out["match_reason"].str.startswith("số định danh trùng").all()


@pytest.mark.parametrize("written", ["Nguyễn Văn Hưng (con)", "1. Nguyễn Văn Hưng", "Nguyễn Văn Hưng.", "Nguyễn-Văn-Hưng"])
def test_a_name_written_with_a_note_or_marks_links_but_is_flagged_as_written(written):
    out = run_rows([(written, "04/05/1980", "Nam", "001080000001", None, "Phường 1")])
    assert out["status"].iloc[0] == "corrected" and out["person_id"].iloc[0] == "001080000001"
    assert out["codes"].iloc[0] == ["NAME_WRONG"]
    assert out["match_reason"].iloc[0].startswith("họ tên ghi kèm ghi chú hoặc ký hiệu thừa; ")
