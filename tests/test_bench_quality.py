"""The plumbing of `make bench-quality` on a seconds-long budget (the real budgets are minutes)."""

from __future__ import annotations

import json

import pytest

from charrnn.bench_quality import main


def test_bench_quality_trains_each_preset_for_its_budget_and_writes_the_table(tmp_path, capsys):
    out = tmp_path / "quality.json"
    result = main(["--presets", "seed", "--budgets", "0.05", "--max-chars", "40000", "--out", str(out)])
    [row] = json.loads(out.read_text())["rows"]
    assert row == result["rows"][0]
    assert row["preset"] == "seed" and row["budget_minutes"] == 0.05
    assert 0.05 <= row["minutes"] < 0.05 + 0.5, "stopped by the budget, plus one validation pass"
    assert row["val_bpc"] > 0 and row["best_val_loss"] <= row["val_loss"]
    assert "cpus" in json.loads(out.read_text())["machine"]
    assert "bits/char" in capsys.readouterr().out


def test_an_unknown_preset_fails_before_any_training(tmp_path):
    with pytest.raises(FileNotFoundError, match="No preset"):
        main(["--presets", "warp", "--out", str(tmp_path / "q.json")])
