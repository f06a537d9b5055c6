"""Small coded fields: sex, phone numbers, vaccine names, dose numbers.

Each maps through a table in `rules/`; a value the table does not know is
flagged (null canonical value, `*_known` False), never guessed. The one
allowance is a vaccine name misspelt by a letter or two ('Phizer', 'Sinophram')
that is that close to one vaccine's names and no other's.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
from rapidfuzz.distance import OSA

from pipeline.normalize.distinct import by_distinct, plain_or_repaired
from pipeline.normalize.encodings import decoders
from pipeline.rules import Rules, default_rules
from pipeline.text import extract, fold_series, fold_words


def _folded(values: pd.Series) -> pd.Series:
    return fold_series(values).str.replace(r"[^0-9a-z]+", "", regex=True)


def _in_legacy_font(d: pd.Series, out: pd.DataFrame, known: str, run: Callable[[pd.Series], pd.DataFrame],
                    rules: Rules) -> pd.DataFrame:
    """`out` with the values `run` did not know read again as typed in a legacy font or garbled by
    a wrong code page (the repairs names get: 'N÷' and 'Nöõ' are Nữ in TCVN3 and VNI, 'Mòi nh¾c
    l¹i' is Mũi nhắc lại), where one of them makes a value `run` knows. Once per distinct value
    unknown as written: a few per file."""
    rest = d.notna() & ~out[known].to_numpy(dtype=bool)
    for decode in decoders(rules).values():
        if not rest.any():
            break
        text = pd.Series([decode(v) for v in d[rest].tolist()], index=d.index[rest], dtype="string[pyarrow]")
        text = text[text.notna() & (text != d[rest])]
        if text.empty:
            continue
        again = run(text)
        hit = again.index[again[known].to_numpy(dtype=bool)]
        out.loc[hit, list(again.columns)] = again.loc[hit]
        rest[hit] = False
    return out


def normalize_sex(raw: pd.Series, rules: Rules | None = None) -> pd.DataFrame:
    """Nam / Nữ / M / F / Male / Female (any case, with or without diacritics, or typed in a
    legacy font) -> M / F."""
    rules = rules or default_rules()

    def run(d: pd.Series) -> pd.DataFrame:
        sex = _folded(d).map(rules.sex_values).astype("string[pyarrow]")
        return pd.DataFrame({"sex": sex, "sex_known": sex.notna()})

    return by_distinct(raw, lambda d: _in_legacy_font(d, run(d), "sex_known", run, rules))


def normalize_phones(raw: pd.Series, rules: Rules | None = None) -> pd.DataFrame:
    """10-digit mobile numbers; +84 and the pre-2018 11-digit prefixes mapped."""
    rules = rules or default_rules()

    def run(d: pd.Series) -> pd.DataFrame:
        # Most cells are a mobile number written as it should be: they are kept as they are, the
        # others repaired (`_repaired_phones`), which would leave these unchanged.
        plain = d.str.fullmatch(PLAIN_PHONE).fillna(False).to_numpy(dtype=bool)
        return plain_or_repaired(d, plain, _phones_as_written, lambda rest: _repaired_phones(rest, rules))

    return by_distinct(raw, run)


PLAIN_PHONE = r"0[1-9][0-9]{8}"     # ten digits, a leading 0 and no country code ('0084...' is one)


def _phones_as_written(d: pd.Series) -> pd.DataFrame:
    return pd.DataFrame({"phone": d, "phone_known": pd.Series(True, index=d.index, dtype="boolean")})


def _repaired_phones(d: pd.Series, rules: Rules) -> pd.DataFrame:
    """`normalize_phones`'s columns for any written value."""
    s = d
    # Of two numbers in one cell ('0912345678 / 0987654321', '… - …', '… hoặc …'), the first is
    # the row's, where what comes before the separator holds a whole number (nine digits or
    # more: '0912 - 345 - 678' is one). Only values longer than one written number are looked at.
    long = (s.str.len() > 13).fillna(False).astype(bool)
    if long.any():
        first = s[long].str.replace(r"\s*(?:[/;,|]|\s-\s|\s(?:hoặc|hoac)\s).*$", "", regex=True)
        whole = first.str.count("[0-9]").fillna(0) >= 9
        s = s.mask(long, first.where(whole, s[long]))
    s = s.str.replace(r"\.0+$", "", regex=True).str.replace(r"[^0-9+]", "", regex=True)
    # the country code (+84, 0084, or 84 before the nine or ten digits of the number); a
    # number of nine digits starting 84 is a 084 number that lost its zero
    s = s.str.replace(r"^(?:\+|00)84|^\+?84([0-9]{9,10})$", r"0\1", regex=True)
    s = s.mask(s.str.len().isin([9, 10]) & ~s.str.startswith("0"), "0" + s)
    for old, new in rules.phone_prefixes.items():
        s = s.mask((s.str.len() == 11) & s.str.startswith(old), new + s.str[4:])
    ok = s.str.fullmatch(r"0[0-9]{9}").fillna(False)
    return pd.DataFrame({"phone": s.where(ok), "phone_known": ok})


def _named_vaccine(text: str, aliases: list[tuple[tuple[str, ...], str]],
                   others: tuple[tuple[str, ...], ...] = ()) -> str | None:
    """The one catalogue vaccine whose name or alias appears in `text` as whole words
    ('AstraZeneca (AZD1222)', 'Vắc xin Pfizer'), else the one whose name or alias a run of its words
    misspells (`_misspelt`); None where none does, where two vaccines do, or where `text` names one
    of `others`, vaccines outside the catalogue ('Sputnik Light')."""
    words = fold_words(text)
    if any(_holds(words, other) for other in others):
        return None
    found = {name for alias, name in aliases if _holds(words, alias)}
    if not found:
        found = _misspelt(words, aliases)
    return found.pop() if len(found) == 1 else None


def _holds(words: tuple[str, ...], phrase: tuple[str, ...]) -> bool:
    """`phrase` appears in `words` as consecutive whole words."""
    return any(words[i:i + len(phrase)] == phrase for i in range(len(words) - len(phrase) + 1))


MISSPELT_MIN_LETTERS = 5    # shorter names (AZ, Vero, J&J) only count when written exactly


def _misspelt(words: tuple[str, ...], aliases: list[tuple[tuple[str, ...], str]]) -> set[str]:
    """Vaccines one of whose names (of at least MISSPELT_MIN_LETTERS letters, spaces aside) is
    within one edit of one to three consecutive words joined, or two edits for names of nine letters
    or more; an edit is a letter added, left out, changed, or two neighbours swapped (OSA)."""
    runs = {"".join(words[i:i + n]) for n in (1, 2, 3) for i in range(len(words) - n + 1)}
    runs = {r for r in runs if len(r) >= MISSPELT_MIN_LETTERS and not r.isdigit()}
    found = set()
    for alias, name in aliases:
        joined = "".join(alias)
        if len(joined) < MISSPELT_MIN_LETTERS:
            continue
        limit = 1 if len(joined) < 9 else 2
        if any(OSA.distance(r, joined, score_cutoff=limit) <= limit for r in runs):
            found.add(name)
    return found


def normalize_vaccines(raw: pd.Series, rules: Rules | None = None) -> pd.DataFrame:
    """Brand and common names with spelling variants -> the catalogue's canonical name: the whole
    value as an alias, else the one vaccine whose alias it contains as whole words or misspells
    (`_named_vaccine`)."""
    rules = rules or default_rules()
    aliases = [(words, v.name) for v in rules.vaccines.values() for a in (v.name, *v.aliases)
               if (words := fold_words(a))]

    def run(d: pd.Series) -> pd.DataFrame:
        vac = _folded(d).map(rules.vaccine_aliases).astype("string[pyarrow]")
        rest = vac.isna() & d.notna()
        if rest.any():   # once per distinct value (by_distinct): a few per file
            vac[rest] = [_named_vaccine(t, aliases, rules.not_in_catalogue) for t in d[rest].tolist()]
        return pd.DataFrame({"vaccine": vac, "vaccine_known": vac.notna()})

    return by_distinct(raw, run)


def normalize_dose_numbers(raw: pd.Series, rules: Rules | None = None) -> pd.DataFrame:
    """'1', 'Mũi 2', 'Mũi nhắc lại', 'Mũi bổ sung', ... -> a dose number (Int16)."""
    rules = rules or default_rules()

    def run(d: pd.Series) -> pd.DataFrame:
        digits = pd.to_numeric(extract(d, r"(?P<digits>[0-9]+)")[0], errors="coerce")
        folded = fold_series(d).str.replace(r"[^a-z0-9 ]+", " ", regex=True)
        words = pd.Series(pd.NA, index=d.index, dtype="Float64")
        for phrase, number in sorted(rules.dose_number_words.items(), key=lambda kv: -len(kv[0])):
            hit = folded.str.replace(" ", "", regex=False).str.contains(phrase, regex=False).fillna(False)
            words = words.mask(hit & words.isna(), float(number))
        number = words.fillna(digits.astype("Float64")).where(lambda x: x.between(1, 10))
        return pd.DataFrame({"dose_number": number.astype("Int16"), "dose_number_known": number.notna()})

    return by_distinct(raw, lambda d: _in_legacy_font(d, run(d), "dose_number_known", run, rules))
