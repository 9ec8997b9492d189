"""Fitting a Char-RNN into a run directory: validation, checkpoints, resume, reproducibility."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf

from charrnn.atomic import crash_point, write_text
from charrnn.baselines import unigram_log_probabilities
from charrnn.checkpoint import CHECKPOINT_DIR, TrainingState, load_checkpoint, restore, save_checkpoint
from charrnn.data import PreparedData
from charrnn.distribute import (
    check_layout,
    chief_decision,
    distribute_datasets,
    layout_record,
    make_strategy,
    worker_folder,
)
from charrnn.distributed_fit import fit_distributed
from charrnn.model import (
    ResetStatesCallback,
    build_model,
    check_gru_kernel,
    compile_model,
    resolve_embedding_dim,
)
from charrnn.pipelines import count_stream_batches, count_windows, shuffled_windows, stateful_streams
from charrnn.runs import (
    BEST_FILE,
    CHARS_COLUMN,
    HISTORY_FILE,
    MODEL_FILE,
    TIME_COLUMN,
    check_run_folder,
    load_run,
    read_config,
    read_history,
    run_lock,
    save_model,
    write_run_records,
)

LR_SCHEDULES = ("constant", "cosine")
DATA_KEYS = ("corpus_sha256", "vocab_size", "lower", "train_fraction", "train_chars")
LAYOUT_KEYS = ("strategy", "replicas")  # how a run is trained, not what: a resume may change them


@dataclass
class TrainConfig:
    """Every training parameter; the defaults are the seed's recipe (configs/seed.yaml)."""

    run_name: str = "stateless"
    preset: str | None = "seed"  # the configs/<preset>.yaml these values started from (a label)
    stateful: bool = False  # True: consecutive windows of `batch_size` parallel streams
    units: int = 128  # GRU units per layer (the seed: 128)
    n_layers: int = 2  # stacked GRU layers (the seed: 2)
    gru_kernel: str = "keras"  # "fused": FusedGRU, the same GRU with a faster CPU training loop
    dropout: float = 0.2  # input dropout of each GRU (the seed: 0.2)
    embedding_dim: int | str | None = "auto"  # "auto": one-hot up to 100 characters, else an Embedding(64)
    n_steps: int = 100  # characters per window (truncated backprop length)
    random_offsets: bool = False  # stateful: each epoch cuts its windows 0..n_steps-1 characters later
    # (stateless runs ignore it: their overlapping windows already start at every offset)
    shift: int = 1  # stateless only: distance between window starts
    batch_size: int = 32  # windows per batch; for stateful runs, the number of streams
    epochs: int = 10
    steps_per_epoch: int | None = None  # None: every window once (the seed's epoch)
    validation_steps: int | None = None  # None: the whole validation split
    learning_rate: float = 1e-3
    clipnorm: float | None = None  # gradient clipping by norm
    ema_momentum: float | None = None  # validate and save a moving average of the weights; None: off
    weight_decay: float | None = None  # decoupled weight decay (AdamW), biases exempt; None: off
    seed: int = 42
    early_stopping_patience: int | None = None  # epochs without val_loss progress; None: off
    max_minutes: float | None = None  # time budget for training (validation included); None: none
    unigram_init: bool = False  # start the output biases at the training text's log frequencies
    lr_schedule: str = "constant"  # "cosine": decay to 5% of learning_rate over the time budget or the epochs
    tensorboard: bool = False  # write TensorBoard logs under <run>/logs
    strategy: str = "none"  # "none" (one device), "mirrored" (local GPUs / CPU replicas), "multiworker"
    replicas: int | None = None  # mirrored: that many GPUs or logical CPU devices; None: every GPU

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
        for name in ("learning_rate", "clipnorm", "max_minutes", "weight_decay"):
            value = getattr(self, name)
            if name != "learning_rate" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                    math.isfinite(value) and value > 0):
                hint = "" if name == "learning_rate" else " or None (off)"
                raise ValueError(f"{name} must be a positive number{hint}, got {value!r}.")
        if not self.run_name or self.run_name.startswith(".") or Path(self.run_name).name != self.run_name:
            raise ValueError(f"run_name must be a plain folder name, got {self.run_name!r}.")
        for name in ("stateful", "random_offsets", "unigram_init", "tensorboard"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}.")
        if self.ema_momentum is not None and (isinstance(self.ema_momentum, bool) or not isinstance(
                self.ema_momentum, (int, float)) or not 0.0 < self.ema_momentum < 1.0):
            raise ValueError(
                f"ema_momentum must be a number in (0, 1) or None (off), got {self.ema_momentum!r}.")
        check_gru_kernel(self.gru_kernel)
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}.")
        if self.preset is not None and not isinstance(self.preset, str):
            raise ValueError(f"preset must be a name or None, got {self.preset!r}.")
        check_layout(self.strategy, self.replicas, self.batch_size)  # batch_size is the global batch

    @classmethod
    def from_record(cls, record: dict) -> TrainConfig:
        """The config a run's config.json records (its data identity set aside)."""
        fields = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(record) - fields - {"data"})
        if unknown:
            raise ValueError(f"Unknown training parameters {unknown}: this config.json was written by "
                             "another version of charrnn.")
        return cls(**{key: value for key, value in record.items() if key in fields})


def _check_int(name: str, value, minimum: int, none_ok: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        allowed = f"an integer >= {minimum}" + (" or None" if none_ok else "")
        raise ValueError(f"{name} must be {allowed}, got {value!r}.")


class Clock(keras.callbacks.Callback):
    """Training seconds and characters across attempts, into each epoch's logs; stops at the time budget.

    A spent budget stops at the next batch boundary, inside an epoch if need be;
    Keras then still validates and ends the epoch, so the last row is a partial epoch.
    """

    def __init__(self, state: TrainingState, chars_per_batch: int, budget_seconds: float | None,
                 agree=None):
        super().__init__()
        self.agree = agree  # multiworker: flag -> the chief's flag, so every worker stops at the same batch
        self.seconds_before, self.chars = state.train_seconds, state.train_chars
        self.chars_per_batch = chars_per_batch
        self.budget_seconds = budget_seconds
        self.budget_spent = False

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

    def seconds(self) -> float:
        return self.seconds_before + time.perf_counter() - self.start

    def _check_budget(self):
        if self.budget_seconds is None:
            return
        spent = self.seconds() >= self.budget_seconds
        if self.agree is not None:
            spent = self.agree(spent)
        if spent:
            self.budget_spent = True
            self.model.stop_training = True

    def on_train_batch_end(self, batch, logs=None):
        self.chars += self.chars_per_batch
        self._check_budget()

    def on_epoch_end(self, epoch, logs=None):
        self._check_budget()
        logs[TIME_COLUMN] = round(self.seconds(), 3)
        logs[CHARS_COLUMN] = self.chars


class BitsPerChar(keras.callbacks.Callback):
    """The epoch's bpc and val_bpc columns, from its losses: the cross-entropy in bits is loss / ln 2."""

    def on_epoch_end(self, epoch, logs=None):
        for prefix in ("", "val_"):
            if f"{prefix}loss" in logs:
                logs[f"{prefix}bpc"] = logs[f"{prefix}loss"] / math.log(2.0)


class CosineSchedule(keras.callbacks.Callback):
    """Cosine decay of the learning rate over the run: its time budget when it has one, else its batches.

    Own code: Keras's LearningRateScheduler changes the rate once per epoch and knows no
    time budget. Progress comes from the clock or the optimizer's step count, both of
    which a resumed run restores, so a resume continues the same curve.
    """

    FLOOR = 0.05  # the rate ends at 5% of its peak

    def __init__(self, peak: float, clock: Clock, total_batches: int):
        super().__init__()
        self.peak, self.clock, self.total_batches = peak, clock, total_batches

    def on_train_batch_begin(self, batch, logs=None):
        if self.clock.budget_seconds is not None:
            progress = self.clock.seconds() / self.clock.budget_seconds
        else:
            progress = int(self.model.optimizer.iterations.numpy()) / self.total_batches
        progress = min(max(progress, 0.0), 1.0)
        factor = self.FLOOR + (1 - self.FLOOR) * 0.5 * (1 + math.cos(math.pi * progress))
        self.model.optimizer.learning_rate = self.peak * factor


class EpochRecord(keras.callbacks.Callback):
    """After the epoch's history row: the best model, early stopping, then the checkpoint of record.

    Own code rather than `ModelCheckpoint`/`EarlyStopping`: ModelCheckpoint writes
    best.keras in place (a kill mid-save leaves a damaged file under the final name)
    and EarlyStopping's counter is not restored on resume; both are rebuilt here
    from the checkpoint's state.
    """

    def __init__(self, run_dir: Path, state: TrainingState, clock: Clock, patience: int | None,
                 ema_swap: keras.callbacks.SwapEMAWeights | None = None):
        super().__init__()
        self.run_dir = run_dir
        self.state = state
        self.clock = clock
        self.patience = patience
        self.ema_swap = ema_swap  # best.keras: the weights validation saw; the checkpoint: the trained ones

    def on_epoch_end(self, epoch, logs=None):
        state = self.state
        val_loss = logs.get("val_loss")
        if val_loss is not None and (state.best_val_loss is None or val_loss < state.best_val_loss):
            state.best_val_loss, state.best_epoch = val_loss, epoch
            if self.ema_swap:
                self.ema_swap.on_test_begin()  # its public hooks swap the averaged weights in and out
            save_model(self.model, self.run_dir / BEST_FILE)
            if self.ema_swap:
                self.ema_swap.on_test_end()
        if self.clock.budget_spent:
            state.stop_reason = "time budget"
        elif self.patience and state.best_epoch is not None and epoch - state.best_epoch >= self.patience:
            state.stop_reason = "early stopping"
            self.model.stop_training = True
        state.epochs_done, state.train_seconds, state.train_chars = (
            epoch + 1, logs[TIME_COLUMN], logs[CHARS_COLUMN])
        save_checkpoint(self.run_dir, self.model, state)


def make_datasets(config: TrainConfig, data: PreparedData, completed_epochs: int = 0, part=None):
    """Training and validation datasets for `config`, and the training batches per epoch.

    Validation mirrors the training layout. Stateless training repeats its
    shuffled windows; a resumed run skips the batches its finished epochs read,
    so it sees the same data as a run that was never interrupted. `part=(r, R)`:
    replica r's rows of every batch (see `distribute`).
    """
    vocab_size = data.tokenizer.vocab_size
    one_hot = resolve_embedding_dim(config.embedding_dim, vocab_size, warn=False) is None
    common = {"vocab_size": vocab_size, "one_hot": one_hot, "part": part}
    steps = batches_per_epoch(config, len(data.train_ids))
    datasets = []
    for split, ids in (("training", data.train_ids), ("validation", data.val_ids)):
        try:
            if config.stateful:
                # Training with random_offsets: one dataset running on through the epochs.
                offsets = {"offsets_seed": config.seed, "first_epoch": completed_epochs,
                           "epoch_batches": steps} if config.random_offsets and split == "training" else {}
                datasets.append(stateful_streams(ids, config.n_steps, config.batch_size, **common, **offsets))
            elif split == "training":
                datasets.append(shuffled_windows(
                    ids, config.n_steps, config.shift, config.batch_size, seed=config.seed,
                    repeat=True, skip_batches=completed_epochs * steps, **common))
            else:  # non-overlapping windows: every validation character is predicted once
                datasets.append(shuffled_windows(
                    ids, config.n_steps, config.n_steps, config.batch_size, shuffle=False, **common))
        except ValueError as err:
            raise ValueError(f"The {split} split does not fit this config: {err}") from None
    train, val = datasets
    if config.stateful:  # each epoch reads the streams from their start (or on, with random_offsets)
        train = train if config.random_offsets else train.take(steps)
    if config.validation_steps:  # the first batches only, for quick runs
        val = val.take(config.validation_steps)
    return train, val, steps


def _check_previous_run(run_dir: Path, record: dict, checkpoint) -> str:
    """'new', 'resume' or 'complete' for `run_dir` and this config + data `record`.

    The same name with other parameters is refused once an epoch has finished; a
    folder whose previous start never finished an epoch is simply started again.
    The layout (strategy, replicas) may change: checkpoints restore into any.
    """
    if not (run_dir / "config.json").exists():
        return "new"
    # A parameter added since that run was recorded had its default then.
    defaults = {field.name: field.default for field in dataclasses.fields(TrainConfig)}
    previous = {**defaults, **read_config(run_dir)}
    changed = {k: (previous.get(k), v) for k, v in record.items()
               if previous.get(k) != v and k not in LAYOUT_KEYS}
    complete = (run_dir / MODEL_FILE).exists() and not (run_dir / CHECKPOINT_DIR).exists()
    if changed and (complete or checkpoint is not None):
        raise ValueError(
            f"Run {run_dir} already exists with other parameters or data {changed} (old, new). "
            "Choose another run name, or delete the folder to start over."
        )
    # A finished run that lost model.keras is refused; history.csv is repaired against the checkpoint.
    check_run_folder(run_dir, checkpoint)
    if changed:
        print(f"Run {run_dir} never finished an epoch: starting it again with the new parameters.")
        return "new"
    if complete:
        return "complete"
    return "resume" if checkpoint is not None else "new"


def trim_history(path: Path, epochs_done: int) -> None:
    """Keep the header and the rows of epochs 0..epochs_done-1 (complete rows only), atomically.

    A kill after an epoch's row but before its checkpoint leaves a row (maybe half
    written) for an epoch that the resumed run does again.
    """
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or epochs_done == 0:
        path.unlink()
        return
    header, kept = rows[0], []
    for row in rows[1:]:
        if len(row) == len(header) and row[0].isdigit() and int(row[0]) < epochs_done:
            kept.append(row)
    text = io.StringIO()
    csv.writer(text).writerows([header, *kept])
    write_text(path, text.getvalue())


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
    that is already complete with the same config is loaded, not trained again. One
    process at a time: the run folder is locked while this runs.
    """
    run_dir = Path(runs_dir) / config.run_name
    # First, before anything starts TensorFlow: mirrored on CPU splits it into logical devices.
    strategy = make_strategy(config.strategy, config.replicas, config.batch_size)
    # "auto" becomes what it means for this vocabulary, so the run records the input layer it has.
    config = dataclasses.replace(
        config, embedding_dim=resolve_embedding_dim(config.embedding_dim, data.tokenizer.vocab_size))
    # The data is part of a run's identity: the same run name on other data is another run.
    data_identity = {key: data.meta.get(key) for key in DATA_KEYS}
    record = {**dataclasses.asdict(config), "data": data_identity}
    # Every worker reads the run folder (shared storage when several hosts resume); only the chief writes it.
    with worker_folder(run_dir, strategy) as write_dir, run_lock(write_dir):
        checkpoint = load_checkpoint(run_dir)
        status = _check_previous_run(run_dir, record, checkpoint)
        if status == "complete":
            # Re-running a notebook redraws its figures and samples without training again.
            print(f"Run {run_dir} is already complete: loaded it. Delete the folder or choose "
                  "another run_name to train again.")
            return load_run(run_dir).model, read_history(run_dir)
        state, arrays = checkpoint if status == "resume" else (TrainingState(), None)
        return _fit(config, data, write_dir, record, state, arrays, extra_callbacks, verbose, strategy)


def _fit(config, data, run_dir, record, state, arrays, extra_callbacks, verbose, strategy=None):
    # Same seed, same machine, same history: seeded Python/NumPy/TF and deterministic kernels.
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    # Everything that can refuse this config runs before the first record is written.
    train_ds, val_ds, steps = make_datasets(config, data, state.epochs_done)
    scope = strategy.scope() if strategy else contextlib.nullcontext()
    replicas = strategy.num_replicas_in_sync if strategy else 1
    with scope:
        model = build_model(
            data.tokenizer.vocab_size, config.units, config.n_layers, config.dropout,
            config.embedding_dim, stateful=config.stateful,
            batch_size=config.batch_size // replicas if config.stateful else None,  # per replica
            gru_kernel=config.gru_kernel,
        )
        # The distributed loop clips the global gradient itself (see distributed_fit).
        compile_model(model, config.learning_rate, None if strategy else config.clipnorm, config.ema_momentum,
                      config.weight_decay)
        if config.unigram_init:
            # The untrained model then predicts the character frequencies (the unigram baseline) instead
            # of a uniform guess: with thousands of characters that saves many epochs of learning counts.
            model.get_layer("logits").bias.assign(
                unigram_log_probabilities(data.train_ids, data.tokenizer.vocab_size).astype("float32"))
        if arrays is not None:
            restore(model, arrays)
    if arrays is None:
        # A fresh start: drop what an attempt that never finished an epoch may have left.
        shutil.rmtree(run_dir / CHECKPOINT_DIR, ignore_errors=True)
        for name in (HISTORY_FILE, BEST_FILE, MODEL_FILE):
            (run_dir / name).unlink(missing_ok=True)
        write_run_records(run_dir, record, data.tokenizer, data.meta.get("corpus_sha256"),
                          layout=layout_record(strategy))
    else:
        print(f"Resuming {run_dir} after epoch {state.epochs_done} "
              f"({state.train_seconds:.0f} s of training so far).")
    trim_history(run_dir / HISTORY_FILE, state.epochs_done)

    budget = None if config.max_minutes is None else 60.0 * config.max_minutes
    if state.stop_reason is None and state.epochs_done < config.epochs:
        clock = Clock(state, config.batch_size * config.n_steps, budget, agree=chief_decision(strategy))
        ema_swap = keras.callbacks.SwapEMAWeights() if config.ema_momentum else None
        callbacks = [
            clock,  # first: puts the time and characters so far into the logs the others read
            BitsPerChar(),
            keras.callbacks.CSVLogger(str(run_dir / HISTORY_FILE), append=True),
            EpochRecord(run_dir, state, clock, config.early_stopping_patience, ema_swap),
        ]
        if ema_swap:  # swaps the averaged weights in for validation (EpochRecord: for best.keras)
            callbacks.append(ema_swap)
        if config.lr_schedule == "cosine":
            callbacks.insert(1, CosineSchedule(config.learning_rate, clock, config.epochs * steps))
        if config.stateful:
            callbacks.insert(0, ResetStatesCallback())
        if config.tensorboard:
            callbacks.append(keras.callbacks.TensorBoard(str(run_dir / "logs")))
        if strategy is not None:
            # Two paths on purpose: fit cannot run multiworker and differs from one device under
            # mirrored (a burned iterator, per-replica clipping); 'none' stays on fit so its histories
            # stay byte-identical to earlier runs. See distributed_fit.
            train_ds, val_ds = distribute_datasets(
                strategy, lambda part: make_datasets(config, data, state.epochs_done, part)[:2])
            fit_distributed(
                strategy, model, train_ds, val_ds, steps=steps,
                val_steps=validation_batches(config, len(data.val_ids)), epochs=config.epochs,
                initial_epoch=state.epochs_done, clipnorm=config.clipnorm,
                restart_each_epoch=config.stateful and not config.random_offsets,
                callbacks=[*callbacks, *extra_callbacks], verbose=verbose)
        else:
            model.fit(
                train_ds,
                validation_data=val_ds,
                epochs=config.epochs,
                initial_epoch=state.epochs_done,
                steps_per_epoch=steps,
                callbacks=[*callbacks, *extra_callbacks],
                shuffle=False,  # the datasets shuffle themselves; stateful streams must stay in order
                verbose=verbose,
            )
    if state.stop_reason:
        print(f"Stopped after epoch {state.epochs_done} by the {state.stop_reason}.")
    # The averaged weights, also after a resume that had nothing left to train (fit does it too).
    model.optimizer.finalize_variable_values(model.trainable_variables)
    save_model(model, run_dir / MODEL_FILE)
    crash_point("after-final-model")
    shutil.rmtree(run_dir / CHECKPOINT_DIR, ignore_errors=True)  # only once the final model is safe
    return model, read_history(run_dir)


def batches_per_epoch(config: TrainConfig, n_train_ids: int) -> int:
    """Training batches in one epoch: steps_per_epoch, or one pass over the windows or streams."""
    if config.stateful:
        usable = n_train_ids - (config.n_steps - 1 if config.random_offsets else 0)  # see stateful_streams
        one_pass = count_stream_batches(usable, config.n_steps, config.batch_size)
        return min(one_pass, config.steps_per_epoch or one_pass)
    windows = count_windows(n_train_ids, config.n_steps, config.shift)
    return config.steps_per_epoch or math.ceil(windows / config.batch_size)


def validation_batches(config: TrainConfig, n_val_ids: int) -> int:
    """Validation batches per epoch: validation_steps, or every batch of the validation split."""
    if config.stateful:
        every = count_stream_batches(n_val_ids, config.n_steps, config.batch_size)
    else:
        every = math.ceil(count_windows(n_val_ids, config.n_steps, config.n_steps) / config.batch_size)
    return min(every, config.validation_steps or every)
