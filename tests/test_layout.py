"""Texts laid out for printing."""

from __future__ import annotations

import pytest

from charrnn.layout import display_width, side_by_side, wrap


def test_side_by_side_puts_texts_in_columns():
    printed = side_by_side({"cold": "aaaa\nbbbb", "hot": "xyz"}, width=4)
    lines = printed.splitlines()
    assert lines[0].split(" | ") == ["cold", "hot"]
    assert lines[2] == "aaaa | xyz" and lines[3] == "⏎bbb" and lines[4] == "b"


def _cells(printed: str) -> list[list[str]]:
    return [line.split(" | ") for line in printed.splitlines()]


def test_display_widths():
    assert display_width("abc") == 3
    assert display_width("關關雎鳩") == 8
    assert display_width("，（") == 4  # fullwidth punctuation
    assert display_width("e\u0301") == 1  # a combining acute accent takes no column
    assert display_width("") == 0


def test_mixed_chinese_and_ascii_columns_align():
    texts = {"詩經": "關關雎鳩，在河之洲。\n窈窕淑女，君子好逑。", "english": "the quick brown fox",
             "混合": "ab中文cd字e"}
    width = 7
    printed = side_by_side(texts, width=width)
    for cells in _cells(printed):
        # every cell but a row's last is padded to exactly `width` columns, so separators line up
        assert all(display_width(cell) == width for cell in cells[:-1])
        assert display_width(cells[-1]) <= width
    assert max(display_width(line) for line in printed.splitlines()) == 3 * width + 2 * 3


def test_wrapping_keeps_every_character_in_order_and_never_splits_a_wide_one():
    text = "ab中文字x\n關關雎鳩é"
    for width in (2, 3, 4, 5, 9):
        lines = wrap(text.replace("\n", "⏎"), width)
        assert "".join(lines) == text.replace("\n", "⏎")
        assert all(display_width(line) <= width for line in lines)
    assert wrap("ab中文", 3) == ["ab", "中", "文"]  # 中 would straddle columns 3 and 4
    assert wrap("e\u0301e\u0301", 1) == ["e\u0301", "e\u0301"]  # the accent stays with its letter
    column = [cells[0] for cells in _cells(side_by_side({"t": text, "u": "x"}, width=5))[2:]]
    assert "".join(cell.rstrip() for cell in column) == text.replace("\n", "⏎")
    assert column[0] == "ab中 "  # 文 does not fit in the last column: a space pads it


def test_chinese_titles_are_underlined_and_cut_by_display_width():
    texts = {"溫度 0.5": "春眠不覺曉", "溫度一點零很長的標題": "處處聞啼鳥"}
    lines = side_by_side(texts, width=8).splitlines()
    first, second = lines[0].split(" | ")
    assert first == "溫度 0.5" and second == "溫度一點"  # cut at 8 columns, not 8 characters
    assert lines[1].split(" | ") == ["-" * 8, "-" * 8]
    assert lines[2] == "春眠不覺 | 處處聞啼"


def test_too_narrow_columns_are_refused():
    with pytest.raises(ValueError, match="width"):
        side_by_side({"a": "中"}, width=1)
