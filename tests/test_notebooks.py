"""Every notebook runs headlessly through papermill on tiny parameters: the integration tests.

The notebooks run in name order on one temporary outputs folder (01 prepares the data that 02
and 03 train on; 04 generates from 03's run). Executed copies are kept in that folder. Then
01 -> 03 -> 04 run again on the Chinese test corpus (shijing.txt, 2,798 distinct characters).
"""

from __future__ import annotations

import json
from pathlib import Path

import papermill
import pytest
import yaml

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
PARAMS = yaml.safe_load((Path(__file__).with_name("notebooks.yaml")).read_text())
SHIJING_PARAMS = yaml.safe_load((Path(__file__).with_name("notebooks_shijing.yaml")).read_text())
NOTEBOOKS = sorted(path.name for path in NOTEBOOK_DIR.glob("*.ipynb"))
TIMEOUT_PER_CELL = 600  # seconds: a stuck kernel fails instead of hanging CI


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


def execute(name, params, outputs, corpus=None):
    """Run notebook `name` with `params` ("{outputs}", "{corpus}" filled in); the executed copy."""
    params = {
        key: value.replace("{outputs}", str(outputs)).replace("{corpus}", str(corpus))
        if isinstance(value, str) else value
        for key, value in params.items()
    }
    executed = outputs / "executed" / name
    executed.parent.mkdir(exist_ok=True)
    # Raises PapermillExecutionError carrying the failing cell's traceback.
    papermill.execute_notebook(
        str(NOTEBOOK_DIR / name), str(executed), parameters=params, cwd=str(NOTEBOOK_DIR),
        kernel_name="python3", execution_timeout=TIMEOUT_PER_CELL, log_output=True, progress_bar=False,
    )
    assert executed.is_file()
    return executed


def printed(executed: Path) -> str:
    """Everything the executed notebook printed (stdout and stderr streams)."""
    cells = json.loads(executed.read_text(encoding="utf-8"))["cells"]
    return "".join("".join(output.get("text", "")) for cell in cells for output in cell.get("outputs", []))


@pytest.mark.notebook
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs(name, outputs):
    execute(name, PARAMS[name], outputs)
    EXPECTED_FILES[name](outputs)


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
    else:
        samples = (shijing_outputs / "runs" / "stateful-shijing" / "samples_generate.txt").read_text(
            encoding="utf-8")
        assert sum("\u4e00" <= char <= "\u9fff" for char in samples) > 100


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


def _names(folder):
    return {path.name for path in Path(folder).iterdir()}


EXPECTED_FILES = {
    "01_data_prep.ipynb": _prepared,
    "02_train_stateless.ipynb": _run("stateless-tiny"),
    "03_train_stateful.ipynb": _run("stateful-tiny", extra={"validation_curves.png"}),
    "04_generate.ipynb": _generated,
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
