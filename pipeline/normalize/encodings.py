"""Legacy Vietnamese encodings: detect and repair text typed in old fonts.

Text typed in the TCVN3 (ABC) or VNI fonts, or saved as Windows-1258 or UTF-8
and read back as Windows-1252, arrives as Latin-1 look-alike characters. Each
converter maps such text back to Unicode; `rules/legacy_charsets.csv` is the
table of all 134 Vietnamese letters in each encoding.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from pipeline.rules import Rules, default_rules


@dataclass(frozen=True)
class _Trie:
    """Longest-match converter from one encoding's strings to Unicode (one compiled regex)."""

    table: dict[str, str]
    pattern: re.Pattern[str]

    def convert(self, text: str) -> str:
        return self.pattern.sub(lambda m: self.table[m.group(0)], text)


def _make_trie(pairs: dict[str, str]) -> _Trie:
    keys = sorted(pairs, key=len, reverse=True)  # regex alternation tries the longest first
    return _Trie(pairs, re.compile("|".join(re.escape(k) for k in keys)))


@lru_cache(maxsize=2)
def legacy_tables(rules: Rules | None = None) -> dict[str, _Trie]:
    """Decoders from each legacy encoding (as Windows-1252 text) to Unicode."""
    rules = rules or default_rules()
    tables: dict[str, _Trie] = {}
    for enc in ("vni", "tcvn3", "viqr"):
        pairs = {row[enc]: row["unicode"] for row in rules.legacy_charsets}
        if enc == "tcvn3":
            # The capitals font (.VnTimeH) reused the lower-case codes for the
            # capital letters, so case is lost; plain ASCII letters pass through.
            pairs = {k: v for k, v in pairs.items()}
        tables[enc] = _make_trie(pairs)
    return tables


@lru_cache(maxsize=2)
def legacy_encoders(rules: Rules | None = None) -> dict[str, dict[str, str]]:
    """Encoders from each Unicode letter to its legacy representation."""
    rules = rules or default_rules()
    return {enc: {row["unicode"]: row[enc] for row in rules.legacy_charsets} for enc in ("vni", "tcvn3", "viqr")}


def encode_legacy(text: str, encoding: str, rules: Rules | None = None) -> str:
    """Write Unicode text as it looks when typed in a legacy font (for tests and synthetic data)."""
    enc = legacy_encoders(rules)[encoding]
    return "".join(enc.get(ch, ch) for ch in unicodedata.normalize("NFC", text))


def _cp1252_bytes(word: str) -> bytes | None:
    """The bytes a Windows-1252 reader turned into `word`, or None if it was not that."""
    out = bytearray()
    for ch in word.replace("Đ", "Ð").replace("đ", "ð"):  # undo the Eth repair done before detection
        try:
            out += ch.encode("cp1252")
        except UnicodeEncodeError:
            if ord(ch) > 255:
                return None
            out.append(ord(ch))  # the five bytes cp1252 leaves undefined pass as Latin-1
    return bytes(out)


def _redecode(text: str, codec: str) -> str | None:
    """Re-read each word's Windows-1252 bytes with `codec`; words that fail stay as they are."""
    changed = False
    words = []
    for word in text.split(" "):
        raw = _cp1252_bytes(word)
        try:
            fixed = raw.decode(codec) if raw is not None else word
        except UnicodeDecodeError:
            fixed = word
            if raw is not None and codec == "utf-8" and raw.endswith(b"\xc3"):
                # 'à' is C3 A0 in UTF-8: read as cp1252 its second byte is a no-break
                # space, which spreadsheets and trimming drop at the end of a cell.
                try:
                    fixed = (raw + b"\xa0").decode(codec)
                except UnicodeDecodeError:
                    fixed = word
        changed |= fixed != word
        words.append(fixed)
    return unicodedata.normalize("NFC", " ".join(words)) if changed else None


def from_utf8_mojibake(text: str) -> str | None:
    """'Nguyá»…n' -> 'Nguyễn' (UTF-8 bytes read as Windows-1252)."""
    return _redecode(text, "utf-8")


def from_cp1258_mojibake(text: str) -> str | None:
    """'NguyêÞn' -> 'Nguyễn' (Windows-1258 bytes read as Windows-1252)."""
    return _redecode(text, "cp1258")


def decoders(rules: Rules | None = None) -> dict[str, Callable[[str], str | None]]:
    """Every repair to try on a name that is not valid Vietnamese as it stands, most specific first."""
    tables = legacy_tables(rules)
    return {
        "utf8-as-cp1252": from_utf8_mojibake,
        "cp1258-as-cp1252": from_cp1258_mojibake,
        "vni": tables["vni"].convert,
        "tcvn3": tables["tcvn3"].convert,
        "viqr": tables["viqr"].convert,
    }
