"""TrainConfig is the one schema of training options; presets are overlays that build and validate."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from charrnn.config import (
    CONFIGS_DIR,
    MODES,
    NOT_IN_PRESETS,
    TrainConfig,
    available_presets,
    make_overrides,
    parse_settings,
    preset_values,
)

ROOT = Path(__file__).resolve().parents[1]
PRESETS = available_presets()
DEFAULTS = {field.name: field.default for field in dataclasses.fields(TrainConfig)}


def preset_file(name: str) -> dict:
    return yaml.safe_load((CONFIGS_DIR / f"{name}.yaml").read_text()) or {}


def test_the_reference_recipe_is_the_default_preset():
    assert "geron" in PRESETS and "seed" not in PRESETS  # "seed" is the random seed, not a recipe
    assert TrainConfig().preset == "geron" and TrainConfig.from_preset().preset == "geron"
    # Géron's two models differ only in their schedules.
    assert preset_values("geron", stateful=False) == {"steps_per_epoch": 1000}
    assert preset_values("geron", stateful=True) == {"epochs": 50}


@pytest.mark.parametrize("stateful", [False, True])
@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_builds_and_records_its_name(name, stateful):
    config = TrainConfig.from_preset(name, stateful=stateful)
    assert config.preset == name and config.stateful is stateful
    expected = {**DEFAULTS, **preset_values(name, stateful), "preset": name, "stateful": stateful}
    assert dataclasses.asdict(config) == expected


@pytest.mark.parametrize("name", PRESETS)
def test_a_preset_lists_only_what_differs_from_the_defaults(name):
    values = preset_file(name)
    sections = {mode: values.pop(mode, {}) for mode in MODES}
    repeated = {key: value for key, value in values.items() if DEFAULTS.get(key) == value}
    assert not repeated, f"configs/{name}.yaml repeats TrainConfig's defaults {repeated}: delete those lines"
    for mode, section in sections.items():
        same = {key: value for key, value in section.items() if values.get(key, DEFAULTS.get(key)) == value}
        assert not same, f"configs/{name}.yaml's {mode}: section repeats {same}"


def test_the_stateful_section_applies_to_stateful_runs_only(tmp_path, monkeypatch):
    (tmp_path / "demo.yaml").write_text("# for the test\nunits: 64\nstateful:\n  units: 32\n  epochs: 3\n")
    monkeypatch.setattr("charrnn.config.CONFIGS_DIR", tmp_path)
    stateless, stateful = (TrainConfig.from_preset("demo", stateful=mode) for mode in (False, True))
    assert (stateless.units, stateless.epochs) == (64, DEFAULTS["epochs"])
    assert (stateful.units, stateful.epochs) == (32, 3)
    assert TrainConfig.from_preset("demo", stateful=True, units=8).units == 8  # overrides come last


@pytest.mark.parametrize("text, message", [
    ("notes: [1]", "unknown option 'notes'"),
    ("dorpout: 0.1", "did you mean dropout"),
    ("run_name: mine", "sets ['run_name']: a preset is a recipe"),
    ("stateful: true", "stateful: must be a mapping of options for stateful runs only"),
    ("stateful:\n  tensorbord: true", "(stateful:): unknown option 'tensorbord'; did you mean tensorboard"),
    ("- units", "must be a mapping"),
])
def test_a_bad_preset_file_is_a_clear_error(text, message, tmp_path, monkeypatch):
    (tmp_path / "bad.yaml").write_text(text)
    monkeypatch.setattr("charrnn.config.CONFIGS_DIR", tmp_path)
    with pytest.raises(ValueError) as error:
        TrainConfig.from_preset("bad", stateful=True)
    assert message in str(error.value)


@pytest.mark.parametrize("settings, message", [
    (["dropout=abc"], "dropout must be a number in [0, 1), got 'abc'."),
    (["dropout=1"], "dropout must be a number in [0, 1), got 1."),
    (["run_name=123"], "run_name must be a plain folder name (no '/', not starting with '.'), got 123."),
    (["run_name=../up"], "run_name must be a plain folder name"),
    (["gru_kernel=[a]"], "gru_kernel must be one of 'keras', 'fused', got ['a']."),
    (["cell=transformer"], "cell must be one of 'gru', 'lstm', 'rnn', got 'transformer'."),
    (["units=0"], "units must be an integer >= 1, got 0."),
    (["units=2.5"], "units must be an integer >= 1, got 2.5."),
    (["units=true"], "units must be an integer >= 1, got True."),
    (["tensorboard=maybe"], "tensorboard must be true or false, got 'maybe'."),
    (["tensorboard=2"], "tensorboard must be true or false, got 2."),
    (["embedding_dim=big"], "embedding_dim must be an integer >= 1, 'auto' or None, got 'big'."),
    (["learning_rate=nan"], "learning_rate must be a number > 0, got 'nan'."),
    (["clipnorm=0"], "clipnorm must be a number > 0 or None, got 0."),
    (["ema_momentum=1.0"], "ema_momentum must be a number in (0, 1) or None, got 1.0."),
    (["seed=-1"], "seed must be an integer >= 0, got -1."),
    (["strategy=horovod"], "strategy must be one of 'none', 'mirrored', 'multiworker', got 'horovod'."),
    (["replicas=2"], "replicas applies to strategy='mirrored' only"),
    (["strategy=mirrored", "replicas=3", "batch_size=8"], "must split evenly over 3 replicas"),
    (["dorpout=0.1"], "unknown option 'dorpout'; did you mean dropout?"),
    (["xyzzy=1"], "unknown option 'xyzzy'; valid names: batch_size, cell,"),
    (["epochs"], "'epochs' is not key=value"),
])
def test_a_bad_setting_is_one_clear_value_error(settings, message):
    with pytest.raises(ValueError) as error:
        TrainConfig.from_preset("geron", **parse_settings(settings))
    assert message in str(error.value)


@pytest.mark.parametrize("preset", ["nonexistent", "../configs/geron", 7, ["x"]])
def test_an_unknown_preset_lists_the_presets(preset):
    with pytest.raises(ValueError, match=r"Unknown preset .*: the presets are fast, geron"):
        TrainConfig.from_preset(preset)


def test_the_old_name_of_the_reference_recipe_still_works():
    assert TrainConfig.from_preset("seed") == TrainConfig.from_preset("geron")


def test_text_settings_are_converted_by_the_field_type():
    values = parse_settings(["tensorboard=1", "random_offsets=false", "learning_rate=2e-3", "clipnorm=5",
                             "embedding_dim=None", "replicas=2", "strategy=mirrored", "epochs=3"])
    config = TrainConfig.from_preset("geron", stateful="true", **values)
    assert (config.tensorboard, config.random_offsets, config.stateful) == (True, False, True)
    assert config.learning_rate == 2e-3 and config.clipnorm == 5.0 and isinstance(config.clipnorm, float)
    assert (config.embedding_dim, config.replicas, config.epochs) == (None, 2, 3)
    assert TrainConfig(tensorboard="TRUE", units="64", max_minutes="1.5").units == 64  # make passes text


def test_from_preset_with_no_preset_is_the_defaults():
    assert dataclasses.asdict(TrainConfig.from_preset(None)) == {**DEFAULTS, "preset": None}


def test_the_config_module_does_not_start_tensorflow():
    code = ("import sys; from charrnn.config import TrainConfig; TrainConfig.from_preset('fast'); "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)


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
    small = {"epochs": 1, "steps_per_epoch": 2, "validation_steps": 1, "max_minutes": None, "batch_size": 8,
             "n_steps": 20}
    config = TrainConfig.from_preset(name, stateful=True, run_name=name, **small)
    _, history = train(config, tiny_data, tmp_path, verbose=0)
    assert history["epoch"] == [0]
    assert history["train_chars"] == [2 * small["batch_size"] * small["n_steps"]]
    recorded = json.loads((tmp_path / name / "config.json").read_text())
    assert recorded["preset"] == name


# One setting per option, as a person types it: a new TrainConfig field adds its line here, and
# the test below proves make, the CLI and the notebooks all reach it. NEEDS: what goes beside it.
EXAMPLES = {
    "cell": "lstm", "units": "64", "n_layers": "3", "gru_kernel": "fused", "dropout": "0.1",
    "embedding_dim": "16", "n_steps": "50", "random_offsets": "true", "shift": "2", "batch_size": "16",
    "epochs": "3", "steps_per_epoch": "7", "validation_steps": "5", "learning_rate": "2e-3",
    "clipnorm": "1", "ema_momentum": "0.9", "weight_decay": "0.01", "seed": "7",
    "early_stopping_patience": "2", "max_minutes": "1.5", "unigram_init": "true", "sampled_softmax": "512",
    "lr_schedule": "cosine", "tensorboard": "true", "strategy": "mirrored", "replicas": "2",
}
NEEDS = {"sampled_softmax": {"unigram_init": "true"}, "replicas": {"strategy": "mirrored"}}


def test_every_option_has_an_example():
    assert set(EXAMPLES) == set(DEFAULTS) - set(NOT_IN_PRESETS)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_every_option_reaches_the_config_from_make_the_cli_and_the_notebooks(name):
    from charrnn.__main__ import build_parser, training_config

    settings = {name: EXAMPLES[name], **NEEDS.get(name, {})}
    wanted = TrainConfig.from_preset("geron", **settings)  # what the notebooks' `overrides` build
    assert getattr(wanted, name) != getattr(TrainConfig.from_preset("geron"), name)
    argv = ["train"] + [word for key, text in settings.items() for word in ("--set", f"{key}={text}")]
    assert training_config(build_parser().parse_args(argv)) == wanted
    environ = {key.upper(): text for key, text in settings.items()}  # `make ... UNITS=64`
    assert TrainConfig.from_preset("geron", **make_overrides(list(environ), environ)) == wanted
