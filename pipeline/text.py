"""Small text primitives shared by every stage: folding and Vietnamese letters."""

from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import pyarrow as pa

# Vietnamese tone marks (combining) and vowel-quality marks.
TONE_MARKS = "\u0300\u0301\u0303\u0309\u0323"
QUALITY_MARKS = "\u0302\u0306\u031b"
_NON_ALNUM = re.compile(r"[^0-9a-z]+")
# Python's \s as an explicit class (the characters str.isspace() accepts). Patterns handed to
# pandas' Arrow strings must avoid \s and, on non-ASCII text, \d: either one makes pandas run
# Python's `re` value by value instead of Arrow's RE2 kernel. Use this and [0-9] instead.
WHITESPACE = "[\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
_D_MAP = str.maketrans({"đ": "d", "Đ": "D", "Ð": "D", "ð": "d"})


def strip_marks(text: str) -> str:
    """Remove every diacritic, mapping Đ/đ (and Ð) to D/d."""
    decomposed = unicodedata.normalize("NFD", text.translate(_D_MAP))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def fold_key(text: str) -> str:
    """Compare key: no case, diacritics, spacing or punctuation."""
    return _NON_ALNUM.sub("", strip_marks(text).lower())


def fold_words(text: str) -> tuple[str, ...]:
    """The words of `fold_key`'s folding, kept apart: 'Vắc xin Pfizer-BioNTech' -> ('vac', 'xin',
    'pfizer', 'biontech')."""
    return tuple(w for w in _NON_ALNUM.split(strip_marks(text).lower()) if w)


def fold_series(values: pd.Series) -> pd.Series:
    """Vectorised diacritic removal keeping spaces: 'Nguyễn Văn' -> 'nguyen van'."""
    s = values.astype("string[pyarrow]").str.lower()
    s = s.str.replace("đ", "d", regex=False).str.replace("ð", "d", regex=False)
    # The pattern holds the marks themselves, not "\\u" escapes: pandas sends a pattern with
    # escapes to Python's `re`, one value at a time, instead of Arrow's RE2 kernel.
    s = s.str.normalize("NFD").str.replace("[\u0300-\u036f]", "", regex=True)
    return s


def arrow_text(values: pd.Series) -> pa.Array:
    """A column's text as one contiguous Arrow string array, nulls kept."""
    import pyarrow as pa

    if not len(values):
        return pa.array([], pa.string())
    arr = pa.array(values.astype("string[pyarrow]").array, type=pa.string())
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def regex_replace(values: pd.Series, pattern: str, replacement: str) -> pd.Series:
    """Regex replacement with backreferences (\\1) in Arrow's RE2 kernel, not a Python loop."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = pa.array(values.astype("string[pyarrow]").array)
    out = pc.replace_substring_regex(arr, pattern=pattern, replacement=replacement)
    return pd.Series(pd.array(out, dtype="string[pyarrow]"), index=values.index)


def take_text(values: pd.Series | pd.Index, positions: np.ndarray, index: pd.Index | None = None) -> pd.Series:
    """`values` at `positions` as Arrow text (null where a position is negative), taken by Arrow
    with a null mask, with no Python object per value."""
    import pyarrow as pa

    positions = np.asarray(positions)
    arr = pa.array(values.astype("string[pyarrow]").array)
    taken = arr.take(pa.array(positions, mask=positions < 0)) if len(arr) else pa.nulls(len(positions), pa.string())
    return pd.Series(pd.array(taken, dtype="string[pyarrow]"),
                     index=index if index is not None else pd.RangeIndex(len(positions)))


def _utf8_bytes(values: pd.Series) -> np.ndarray:
    """The bytes of a column's text (uint8, no copy), to test cheaply whether a byte occurs."""
    arr = arrow_text(values)
    data = arr.buffers()[2] if len(arr) else None
    return np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)


# Invisible characters that copied text carries: the zero-width space separates words; the
# zero-width (non-)joiners, the word joiner and a byte-order mark inside a cell separate nothing.
# None of them is a cp1252 or Latin-1 character, so no legacy-font text loses a byte.
_INVISIBLE = "[\u200b\u200c\u200d\u2060\ufeff]"


def strip_invisible(values: pd.Series) -> pd.Series:
    """Zero-width spaces as spaces, the other invisible characters removed (unchanged, and no
    copy, where a column has none)."""
    # Each of them is three UTF-8 bytes led by 0xE2 or 0xEF: a column without either byte (most
    # of them) is returned after one scan of its bytes, with no regular expression.
    raw = _utf8_bytes(values)
    if not ((raw == 0xE2).any() or (raw == 0xEF).any()):
        return values
    return regex_replace(regex_replace(values, "\u200b", " "), _INVISIBLE, "")


def fold_fullwidth(values: pd.Series) -> pd.Series:
    """Full-width forms ('０７９２０３', '１４／０７／２００３', typed with an East Asian input method)
    as their ASCII characters, by NFKC on the values that hold one. For fields of digits and
    signs only: NFKC would also change legacy-font names ('µ' to 'μ'). Unchanged, and no copy,
    where a column has no 0xEF byte (every full-width form is led by one)."""
    import pyarrow.compute as pc

    if not (_utf8_bytes(values) == 0xEF).any():
        return values
    arr = arrow_text(values)
    hit = pc.fill_null(pc.match_substring_regex(arr, "[\uff01-\uff5e]"), False)
    folded = pc.if_else(hit, pc.utf8_normalize(arr, "NFKC"), arr)
    return pd.Series(pd.array(folded, dtype="string[pyarrow]"), index=values.index)


def unwrap_excel_text(values: pd.Series) -> pd.Series:
    """`="079085001234"` -> `079085001234`: the formula that CSV exports write so that Excel keeps
    a number's leading zeros (a doubled quote inside stands for one). Unchanged, and no copy,
    where a column has no '='."""
    if not (_utf8_bytes(values) == ord("=")).any():
        return values
    unwrapped = regex_replace(values, r'^\s*=\s*"((?:[^"]|"")*)"\s*$', r"\1")
    changed = unwrapped.ne(values).fillna(False)
    return unwrapped.where(~changed, unwrapped.str.replace('""', '"', regex=False))


def squeeze_spaces(values: pd.Series) -> pd.Series:
    """Words joined by single spaces, no white space around: `" ".join(v.split())` by Arrow."""
    return regex_replace(regex_replace(values, f"^{WHITESPACE}+|{WHITESPACE}+$", ""), f"{WHITESPACE}+", " ")


def split_words(values: pd.Series, sep: str = " ") -> pd.Series:
    """Every non-empty word of every string, indexed by its string's label (Arrow split, no Python loop).

    Equivalent to `values.str.split(sep).explode()` without the nulls and empty words.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = pa.array(values.astype("string[pyarrow]").array)
    lists = pc.split_pattern(arr, pattern=sep)
    words = pc.list_flatten(lists)
    parents = pc.list_parent_indices(lists).to_numpy()
    keep = pc.not_equal(words, "").to_numpy(zero_copy_only=False)
    labels = values.index.to_numpy()[parents[keep]] if len(parents) else np.array([], dtype=values.index.dtype)
    return pd.Series(pd.array(words.filter(pa.array(keep)), dtype="string[pyarrow]"), index=labels)


def extract(values: pd.Series, pattern: str) -> pd.DataFrame:
    """`values.str.extract(pattern)` in Arrow's RE2 kernel, not Python's `re` value by value.

    `pattern` names its groups (`(?P<day>...)`, as Arrow requires); the columns are 0, 1, ... in
    their order, Arrow text, null where the value is null or does not match. A group that took
    no part in the match is null, as pandas gives it; Arrow gives "" for it, so every group must
    capture at least one character when it does take part (tests compare with pandas). Anchors
    behave as in RE2: `$` is the end of the text only (Python's also matches before a final
    newline), so values are stripped first."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = arrow_text(values)
    compiled = re.compile(pattern)
    names = compiled.groupindex
    if not names or len(names) != compiled.groups:
        raise ValueError(f"every group of {pattern!r} must be named")
    matched = pc.extract_regex(arr, pattern=pattern)
    columns = {}
    for k, name in enumerate(sorted(names, key=names.__getitem__)):
        field = pc.struct_field(matched, name)
        field = pc.if_else(pc.equal(field, ""), pa.scalar(None, pa.string()), field)
        columns[k] = pd.Series(pd.array(field, dtype="string[pyarrow]"), index=values.index)
    return pd.DataFrame(columns, index=values.index)


_FNV_PRIME = np.uint64(1099511628211)


def text_hashes(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A 64-bit hash of each value's UTF-8 bytes (uint64; null and empty text hash to 0): the same
    text gives the same hash in any array, process or run.

    By numpy over Arrow's buffers, no Python object per value: each byte weighted by a power of a
    prime by its distance from its value's end, summed per value, then mixed (the finaliser of
    MurmurHash3) so that its low bits spread as well as its high ones.
    """
    import pyarrow as pa

    arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    arr = arr.cast(pa.large_binary())
    n = len(arr)
    if n == 0:
        return np.zeros(0, np.uint64)
    _, offset_buffer, data_buffer = arr.buffers()
    offsets = np.frombuffer(offset_buffer, dtype=np.int64)[arr.offset:arr.offset + n + 1]
    data = (np.frombuffer(data_buffer, dtype=np.uint8)[offsets[0]:offsets[-1]] if data_buffer is not None
            else np.zeros(0, np.uint8))
    lengths = np.diff(offsets)    # a null's is 0
    starts = offsets[:-1] - offsets[0]
    longest = int(lengths.max(initial=0))
    powers = np.cumprod(np.r_[np.uint64(1), np.full(max(longest - 1, 0), _FNV_PRIME, np.uint64)], dtype=np.uint64)
    back = np.repeat(starts + lengths, lengths) - 1 - np.arange(len(data))   # each byte's distance from the end
    h = np.zeros(n, np.uint64)
    some = lengths > 0
    if some.any():
        h[some] = np.add.reduceat((data.astype(np.uint64) + np.uint64(1)) * powers[back], starts[some])
    h ^= lengths.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    for multiplier in (np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53)):
        h ^= h >> np.uint64(33)
        h *= multiplier
    h ^= h >> np.uint64(33)
    return h
