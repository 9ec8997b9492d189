"""The benchmark helpers (figures themselves are printed by `python -m charrnn.bench`, not asserted)."""

from __future__ import annotations

from charrnn.bench import compare_speed
from charrnn.generate import Generator
from charrnn.model import build_model


def test_compare_speed_reports_both_methods(tiny_data):
    tokenizer = tiny_data.tokenizer
    generator = Generator(build_model(tokenizer.vocab_size, units=8, n_layers=1), tokenizer)
    comparison = compare_speed(generator, "the ", 10, repeats=1)
    assert comparison.n_chars == 10
    assert comparison.fast_chars_per_second > 0 and comparison.reference_chars_per_second > 0
    assert "complete_text" in str(comparison) and "Generator" in str(comparison)
