"""Texts laid out for printing."""

from __future__ import annotations

from charrnn.layout import side_by_side


def test_side_by_side_puts_texts_in_columns():
    printed = side_by_side({"cold": "aaaa\nbbbb", "hot": "xyz"}, width=4)
    lines = printed.splitlines()
    assert lines[0].split(" | ") == ["cold", "hot"]
    assert lines[2] == "aaaa | xyz" and lines[3] == "⏎bbb" and lines[4] == "b"
