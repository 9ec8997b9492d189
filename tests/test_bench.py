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


def test_the_benchmark_page_is_written_from_the_json(tmp_path):
    from charrnn.bench_docs import benchmarks_page, write_page

    result = {"rows": [{"name": "generation, 1 stream", "unit": "chars/s", "ours": 1234.5, "reference": 10.0,
                        "ratio": 123.45}], "quick": False, "environment": {"tensorflow": "2.21.0", "cpus": 2}}
    page = write_page("benchmarks.md", benchmarks_page(result), tmp_path).read_text()
    assert "| generation, 1 stream | chars/s | 1,234.5 | 10.0 | 123.45x |" in page
    assert "tensorflow 2.21.0" in page and "do not edit by hand" in page
