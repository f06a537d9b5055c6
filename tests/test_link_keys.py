"""The integer keys behind blocking and scoring give the same answers as comparing the text."""

from __future__ import annotations

import datetime as dt
import itertools
import re
import sys

import numpy as np
import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from pipeline.link import candidates
from pipeline.link.index import _swap, build_index
from pipeline.link.keys import add_block_keys, digit_key
from pipeline.link.profiles import combined_codes
from pipeline.link.scoring import one_edit
from pipeline.rules import default_rules
from pipeline.text import WHITESPACE, squeeze_spaces

from .test_link import REG


def _one_edit_by_text(a: str, b: str) -> bool:
    if len(a) != len(b) or len(a) not in (9, 12) or a == b:
        return False
    diff = [i for i in range(len(a)) if a[i] != b[i]]
    if len(diff) == 1:
        return True
    return len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]


def test_one_edit_on_integer_digits_agrees_with_the_text_definition():
    rng = np.random.default_rng(7)
    pairs = []
    for width in (9, 12):
        for _ in range(3000):
            a = "".join(rng.choice(list("0123456789"), width))
            b = list(a)
            kind = rng.integers(0, 5)
            i = int(rng.integers(0, width - 1))
            if kind == 0:                     # one substitution
                b[i] = str((int(b[i]) + int(rng.integers(1, 10))) % 10)
            elif kind == 1:                   # adjacent transposition
                b[i], b[i + 1] = b[i + 1], b[i]
            elif kind == 2:                   # two substitutions far apart
                j = (i + 3) % width
                b[i] = str((int(b[i]) + 1) % 10)
                b[j] = str((int(b[j]) + 1) % 10)
            elif kind == 3:                   # a carry: ...19 vs ...20 differs by one in value
                b[-2:] = list("19")
                a = a[:-2] + "20"
            pairs.append((a, "".join(b)))
    pairs += [("000000010", "000000009"), ("123456789", "123456798"), ("123456789", "123456789"),
              ("001080000001", "010080000001"), ("12345678", "12345679")]
    a_key = digit_key(pd.Series([p[0] for p in pairs]), -1, -1)
    b_key = digit_key(pd.Series([p[1] for p in pairs]), -1, -1)
    got = one_edit(a_key, b_key)
    want = np.array([_one_edit_by_text(a, b) for a, b in pairs])
    assert want.sum() > 2000 and (~want).sum() > 2000
    assert (got == want).all(), [pairs[i] for i in np.flatnonzero(got != want)[:5]]


def test_digit_keys_keep_leading_zeros_and_refuse_other_text():
    keys = digit_key(pd.Series(["0123", "123", "00123", None, "12a3", "", "123456789012"]), -5, -7)
    assert len(set(keys[:3])) == 3
    assert keys[3] == -5 and keys[4] == -7 and keys[5] == -7
    assert keys[6] == 123456789012 * 16 + 12


def _digit_key_by_text(value: str | None, null: int, other: int) -> int:
    if value is None:
        return null
    if re.fullmatch("[0-9]{1,15}", value):
        return int(value) * 16 + len(value)
    return other


@given(st.lists(st.one_of(st.none(), st.text(alphabet="0123456789", max_size=17),
                          st.text(alphabet="0123456789 +-.eE\u0663\u00b2\uff11a\n", max_size=17), st.text(max_size=6)),
                max_size=40))
def test_digit_key_agrees_with_the_text_definition(values):
    """ASCII digits only (not Arabic-Indic, superscript or full-width ones), 1 to 15 of them, no sign,
    space or exponent; leading zeros kept apart by the length."""
    got = digit_key(pd.Series(values, dtype="string[pyarrow]"), -5, -7)
    assert got.tolist() == [_digit_key_by_text(v, -5, -7) for v in values]
    assert digit_key(pd.Series(values, dtype=object), -5, -7).tolist() == got.tolist()


def test_registry_rows_of_ids():
    index = build_index(REG)
    rows = index.rows_of(pd.Series(["001080000001", "079190000004", "999999999999", None, "0010800000O1"]), "person_id")
    assert rows.tolist() == [0, 3, -1, -1, -1]
    assert index.rows_of(pd.Series(["012345671"]), "old_id").tolist() == [0]


def test_combined_codes_number_distinct_rows_in_order_of_first_appearance():
    frame = pd.DataFrame({"a": ["x", "y", "x", None, "x", None], "b": [1.0, 2.0, 1.0, 3.0, None, 3.0],
                          "c": pd.array(["p", "q", "p", "r", "p", "r"], dtype="string[pyarrow]")})
    codes = combined_codes(frame, ["a", "b", "c"])
    expected, _ = pd.factorize(pd.MultiIndex.from_frame(frame.astype(object).fillna("\x00")))
    assert codes.tolist() == expected.tolist() == [0, 1, 0, 2, 3, 2]


def test_blocking_keys_renumbered_before_they_could_overflow(monkeypatch):
    """With a tiny bound the mixed-radix keys are renumbered at every step; the pairs stay the same."""
    from pipeline.link.profiles import build_profiles
    from pipeline.reconcile import id_households, normalise

    from .test_link import RUN

    rules = default_rules()
    raw = pd.DataFrame([("Nguyễn Văn Hưng", "04/05/1980", "Nam", None, None, "Phường 1"),
                        ("Le Thi Lan", "14/02/1990", "Nữ", None, None, "Phường 3"),
                        ("Nguyễn Văn Hùng", "2012", "Nam", "001080000001", None, "Phường 1"),
                        ("Trần Văn An", "01/01/1950", "Nam", "001050000000", "0912000001", "Phường 0")],
                       columns=["full_name", "date_of_birth", "sex", "id_number", "phone", "ward"])
    raw["district"] = "Quận 1"
    for c in ("address", "dose_date", "dose_number", "vaccine", "lot_number", "site"):
        raw[c] = None
    raw = raw.astype("string[pyarrow]")
    norm = normalise(raw, rules, RUN, "old")
    profiles, _ = build_profiles(norm)

    def pairs() -> tuple[pd.DataFrame, int]:
        index = build_index(REG, rules)
        profiles["id_household"] = id_households(profiles, index)
        every_rule = [{k: v for k, v in r.items() if k != "if_unsure"} for r in rules.matching["blocking"]]
        found = candidates.candidate_pairs(profiles, index, every_rule)   # every rule's pairs, none skipped
        renumbered = sum(renumber is not None for key, value in index._lookups.items()
                         if isinstance(key, tuple) and key[0] == "rule_keys" for _, renumber in value.steps)
        return found, renumbered

    plain, none = pairs()
    monkeypatch.setattr(candidates, "MAX_KEY", 8)
    small, renumbered = pairs()
    assert len(plain) > 10 and none == 0 and renumbered > 10
    pd.testing.assert_frame_equal(plain, small)


def test_whitespace_class_is_exactly_pythons_whitespace():
    spaces = {chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()}
    matched = {chr(c) for c in range(sys.maxunicode + 1) if re.fullmatch(WHITESPACE, chr(c))}
    assert matched == spaces
    assert not any(isinstance(x, str) and "\\" in x for x in itertools.chain(WHITESPACE))


@given(st.lists(st.lists(st.sampled_from(["a", "é", " ", "\t", "\xa0", "\u3000", "\u200b", "\n", "\x85"]),
                        max_size=8).map("".join), max_size=30))
def test_squeeze_spaces_is_pythons_split_and_join(values):
    got = squeeze_spaces(pd.Series(values, dtype="string[pyarrow]")).tolist()
    assert got == [" ".join(v.split()) for v in values]


@given(st.lists(st.lists(st.sampled_from(["an", "van", "b", "é", "đ", " ", "\t", "\xa0", "\u3000", "\x1c"]),
                        max_size=8).map("".join), max_size=30))
def test_sorted_words_is_pythons_sort_of_the_split_words(values):
    import pyarrow as pa

    from pipeline.link.keys import sorted_words

    expected = [" ".join(sorted(v.split())) for v in values]
    assert sorted_words(pd.Series(values, dtype="string[pyarrow]")).tolist() == expected
    half = len(values) // 2     # a column of two Arrow chunks, as a concatenated frame holds
    chunked = pa.chunked_array([pa.array(values[:half], pa.string()), pa.array(values[half:], pa.string())])
    assert sorted_words(pd.Series(pd.array(chunked, dtype="string[pyarrow]"))).tolist() == expected


@given(st.lists(st.one_of(st.none(), st.sampled_from(["0912000001", "912000001", "0912000001", "x12", "+84912",
                                                      "1234567890123456", "1234567890123456", ""])), max_size=40))
def test_chance_agreement_from_digit_keys_equals_counting_the_text(values):
    """IDs and phones are counted as integer keys where they are digits, as text where not (a
    '+', a 16-digit number, an empty string): the same figure as pandas counting the text."""
    from pipeline.link.index import _chance_agreement

    series = pd.Series(values, dtype="string[pyarrow]")
    expected = float(((series.value_counts(dropna=True) / max(len(series), 1)) ** 2).sum())
    assert _chance_agreement(series) == expected
    assert _chance_agreement(series, digit_key(series, -1, -2)) == expected


@given(st.lists(st.sampled_from(["Lan", "lan", "Lân", "Hoà", "Hòa", "Ðức", "Đức", "a b", ""]), unique=True, max_size=9),
       st.lists(st.one_of(st.none(), st.sampled_from(["Lan", "lan", "Lân", "Hoà", "Hòa", "Ðức", "Đức", "a b", "", "x"])),
                max_size=30),
       st.booleans())
def test_codes_in_gives_each_value_its_position_in_the_dictionary(entries, values, arrow):
    from pipeline.link.keys import codes_in

    dictionary = pd.Index(entries, dtype="string[pyarrow]" if arrow else object)
    at = {v: i for i, v in enumerate(entries)}
    expected = [at.get(v, -1) if v is not None else -1 for v in values]
    assert codes_in(dictionary, pd.Series(values, dtype="string[pyarrow]")).tolist() == expected
    assert codes_in(dictionary, pd.Series(values, dtype=object)).tolist() == expected


def test_registry_dictionaries_are_not_hashed_into_python_objects_when_a_province_is_linked():
    """A pandas Index builds its hash table (every text as a Python string) on its first lookup;
    the registry's dictionaries of names and places are looked up by Arrow instead."""
    from pipeline.link.encoded import RegistryCodes
    from pipeline.reconcile import link, normalise

    from .test_link import RUN

    index = build_index(REG)
    rules = default_rules()
    raw = pd.DataFrame([("Lê Thị Lan", "14/02/1990", "Nữ", None, None, "Phường 3"),
                        ("Nguyen Van Hung", "04/05/1980", "Nam", None, None, None)],
                       columns=["full_name", "date_of_birth", "sex", "id_number", "phone", "ward"])
    raw["district"] = "Quận 2"
    for c in ("address", "dose_date", "dose_number", "vaccine", "lot_number", "site"):
        raw[c] = None
    result = link(normalise(raw.astype("string[pyarrow]"), rules, RUN, "old"), index, rules)
    assert result.rows["decision"].isin(["linked", "review"]).all()   # both found by name and date
    dictionaries = [*RegistryCodes.of(index).dictionaries.values(),
                    *(part.dictionary for part in index._lookups.values()
                      if isinstance(part, candidates.KeyPart) and part.dictionary is not None)]
    assert len(dictionaries) > 8
    assert not [d for d in dictionaries if "_engine" in d._cache]


def test_index_drops_key_only_columns_after_linking_and_says_so_if_a_new_rule_needs_one():
    import pytest

    from pipeline.link.index import KEY_ONLY
    from pipeline.reconcile import link, normalise

    from .test_link import RUN

    index = build_index(REG)
    rules = default_rules()
    assert index.compact(rules.matching["blocking"]) == 0          # nothing built yet: nothing dropped

    raw = pd.DataFrame([("Lê Thị Lan", "14/02/1990", "Nữ", "001190000003", None, "Phường 3")],
                       columns=["full_name", "date_of_birth", "sex", "id_number", "phone", "ward"])
    raw["district"] = "Quận 2"
    for c in ("address", "dose_date", "dose_number", "vaccine", "lot_number", "site"):
        raw[c] = None
    raw = raw.astype("string[pyarrow]")
    link(normalise(raw, rules, RUN, "old"), index, rules)
    assert not set(KEY_ONLY) & set(index.people.columns)
    again = link(normalise(raw, rules, RUN, "old"), index, rules)   # the compacted index still links
    assert again.rows["decision"].iloc[0] == "linked"
    with pytest.raises(ValueError, match="compacted"):
        candidates.candidate_pairs(pd.DataFrame({"phone": ["0912000001"]}), index,
                                   [{"name": "phone2", "keys": ["phone"], "registry": ["ward"], "max_block": 5}])


def test_key_only_columns_go_once_every_rule_column_is_coded_and_the_rules_still_build():
    """prepare() drops the registry's text key columns before sorting the rules' keys (its largest
    step): the keys built from the codes alone are those of an index that kept its columns."""
    from pipeline.link.encoded import RegistryCodes
    from pipeline.link.index import KEY_ONLY

    rules = default_rules()
    blocking = rules.matching["blocking"]
    kept, early = build_index(REG), build_index(REG)
    for index in (kept, early):
        RegistryCodes.of(index)
    assert early.compact(blocking) == 0                 # no rule column coded yet
    candidates.prepare_parts(early, [r for r in blocking if "date_of_birth" not in r["registry"]])
    assert early.compact(blocking) == 0                 # the date rules' columns not yet
    candidates.prepare_parts(early, blocking)
    assert early.compact(blocking) > 0 and not set(KEY_ONLY) & set(early.people.columns)
    candidates.prepare_rules(early, blocking)
    candidates.prepare_rules(kept, blocking)
    for rule in blocking:
        a = candidates._rule_keys(kept, list(rule["registry"]))
        b = candidates._rule_keys(early, list(rule["registry"]))
        assert np.array_equal(a.keys, b.keys) and np.array_equal(a.rows, b.rows), rule["name"]


def test_looser_rules_skip_only_export_persons_with_a_sure_candidate():
    """Sure: the ID, the folded name and the full date of birth of one registry person. Such an
    export person gets no pairs from the `if_unsure` rules; one without an ID still does."""
    from pipeline.link.profiles import build_profiles
    from pipeline.reconcile import id_households, normalise

    from .test_link import RUN

    rules = default_rules()
    raw = pd.DataFrame([("Nguyễn Văn Hưng", "04/05/1980", "Nam", "001080000001"),    # sure: row 0
                        ("Nguyễn Văn Hưng", "04/05/1980", "Nam", None),              # no ID: unsure
                        ("Nguyễn Văn Hưng", "05/04/1980", "Nam", "001080000001")],   # date differs: unsure
                       columns=["full_name", "date_of_birth", "sex", "id_number"])
    for c in ("phone", "ward", "district", "address", "dose_date", "dose_number", "vaccine", "lot_number", "site"):
        raw[c] = None
    norm = normalise(raw.astype("string[pyarrow]"), rules, RUN, "old")
    profiles, profile_of_row = build_profiles(norm)
    index = build_index(REG, rules)
    profiles["id_household"] = id_households(profiles, index)
    blocking = rules.matching["blocking"]
    assert {r["name"] for r in blocking if not r.get("if_unsure")} == {"id", "old_id", "name_dob", "name_dob_swapped"}

    def rows_by_row(rules_used: list[dict]) -> list[set[int]]:
        pairs = candidates.candidate_pairs(profiles, index, rules_used)
        found = pairs.groupby("profile")["row"].agg(set)
        return [found.get(profile_of_row.iloc[i], set()) for i in range(len(raw))]

    skipped = rows_by_row(blocking)
    every = rows_by_row([{k: v for k, v in r.items() if k != "if_unsure"} for r in blocking])
    assert skipped[0] == {0}                      # Nguyễn Văn Hùng (same folded name, same household) not added
    assert every[0] >= {0, 1}                     # ... which the looser rules do find
    assert skipped[1] == every[1] and skipped[1] >= {0, 1}
    assert skipped[2] == every[2] and skipped[2] >= {0, 1}


def test_registry_text_of_a_key_from_its_codes_and_dates_as_day_numbers():
    from pipeline.link.encoded import NAT, RegistryCodes, days_of

    index = build_index(REG)
    expected = index.people["name_key"].copy()
    codes = RegistryCodes.of(index)
    rows = np.array([3, -1, 0, 4, 3])
    got = codes.text("name_key", rows)
    assert got.isna().tolist() == [False, True, False, False, False]
    assert got.dropna().tolist() == [expected[3], expected[0], expected[4], expected[3]]
    days = days_of(pd.Series([pd.Timestamp("1970-01-02"), pd.NaT, pd.Timestamp("1899-12-31"), pd.Timestamp("2026-11-26 13:45")]))
    assert days.dtype == np.int32
    assert days.tolist() == [1, NAT, -25568, 20783]
    assert codes.dob.dtype == np.int32 and codes.dob[0] == days_of(pd.Series(pd.to_datetime(["1980-05-04"])))[0]


def test_take_text_takes_by_position_and_leaves_negative_positions_empty():
    from pipeline.text import take_text

    values = pd.Series(["a", None, "c"], dtype="string[pyarrow]")
    assert take_text(values, np.array([2, -1, 1, 0])).tolist() == ["c", pd.NA, pd.NA, "a"]
    taken = take_text(pd.Index(values), np.array([0, -2]), pd.Index([7, 9]))
    assert taken.tolist() == ["a", pd.NA] and taken.index.tolist() == [7, 9] and taken.dtype == "string[pyarrow]"


@given(st.lists(st.one_of(st.none(), st.dates(min_value=dt.date(1600, 1, 1), max_value=dt.date(2400, 12, 31))),
                max_size=60))
def test_swapped_birth_dates_agree_with_exchanging_day_and_month(values):
    """`_swap` (calendar formulas on distinct day numbers) against datetime.date(y, d, m)."""
    dob = pd.Series([pd.NaT if v is None else pd.Timestamp(v) for v in values], dtype="datetime64[s]")
    want = [pd.NaT if v is None or v.day > 12 or v.day == v.month else pd.Timestamp(dt.date(v.year, v.day, v.month))
            for v in values]
    got = _swap(dob)
    assert got.dtype == "datetime64[s]"
    pd.testing.assert_series_equal(got, pd.Series(want, dtype="datetime64[s]"))


def test_block_keys_are_taken_from_each_distinct_name():
    frame = pd.DataFrame({"name_fold": pd.array(["van an nguyen", None, "le thi  b", "van an nguyen"],
                                                dtype="string[pyarrow]"),
                          "dob": pd.to_datetime(["1985-03-05", None, "2000-12-31", "1985-03-05"])},
                         index=[10, 11, 12, 13])
    out = add_block_keys(frame, "dob")
    assert out["name_sorted"].tolist() == ["an nguyen van", pd.NA, "b le thi", "an nguyen van"]
    assert out["name_joined"].tolist() == ["vanannguyen", pd.NA, "lethib", "vanannguyen"]
    assert str(out["name_sorted"].dtype) == str(out["name_joined"].dtype) == "string"
    assert out.index.tolist() == [10, 11, 12, 13]
    assert out["dob_md"].tolist() == [305, pd.NA, 1231, 305]
    empty = add_block_keys(frame.iloc[:0], "dob")
    assert len(empty) == 0 and str(empty["name_joined"].dtype) == "string"


@given(ids=st.lists(st.one_of(st.none(), st.sampled_from(list(REG["person_id"].dropna()) + list(REG["old_id"].dropna())),
                              st.from_regex(r"[0-9]{9}|[0-9]{12}", fullmatch=True)), max_size=60))
def test_registry_rows_of_ids_in_any_order_agree_with_a_dictionary(ids):
    index = _REG_INDEX
    for column in ("person_id", "old_id"):
        first = {}
        for row, value in enumerate(REG[column]):
            if isinstance(value, str) and value.isdigit():
                first.setdefault(value, row)
        assert index.rows_of(pd.Series(ids, dtype=object), column).tolist() == [first.get(v, -1) for v in ids]


_REG_INDEX = build_index(REG)


def _reasons_by_merge(scored):
    """The reasons as they were built before: text per distinct combination, merged back on the
    six level columns as text."""
    from pipeline.link.decide import REASON_VI
    from pipeline.link.scoring import FIELDS

    cols = [f"{f}_level" for f in FIELDS]
    levels = scored[cols].astype(object).where(scored[cols].notna(), "")
    combos = levels.drop_duplicates().reset_index(drop=True)
    parts = [combos[f"{f}_level"].map(REASON_VI[f]).fillna("").astype("string[pyarrow]") for f in FIELDS]
    joined = parts[0]
    for part in parts[1:]:
        joined = joined.str.cat(part, sep="; ")
    combos["_reason"] = joined.str.replace(r"(; )+", "; ", regex=True).str.strip("; ").to_numpy()
    return pd.Series(levels.merge(combos, on=cols, how="left")["_reason"].to_numpy(), index=scored.index,
                     dtype="string[pyarrow]")


@given(data=st.data())
def test_match_reasons_by_level_codes_are_the_texts_merged_by_level(data):
    from pipeline.link.decide import REASON_VI, reasons

    n = data.draw(st.integers(0, 40))
    columns = {}
    for field, levels in REASON_VI.items():
        values = data.draw(st.lists(st.one_of(st.none(), st.sampled_from(sorted(levels))), min_size=n, max_size=n))
        columns[f"{field}_level"] = pd.Categorical(values, categories=sorted(levels))
    scored = pd.DataFrame(columns, index=pd.Index(range(1000, 1000 + n), name="profile"))
    pd.testing.assert_series_equal(reasons(scored), _reasons_by_merge(scored))


@given(rows=st.lists(st.tuples(st.sampled_from(["x", "y", None]), st.sampled_from([1.0, 2.0, None]),
                               st.sampled_from(["p", "q", None])), max_size=30),
       limit=st.sampled_from([2 ** 62, 10, 3]))
def test_combined_codes_are_the_same_however_soon_the_key_is_renumbered(rows, limit):
    """Renumbered before every column (a tiny limit) or only at the end, the codes are the same."""
    from pipeline.link import profiles

    frame = pd.DataFrame(rows, columns=["a", "b", "c"]).astype({"c": "string[pyarrow]"})
    expected, _ = pd.factorize(pd.MultiIndex.from_frame(frame.astype(object).fillna("\x00"))) if rows else ([], None)
    saved = profiles.COMBINED_LIMIT
    profiles.COMBINED_LIMIT = limit
    try:
        codes = combined_codes(frame, ["a", "b", "c"])
    finally:
        profiles.COMBINED_LIMIT = saved
    assert list(codes) == list(expected)


@given(picks=st.lists(st.integers(0, 5), min_size=1, max_size=40))
def test_each_export_person_is_its_first_row_with_its_count_of_rows(picks):
    from pipeline.link.profiles import CARRIED, PROFILE_KEY, build_profiles

    people = [{**{c: None for c in PROFILE_KEY + CARRIED}, "name_key": f"n{k % 3}", "sex": "M" if k % 2 else "F",
               "id_number": f"0790900000{k:02d}", "id_kind": "personal", "full_name": f"Tên {k}"} for k in range(6)]
    rows = pd.DataFrame([{**people[k], "name_fold": f"row {i}"} for i, k in enumerate(picks)],
                        index=np.arange(len(picks)) * 3 + 7)
    rows["dob_date"] = pd.to_datetime(rows["dob_date"])
    rows["dob_year"] = rows["dob_year"].astype("Int16")
    prof, of_row = build_profiles(rows.astype({c: "string[pyarrow]" for c in rows.columns
                                               if c not in ("dob_date", "dob_year")}))
    order = list(dict.fromkeys(picks))                     # people in order of first appearance
    assert prof.index.tolist() == list(range(len(order)))
    assert of_row.tolist() == [order.index(k) for k in picks] and of_row.index.tolist() == rows.index.tolist()
    assert prof["n_rows"].tolist() == [picks.count(k) for k in order]
    assert prof["name_fold"].tolist() == [f"row {picks.index(k)}" for k in order]   # carried from the first row


def test_case_keys_are_the_stored_hash_of_name_birth_date_year_and_id():
    # Review decisions are stored under these keys: a faster way of computing them must give the
    # same bytes, or every officer's decision would be lost at the next run.
    import hashlib

    from pipeline.reconcile import case_keys

    rows = pd.DataFrame({
        "name_key": pd.array(["nguyen van an", "trần thị bình", None, "nguyen van an", "lê ánh"], dtype="string[pyarrow]"),
        "dob_date": pd.to_datetime(["1985-03-05", None, "2001-12-31", "1985-03-05", None]).astype("datetime64[s]"),
        "dob_year": pd.array([1985, 1990, None, 1985, None], dtype="Int64"),
        "id_number": pd.array(["079085000123", None, "012345678", "079085000123", None], dtype="string[pyarrow]"),
    }, index=[10, 11, 12, 13, 14])
    got = case_keys(rows)
    texts = ["nguyen van an|1985-03-05|1985|079085000123", "trần thị bình||1990|", "|2001-12-31||012345678",
             "nguyen van an|1985-03-05|1985|079085000123", "lê ánh|||"]
    assert got.tolist() == ["X" + hashlib.blake2b(t.encode(), digest_size=8).hexdigest() for t in texts]
    assert got.index.tolist() == [10, 11, 12, 13, 14] and str(got.dtype) == "string"
    assert got.iloc[0] == "X4fb915af61282c39"   # pinned: the key of this person in any stored decision
