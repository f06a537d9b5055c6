"""Find the header row and map header texts to canonical columns."""

from __future__ import annotations

import re
from collections.abc import Sequence

from pipeline.rules import Rules
from pipeline.text import fold_key, fold_words

# What templates write next to a column's name: a format or unit in brackets, a star marking a
# required column ("Ngày sinh (dd/mm/yyyy)", "Họ và tên (*)", "Số CMND/CCCD [bắt buộc]").
_ANNOTATION = re.compile(r"\([^()]*\)|\[[^\[\]]*\]|\*")
# Words of an annotation that make the column someone else's: "Số CCCD (người giám hộ)",
# "Họ tên (cha/mẹ)" on a child's row are not the vaccinated person's ID or name.
_OTHER_PERSON = frozenset({"giam", "cha", "me", "bo", "than", "vo", "chong"})


def header_name(cell: object, rules: Rules) -> str | None:
    """The canonical column a header cell names: its text as a known alias, else the text without
    bracketed annotations and stars, unless an annotation says the column is another person's."""
    text = str(cell)
    canonical = rules.header_aliases.get(fold_key(text))
    if canonical is None and _ANNOTATION.search(text):
        notes = {w for part in _ANNOTATION.findall(text) for w in fold_words(part)}
        if not notes & _OTHER_PERSON:
            canonical = rules.header_aliases.get(fold_key(_ANNOTATION.sub(" ", text)))
    return canonical


def map_header(cells: Sequence[object], rules: Rules) -> dict[int, str]:
    """Column index -> canonical name for the cells of one candidate header row.

    When two columns map to one canonical name, the first keeps it (the
    others are read as ignored columns).
    """
    found: dict[int, str] = {}
    taken: set[str] = set()
    for i, cell in enumerate(cells):
        if cell is None:
            continue
        canonical = header_name(cell, rules)
        if canonical and canonical not in taken:
            found[i] = canonical
            taken.add(canonical)
    return found


def find_header(rows: Sequence[Sequence[object]], rules: Rules,
                ) -> tuple[int, dict[int, str], list[object]] | None:
    """(row offset, column map, header cells) of the first row naming enough known columns, or of
    the row under it where the two make one header (`_with_sub_header`)."""
    for offset, row in enumerate(rows[: rules.header_search_rows]):
        mapping = map_header(row, rules)
        if len(mapping) >= rules.min_known_columns:
            return _with_sub_header(rows, offset, mapping, rules)
    return None


def _blank(cell: object) -> bool:
    return cell is None or str(cell).strip() == ""


def _with_sub_header(rows: Sequence[Sequence[object]], offset: int, mapping: dict[int, str], rules: Rules,
                     ) -> tuple[int, dict[int, str], list[object]]:
    """A header over two rows: 'Họ và tên' and 'Ngày sinh' in the first (or merged down over both),
    'Ngày tiêm' and 'Tên vắc xin' in the second under a group title ('Thông tin tiêm'). The second
    row is part of the header when it is blank (or repeats the cell above) under every column the
    first names, and names more columns with it than the first does alone; the header cells are
    then the second row's, the first's where the second is blank."""
    cells = list(rows[offset])
    if offset + 1 >= len(rows):
        return offset, mapping, cells
    below = list(rows[offset + 1])
    if any(i < len(below) and not _blank(below[i]) and below[i] != cells[i] for i in mapping):
        return offset, mapping, cells          # a data row
    combined = [below[i] if i < len(below) and not _blank(below[i]) else (cells[i] if i < len(cells) else None)
                for i in range(max(len(cells), len(below)))]
    joined = map_header(combined, rules)
    if len(joined) <= len(mapping):
        return offset, mapping, cells
    return offset + 1, joined, combined
