"""Laying texts out for printing: generated samples side by side.

Widths are display columns, as a terminal or a notebook's monospaced output shows them: East Asian
wide and fullwidth characters (Chinese, Japanese kana, fullwidth punctuation) take two columns,
combining marks none, everything else one (ambiguous-width characters count as one, as most
Western terminals draw them).
"""

from __future__ import annotations

import unicodedata

NEWLINE_MARK = "⏎"  # newlines are shown, not obeyed, so a column stays one block


def char_width(char: str) -> int:
    """Display columns of one code point: 2 for wide/fullwidth, 0 for combining marks, else 1."""
    if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me"):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def display_width(text: str) -> int:
    return sum(char_width(char) for char in text)


def wrap(text: str, width: int) -> list[str]:
    """`text` in lines of at most `width` columns; a wide character that would straddle the edge
    starts the next line, and a combining mark stays with the character before it."""
    lines, line, used = [], [], 0
    for char in text:
        columns = char_width(char)
        if columns and used + columns > width:
            lines.append("".join(line))
            line, used = [], 0
        line.append(char)
        used += columns
    if line or not lines:
        lines.append("".join(line))
    return lines


def pad(text: str, width: int) -> str:
    """`text` followed by spaces up to `width` display columns."""
    return text + " " * max(0, width - display_width(text))


def side_by_side(texts: dict[str, str], width: int = 36) -> str:
    """Texts in columns under their titles, wrapped at `width` display columns (newlines shown as '⏎')."""
    if width < 2:
        raise ValueError(f"width must be at least 2 display columns (a Chinese character takes 2), "
                         f"got {width}.")
    columns = []
    for title, text in texts.items():
        title = wrap(title, width)[0]  # a long title is cut at the column's edge
        lines = wrap(text.replace("\n", NEWLINE_MARK), width)
        columns.append([title, "-" * min(width, max(display_width(title), 1)), *lines])
    height = max((len(column) for column in columns), default=0)
    rows = []
    for i in range(height):
        cells = [column[i] if i < len(column) else "" for column in columns]
        while len(cells) > 1 and not cells[-1]:  # no dangling separators after the longest text ends
            cells.pop()
        rows.append(" | ".join(pad(cell, width) for cell in cells).rstrip())
    return "\n".join(rows)
