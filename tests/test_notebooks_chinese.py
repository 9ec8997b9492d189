"""Notebooks 01 -> 03 -> 04 -> 05 on the Chinese test corpus (shijing.txt, 2,798 distinct characters)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from notebook_runner import execute, printed
from test_notebooks import check_inspected

SHIJING_PARAMS = yaml.safe_load((Path(__file__).with_name("notebooks_shijing.yaml")).read_text())


@pytest.fixture(scope="module")
def shijing_outputs(tmp_path_factory, shijing_path):
    return tmp_path_factory.mktemp("outputs-shijing")


@pytest.mark.notebook
@pytest.mark.parametrize("name", sorted(SHIJING_PARAMS))
def test_notebook_runs_on_chinese(name, shijing_outputs, shijing_path):
    executed = execute(name, SHIJING_PARAMS[name], shijing_outputs, corpus=shijing_path)
    text = printed(executed)
    assert "missing from font" not in text and "Glyph" not in text, "a character was drawn as an empty box"
    if name.startswith("01"):
        meta = json.loads((shijing_outputs / "data" / "shijing" / "meta.json").read_text())
        assert meta["vocab_size"] == 2798 and meta["corpus_chars"] == 39569
        assert (shijing_outputs / "data" / "shijing" / "char_frequency.png").is_file()
        assert "Embedding(64)" in text  # embedding_dim="auto" chose an Embedding for 2,798 characters
    elif name.startswith("03"):
        assert "unigram" in text
        samples = (shijing_outputs / "runs" / "stateful-shijing" / "samples.txt").read_text(encoding="utf-8")
        assert any("\u4e00" <= char <= "\u9fff" for char in samples), "no Chinese character in the samples"
    elif name.startswith("05"):
        run_folder = shijing_outputs / "runs" / "stateful-shijing"
        check_inspected(run_folder)
        units = (run_folder / "inspect" / "units.html").read_text(encoding="utf-8")
        assert any("\u4e00" <= char <= "\u9fff" for char in units), "no Chinese character in the unit view"
    else:
        samples = (shijing_outputs / "runs" / "stateful-shijing" / "samples_generate.txt").read_text(
            encoding="utf-8")
        assert sum("\u4e00" <= char <= "\u9fff" for char in samples) > 100
