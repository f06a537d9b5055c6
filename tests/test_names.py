"""Name normalisation: legacy fonts, Unicode forms, tone placement, keys."""

from __future__ import annotations

import itertools
import unicodedata

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.normalize.encodings import (
    decoders,
    encode_legacy,
    from_cp1258_mojibake,
    from_utf8_mojibake,
)
from pipeline.normalize.names import (
    canonical_names,
    is_valid_vietnamese,
    name_keys,
    normalize_names,
)
from pipeline.synth.files import as_cp1252_mojibake, encode_cp1258

TARGET = "Nguyễn Trần Hoàng Phạm Lê Đặng"


@pytest.mark.parametrize("damaged", [
    "NguyÔn TrÇn Hoµng Ph¹m Lª §Æng",          # TCVN3 read as Windows-1252 (domain.md)
    "Nguyeãn Traàn Hoaøng Phaïm Leâ Ñaëng",     # VNI-Windows (domain.md)
    "Nguye^~n Tra^`n Hoa`ng Pha.m Le^ DDa(.ng",  # VIQR
    "Nguyá»…n Tráº§n HoÃ\u00a0ng Pháº¡m LÃª Ä\u0090áº·ng",  # UTF-8 read as Windows-1252
    unicodedata.normalize("NFD", TARGET),       # the Windows keyboard's decomposed form
    "  NGUYỄN   trần hoàng PHẠM lê   ĐẶNG ",     # case and spacing
    "Nguyễn Trần Hoàng Phạm Lê Ðặng",           # Eth (U+00D0) typed for Đ
])
def test_damaged_forms_from_the_domain_notes_are_repaired(damaged):
    out = canonical_names(pd.Series([damaged]))
    assert out["full_name"].iloc[0] == TARGET
    assert bool(out["valid"].iloc[0])


def test_windows_1258_read_as_1252_is_repaired():
    raw = "".join(as_latin1_or_cp1252(b) for b in encode_cp1258(TARGET))
    assert canonical_names(pd.Series([raw]))["full_name"].iloc[0] == TARGET


def as_latin1_or_cp1252(b: int) -> str:
    try:
        return bytes([b]).decode("cp1252")
    except UnicodeDecodeError:
        return chr(b)


def test_tone_placement_follows_the_registry_style():
    old = canonical_names(pd.Series(["Lê Thị Thuỷ", "Nguyễn Văn Hoà", "Qúy"]), style="old")["full_name"].tolist()
    new = canonical_names(pd.Series(["Lê Thị Thủy", "Nguyễn Văn Hòa", "Quý"]), style="new")["full_name"].tolist()
    assert old == ["Lê Thị Thủy", "Nguyễn Văn Hòa", "Quý"]
    assert new == ["Lê Thị Thuỷ", "Nguyễn Văn Hoà", "Quý"]
    keys = name_keys(pd.Series(["Nguyễn Văn Hòa", "Nguyễn Văn Hoà"]))["name_key"]
    assert keys.iloc[0] == keys.iloc[1]


def test_minority_names_and_unicode_names_pass_unchanged():
    names = ["Ksor H'Hen", "Y Bih Niê", "Rơ Châm Kpă", "Nay Drơng", "Siu H'Hơn"]
    out = canonical_names(pd.Series(names))
    assert out["full_name"].tolist() == names
    assert (out["encoding"] == "unicode").all()


def test_every_letter_round_trips_in_every_legacy_encoding(rules):
    table = decoders(rules)
    for row in rules.legacy_charsets:
        letter = row["unicode"]
        for enc in ("vni", "tcvn3", "viqr"):
            assert encode_legacy(letter, enc, rules) == row[enc]
            assert table[enc](row[enc]) == letter, (enc, letter)
        shown = "".join(as_latin1_or_cp1252(b) for b in encode_cp1258(letter))
        assert shown == letter or from_cp1258_mojibake(shown) == letter, letter
        assert from_utf8_mojibake(as_cp1252_mojibake(letter)) == letter


def _generator_names(rules) -> list[str]:
    fam = list(rules.family_names)
    mids = [m for table in rules.middle_names.values() for m in table]
    givens = [g for table in rules.given_names.values() for g in table]
    names = [" ".join(p) for p in itertools.product(fam[:12], mids, givens[::3])]
    names += [f"{f} {g}" for f, g in itertools.product(fam, givens)]
    mino = rules.minority
    names += [f"{f} {mino['prefixes']['F']}{g}" for f, g in itertools.product(mino["family_names"], mino["given_names"])]
    names += [f"{f} {mino['prefixes']['M']} {g}" for f, g in itertools.product(mino["family_names"], mino["given_names"])]
    return names


def test_the_detector_never_changes_a_correct_name(rules):
    names = _generator_names(rules)
    variants = {
        "canonical": names,
        "nfd": [unicodedata.normalize("NFD", n) for n in names],
        "upper": [n.upper() for n in names],
        "lower": [n.lower() for n in names],
    }
    for label, values in variants.items():
        out = canonical_names(pd.Series(values), rules)
        changed = [(v, o) for v, o in zip(names, out["full_name"], strict=True) if v != o]
        assert not changed, (label, changed[:5])
        assert (out["encoding"] == "unicode").all(), label
    plain = [unicodedata.normalize("NFC", "".join(c for c in unicodedata.normalize("NFD", n) if not unicodedata.combining(c))).replace("đ", "d").replace("Đ", "D") for n in names[:2000]]
    out = canonical_names(pd.Series(plain), rules)
    assert out["full_name"].tolist() == plain


def test_invalid_vietnamese_is_recognised():
    assert is_valid_vietnamese("Nguyễn Văn Hùng")
    assert not is_valid_vietnamese("Nguyeãn Vaên Huøng")
    assert not is_valid_vietnamese("NguyÔn V¨n Hïng")
    assert not is_valid_vietnamese("Nguyễễn")


names_strategy = st.lists(
    st.sampled_from(["Nguyễn", "Trần", "Lê", "Văn", "Thị", "Hùng", "Hưng", "Thủy", "Hòa", "Quý", "Đặng",
                     "Ánh", "Ngọc", "Khuê", "Quỳnh", "Ksor", "H'Hen", "Tuấn", "Thoa"]),
    min_size=1, max_size=5).map(" ".join)


@settings(max_examples=150, deadline=None)
@given(name=names_strategy, enc=st.sampled_from(["vni", "tcvn3", "viqr", "utf8", "nfd", "upper"]))
def test_normalising_is_idempotent_and_encodings_round_trip(name, enc):
    once = canonical_names(pd.Series([name]))["full_name"].iloc[0]
    twice = canonical_names(pd.Series([once]))["full_name"].iloc[0]
    assert once == twice
    if enc in ("vni", "tcvn3", "viqr"):
        damaged = encode_legacy(name, enc)
    elif enc == "utf8":
        damaged = as_cp1252_mojibake(name)
    elif enc == "nfd":
        damaged = unicodedata.normalize("NFD", name)
    else:
        damaged = name.upper()
    repaired = canonical_names(pd.Series([damaged]))["full_name"].iloc[0]
    if enc == "tcvn3":  # TCVN3 keeps no case: compare case-insensitively
        assert repaired.lower() == once.lower()
    else:
        assert repaired == once


def test_normalize_names_maps_distinct_values_back_and_keeps_nulls():
    raw = pd.Series(["Nguyễn Văn A", None, "NGUYỄN VĂN A", "", "Nguyễn Văn A"], index=[10, 11, 12, 13, 14])
    out = normalize_names(raw)
    assert out.index.tolist() == [10, 11, 12, 13, 14]
    assert out["full_name"].tolist()[0] == "Nguyễn Văn A"
    assert out["full_name"].iloc[2] == "Nguyễn Văn A"
    assert out["full_name"].isna().tolist() == [False, True, False, True, False]
    assert out["name_fold"].iloc[0] == "nguyen van a"


def test_a_value_without_any_letter_is_no_name():
    raw = pd.Series(["(2)", "-", "0", "...", "Lê Ý", "Ư", None])
    out = normalize_names(raw)
    assert out["full_name"].isna().tolist() == [True, True, True, True, False, False, True]
    assert out["name_fold"].isna().tolist() == [True, True, True, True, False, False, True]


@pytest.mark.parametrize(("raw", "name"), [
    ("Nguyễn Văn Dũng (con)", "Nguyễn Văn Dũng"),             # a note in brackets
    ("Trần Thị Hoa (mẹ: Lê Thị Bình)", "Trần Thị Hoa"),
    ("Nguyen Van Dung (CCCD 079...)", "Nguyen Van Dung"),
    ("1. Nguyễn Văn Dũng", "Nguyễn Văn Dũng"),                # a list number
    ("Nguyễn Văn Dũng - 1962", "Nguyễn Văn Dũng"),            # digits beside the name
    ("Nguyễn Văn Dũng1", "Nguyễn Văn Dũng"),
    ("Nguyễn Văn Dũng.", "Nguyễn Văn Dũng"),                  # stops, commas, quotes, stars
    ("Nguyễn Văn. Dũng,", "Nguyễn Văn Dũng"),
    ('"Nguyễn Văn Dũng" *', "Nguyễn Văn Dũng"),
    ("Nguyễn-Văn-Dũng", "Nguyễn Văn Dũng"),                   # registered names are words and spaces
    ("Nguyễn_Văn_Dũng)", "Nguyễn Văn Dũng"),
    ("Nguyen Van Dung.", "Nguyen Van Dung"),                  # a stop after a consonant is no VIQR mark
    ("Nguyeãn Vaên Duõng.", "Nguyễn Văn Dũng"),               # VNI, then the stop
    ("Tra^`n Thi. Hoa", "Trần Thị Hoa"),                      # VIQR keeps its marks
    ("Nguye^~n Va(n Du~ng", "Nguyễn Văn Dũng"),
    ("Ksor H'Hen", "Ksor H'Hen"),
    (as_cp1252_mojibake("Đỗ Văn Cường (con)"), "Đỗ Văn Cường"),  # 'Äá»—': the dash is part of 'ỗ'
])
def test_marks_and_notes_written_beside_a_name_are_not_part_of_it(raw, name):
    assert canonical_names(pd.Series([raw]))["full_name"].iloc[0] == name

