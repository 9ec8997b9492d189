"""Every notebook runs headlessly through papermill on tiny parameters: the integration tests.

The notebooks run in name order on one temporary outputs folder (01 prepares the data that 02
and 03 train on; 04 generates from 03's run, 05 inspects it). Executed copies are kept in that folder.
tests/test_notebooks_chinese.py runs 01 -> 03 -> 04 -> 05 again on shijing.txt.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from notebook_runner import NOTEBOOK_DIR, TIMEOUT_PER_CELL, execute

PARAMS = yaml.safe_load((Path(__file__).with_name("notebooks.yaml")).read_text())
SHIJING_PARAMS = yaml.safe_load((Path(__file__).with_name("notebooks_shijing.yaml")).read_text())
NOTEBOOKS = sorted(path.name for path in NOTEBOOK_DIR.glob("*.ipynb"))


def code_cells(name):
    notebook = json.loads((NOTEBOOK_DIR / name).read_text())
    return [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]


def test_every_notebook_has_tiny_parameters():
    missing = sorted(set(NOTEBOOKS) - set(PARAMS))
    assert not missing, f"add tiny parameters for {missing} to tests/notebooks.yaml"
    assert not sorted(set(PARAMS) - set(NOTEBOOKS)), "tests/notebooks.yaml names notebooks that do not exist"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_thin_and_clean(name):
    cells = code_cells(name)
    tags = cells[0].get("metadata", {}).get("tags", [])
    assert "parameters" in tags, "the first code cell must be tagged 'parameters'"
    sources = ["".join(cell["source"]) for cell in cells]
    lines = [line.lstrip() for src in sources for line in src.splitlines()]
    defs = [line for line in lines if line.startswith(("def ", "class "))]
    assert not defs, f"move functions and classes into charrnn/: {defs}"
    assert not any(cell.get("outputs") for cell in cells), "commit notebooks without outputs"
    parameters_source = sources[0]
    defined = {line.split("=")[0].strip() for line in parameters_source.splitlines() if "=" in line}
    for file, params in (("notebooks.yaml", PARAMS), ("notebooks_shijing.yaml", SHIJING_PARAMS)):
        unknown = [key for key in params.get(name, {}) if key not in defined]
        assert not unknown, f"tests/{file} sets {unknown}, which the parameters cell does not define"


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    return tmp_path_factory.mktemp("outputs")


@pytest.mark.notebook
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs(name, outputs):
    execute(name, PARAMS[name], outputs)
    EXPECTED_FILES[name](outputs)


def _prepared(outputs):
    folder = outputs / "data" / "tiny"
    assert {"tokenizer.json", "train.npy", "val.npy", "meta.json", "char_frequency.png"} <= _names(folder)
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["corpus_chars"] == 40000 and meta["train_chars"] == 36000


def _run(folder_name, extra=()):
    def check(outputs):
        folder = outputs / "runs" / folder_name
        expected = {"config.json", "environment.json", "tokenizer.json", "history.csv", "model.keras",
                    "best.keras", "loss_curves.png", "samples.txt", *extra}
        assert expected <= _names(folder)
        assert not (folder / "checkpoints").exists()
    return check


def _generated(outputs):
    folder = outputs / "runs" / "stateful-tiny"
    assert any(name.startswith("samples") and name != "samples.txt" for name in _names(folder))


def _inspected(outputs):
    check_inspected(outputs / "runs" / "stateful-tiny")


def check_inspected(run_folder):
    """Notebook 05 saved every view in <run>/inspect/, and its summary holds the figures."""
    folder = Path(run_folder) / "inspect"
    assert INSPECT_FILES <= _names(folder)
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    assert summary["best_units"] and all(-1 <= row["r"] <= 1 for row in summary["best_units"])
    assert sorted(map(int, summary["ngram"]["curve"])) == [1, 2, 3, 4]
    assert "<span" in (folder / "surprisal.html").read_text(encoding="utf-8")


INSPECT_FILES = {"surprisal.html", "surprisal.png", "units.html", "units.png", "gates.png", "ngram.png",
                 "summary.json"}


def _names(folder):
    return {path.name for path in Path(folder).iterdir()}


EXPECTED_FILES = {
    "01_data_prep.ipynb": _prepared,
    "02_train_stateless.ipynb": _run("stateless-tiny"),
    "03_train_stateful.ipynb": _run("stateful-tiny", extra={"validation_curves.png"}),
    "04_generate.ipynb": _generated,
    "05_inspect.ipynb": _inspected,
}


@pytest.mark.notebook
def test_reproduce_reruns_a_run_from_its_records_with_an_identical_history(outputs):
    from charrnn.reproduce import reproduce

    if not (outputs / "runs" / "stateless-tiny" / "model.keras").exists():
        pytest.skip("needs the stateless notebook run above")
    result = reproduce("stateless-tiny", outputs, execution_timeout=TIMEOUT_PER_CELL)
    assert result["identical"], result["max_abs_difference"]
    assert (outputs / "runs" / "stateless-tiny-reproduced" / "02_train_stateless.ipynb").is_file()
    with pytest.raises(FileExistsError):
        reproduce("stateless-tiny", outputs)

