"""One place for each default: configs/seed.yaml, TrainConfig, the notebooks and the Makefile agree."""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from charrnn.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
PRESETS = sorted(path.stem for path in (ROOT / "configs").glob("*.yaml"))
TRAINING_NOTEBOOKS = ["02_train_stateless.ipynb", "03_train_stateful.ipynb"]


def preset(name: str) -> dict:
    return yaml.safe_load((ROOT / "configs" / f"{name}.yaml").read_text())


def notebook_parameters(name: str) -> dict:
    """The literals of a notebook's `parameters` cell."""
    notebook = json.loads((ROOT / "notebooks" / name).read_text())
    cell = next(c for c in notebook["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    tree = ast.parse("".join(cell["source"]))
    assignments = [node for node in tree.body if isinstance(node, ast.Assign)]
    return {node.targets[0].id: ast.literal_eval(node.value) for node in assignments}


def test_the_seed_preset_exists_and_is_the_default():
    assert "seed" in PRESETS
    assert preset("seed")["preset"] == "seed"


@pytest.mark.parametrize("key", sorted(preset("seed")))
def test_train_config_defaults_are_the_seed_preset(key):
    defaults = {field.name: field.default for field in dataclasses.fields(TrainConfig)}
    assert defaults[key] == preset("seed")[key], f"TrainConfig.{key} drifted from configs/seed.yaml"


@pytest.mark.parametrize("notebook", TRAINING_NOTEBOOKS)
def test_notebook_parameters_are_the_seed_preset(notebook):
    parameters = notebook_parameters(notebook)
    drifted = {key: (parameters.get(key), value) for key, value in preset("seed").items()
               if parameters.get(key) != value}
    assert not drifted, f"{notebook} parameters (notebook, seed.yaml) drifted: {drifted}"


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_sets_only_known_parameters_and_builds_a_config(name):
    values = preset(name)
    assert values["preset"] == name, "a preset records its own name"
    for notebook in TRAINING_NOTEBOOKS:
        unknown = set(values) - set(notebook_parameters(notebook))
        assert not unknown, f"configs/{name}.yaml sets {unknown}, unknown to {notebook}"
    TrainConfig(**values)  # raises on any value TrainConfig refuses


def test_the_makefile_runs_the_seed_preset_by_default():
    makefile = (ROOT / "Makefile").read_text()
    assert "PRESET ?= seed" in makefile
    assert "-f configs/$(PRESET).yaml" in makefile


def test_config_json_loads_back_into_train_config(generation_run):
    recorded = json.loads((generation_run / "config.json").read_text())
    config = TrainConfig.from_record(recorded)
    assert dataclasses.asdict(config) == {key: value for key, value in recorded.items() if key != "data"}


def test_an_unknown_recorded_parameter_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown training parameters"):
        TrainConfig.from_record({"units": 8, "warp_speed": 9})


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_builds_and_trains_a_few_steps(name, tiny_data, tmp_path):
    from charrnn.train import train

    # The preset's model and optimiser; a smaller batch keeps the test to seconds (gpu: 3 x GRU(512)).
    values = {**preset(name), "epochs": 1, "steps_per_epoch": 2, "validation_steps": 1, "max_minutes": None,
              "batch_size": 8, "n_steps": 20}
    _, history = train(TrainConfig(run_name=name, **values), tiny_data, tmp_path, verbose=0)
    assert history["epoch"] == [0]
    assert history["train_chars"] == [2 * values["batch_size"] * values["n_steps"]]
    recorded = json.loads((tmp_path / name / "config.json").read_text())
    assert recorded["preset"] == name
