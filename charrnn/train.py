"""Fitting a Char-RNN into a run directory: validation, checkpoints, resume, reproducibility."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf

from charrnn.data import PreparedData
from charrnn.model import ResetStatesCallback, build_model, compile_model
from charrnn.pipelines import count_windows, shuffled_windows, stateful_streams
from charrnn.runs import (
    BEST_FILE,
    HISTORY_FILE,
    MODEL_FILE,
    load_run,
    read_history,
    save_model,
    write_run_records,
)


@dataclass
class TrainConfig:
    run_name: str = "stateless"
    stateful: bool = False  # True: consecutive windows of `batch_size` parallel streams
    units: int = 128  # GRU units per layer (the seed: 128)
    n_layers: int = 2  # stacked GRU layers (the seed: 2)
    dropout: float = 0.2  # input dropout of each GRU (the seed: 0.2)
    embedding_dim: int | None = None  # None: one-hot inputs as in the seed
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
        for name in ("units", "n_layers", "n_steps", "shift", "batch_size", "epochs"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}.")
        for name in ("steps_per_epoch", "validation_steps", "embedding_dim", "early_stopping_patience"):
            value = getattr(self, name)
            if value is not None and int(value) < 1:
                raise ValueError(f"{name} must be a positive integer or None, got {value}.")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}.")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}.")
        if not self.run_name or os.sep in self.run_name:
            raise ValueError(f"run_name must be a plain folder name, got {self.run_name!r}.")


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
        kept = [rows[0]] + [row for row in rows[1:] if int(row[0]) < epoch]
        with open(self.path, "w", newline="") as f:
            csv.writer(f).writerows(kept)
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


def make_datasets(config: TrainConfig, data: PreparedData):
    """Training and validation datasets for `config`; validation mirrors the training layout."""
    common = {"vocab_size": data.tokenizer.vocab_size, "one_hot": config.embedding_dim is None}
    if config.stateful:
        train = stateful_streams(data.train_ids, config.n_steps, config.batch_size, **common)
        if config.steps_per_epoch:  # each epoch reads the first steps of the streams
            train = train.take(config.steps_per_epoch)
        val = stateful_streams(data.val_ids, config.n_steps, config.batch_size, **common)
    else:
        train = shuffled_windows(
            data.train_ids, config.n_steps, config.shift, config.batch_size, seed=config.seed,
            repeat=config.steps_per_epoch is not None, **common,
        )
        # Non-overlapping windows: every validation character is predicted once.
        val = shuffled_windows(
            data.val_ids, config.n_steps, config.n_steps, config.batch_size, shuffle=False, **common
        )
    if config.validation_steps:  # the first batches only, for quick runs
        val = val.take(config.validation_steps)
    return train, val


def prepare_run_dir(run_dir: Path, config: dict) -> bool:
    """Create the run folder, or check that an existing one is this run. True if it is complete."""
    config_path = run_dir / "config.json"
    if config_path.exists():
        previous = json.loads(config_path.read_text())
        changed = {k: (previous.get(k), v) for k, v in config.items() if previous.get(k) != v}
        if changed:
            raise ValueError(
                f"Run {run_dir} already exists with other parameters {changed} (old, new). "
                "Choose another run name, or delete the folder to start over."
            )
        if (run_dir / MODEL_FILE).exists() and not (run_dir / "backup").exists():
            return True
    run_dir.mkdir(parents=True, exist_ok=True)
    return False


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
    config_dict = dataclasses.asdict(config)
    if prepare_run_dir(run_dir, config_dict):
        # Re-running a notebook redraws its figures and samples without training again.
        print(f"Run {run_dir} is already complete: loaded it. Delete the folder or choose "
              "another run_name to train again.")
        return load_run(run_dir).model, read_history(run_dir)
    # Same seed, same machine, same history: seeded Python/NumPy/TF and deterministic kernels.
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    write_run_records(run_dir, config_dict, data.tokenizer, data.meta.get("corpus_sha256"))

    train_ds, val_ds = make_datasets(config, data)
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
    if config.stateful:
        callbacks.insert(0, ResetStatesCallback())
    if config.early_stopping_patience:
        callbacks.append(keras.callbacks.EarlyStopping(
            patience=config.early_stopping_patience, restore_best_weights=True))
    if config.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(str(run_dir / "logs")))
    model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=config.epochs,
        steps_per_epoch=None if config.stateful else config.steps_per_epoch,
        callbacks=[*callbacks, *extra_callbacks],
        shuffle=False,  # the datasets shuffle themselves; stateful streams must stay in order
        verbose=verbose,
    )
    save_model(model, run_dir / MODEL_FILE)
    shutil.rmtree(run_dir / "backup", ignore_errors=True)  # only once the final model is safe
    return model, read_history(run_dir)


def chars_per_epoch(config: dict, n_train_ids: int) -> int:
    """Training characters (targets) one epoch of `config` reads, to compare runs fairly."""
    n_steps, batch_size, steps = config["n_steps"], config["batch_size"], config["steps_per_epoch"]
    if config["stateful"]:
        batches = (n_train_ids // batch_size - 1) // n_steps
        return min(batches, steps or batches) * batch_size * n_steps
    if steps:
        return steps * batch_size * n_steps
    return count_windows(n_train_ids, n_steps, config["shift"]) * n_steps
