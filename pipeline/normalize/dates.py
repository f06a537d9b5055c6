"""Dates as exports write them: several text formats, Excel serials, bare years.

Formats are parsed explicitly (never `format="mixed"`), impossible dates are
rejected with a reason, and dates whose day and month could be swapped are
marked so the linker can try both.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from pipeline.normalize.distinct import by_distinct
from pipeline.rules import Rules, default_rules
from pipeline.text import extract, regex_replace

# [0-9], not \d: see pipeline.text.WHITESPACE. Named groups: extracted by Arrow (pipeline.text.extract).
# A time of day after the date, as spreadsheets and vaccination systems write it (the date is what
# counts): '15/08/2021 09:35', '05/03/1985 12:00:00 SA' (Vietnamese AM/PM: SA, CH),
# '2021-08-15T09:35:12.5+07:00'.
_TIME_OF_DAY = (r"(?:[ T]+[0-9]{1,2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]+)?)?"
                r"(?: ?(?:[AaPp]\.?[Mm]\.?|SA|CH|sa|ch|Sa|Ch))?(?:Z|[+-][0-9]{2}:?[0-9]{2})?)$")
_DMY = r"^(?P<a>[0-9]{1,2})[/.\-](?P<b>[0-9]{1,2})[/.\-](?P<c>[0-9]{4})$"
_YMD = r"^(?P<a>[0-9]{4})[/.\-](?P<b>[0-9]{1,2})[/.\-](?P<c>[0-9]{1,2})$"
_DMYY = r"^(?P<a>[0-9]{1,2})[/.\-](?P<b>[0-9]{1,2})[/.\-](?P<c>[0-9]{2})$"
# Eight digits with no separator: year first ('19850305') or last ('05031985'). No Excel serial
# has eight digits, and no eight digits read as a valid date both ways (a valid year-first value
# would need a month of 19 or 20 when read day-first).
_YMD8 = r"^(?P<a>(?:19|20)[0-9]{2})(?P<b>[0-9]{2})(?P<c>[0-9]{2})$"
_DMY8 = r"^(?P<a>[0-9]{2})(?P<b>[0-9]{2})(?P<c>(?:19|20)[0-9]{2})$"
_NUMBER = r"^(?P<whole>[0-9]+)(?:\.(?P<fraction>[0-9]+))?$"
# Typed variations, rewritten before the formats are tried: an apostrophe Excel keeps in front of
# text ("'05/03/1985"); a stray full stop or comma after the date; spaces around the separators,
# or a space, comma or underscore as the separator ('05 / 03 / 1985', '05 03 1985', '05,03,1985');
# a day or month not known, written as '?' or 'xx' ('??/03/1985', 'xx/xx/1985'), read like
# '00/03/1985' (the year alone); and 'năm 1985' (the year 1985).
_EXCEL_TEXT_MARK = r"^'+"
_TRAILING_STOP = r"[.,;]+$"
_SEPARATED = r"^(?P<a>[0-9?xX]{1,4})[/.\-,_ ]+(?P<b>[0-9?xX]{1,2})[/.\-,_ ]+(?P<c>[0-9]{2}|[0-9]{4})$"
_UNKNOWN_PART = r"(^|/)(?:[?]{1,2}|[xX]{1,2})(/)"
_YEAR_WORD = r"(?i)^n(?:ă|a)m +([0-9]{4})$"
_MONTH_YEAR = r"^(?:(?P<m>[0-9]{1,2})[/.\-](?P<y>[0-9]{4})|(?P<y2>[0-9]{4})[/.\-](?P<m2>[0-9]{1,2}))$"
# Dates that name their month, as a spreadsheet's custom date format writes them into a CSV
# ('05-Mar-1985', '5 March 85') or as they are written out in Vietnamese ('ngày 5 tháng 3 năm 1985',
# '05 tháng 03 1985'): rewritten to d/m/y first. Their day and month cannot be swapped.
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_NAMED_MONTH = r"(?i)^([0-9]{1,2})[ \-/.]+%s[a-z]*\.?[ \-/.,]+([0-9]{2}|[0-9]{4})$"
_VIETNAMESE = r"(?i)^(?:ngày +)?([0-9]{1,2}) *tháng +([0-9]{1,2})[ ,/]*(?:năm +)?([0-9]{4})$"


def _spelled_out(s: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(values with named-month dates rewritten to d/m/y, which values were)."""
    worded = s.str.contains("[A-Za-z]", regex=True).fillna(False).astype(bool)
    if not worded.any():
        return s, worded
    out = regex_replace(s[worded], _VIETNAMESE, r"\1/\2/\3")
    for k, month in enumerate(_MONTHS, start=1):
        out = regex_replace(out, _NAMED_MONTH % month, rf"\1/{k}/\2")
    named = pd.Series(False, index=s.index)
    named[worded] = (out != s[worded]).fillna(False).to_numpy(dtype=bool)
    return s.mask(named, out), named


def _retyped(s: pd.Series) -> pd.Series:
    """`s` with typed variations of the formats rewritten to them (see `_SEPARATED`). Only values
    with another character than digits and the formats' separators, or ending in a stop, are
    looked at: one pass over the rest."""
    odd = s.str.contains(r"[^0-9/.\-]|\.$", regex=True).fillna(False).astype(bool)
    if not odd.any():
        return s
    t = regex_replace(s[odd], _EXCEL_TEXT_MARK + "|" + _TRAILING_STOP, "")
    t = regex_replace(regex_replace(t, _YEAR_WORD, r"\1"), _SEPARATED, r"\1/\2/\3")
    # twice: in 'xx/xx/1985' the two parts share a '/', so one pass rewrites only the first
    t = regex_replace(regex_replace(t, _UNKNOWN_PART, r"\100\2"), _UNKNOWN_PART, r"\100\2")
    s = s.mask(odd, t)
    return s.mask(s == "")


def _parts(s: pd.Series, run_year: int) -> pd.DataFrame:
    """Day, month, year (as numbers) and the format each value was read with."""
    d = pd.DataFrame(index=s.index, columns=["day", "month", "year"], dtype="Float64")
    fmt = pd.Series(pd.NA, index=s.index, dtype="string[pyarrow]")
    # eight digits are year-first where that reads as a month and a day, else day-first
    ymd8 = extract(s, _YMD8)
    ymd8_ok = (pd.to_numeric(ymd8[1]).between(1, 12) & pd.to_numeric(ymd8[2]).between(1, 31)).fillna(False)
    for pattern, order, label, only in ((_DMY, ("day", "month", "year"), "dmy", None),
                                        (_YMD, ("year", "month", "day"), "ymd", None),
                                        (_DMYY, ("day", "month", "year"), "dmyy", None),
                                        (_YMD8, ("year", "month", "day"), "ymd8", ymd8_ok),
                                        (_DMY8, ("day", "month", "year"), "dmy8", None)):
        m = extract(s, pattern)
        hit = m[0].notna() & fmt.isna()
        if only is not None:
            hit = hit & only.astype(bool)
        for i, col in enumerate(order):
            d.loc[hit, col] = pd.to_numeric(m.loc[hit, i]).astype("Float64")
        fmt = fmt.mask(hit, label)
    pivot = run_year % 100
    yy = fmt == "dmyy"
    d.loc[yy, "year"] = d.loc[yy, "year"] + np.where(d.loc[yy, "year"] <= pivot, 2000, 1900)
    return d.assign(fmt=fmt)


def parse_dates(values: pd.Series, rules: Rules | None = None, *, run_date: dt.date,
                allow_year_only: bool = True) -> pd.DataFrame:
    """Parse distinct raw date strings.

    Returns `date` (datetime64[s], day precision or null), `year` (Int16),
    `precision` ('day' | 'year' | null), `swappable` (day and month both
    <= 12 and different) and `date_error` (why a non-empty value was not read).
    """
    rules = rules or default_rules()
    s = regex_replace(values.astype("string[pyarrow]").str.strip(), _TIME_OF_DAY, "")
    s = _retyped(s.mask(s == ""))
    s, named = _spelled_out(s)
    parts = _parts(s, run_date.year)
    num = extract(s, _NUMBER)
    is_num = num[0].notna() & parts["fmt"].isna()
    whole = pd.to_numeric(num[0], errors="coerce")
    bare_year = is_num & whole.between(rules.bare_year_min, rules.bare_year_max) & num[1].fillna("0").str.fullmatch("0+")
    serial = is_num & ~bare_year
    # The year alone, written as a date: day and month zero where they are not known ('00/00/1945',
    # '00/03/1945'), or month and year ('03/1985', '1985-03').
    in_range = parts["year"].between(rules.bare_year_min, rules.bare_year_max)
    zeroed = (parts["fmt"].isin(["dmy", "ymd"]) & in_range & (parts["day"] == 0)
              & parts["month"].between(0, 12)).fillna(False).astype(bool)
    month_year = extract(s, _MONTH_YEAR)
    month_year_year = pd.to_numeric(month_year[1].fillna(month_year[2]), errors="coerce")
    month_year_ok = (parts["fmt"].isna() & ~is_num & month_year[0].fillna(month_year[3]).notna()
                     & pd.to_numeric(month_year[0].fillna(month_year[3]), errors="coerce").between(1, 12)
                     & month_year_year.between(rules.bare_year_min, rules.bare_year_max)).fillna(False).astype(bool)
    year_of_written = parts["year"].where(zeroed).fillna(month_year_year.where(month_year_ok))
    written_year = zeroed | month_year_ok
    whole = whole.mask(written_year, year_of_written)
    bare_year = bare_year | written_year
    iso = (parts["year"].astype("Int64").astype("string").str.zfill(4) + "-"
           + parts["month"].astype("Int64").astype("string").str.zfill(2) + "-"
           + parts["day"].astype("Int64").astype("string").str.zfill(2))
    date = pd.to_datetime(iso, format="%Y-%m-%d", errors="coerce").astype("datetime64[s]")
    epoch = pd.Timestamp("1899-12-30")
    serial_dates = epoch + pd.to_timedelta(whole.where(serial & whole.between(1, 80000)), unit="D")
    date = date.mask(serial, serial_dates.astype("datetime64[s]"))
    year = date.dt.year.astype("Int16").mask(bare_year, whole.astype("Int16"))
    precision = pd.Series(pd.NA, index=s.index, dtype="string[pyarrow]")
    precision = precision.mask(date.notna(), "day").mask(bare_year, "year")
    error = pd.Series(pd.NA, index=s.index, dtype="string[pyarrow]")
    error = error.mask(s.notna() & parts["fmt"].isna() & ~is_num & ~written_year, "unreadable date")
    error = error.mask(parts["fmt"].notna() & date.isna() & ~written_year, "impossible date")
    error = error.mask(serial & date.isna(), "Excel serial out of range")
    if not allow_year_only:
        error = error.mask(bare_year, "year only")
        precision = precision.mask(bare_year, pd.NA)
        year = year.mask(bare_year, pd.NA)
    swappable = (parts["fmt"].notna() & parts["day"].between(1, 12) & parts["month"].between(1, 12)
                 & (parts["day"] != parts["month"])).fillna(False).astype(bool) & ~named
    return pd.DataFrame({"date": date, "year": year, "precision": precision,
                         "swappable": swappable, "date_error": error}, index=s.index)


def normalize_dates(raw: pd.Series, rules: Rules | None = None, *, run_date: dt.date,
                    allow_year_only: bool = True) -> pd.DataFrame:
    """`parse_dates` over each distinct value of a raw column, mapped back."""
    return by_distinct(raw, lambda d: parse_dates(d, rules, run_date=run_date,
                                                  allow_year_only=allow_year_only))
