"""The plumbing of `make bench-quality` on a seconds-long budget (the real budgets are minutes)."""

from __future__ import annotations

import json

import pytest

from charrnn.bench_docs import replace_block
from charrnn.bench_quality import main, merge_rows


def test_bench_quality_trains_each_preset_for_its_budget_and_writes_the_table(tmp_path, capsys):
    out, docs = tmp_path / "quality.json", tmp_path / "docs"
    docs.mkdir()
    readme = "# x\n<!-- quality: begin (by make) -->\nold\n<!-- quality: end -->\ntail\n"
    (tmp_path / "README.md").write_text(readme)
    result = main(["--presets", "geron", "--cells", "rnn", "--budgets", "0.05", "--max-chars", "40000",
                   "--out", str(out), "--docs", str(docs)])
    [row] = json.loads(out.read_text())["rows"]
    assert row == result["rows"][0]
    assert (row["preset"], row["cell"], row["budget_minutes"]) == ("geron", "rnn", 0.05)
    assert row["run"].endswith("geron-lower-0.05min-rnn")
    assert 0.05 <= row["minutes"] < 0.05 + 0.5, "stopped by the budget, plus one validation pass"
    assert row["val_bpc"] > 0 and row["best_val_loss"] <= row["val_loss"]
    assert "cpus" in json.loads(out.read_text())["machine"]
    assert "bits/char" in capsys.readouterr().out
    page = (docs / "quality.md").read_text()
    assert f"{row['val_loss']:.4f}" in page and "quality-vs-minutes.png" in page
    assert (docs / "quality-vs-minutes.png").stat().st_size > 0
    readme = (tmp_path / "README.md").read_text()
    assert "old" not in readme and f"{row['val_bpc']:.3f}" in readme and readme.endswith("end -->\ntail\n")


def test_the_readme_block_needs_its_markers(tmp_path):
    (tmp_path / "README.md").write_text("no markers\n")
    with pytest.raises(ValueError, match="quality: begin"):
        replace_block(tmp_path / "README.md", "quality", "table")


def test_an_unknown_preset_fails_before_any_training(tmp_path):
    with pytest.raises(SystemExit, match="Unknown preset .warp.: the presets are"):
        main(["--presets", "warp", "--out", str(tmp_path / "q.json")])


def test_a_constant_rate_preset_trains_once_and_reads_the_smaller_budget_from_its_history(tmp_path):
    out = tmp_path / "quality.json"
    short, long = main(["--presets", "geron", "--budgets", "0.5", "0.25", "--max-chars", "40000",
                        "--out", str(out), "--docs", str(tmp_path)])["rows"]
    assert short["run"] == long["run"], "one run for both budgets"
    assert "read_from" in short and "read_from" not in long
    assert short["minutes"] <= 0.25 < long["minutes"] and short["epochs"] < long["epochs"]


def test_a_new_measurement_replaces_only_its_own_rows():
    old = [{"preset": "geron", "data": "lower", "budget_minutes": 10, "val_loss": 1.6},
           {"preset": "fast", "data": "lower", "budget_minutes": 10, "val_loss": 1.5}]
    new = [{"preset": "fast", "data": "lower", "budget_minutes": 10, "val_loss": 1.4}]
    assert merge_rows(old, new) == [old[0], new[0]]


def test_another_corpus_gets_rows_of_its_name_and_a_sample_from_its_own_characters(tmp_path):
    corpus = tmp_path / "poems.txt"
    corpus.write_text("关关雎鸠，在河之洲。\n窈窕淑女，君子好逑。\n" * 1600, encoding="utf-8")
    (tmp_path / "docs").mkdir()
    result = main(["--presets", "geron", "--cells", "rnn", "--budgets", "0.02", "--corpus", str(corpus),
                   "--out", str(tmp_path / "quality.json"), "--docs", str(tmp_path / "docs")])
    [row] = result["rows"]
    assert row["data"] == "poems-lower" and row["unigram_bpc"] > 0
    assert row["sample"] and set(row["sample"]) <= set("关雎鸠，在河之洲。窈窕淑女君子好逑\n")
