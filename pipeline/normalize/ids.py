"""ID numbers: repair spreadsheet damage, classify, and decode the 12-digit structure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.normalize.distinct import by_distinct, plain_or_repaired
from pipeline.rules import Rules, default_rules
from pipeline.text import WHITESPACE, arrow_text, extract, fold_key, fold_series, regex_replace

_SCI = r"^(?P<lead>[0-9])(?:[.,](?P<fraction>[0-9]+))?[eE]\+?(?P<exponent>[0-9]+)$"
# One digit repeated (000000000, 111111111111): alternations, not a backreference, so that the
# match runs in Arrow's RE2 kernel rather than Python's re, row by row.
_ONE_DIGIT = "(?:" + "|".join(f"{d}+" for d in range(10)) + ")"
_ONE_DIGIT_6 = "(?:" + "|".join(f"{d}{{6,}}" for d in range(10)) + ")"
KINDS = ("personal", "old", "placeholder", "invalid", "missing")


# A label written with the number ('CCCD: 079...', 'Số CMND 0123...', '079... (CCCD)'), matched on
# the folded text. Only the label goes: whatever else is not a number still makes the value invalid.
_LABEL_WORDS = r"(?:so\s*)?(?:cccd|cmnd|cmt|cc|id|so\s*dinh\s*danh|dinh\s*danh|can\s*cuoc(?:\s*cong\s*dan)?)"
_LABEL = rf"^{_LABEL_WORDS}\s*[:.#\-]?\s*(?P<a>[0-9].*)$|^(?P<b>.*[0-9])\s*[(\[]{_LABEL_WORDS}[)\]]$"
# Two numbers in one cell (under 'Số CMND/CCCD', both written: '012345678 / 079090000123').
_TWO_NUMBERS = r"^(?P<a>[0-9][0-9 .]*[0-9])\s*(?:[/;|]|\s-\s)\s*(?P<b>[0-9][0-9 .]*[0-9])$"


def _unlabelled(s: pd.Series) -> pd.Series:
    """The value without an ID label beside its number; and of two numbers in one cell, the 12-digit
    personal number where exactly one of them is one (else the value as it is, which is invalid)."""
    # most IDs are digits only: the rest is looked at on its own
    text = arrow_text(s)
    other = pc.fill_null(pc.invert(pc.ascii_is_decimal(text)), False).to_numpy(zero_copy_only=False)
    if not other.any():
        return s
    t = s[other]
    before = t
    worded = t.str.contains(r"\pL", regex=True).fillna(False).astype(bool)
    if worded.any():
        label = extract(fold_series(t[worded]), _LABEL)
        bare = label[0].fillna(label[1])
        # labelled text is typed, not a number cell that lost zeros: it must hold a whole number
        bare = bare.where(bare.str.replace(r"[ .\-]", "", regex=True).str.len().isin([9, 12])
                          | bare.str.contains("[eE]", regex=True))
        t = t.mask(bare.reindex(t.index).notna(), bare.reindex(t.index))
    two = extract(t, _TWO_NUMBERS)
    if two[0].notna().any():
        digits = [part.str.replace(r"[ .]", "", regex=True) for part in (two[0], two[1])]
        first, second = (d.str.len() == 12 for d in digits)
        personal = digits[0].where(first & ~second).fillna(digits[1].where(second & ~first))
        t = t.mask(personal.notna(), personal)
    changed = (t != before).fillna(False).to_numpy(dtype=bool)
    if not changed.any():
        return s
    mask = np.zeros(len(s), dtype=bool)
    mask[np.flatnonzero(other)[changed]] = True
    out = pc.replace_with_mask(text, pa.array(mask), arrow_text(t[changed]))
    return pd.Series(pd.array(out, dtype="string[pyarrow]"), index=s.index)


def _repair(s: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Digits after undoing spreadsheet damage, the reason where none can be had, and whether the
    digits were recovered from something more than spreadsheet damage (`recovered`): a label,
    two numbers in one cell, the letter O typed for a zero, a stray '#' or ';'. Such a value is
    still ID_INVALID as written (the source record must be fixed), but its digits tell the linker
    whose it is."""
    s = s.str.strip()
    unlabelled = _unlabelled(s)
    recovered = (unlabelled != s).fillna(False).astype(bool)
    s = unlabelled.str.lstrip("'").str.replace(WHITESPACE + "+", "", regex=True)
    reason = pd.Series(pd.NA, index=s.index, dtype="string[pyarrow]")
    sci = extract(s, _SCI)
    is_sci = sci[0].notna()
    frac = sci[1].fillna("")
    exp = pd.to_numeric(sci[2], errors="coerce").fillna(0).astype(int)
    kept = is_sci & (frac.str.len() == exp)
    s = s.mask(kept, sci[0] + frac)
    reason = reason.mask(is_sci & ~kept, "scientific notation lost digits")
    s = s.mask(is_sci & ~kept)
    s = regex_replace(s, r"^(\d+)\.0+$", r"\1")                # Excel number cell 79093001234.0
    s = s.str.replace(r"[.\-_/,]", "", regex=True)               # 079.093.001.234, 079-093-...
    not_digits = (s.notna() & ~s.str.fullmatch("[0-9]+").fillna(False)).astype(bool)
    if not_digits.any():
        # a stray '#' or ';' beside the number, the letter O typed for a zero ('O79093001234')
        t = s[not_digits].str.replace("[;#]", "", regex=True)
        t = t.str.replace("[Oo]", "0", regex=True).where(t.str.fullmatch("[0-9Oo]*[0-9][0-9Oo]*").fillna(False))
        t = t.reindex(s.index)
        s = s.mask(t.notna(), t)
        recovered |= t.notna()
        not_digits = (s.notna() & ~s.str.fullmatch("[0-9]+").fillna(False)).astype(bool)
    reason = reason.mask(not_digits & reason.isna(), "not a number")
    s = s.mask(not_digits)
    n = s.str.len()
    s = s.mask(n.between(1, 8), s.str.zfill(9)).mask(n.between(10, 11), s.str.zfill(12))
    bad_len = s.notna() & ~s.str.len().isin([9, 12])
    reason = reason.mask(bad_len & reason.isna(), "length is neither 9 nor 12 digits")
    reason = reason.mask(recovered & ~bad_len & reason.isna(), "number written with other text")
    return s.mask(bad_len), reason, recovered & ~bad_len


def says_no_id(raw: pd.Series, rules: Rules) -> pd.Series:
    """True where an ID cell holds no digit and no letter ('-', '...') or one of `no_id_words`
    ('không có', 'N/A'). Only the few values with no digit are folded one by one."""
    no_digit = ~raw.str.contains("[0-9]", regex=True).fillna(True).astype(bool)
    out = pd.Series(False, index=raw.index)
    if no_digit.any():
        text = raw[no_digit]
        punct = ~text.str.contains(r"\pL", regex=True).fillna(True).astype(bool)
        out[no_digit] = punct | text.map(lambda v: fold_key(str(v)) in rules.no_id_words).astype(bool)
    return out


def classify_ids(values: pd.Series, rules: Rules | None = None) -> pd.DataFrame:
    """Classify distinct raw ID values.

    Columns: `id_number` (repaired digits, or null), `id_kind` (one of KINDS),
    `id_reason`, and for 12-digit numbers the decoded `id_province`,
    `id_sex`, `id_birth_year` and `id_structure_ok` (known province,
    century-sex digit and year that can be a birth year).

    Most values are a number of 9 or 12 digits and nothing else: nothing in them needs repair, so
    they are only checked for placeholders (`_classify_plain`); the others go through every repair
    (`_classify_written`), which gives the same answer for plain numbers, some twenty passes later.
    """
    rules = rules or default_rules()
    raw = values.astype("string[pyarrow]").reset_index(drop=True)
    text = arrow_text(raw)
    length = pc.utf8_length(text)
    plain = pc.fill_null(pc.and_(pc.ascii_is_decimal(text), pc.is_in(length, pa.array([9, 12], length.type))),
                         False).to_numpy(zero_copy_only=False)
    out = plain_or_repaired(raw, plain, lambda d: _classify_plain(d, rules), lambda d: _classify_written(d, rules))
    out = pd.concat([out, decode_personal_ids(out["id_number"].where(out["id_kind"] == "personal"), rules)], axis=1)
    out.index = values.index
    return out


def _placeholder(digits: pd.Series, rules: Rules) -> pd.Series:
    """One digit repeated, or one of the rules' placeholder numbers (False where null)."""
    return digits.str.fullmatch(_ONE_DIGIT).fillna(False) | digits.isin(rules.placeholder_ids).fillna(False)


def _classify_plain(digits: pd.Series, rules: Rules) -> pd.DataFrame:
    """`classify_ids`'s columns for values that are 9 or 12 ASCII digits: personal or old number,
    unless a placeholder (one digit repeated, or one of the rules' placeholder numbers)."""
    placeholder = _placeholder(digits, rules).astype(bool)
    kind = pd.Series(np.where(digits.str.len() == 12, "personal", "old"), index=digits.index, dtype="string[pyarrow]")
    kind = kind.mask(placeholder, "placeholder")
    reason = pd.Series(pd.NA, index=digits.index, dtype="string[pyarrow]").mask(placeholder, "placeholder")
    return pd.DataFrame({"id_number": digits, "id_kind": kind, "id_reason": reason,
                         "id_recovered": np.zeros(len(digits), dtype=bool)}, index=digits.index)


def _classify_written(raw: pd.Series, rules: Rules) -> pd.DataFrame:
    """`classify_ids`'s first four columns for any value: spreadsheet damage and labels undone first."""
    blank = raw.isna() | (raw.str.strip() == "") | says_no_id(raw, rules)
    digits, reason, recovered = _repair(raw.mask(blank))
    placeholder = _placeholder(digits, rules)
    raw_digits = raw.str.replace(r"\.0+$", "", regex=True).str.replace(r"\D", "", regex=True)
    placeholder |= raw_digits.isin(rules.placeholder_ids).fillna(False)
    placeholder |= raw_digits.str.fullmatch(_ONE_DIGIT_6).fillna(False)
    length = digits.str.len().fillna(0)
    kind = pd.Series("invalid", index=raw.index, dtype="string[pyarrow]")
    kind = kind.mask(length == 9, "old").mask(length == 12, "personal")
    kind = kind.mask(placeholder & digits.notna(), "placeholder").mask(blank, "missing")
    reason = reason.mask(kind == "placeholder", "placeholder").mask(blank, pd.NA)
    return pd.DataFrame({"id_number": digits.mask(kind.isin(["invalid", "missing"])), "id_kind": kind,
                         "id_reason": reason, "id_recovered": (recovered & kind.isin(["personal", "old"])).astype(bool)})


def decode_personal_ids(ids: pd.Series, rules: Rules | None = None) -> pd.DataFrame:
    """Decode province, sex and birth year from 12-digit personal numbers."""
    rules = rules or default_rules()
    s = ids.astype("string[pyarrow]")
    province = s.str[1:3]
    cs = s.str[3]
    century = cs.map({k: v[0] for k, v in rules.century_sex.items()}).astype("Int32")
    sex = cs.map({k: v[1] for k, v in rules.century_sex.items()}).astype("string[pyarrow]")
    year = (century + pd.to_numeric(s.str[4:6], errors="coerce").astype("Int32")).astype("Int16")
    ok = (s.str[0] == "0") & province.isin(list(rules.provinces)) & century.notna()
    return pd.DataFrame({
        "id_province": province.where(ok),
        "id_sex": sex.where(ok),
        "id_birth_year": year.where(ok),
        "id_structure_ok": ok.fillna(False).astype(bool),
    })


def normalize_ids(raw: pd.Series, rules: Rules | None = None) -> pd.DataFrame:
    """Normalise a column of raw IDs (each distinct value once); nulls are `missing`."""
    out = by_distinct(raw, lambda d: classify_ids(d, rules))
    out["id_kind"] = out["id_kind"].fillna("missing")
    out["id_recovered"] = out["id_recovered"].fillna(False).astype(bool)
    return out
