"""Fitting a Char-RNN into a run directory: validation, checkpoints, resume, reproducibility."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from charrnn.atomic import write_text
from charrnn.data import PreparedData
from charrnn.model import ResetStatesCallback, build_model, compile_model, resolve_embedding_dim
from charrnn.pipelines import count_stream_batches, count_windows, shuffled_windows, stateful_streams
from charrnn.runs import (
    BEST_FILE,
    HISTORY_FILE,
    MODEL_FILE,
    load_run,
    read_config,
    read_history,
    save_model,
    write_run_records,
)

DATA_KEYS = ("corpus_sha256", "vocab_size", "lower", "train_fraction", "train_chars")


@dataclass
class TrainConfig:
    run_name: str = "stateless"
    stateful: bool = False  # True: consecutive windows of `batch_size` parallel streams
    units: int = 128  # GRU units per layer (the seed: 128)
    n_layers: int = 2  # stacked GRU layers (the seed: 2)
    dropout: float = 0.2  # input dropout of each GRU (the seed: 0.2)
    embedding_dim: int | str | None = "auto"  # "auto": one-hot up to 100 characters, else an Embedding(64)
    n_steps: int = 100  # characters per window (truncated backprop length)
    shift: int = 1  # stateless only: distance between window starts
    batch_size: int = 32  # windows per batch; for stateful runs, the number of streams
    epochs: int = 10
    steps_per_epoch: int | None = None  # None: every window once (the seed's epoch)
    validation_steps: int | None = None  # None: the whole validation split
    learning_rate: float = 1e-3
    clipnorm: float | None = None  # gradient clipping by norm
    seed: int = 42
    early_stopping_patience: int | None = None  # epochs without val_loss progress; None: off
    tensorboard: bool = False  # write TensorBoard logs under <run>/logs

    def __post_init__(self):
        for name in ("units", "n_layers", "n_steps", "shift", "batch_size", "epochs", "seed"):
            _check_int(name, getattr(self, name), minimum=0 if name == "seed" else 1)
        if self.embedding_dim != "auto":
            resolve_embedding_dim(self.embedding_dim, vocab_size=1)  # raises on anything but None / int >= 1
        for name in ("steps_per_epoch", "validation_steps", "early_stopping_patience"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), minimum=1, none_ok=True)
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}.")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}.")
        if not self.run_name or self.run_name.startswith(".") or Path(self.run_name).name != self.run_name:
            raise ValueError(f"run_name must be a plain folder name, got {self.run_name!r}.")


def _check_int(name: str, value, minimum: int, none_ok: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        allowed = f"an integer >= {minimum}" + (" or None" if none_ok else "")
        raise ValueError(f"{name} must be {allowed}, got {value!r}.")


class HistoryCSV(keras.callbacks.Callback):
    """One row per finished epoch, appended and flushed at once.

    Unlike `keras.callbacks.CSVLogger`, a resumed run first drops the rows of
    epochs it is about to redo (a run killed after writing its row but before
    its backup), so every epoch ends up in the file exactly once.
    """

    def __init__(self, path: Path):
        super().__init__()
        self.path = Path(path)
        self._trimmed = False

    def on_epoch_begin(self, epoch, logs=None):
        if self._trimmed or not self.path.exists():
            return
        # Runs at the first epoch of this fit(), after BackupAndRestore chose where to resume.
        with open(self.path, newline="") as f:
            rows = list(csv.reader(f))
        kept = io.StringIO()
        csv.writer(kept).writerows([rows[0]] + [row for row in rows[1:] if int(row[0]) < epoch])
        write_text(self.path, kept.getvalue())  # atomic: a kill here must not lose finished epochs
        self._trimmed = True

    def on_epoch_end(self, epoch, logs=None):
        self._trimmed = True
        keys = sorted(logs)
        new_file = not self.path.exists()
        if not new_file:
            with open(self.path, newline="") as f:
                keys = next(csv.reader(f))[1:]
        with open(self.path, "a", newline="") as f:
            writer = csv.writer(f)
            if new_file:
                writer.writerow(["epoch", *keys])
            writer.writerow([epoch, *(repr(float(logs[key])) for key in keys)])


class BestCheckpoint(keras.callbacks.Callback):
    """Save the model whenever val_loss improves; on resume, the best so far comes from history.csv."""

    def __init__(self, path: Path, history_dir: Path):
        super().__init__()
        self.path = Path(path)
        self.history_dir = Path(history_dir)
        self.best = None

    def on_epoch_begin(self, epoch, logs=None):
        if self.best is None:
            history = read_history(self.history_dir)
            pairs = zip(history.get("epoch", []), history.get("val_loss", []))
            done = [value for done_epoch, value in pairs if done_epoch < epoch]
            self.best = min(done, default=math.inf)

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get("val_loss")
        if value is not None and value < self.best:
            self.best = value
            save_model(self.model, self.path)


class EpochKeyedRandomness(keras.callbacks.Callback):
    """Key each epoch's dropout randomness on (seed, epoch) instead of on the steps so far.

    Keras backs up the weights and the optimizer but not the random-number
    state of the dropout layers; with this a resumed run draws the same dropout
    masks as a run that was never interrupted, and so has the same history.
    """

    def on_epoch_begin(self, epoch, logs=None):
        for variable in self.model.variables:
            if variable.name == "seed_generator_state":  # [seed, counter] of a keras SeedGenerator
                seed = variable.numpy()[0]
                variable.assign(np.array([seed, epoch << 20], dtype=variable.dtype))


def make_datasets(config: TrainConfig, data: PreparedData, completed_epochs: int = 0):
    """Training and validation datasets for `config`, and the training batches per epoch.

    Validation mirrors the training layout. Stateless training repeats its
    shuffled windows; a resumed run skips the batches its finished epochs read,
    so it sees the same data as a run that was never interrupted.
    """
    vocab_size = data.tokenizer.vocab_size
    one_hot = resolve_embedding_dim(config.embedding_dim, vocab_size, warn=False) is None
    common = {"vocab_size": vocab_size, "one_hot": one_hot}
    datasets = []
    for split, ids in (("training", data.train_ids), ("validation", data.val_ids)):
        try:
            if config.stateful:
                datasets.append(stateful_streams(ids, config.n_steps, config.batch_size, **common))
            elif split == "training":
                datasets.append(shuffled_windows(
                    ids, config.n_steps, config.shift, config.batch_size, seed=config.seed,
                    repeat=True, **common))
            else:  # non-overlapping windows: every validation character is predicted once
                datasets.append(shuffled_windows(
                    ids, config.n_steps, config.n_steps, config.batch_size, shuffle=False, **common))
        except ValueError as err:
            raise ValueError(f"The {split} split does not fit this config: {err}") from None
    train, val = datasets
    steps = batches_per_epoch(config, len(data.train_ids))
    if config.stateful:  # each epoch reads the streams from their start
        train = train.take(steps)
    else:
        train = train.skip(completed_epochs * steps)
    if config.validation_steps:  # the first batches only, for quick runs
        val = val.take(config.validation_steps)
    return train, val, steps


def prepare_run_dir(run_dir: Path, record: dict) -> str:
    """Check `run_dir` against `record` (config + data): 'new', 'resume' or 'complete'."""
    if not (run_dir / "config.json").exists():
        run_dir.mkdir(parents=True, exist_ok=True)
        return "new"
    previous = read_config(run_dir)
    changed = {k: (previous.get(k), v) for k, v in record.items() if previous.get(k) != v}
    if changed:
        raise ValueError(
            f"Run {run_dir} already exists with other parameters or data {changed} (old, new). "
            "Choose another run name, or delete the folder to start over."
        )
    if (run_dir / MODEL_FILE).exists() and not (run_dir / "backup").exists():
        return "complete"
    return "resume"


def completed_epochs(backup_dir: Path) -> int:
    """Epochs an interrupted attempt finished, as Keras's BackupAndRestore recorded them."""
    try:
        return int(json.loads((backup_dir / "training_metadata.json").read_text())["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def train(
    config: TrainConfig,
    data: PreparedData,
    runs_dir: str | os.PathLike,
    *,
    extra_callbacks: tuple = (),
    verbose: int | str = 2,
) -> tuple[keras.Model, dict]:
    """Train into `runs_dir/config.run_name`, resuming if that run was interrupted.

    Returns the trained model and the full history (every epoch, across resumes). A run
    that is already complete with the same config is loaded, not trained again.
    """
    run_dir = Path(runs_dir) / config.run_name
    # "auto" becomes what it means for this vocabulary, so the run records the input layer it has.
    config = dataclasses.replace(
        config, embedding_dim=resolve_embedding_dim(config.embedding_dim, data.tokenizer.vocab_size))
    # The data is part of a run's identity: the same run name on other data is another run.
    data_identity = {key: data.meta.get(key) for key in DATA_KEYS}
    record = {**dataclasses.asdict(config), "data": data_identity}
    state = prepare_run_dir(run_dir, record)
    if state == "complete":
        # Re-running a notebook redraws its figures and samples without training again.
        print(f"Run {run_dir} is already complete: loaded it. Delete the folder or choose "
              "another run_name to train again.")
        return load_run(run_dir).model, read_history(run_dir)
    if state == "new":
        write_run_records(run_dir, record, data.tokenizer, data.meta.get("corpus_sha256"))
    # Same seed, same machine, same history: seeded Python/NumPy/TF and deterministic kernels.
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()

    train_ds, val_ds, steps = make_datasets(config, data, completed_epochs(run_dir / "backup"))
    model = build_model(
        data.tokenizer.vocab_size, config.units, config.n_layers, config.dropout,
        config.embedding_dim, stateful=config.stateful,
        batch_size=config.batch_size if config.stateful else None,
    )
    compile_model(model, config.learning_rate, config.clipnorm)

    # Order matters at epoch end: history row, best model, then the backup that marks the
    # epoch done. A kill in between makes the resumed run redo that epoch (HistoryCSV trims).
    callbacks = [
        HistoryCSV(run_dir / HISTORY_FILE),
        BestCheckpoint(run_dir / BEST_FILE, run_dir),
        keras.callbacks.BackupAndRestore(
            str(run_dir / "backup"), double_checkpoint=True, delete_checkpoint=False),
    ]
    callbacks.insert(0, EpochKeyedRandomness())
    if config.stateful:
        callbacks.insert(0, ResetStatesCallback())
    if config.early_stopping_patience:
        callbacks.append(keras.callbacks.EarlyStopping(
            patience=config.early_stopping_patience))  # best.keras already keeps the best model
    if config.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(str(run_dir / "logs")))
    model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=config.epochs,
        steps_per_epoch=steps,
        callbacks=[*callbacks, *extra_callbacks],
        shuffle=False,  # the datasets shuffle themselves; stateful streams must stay in order
        verbose=verbose,
    )
    save_model(model, run_dir / MODEL_FILE)
    shutil.rmtree(run_dir / "backup", ignore_errors=True)  # only once the final model is safe
    return model, read_history(run_dir)


def batches_per_epoch(config: TrainConfig | dict, n_train_ids: int) -> int:
    """Training batches in one epoch: steps_per_epoch, or one pass over the windows or streams."""
    get = config.get if isinstance(config, dict) else lambda key: getattr(config, key)
    n_steps, batch_size, steps = get("n_steps"), get("batch_size"), get("steps_per_epoch")
    if get("stateful"):
        one_pass = count_stream_batches(n_train_ids, n_steps, batch_size)
        return min(one_pass, steps or one_pass)
    return steps or math.ceil(count_windows(n_train_ids, n_steps, get("shift")) / batch_size)


def chars_per_epoch(config: TrainConfig | dict, n_train_ids: int) -> int:
    """Training characters (targets) one epoch reads, to compare runs on one axis."""
    get = config.get if isinstance(config, dict) else lambda key: getattr(config, key)
    return batches_per_epoch(config, n_train_ids) * get("batch_size") * get("n_steps")
