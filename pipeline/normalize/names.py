"""Vietnamese personal names: repair legacy fonts, canonicalise, and make keys.

Works on distinct values only (names repeat heavily) and maps back. A name
that is already valid Vietnamese is never re-decoded: the detector only
repairs strings that are not valid as they stand.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

import pandas as pd

from pipeline.normalize.distinct import by_distinct
from pipeline.normalize.encodings import decoders
from pipeline.rules import Rules, default_rules
from pipeline.text import TONE_MARKS, WHITESPACE, fold_series, regex_replace, split_words

_INIT = "(?:ngh|ng|nh|ch|gh|gi|kh|ph|qu|th|tr|b|c|d|đ|g|h|k|l|m|n|p|r|s|t|v|x)?"
_NUC = (
    "(?:iêu|yêu|oai|oao|oay|oeo|uây|uôi|uya|uyê|uyu|ươi|ươu|ai|ao|au|ay|âu|ây|eo|êu|ia|iê|yê|iu|"
    "oa|oă|oe|oi|ôi|ơi|ua|uâ|uê|ui|uô|uơ|ưa|ưi|ươ|ưu|uy|a|ă|â|e|ê|i|o|ô|ơ|u|ư|y)"
)
_FIN = "(?:ng|nh|ch|c|k|m|n|p|t)?"  # k: Đắk Lắk, minority words
_SYL = f"{_INIT}{_NUC}{_FIN}"
# Ethnic-minority words: one syllable opening on a consonant cluster or an
# apostrophe (Kpă, Mlô, Drơng, H'Hơn); never several vowel groups in a row.
_CONS = "bcdđghklmnpqrstvx"
_MINORITY = f"(?:[{_CONS}][{_CONS}y]{{1,2}}|[{_CONS}y]'[{_CONS}]*){_NUC}{_FIN}"
_WORD_OK = re.compile(f"^(?:{_SYL}|{_MINORITY})$")
_ASCII_WORD = re.compile(r"^[a-z'\-]+$")
_CHARS_OK = re.compile(f"^[a-zđ{TONE_MARKS}\u0302\u0306\u031b' -]+$")
_TWO_TONES = re.compile(f"[{TONE_MARKS}][^ ]*[{TONE_MARKS}]")
_VIQR_HINT = re.compile(r"[a-zA-Z][\^(+`~?]|[aeiouyAEIOUY]['.]|[dD][dD]\b")
_ETH_INITIAL = re.compile(r"(^|\s)[Ðð]")
# What exports write into a name cell beside the name: a note in brackets ('(con)', '(CCCD 079…)'),
# a list number in front ('1. '), digits ('- 1962', 'Dũng1'), quotes and other marks that are no
# part of a name ('"…"', '*', ','). Only ASCII marks: UTF-8 read as Windows-1252 makes dashes and
# quotes of letters ('Đỗ' is 'Äá»—'). No legacy font but VIQR uses one in a letter; VIQR writes
# tone marks with ' ( + . ? ^ ` ~, and those are left, except a bracket that opens a word (VIQR's
# follows its letter) and a full stop in a name that is not plain ASCII (VIQR text is).
_NOTE_MARKS = r"[0-9()\[\]\"*_#,;:!/\\|@&=.\-]"
_BRACKETED = r"(?:^|\s)[(\[][^()\[\]]*[)\]]"
_LIST_NUMBER = r"^[0-9]+\s*[.)]\s*"
_NOT_NAME = r"[0-9\"*_#,;:!/\\|@&=\[\]\-]+"   # a hyphen too: registered names are words and single spaces
_SPACES = re.compile(r"\s+")
# Tone placement: old style marks the first vowel of oa/oe/uy with no final
# consonant (hòa, thủy); new style the second (hoà, thuỷ).
_TONES = {"\u0300": "grave", "\u0301": "acute", "\u0303": "tilde", "\u0309": "hook", "\u0323": "dot"}


def _style_pairs() -> list[tuple[str, str]]:
    pairs = []
    for first, second in (("o", "a"), ("o", "e"), ("u", "y")):
        for tone in _TONES:
            old = unicodedata.normalize("NFC", first + tone + second)
            new = unicodedata.normalize("NFC", first + second + tone)
            pairs.append((old, new))
    return pairs


_STYLE_PAIRS = _style_pairs()


@lru_cache(maxsize=200_000)
def is_valid_vietnamese(name: str) -> bool:
    """True when every word of `name` is a well-formed Vietnamese (or minority) syllable."""
    low = unicodedata.normalize("NFD", name.lower())
    if not _CHARS_OK.match(low) or _TWO_TONES.search(low):
        return False
    plain = unicodedata.normalize("NFC", low).replace("-", " ").split()
    base = unicodedata.normalize("NFC", "".join(ch for ch in low if ch not in TONE_MARKS)).replace("-", " ").split()
    return all(_ASCII_WORD.match(p) or _WORD_OK.match(b) for p, b in zip(plain, base, strict=True))


def _valid_mask(values: pd.Series) -> pd.Series:
    """Vectorised `is_valid_vietnamese` over a column of distinct, stripped strings."""
    low = values.str.lower().str.normalize("NFD")
    ok = (low.str.match(_CHARS_OK.pattern) & ~low.str.contains(_TWO_TONES.pattern, regex=True)).fillna(False)
    plain = low[ok].str.normalize("NFC").str.replace("-", " ")
    base = low[ok].str.replace(f"[{TONE_MARKS}]", "", regex=True).str.normalize("NFC").str.replace("-", " ")
    # Removing tone marks never adds or removes a space: the two word lists align one to one.
    plain_words, base_words = split_words(plain), split_words(base)
    words = pd.DataFrame({"plain": plain_words.to_numpy(), "base": base_words.to_numpy()}, index=plain_words.index)
    good = words["plain"].str.match(_ASCII_WORD.pattern) | words["base"].str.match(_WORD_OK.pattern)
    bad_idx = words.index[~good.fillna(False).to_numpy(dtype=bool)]
    result = ok.astype(bool).copy()
    result[result.index.isin(bad_idx)] = False
    return result


@lru_cache(maxsize=200_000)
def tone_key(word: str) -> str:
    """Lower case with the tone mark moved to the end, so Hòa and Hoà give one key."""
    low = unicodedata.normalize("NFD", word.lower())
    tones = "".join(ch for ch in low if ch in TONE_MARKS)
    return unicodedata.normalize("NFC", "".join(ch for ch in low if ch not in TONE_MARKS)) + tones


def default_lexicon(rules: Rules | None = None) -> frozenset[str]:
    """Tone keys of every name word in the rules' name tables."""
    rules = rules or default_rules()
    words: set[str] = set()
    tables = [rules.family_names, *rules.middle_names.values(), *rules.given_names.values(),
              rules.minority.get("family_names", []), rules.minority.get("given_names", [])]
    for table in tables:
        for name in table:
            words.update(tone_key(w) for w in str(name).split())
    return frozenset(words)


@lru_cache(maxsize=100_000)
def _segments(word: str, lexicon: frozenset[str]) -> int:
    """Number of known name syllables a word splits into completely ('lêthị' -> 2), else 0."""
    word = word.lower()
    n = len(word)
    best = [0] + [-1] * n
    for end in range(1, n + 1):
        for start in range(max(0, end - 7), end):
            if best[start] >= 0 and tone_key(word[start:end]) in lexicon:
                best[end] = max(best[end], best[start] + 1)
    return max(best[n], 0)


_VIETNAMESE_CHARS = re.compile(f"[^a-zđ{TONE_MARKS}\u0302\u0306\u031b' -]")


def _rank(text: str, lexicon: frozenset[str]) -> tuple[bool, int, int, int]:
    """(valid Vietnamese, known syllables, valid words, minus characters no Vietnamese name has)."""
    clean = _canon_spaces(text)
    words = clean.split()
    known = sum(1 if tone_key(w) in lexicon else 2 * _segments(w, lexicon) for w in words)
    foreign = len(_VIETNAMESE_CHARS.findall(unicodedata.normalize("NFD", clean.lower())))
    return (is_valid_vietnamese(clean), known, sum(is_valid_vietnamese(w) for w in words), -foreign)


def repair_one(text: str, rules: Rules | None = None, lexicon: frozenset[str] = frozenset(),
               order: list[str] | None = None) -> tuple[str, str]:
    """Repair one name that is not valid Vietnamese, or whose words are unknown; return (text, encoding).

    Every decoding is ranked by (valid Vietnamese, words found in the
    lexicon of registered names, valid words). A name that is valid as it
    stands is only replaced by a decoding that is valid and made entirely of
    known words. `order`, if given, is the order to try decoders in; the one
    that succeeds moves to its front (names arrive file by file, and a file
    is typed in one font).
    """
    table = decoders(rules)
    order = order if order is not None else list(table)
    outputs: list[tuple[str, str]] = []
    for label in list(order):
        if label == "viqr" and not _VIQR_HINT.search(text):
            continue
        out = table[label](text)
        if not out or out == text:
            continue
        out = _ETH_INITIAL.sub(r"\1Đ", unicodedata.normalize("NFC", out))
        marked = [w for w in _canon_spaces(out).split() if not w.isascii()]
        if all(tone_key(w) in lexicon for w in marked) and is_valid_vietnamese(_canon_spaces(out)):
            order.remove(label)
            order.insert(0, label)
            return out, label  # valid and every word a registered name word: nothing can rank higher
        outputs.append((label, out))
    if is_valid_vietnamese(_canon_spaces(text)):
        return text, "unicode"  # valid as it stands and no decoding is better: keep it
    best, best_label, best_rank = text, "unknown", _rank(text, lexicon)
    for label, out in outputs:
        rank = _rank(out, lexicon)
        if rank > best_rank:
            best, best_label, best_rank = out, label, rank
    return best, best_label


def _canon_spaces(text: str) -> str:
    return _SPACES.sub(" ", text.replace("\u00a0", " ")).strip()


def detect_tone_style(names: Iterable[str]) -> str:
    """'old' (Hòa) or 'new' (Hoà): whichever the given canonical names use more."""
    # Whitespace as a character class, not \s: pandas sends \s to Python's `re`, value by value.
    s = pd.Series(list(names), dtype="string[pyarrow]").str.lower()
    old = sum(int(s.str.contains(o + "(?:[ \t\u00a0]|$)", regex=True).sum()) for o, _ in _STYLE_PAIRS)
    new = sum(int(s.str.contains(n + "(?:[ \t\u00a0]|$)", regex=True).sum()) for _, n in _STYLE_PAIRS)
    return "new" if new > old else "old"


def _style_table(style: str) -> dict[str, str]:
    table = {}
    for old, new in _STYLE_PAIRS:
        src, dst = (new, old) if style == "old" else (old, new)
        for a, b in ((src, dst), (src.capitalize(), dst.capitalize()), (src.upper(), dst.upper())):
            table[a] = b
    return table


_STYLE_TABLES = {s: _style_table(s) for s in ("old", "new")}
_STYLE_RE = {s: re.compile("(" + "|".join(map(re.escape, t)) + r")(?=\s|$)") for s, t in _STYLE_TABLES.items()}
_STYLE_HINT = {s: "(?:" + "|".join(map(re.escape, t)) + r")(?:\s|$)|[Qq][úùủũụ]y" for s, t in _STYLE_TABLES.items()}
_QU_RE = re.compile("([Qq])([úùủũụ])y")
_QU_MAP = {unicodedata.normalize("NFC", "u" + t): unicodedata.normalize("NFC", "y" + t) for t in _TONES}


def _restyle(text: str, style: str) -> str:
    table = _STYLE_TABLES[style]
    text = _STYLE_RE[style].sub(lambda m: table[m.group(1)], text)
    return _QU_RE.sub(lambda m: m.group(1) + "u" + _QU_MAP[m.group(2)], text)


def apply_tone_style(values: pd.Series, style: str) -> pd.Series:
    """Move tone marks of word-final oa/oe/uy to the given style; fix Qúy -> Quý.

    Only names containing an affected vowel pair are rewritten.
    """
    hit = values.str.contains(_STYLE_HINT[style], regex=True).fillna(False).to_numpy(dtype=bool)
    if not hit.any():
        return values
    out = values.copy()
    out[hit] = [_restyle(str(v), style) for v in values[hit]]
    return out


def canonical_names(values: pd.Series, rules: Rules | None = None, style: str = "old",
                    lexicon: frozenset[str] | None = None) -> pd.DataFrame:
    """Canonical form of distinct raw names, with the repair applied.

    Returns a frame indexed like `values` with columns `full_name` (NFC,
    single spaces, each word capitalised, registry tone style), `encoding`
    ('unicode', 'utf8-as-cp1252', 'cp1258-as-cp1252', 'vni', 'tcvn3',
    'viqr' or 'unknown') and `valid`. Legacy repair runs before spaces are
    folded: a no-break space can be half of a UTF-8 letter read as cp1252.
    """
    rules = rules or default_rules()
    lexicon = lexicon if lexicon is not None else default_lexicon(rules)
    s = values.astype("string[pyarrow]").str.normalize("NFC").str.replace(r"[ \t\r\n]+", " ", regex=True).str.strip(" ")
    s = s.mask(s == "")
    written = s
    s = _without_notes(s)
    noted = (s != written).fillna(False).astype(bool)   # marks or notes taken out: not the name as written
    s = regex_replace(s, _ETH_INITIAL.pattern, r"\1Đ")
    valid = _valid_mask(s.fillna(""))
    non_ascii = s.str.contains(r"[^\x00-\x7f]", regex=True).fillna(False).astype(bool)
    viqr = s.str.contains(_VIQR_HINT.pattern, regex=True).fillna(False).astype(bool)
    unknown_words = _unknown_words(s, lexicon) if lexicon else pd.Series(False, index=s.index)
    todo = s.notna() & (((~valid | unknown_words) & non_ascii) | viqr)
    encoding = pd.Series("unicode", index=s.index, dtype="string[pyarrow]")
    if todo.any():
        order = list(decoders(rules))
        fixed = [repair_one(str(t), rules, lexicon, order) for t in s[todo]]
        s = s.copy()
        s[todo] = [f for f, _ in fixed]
        encoding[todo] = [e for _, e in fixed]
        valid[todo] = [e != "unknown" for _, e in fixed]
    s = s.str.normalize("NFC").str.replace(WHITESPACE + "+", " ", regex=True).str.strip()
    # A value with no letter at all ("(2)" from a column-numbering row under the header, "-",
    # "0", "...") names no one: it is read as no name, like an empty cell.
    s = s.mask(~s.str.contains(r"\pL", regex=True).fillna(True).astype(bool))
    s = _capitalise(s)
    s = apply_tone_style(s, style)
    return pd.DataFrame({"full_name": s, "encoding": encoding.mask(s.isna()), "valid": valid & s.notna(),
                         "noted": noted & s.notna()})


def _without_notes(s: pd.Series) -> pd.Series:
    """Names without what was written beside them (`_NOTE_MARKS`); only the names holding one
    of those characters are rewritten."""
    marked = s.str.contains(_NOTE_MARKS, regex=True).fillna(False).astype(bool)
    if not marked.any():
        return s
    t = regex_replace(regex_replace(s[marked], _BRACKETED, " "), _LIST_NUMBER, "")
    t = regex_replace(t, _NOT_NAME, " ")
    # A full stop is VIQR's dot below only in plain ASCII text, and only after a vowel (or its
    # ( ^ +): 'Tran Thi. Hoa' is 'Tran Thị Hoa', 'Nguyen Van Dung.' is 'Nguyen Van Dung'.
    plain = ~t.str.contains(r"[^\x00-\x7f]", regex=True).fillna(False).astype(bool)
    t = t.mask(~plain, regex_replace(t, r"[.()]", " ")).mask(plain, regex_replace(t, r"(^|[^aeiouyAEIOUY(^+])\.", r"\1 "))
    t = t.str.replace(r" {2,}", " ", regex=True).str.strip()
    return s.mask(marked, t.mask(t == ""))


def _unknown_words(s: pd.Series, lexicon: frozenset[str]) -> pd.Series:
    """True where a name has a word (with diacritics) that no registered name uses."""
    words = split_words(s.str.lower())
    marked = words[words.str.contains(r"[^\x00-\x7f]", regex=True).to_numpy(dtype=bool)]
    distinct = pd.Series(marked.unique(), dtype=object)
    known = {w: tone_key(w) in lexicon for w in distinct}
    unknown = ~marked.map(known).astype(bool)
    out = pd.Series(False, index=s.index)
    out[out.index.isin(unknown.index[unknown.to_numpy()])] = True
    return out


def _capitalise(s: pd.Series) -> pd.Series:
    """Each word capitalised ('h'hen' -> "H'Hen", 'đặng' -> 'Đặng'), by Arrow's utf8_title."""
    return s.astype("string[pyarrow]").str.title()


def name_keys(full_name: pd.Series, rules: Rules | None = None) -> pd.DataFrame:
    """Keys for comparing and blocking canonical names.

    - `name_key`: lower case with each tone mark moved to the end of its word,
      so old and new tone placement compare equal;
    - `name_fold`: no diacritics ('nguyen van hung');
    - `family_fold`, `given_fold`, `middle_fold`; `family_variant` folds
      regional pairs (Huỳnh -> hoang, Võ -> vu).
    """
    rules = rules or default_rules()
    low = full_name.astype("string[pyarrow]").str.lower().str.normalize("NFD")
    key = regex_replace(low, f"([^ {TONE_MARKS}]*)([{TONE_MARKS}])([^ ]*)", r"\1\3\2")
    fold = fold_series(full_name)
    family = regex_replace(fold, r" .*$", "")
    given = regex_replace(fold, r"^.* ", "")
    middle = fold.str.replace(r"^[^ ]+ ?", "", regex=True).str.replace(r" ?[^ ]+$", "", regex=True)
    variants = {}
    for group in rules.family_variants:
        folded = [fold_series(pd.Series([g])).iloc[0] for g in group]
        for f in folded:
            variants[f] = folded[0]
    fam_var = family.map(variants).astype("string[pyarrow]").fillna(family)
    frame = pd.DataFrame({
        "name_key": key, "name_fold": fold, "family_fold": family, "middle_fold": middle,
        "given_fold": given, "family_variant": fam_var,
    })
    return frame.astype("string[pyarrow]")


def normalize_names(raw: pd.Series, rules: Rules | None = None, style: str = "old",
                    lexicon: frozenset[str] | None = None, source_file: pd.Series | None = None) -> pd.DataFrame:
    """Normalise a column of raw names: each distinct value once, mapped back.

    With `source_file`, a file whose names were mostly typed in one legacy
    font has that font applied to its remaining names too, where the result
    is valid Vietnamese: VNI 'Hoà' (= Hồ) is also valid Unicode on its own.
    """

    def run(distinct: pd.Series) -> pd.DataFrame:
        canon = canonical_names(distinct, rules, style, lexicon)
        return pd.concat([canon, name_keys(canon["full_name"], rules)], axis=1)

    out = by_distinct(raw, run)
    if source_file is None:
        return out
    redo = file_font_rows(raw, out["encoding"], source_file)
    if redo.empty:
        return out
    fixed = by_distinct(redo["text"], lambda d: run(d))
    fixed.index = redo.index
    keep = fixed["valid"] & fixed["full_name"].ne(out.loc[redo.index, "full_name"]).fillna(False)
    idx = keep.index[keep.to_numpy(dtype=bool)]
    out.loc[idx, fixed.columns] = fixed.loc[idx]
    out.loc[idx, "encoding"] = redo.loc[idx, "encoding"]
    return out


FILE_FONT_SHARE = 0.2


def file_font_rows(raw: pd.Series, encoding: pd.Series, source_file: pd.Series) -> pd.DataFrame:
    """Rows of legacy-font files that were read as Unicode, decoded with the file's font.

    A file counts as typed in a legacy font when at least FILE_FONT_SHARE of
    its names needed that font (TCVN3 or VNI) and no other font was used more.
    """
    frame = pd.DataFrame({"file": source_file.astype(str), "enc": encoding.fillna("none")})
    legacy = frame[frame["enc"].isin(["vni", "tcvn3"])]
    if legacy.empty:
        return pd.DataFrame(columns=["text", "encoding"])
    share = legacy.groupby("file")["enc"].agg(lambda e: e.value_counts().index[0])
    counts = legacy.groupby("file").size() / frame.groupby("file").size().reindex(legacy["file"].unique())
    fonts = share[counts >= FILE_FONT_SHARE]
    font = frame["file"].map(fonts)
    rows = font.notna() & (frame["enc"] == "unicode") & raw.str.contains(r"[^\x00-\x7f]", regex=True).fillna(False)
    if not rows.any():
        return pd.DataFrame(columns=["text", "encoding"])
    tables = decoders()
    pairs = pd.DataFrame({"raw": raw[rows].astype(str), "font": font[rows]})
    distinct = pairs.drop_duplicates()
    decoded = pd.Series([tables[f](t) for t, f in zip(distinct["raw"], distinct["font"], strict=True)],
                        index=pd.MultiIndex.from_frame(distinct), dtype="string[pyarrow]")
    text = decoded.reindex(pd.MultiIndex.from_frame(pairs)).to_numpy()
    return pd.DataFrame({"text": pd.Series(text, index=raw.index[rows.to_numpy()], dtype="string[pyarrow]"),
                         "encoding": font[rows]})
