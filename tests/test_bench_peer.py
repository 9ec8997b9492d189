"""`make bench-peer`: the page, the comparison points, the skip without PyTorch, the port itself."""

from __future__ import annotations

import math
import sys

import pytest

from charrnn.bench_peer import at_minute, main, peer_page, torch_curve


def test_each_minute_reads_the_last_validation_at_or_before_it():
    curve = [(30.0, 1000, 9.0), (60.0, 2000, 8.5), (95.0, 3000, 8.0)]
    assert at_minute(curve, 1) == (60.0, 2000, 8.5)
    assert at_minute(curve, 0.25) is None
    assert at_minute(curve, 10) == (95.0, 3000, 8.0)
    assert at_minute(curve, 1.5) == (60.0, 2000, 8.5)
    assert at_minute(curve, 1.5, budget=1.5) == (95.0, 3000, 8.0), "the final one, just past the budget"


def test_the_peer_page_is_written_from_the_json():
    result = {"corpus": "tangshi.txt", "vocab_size": 7354, "unigram_bpc": 9.5, "preset": "fast",
              "minutes": 10,
              "rows": [{"minutes": 1, "charrnn": (58.0, 640_000, 9.1), "torch": None},
                       {"minutes": 2, "charrnn": (119.0, 1_280_000, 8.4),
                        "torch": (118.0, 700_000, 8.6)}],
              "machine": {"cpus": 2}}
    page = peer_page(result)
    assert "| 1 | 640,000 chars, **9.100** | — |" in page
    assert "| 2 | 1,280,000 chars, **8.400** | 700,000 chars, **8.600** |" in page
    assert "unigram baseline 9.500" in page and "do not edit by hand" in page


def test_without_pytorch_the_benchmark_says_so_and_writes_nothing(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ImportError
    out = tmp_path / "peer.json"
    assert main(["--corpus", str(tmp_path / "any.txt"), "--out", str(out), "--docs", str(tmp_path)]) is None
    assert "bench-peer skipped: PyTorch is not installed" in capsys.readouterr().out
    assert not out.exists() and not (tmp_path / "peer.md").exists()


def test_the_pytorch_port_trains_for_its_budget_and_validates(tiny_text, tmp_path):
    pytest.importorskip("torch")
    from charrnn.data import prepare_data

    data = prepare_data(tiny_text, tmp_path / "data")
    recipe = {"seed": 0, "batch_size": 4, "n_steps": 20, "embedding_dim": 8, "units": 16, "n_layers": 2,
              "dropout": 0.1, "learning_rate": 5e-3, "weight_decay": 0.1, "clipnorm": 5.0}
    result = torch_curve(tmp_path / "data", recipe, minutes=0.05, marks=[0.02])
    (before, _, _), (seconds, chars, bpc) = result["curve"]  # just before the mark, and at the end
    assert before <= 0.02 * 60 < seconds and seconds >= 3.0 and chars % (4 * 20) == 0
    assert 0 < bpc < math.log2(data.tokenizer.vocab_size) + 1
