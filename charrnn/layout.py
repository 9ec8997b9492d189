"""Laying texts out for printing: generated samples side by side."""

from __future__ import annotations


def side_by_side(texts: dict[str, str], width: int = 36) -> str:
    """Texts in columns under their titles, wrapped at `width` (newlines shown as '⏎')."""
    columns = []
    for title, text in texts.items():
        flat = text.replace("\n", "⏎")
        lines = [flat[i : i + width] for i in range(0, len(flat), width)] or [""]
        columns.append([title[:width], "-" * min(width, max(len(title), 1)), *lines])
    height = max(len(column) for column in columns)
    rows = []
    for i in range(height):
        cells = [column[i] if i < len(column) else "" for column in columns]
        while len(cells) > 1 and not cells[-1]:  # no dangling separators after the longest text ends
            cells.pop()
        rows.append(" | ".join(cell.ljust(width) for cell in cells).rstrip())
    return "\n".join(rows)
