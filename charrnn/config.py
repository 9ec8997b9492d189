"""The training options: one schema, `TrainConfig`, where each option, its default and its reason are written.

The defaults are Géron's recipe (the reference notebook). A preset, `configs/<name>.yaml`,
lists only what it changes, optionally with `stateless:` / `stateful:` sections for one mode:

    TrainConfig.from_preset("fast", stateful=True, epochs=3)  # defaults, fast.yaml, its stateful:, epochs

Values are checked against the field annotations (int, float, bool, str, `X | None`,
`Literal[...]`) and the bounds in LIMITS; text from the CLI or make is converted by the
field's type ("1" or "true" for a bool, "2e-3" for a float). No TensorFlow here: the CLI
checks its options before TensorFlow starts.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from charrnn.corpus import PROJECT_ROOT

CONFIGS_DIR = PROJECT_ROOT / "configs"
PRESET_ALIASES = {"seed": "geron"}  # the reference recipe's former name
MODES = ("stateless", "stateful")  # a preset's optional sections, applied for that mode only
NOT_IN_PRESETS = ("preset", "stateful", "run_name")  # chosen by whoever builds the config, not by a recipe


@dataclass
class TrainConfig:
    """Every training option; the defaults are Géron's recipe (the `geron` preset only adds its schedules)."""

    run_name: str = "stateless"  # run folder <runs_dir>/<run_name>/; an unfinished run of this name resumes
    preset: str | None = "geron"  # the configs/<preset>.yaml these values started from (a label)
    stateful: bool = False  # True: consecutive windows of `batch_size` parallel streams
    cell: Literal["gru", "lstm", "rnn"] = "gru"  # recurrent layer: Keras GRU, LSTM or SimpleRNN
    units: int = 128  # units per recurrent layer
    n_layers: int = 2  # stacked recurrent layers
    gru_kernel: Literal["keras", "fused"] = "keras"  # "fused": FusedGRU, the same GRU, faster CPU training
    dropout: float = 0.2  # input dropout of each recurrent layer
    embedding_dim: int | Literal["auto"] | None = "auto"  # "auto": one-hot up to 100 characters, else 64
    n_steps: int = 100  # characters per window (truncated backpropagation length)
    random_offsets: bool = False  # stateful: each epoch cuts its windows 0..n_steps-1 characters later
    # (stateless runs ignore it: their overlapping windows already start at every offset)
    shift: int = 1  # stateless only: distance between window starts
    batch_size: int = 32  # windows per batch; for stateful runs, the number of streams
    epochs: int = 10  # passes over the data (or steps_per_epoch batches each)
    steps_per_epoch: int | None = None  # None: every window once (Géron's epoch)
    validation_steps: int | None = None  # None: the whole validation split
    learning_rate: float = 1e-3  # Adam's default
    clipnorm: float | None = None  # gradient clipping by norm; None: off
    ema_momentum: float | None = None  # validate and save a warmed-up weight average (charrnn.averaging)
    weight_decay: float | None = None  # decoupled weight decay (AdamW), biases exempt; None: off
    seed: int = 42  # the random seed: same seed, same machine, same history
    early_stopping_patience: int | None = None  # epochs without val_loss progress; None: off
    max_minutes: float | None = None  # time budget for training (validation included); None: the epochs
    unigram_init: bool = False  # start the output biases at the training text's log frequencies
    sampled_softmax: int | None = None  # train on this many classes drawn by frequency (None: all)
    lr_schedule: Literal["constant", "cosine"] = "constant"  # "cosine": to 5% over the budget or epochs
    tensorboard: bool = False  # write TensorBoard logs under <run>/logs
    strategy: Literal["none", "mirrored", "multiworker"] = "none"  # one device, local GPUs/CPUs, TF_CONFIG
    replicas: int | None = None  # mirrored: that many GPUs or logical CPU devices; None: every GPU

    def __post_init__(self):
        for name, annotation in field_types().items():
            setattr(self, name, check_value(name, annotation, getattr(self, name)))
        check_layout(self.strategy, self.replicas, self.batch_size)
        if self.sampled_softmax and not self.unigram_init:
            # Measured (docs/recipes.md): from uniform logits, the draws by frequency are far from
            # the model's distribution and training diverges, above uniform guessing.
            raise ValueError("sampled_softmax needs unigram_init: true (the output layer starting at the "
                             "character frequencies, where the frequency-drawn classes represent it well).")

    @classmethod
    def from_preset(cls, preset: str | None = "geron", *, stateful: bool = False, **overrides) -> TrainConfig:
        """TrainConfig's defaults, then configs/<preset>.yaml and its mode section, then overrides.

        preset=None: the defaults alone. Unknown names are a ValueError that suggests close ones.
        """
        stateful = check_value("stateful", bool, stateful)
        check_names(overrides)
        values = {} if preset is None else preset_values(preset, stateful)
        name = None if preset is None else preset_name(preset)
        return cls(**{**values, **overrides, "preset": name, "stateful": stateful})

    @classmethod
    def from_record(cls, record: dict) -> TrainConfig:
        """The config a run's config.json records (its data identity set aside)."""
        unknown = sorted(set(record) - set(field_types()) - {"data"})
        if unknown:
            raise ValueError(f"Unknown training parameters {unknown}: this config.json was written by "
                             "another version of charrnn.")
        return cls(**{key: value for key, value in record.items() if key != "data"})


COSINE_FLOOR = 0.05  # lr_schedule="cosine" ends at 5% of the peak rate


def cosine_rate(peak: float, progress: float) -> float:
    """The learning rate at `progress` (0..1) of a cosine decay from `peak` to COSINE_FLOOR of it."""
    progress = min(max(progress, 0.0), 1.0)
    return peak * (COSINE_FLOOR + (1 - COSINE_FLOOR) * 0.5 * (1 + math.cos(math.pi * progress)))


def plain_name(value) -> bool:
    """A folder name that stays inside its parent: no separator, not '.', '..' or hidden."""
    return bool(value) and not value.startswith(".") and Path(value).name == value


# Bounds beyond the type: (test, what it allows). Without an entry an int must be >= 1 and a float > 0.
LIMITS = {
    "seed": (lambda value: value >= 0, ">= 0"),
    "dropout": (lambda value: 0 <= value < 1, "in [0, 1)"),
    "ema_momentum": (lambda value: 0 < value < 1, "in (0, 1)"),
    "run_name": (plain_name, "plain folder name (no '/', not starting with '.')"),
}
DEFAULT_LIMITS = {int: (lambda value: value >= 1, ">= 1"), float: (lambda value: value > 0, "> 0"),
                  str: (lambda value: True, "string")}
TRUE, FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")  # bools as text (make: TENSORBOARD=1)


@functools.cache
def field_types() -> dict:
    """Field name -> its annotation, resolved (this module's annotations are strings)."""
    hints = typing.get_type_hints(TrainConfig)
    return {field.name: hints[field.name] for field in dataclasses.fields(TrainConfig)}


def check_value(name: str, annotation, value):
    """`value` converted to the field's type; a ValueError naming the field, the value and what is allowed."""
    options = typing.get_args(annotation) if _is_union(annotation) else (annotation,)
    for option in options:
        converted = _convert(name, option, value)
        if converted is not _REFUSED:
            return converted
    allowed = [_describe(name, option) for option in options]
    allowed = ", ".join(allowed[:-1]) + " or " + allowed[-1] if len(allowed) > 1 else allowed[0]
    raise ValueError(f"{name} must be {allowed}, got {value!r}.")


_REFUSED = object()


def _is_union(annotation) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _convert(name: str, option, value):
    """`value` as an `option` of the field's type (within its limits), or _REFUSED."""
    text = value.strip().lower() if isinstance(value, str) else None
    if option is type(None):
        return None if value is None or text in ("none", "null", "~") else _REFUSED
    if typing.get_origin(option) is Literal:
        return value if isinstance(value, str) and value in typing.get_args(option) else _REFUSED
    if option is bool:
        return _as_bool(value, text)
    if option in (int, float):
        value = _as_number(option, value)
    if not isinstance(value, option) or isinstance(value, bool):
        return _REFUSED
    within, _ = LIMITS.get(name, DEFAULT_LIMITS[option])
    return value if within(value) else _REFUSED


def _as_bool(value, text):
    if isinstance(value, bool):
        return value
    if type(value) is int and value in (0, 1):
        return bool(value)
    if text in TRUE or text in FALSE:
        return text in TRUE
    return _REFUSED


def _as_number(option, value):
    """An int, or a finite float, from a number or its text (YAML 1.1 reads 2e-3 as text); else _REFUSED."""
    if isinstance(value, str):
        try:
            value = int(value) if option is int else float(value)
        except ValueError:
            return _REFUSED
    if option is float and type(value) is int:
        value = float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return _REFUSED  # nan and inf are not a setting
    return value


def _describe(name: str, option) -> str:
    if option is type(None):
        return "None"
    if typing.get_origin(option) is Literal:
        choices = typing.get_args(option)
        return repr(choices[0]) if len(choices) == 1 else "one of " + ", ".join(map(repr, choices))
    if option is bool:
        return "true or false"
    _, bounds = LIMITS.get(name, DEFAULT_LIMITS[option])
    return {int: f"an integer {bounds}", float: f"a number {bounds}", str: f"a {bounds}"}[option]


def check_layout(strategy: str, replicas: int | None, batch_size: int) -> None:
    """The strategy/replicas/batch combinations that cannot work (the values themselves are checked above)."""
    if replicas is None:
        return
    if strategy != "mirrored":
        raise ValueError(f"replicas applies to strategy='mirrored' only (got strategy={strategy!r}): "
                         "'none' is one device and 'multiworker' takes its workers from TF_CONFIG.")
    if batch_size % replicas:
        raise ValueError(
            f"batch_size={batch_size} is the global batch (streams, for a stateful run) and must split "
            f"evenly over {replicas} replicas: use a multiple of {replicas}.")


def check_names(names, where: str = "", allowed=None) -> None:
    """Refuse a name that is not a TrainConfig field (or not in `allowed`), suggesting the closest ones."""
    allowed = sorted(field_types() if allowed is None else allowed)
    for name in names:
        if name not in allowed:
            close = difflib.get_close_matches(str(name), allowed, n=3)
            hint = f"did you mean {' or '.join(close)}?" if close else f"valid names: {', '.join(allowed)}."
            raise ValueError(f"{where}unknown option {name!r}; {hint}")


def available_presets() -> list[str]:
    return sorted(path.stem for path in CONFIGS_DIR.glob("*.yaml"))


def preset_name(preset) -> str:
    """The preset's name (aliases resolved); a ValueError listing the presets if there is no such file."""
    name = PRESET_ALIASES.get(preset, preset) if isinstance(preset, str) else None
    if name not in available_presets():
        raise ValueError(f"Unknown preset {preset!r}: the presets are {', '.join(available_presets())} "
                         f"(files in {CONFIGS_DIR}).")
    return name


def preset_values(preset: str, stateful: bool = False) -> dict:
    """What configs/<preset>.yaml changes from TrainConfig's defaults, its section for the mode on top."""
    path = CONFIGS_DIR / f"{preset_name(preset)}.yaml"
    values = yaml.safe_load(path.read_text()) or {}
    if not isinstance(values, dict):
        raise ValueError(f"{path} must be a mapping of TrainConfig fields to values.")
    sections = {mode: values.pop(mode, None) or {} for mode in MODES}
    for mode, section in sections.items():
        if not isinstance(section, dict):
            raise ValueError(f"{path}: {mode}: must be a mapping of options for {mode} runs only "
                             "(a preset does not choose the mode).")
    for where, mapping in [(f"{path}", values), *((f"{path} ({mode}:)", sections[mode]) for mode in MODES)]:
        fixed = [key for key in mapping if key in NOT_IN_PRESETS]
        if fixed:
            raise ValueError(f"{where} sets {fixed}: a preset is a recipe; {', '.join(NOT_IN_PRESETS)} are "
                             "chosen where the config is built (notebook, CLI).")
        check_names(mapping, f"{where}: ")
    return {**values, **sections["stateful" if stateful else "stateless"]}


def parse_settings(settings: list[str]) -> dict:
    """`["epochs=3", "tensorboard=true"]` -> {"epochs": 3, "tensorboard": True}: each value read as YAML."""
    values = {}
    for setting in settings:
        key, equals, text = setting.partition("=")
        if not equals or not key.strip():
            raise ValueError(f"{setting!r} is not key=value, e.g. epochs=3")
        try:
            values[key.strip()] = yaml.safe_load(text)
        except yaml.YAMLError:  # e.g. "a: b: c": kept as text, which the field's check then names
            values[key.strip()] = text
    return values


# make's short names for training options; any other option is its field name in capitals (TENSORBOARD=1).
MAKE_ALIASES = {"STEPS": "steps_per_epoch", "LR": "learning_rate", "MINUTES": "max_minutes",
                "EMBEDDING": "embedding_dim", "GRU": "gru_kernel", "STREAMS": "batch_size"}


def make_overrides(names: list[str], environ: dict) -> dict:
    """The training options among make's command-line variables `names`, their values verbatim from
    `environ` (make exports command-line variables to its recipes); the config converts the text."""
    fields = {field.name for field in dataclasses.fields(TrainConfig)} - set(NOT_IN_PRESETS)
    overrides = {}
    for name in names:
        key = MAKE_ALIASES.get(name, name.lower())
        if key in fields and name in environ and environ[name] != "":
            overrides[key] = environ[name]
    return overrides


if __name__ == "__main__":  # the Makefile: `python -m charrnn.config NAME...` prints the overrides as JSON
    import json
    import os
    import sys

    print(json.dumps(make_overrides(sys.argv[1:], dict(os.environ))))
