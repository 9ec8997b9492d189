"""charrnn.plots.char_frequency on large alphabets: CJK glyphs when a font has them, code points otherwise."""

from __future__ import annotations

import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from charrnn import plots  # noqa: E402
from charrnn.tokenizer import CharTokenizer  # noqa: E402

TEXT = "关关雎鸠，在河之洲。窈窕淑女，君子好逑。\n" * 3 + "Hello world \U00013000\u3000"  # + a hieroglyph


def tick_labels(figure):
    return [label.get_text() for label in figure.axes[0].get_xticklabels()]


def draw_without_glyph_warnings(tokenizer, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Glyph ... missing from font(s)" is a UserWarning
        figure = plots.char_frequency(tokenizer, tokenizer.encode(TEXT), path=tmp_path / "chars.png")
        figure.canvas.draw()
    assert (tmp_path / "chars.png").is_file()
    plt.close(figure)
    return figure


def test_cjk_characters_are_drawn_with_a_cjk_font(tmp_path):
    if plots.cjk_font_family() is None:
        pytest.skip("no CJK font installed (Debian: apt-get install fonts-noto-cjk)")
    figure = draw_without_glyph_warnings(CharTokenizer.fit(TEXT), tmp_path)
    labels = tick_labels(figure)
    assert "关" in labels and "，" in labels and "h" in labels and "\\n" in labels
    assert "U+13000" in labels  # no installed font draws Egyptian hieroglyphs
    assert "U+3000" in labels  # an ideographic space would draw as nothing


def test_without_a_cjk_font_characters_are_labelled_by_code_point(tmp_path, monkeypatch):
    monkeypatch.setattr(plots, "cjk_font_family", lambda: None)
    figure = draw_without_glyph_warnings(CharTokenizer.fit(TEXT), tmp_path)
    labels = tick_labels(figure)
    assert "U+5173" in labels and "关" not in labels  # 关
    assert "h" in labels


def test_a_large_alphabet_shows_its_most_frequent_characters():
    text = "".join(chr(0x4E00 + i) * (1 + i % 7) for i in range(500))
    tokenizer = CharTokenizer.fit(text)
    figure = plots.char_frequency(tokenizer, tokenizer.encode(text))
    assert len(tick_labels(figure)) == plots.TOP_CHARS
    assert "top 60 shown" in figure.axes[0].get_title()
    plt.close(figure)
    small = CharTokenizer.fit("hello world")
    figure = plots.char_frequency(small, small.encode("hello world"))
    assert len(tick_labels(figure)) == small.vocab_size
    plt.close(figure)
