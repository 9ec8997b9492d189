"""Training a Char-RNN into a run directory: its datasets, the run folder's decisions, resume.

The loop itself, for every strategy, is `charrnn.loop`."""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
import shutil
from pathlib import Path

import keras
import tensorflow as tf

from charrnn.atomic import crash_point, write_text
from charrnn.averaging import WeightAverage
from charrnn.baselines import unigram_log_probabilities
from charrnn.checkpoint import CHECKPOINT_DIR, TrainingState, load_checkpoint, restore
from charrnn.config import TrainConfig
from charrnn.data import PreparedData
from charrnn.extras.distribute import (
    chief_decision,
    distribute_datasets,
    layout_record,
    make_strategy,
    worker_folder,
)
from charrnn.loop import TrainingLoop
from charrnn.model import build_model, compile_model, resolve_embedding_dim
from charrnn.pipelines import count_stream_batches, count_windows, shuffled_windows, stateful_streams
from charrnn.runs import (
    BEST_FILE,
    HISTORY_FILE,
    MODEL_FILE,
    check_run_folder,
    load_run,
    read_config,
    read_history,
    run_lock,
    save_model,
    write_run_records,
)

DATA_KEYS = ("corpus_sha256", "vocab_size", "lower", "train_fraction", "train_chars")
# How a run is trained, not what: a resume may change the layout; the preset is only a label.
LAYOUT_KEYS = ("strategy", "replicas", "preset")


def make_datasets(config: TrainConfig, data: PreparedData, completed_epochs: int = 0, part=None):
    """Training and validation datasets for `config`, and the training batches per epoch.

    Validation mirrors the training layout. Stateless training repeats its
    shuffled windows; a resumed run skips the batches its finished epochs read,
    so it sees the same data as a run that was never interrupted. `part=(r, R)`:
    replica r's rows of every batch (see `charrnn.extras.distribute`).
    """
    vocab_size = data.tokenizer.vocab_size
    common = {"vocab_size": vocab_size, "part": part}
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
    if config.stateful and not config.random_offsets:
        # The passes back to back: an epoch is the next `steps` batches (a whole pass by default).
        train = train.repeat().skip(completed_epochs * steps)
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


def _fit(config, data, run_dir, record, state, arrays, extra_callbacks, verbose, strategy):
    """Build (or restore) the model, write or trim the run's records, run the loop, save the final model."""
    # Same seed, same machine, same history: seeded Python/NumPy/TF and deterministic kernels.
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    # Everything that can refuse this config runs before the first record is written.
    train_ds, val_ds, steps = make_datasets(config, data, state.epochs_done)
    model, average = _build(config, data, strategy, arrays)
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

    if state.stop_reason is None and state.epochs_done < config.epochs:
        if strategy is not None:
            train_ds, val_ds = distribute_datasets(
                strategy, lambda part: make_datasets(config, data, state.epochs_done, part)[:2])
        loop = TrainingLoop(config, model, state, steps, run_dir, strategy=strategy,
                            callbacks=extra_callbacks, verbose=verbose, agree=chief_decision(strategy),
                            log_q=sampling_proposal(config, data.train_ids, data.tokenizer.vocab_size),
                            average=average)
        loop.fit(train_ds, val_ds, validation_batches(config, len(data.val_ids)))
    if state.stop_reason:
        print(f"Stopped after epoch {state.epochs_done} by the {state.stop_reason}.")
    if average is not None:  # the averaged weights, also after a resume that had nothing left to train
        average.finalize()
    save_model(model, run_dir / MODEL_FILE)
    crash_point("after-final-model")
    shutil.rmtree(run_dir / CHECKPOINT_DIR, ignore_errors=True)  # only once the final model is safe
    return model, read_history(run_dir)


def _build(config, data, strategy, arrays) -> tuple[keras.Model, WeightAverage | None]:
    """The compiled model and its weight average (None without ema_momentum) in `strategy`'s scope
    (None: one device), restored from a checkpoint's `arrays`."""
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        model = build_model(
            data.tokenizer.vocab_size, config.units, config.n_layers, config.dropout,
            config.embedding_dim, stateful=config.stateful,
            batch_size=config.batch_size // strategy.num_replicas_in_sync if config.stateful else None,
            gru_kernel=config.gru_kernel, cell=config.cell,
        )
        compile_model(model, config.learning_rate, weight_decay=config.weight_decay)  # the loop clips
        if config.unigram_init:
            # The untrained model then predicts the character frequencies (the unigram baseline) instead
            # of a uniform guess: with thousands of characters that saves many epochs of learning counts.
            model.get_layer("logits").bias.assign(
                unigram_log_probabilities(data.train_ids, data.tokenizer.vocab_size).astype("float32"))
        average = WeightAverage(model, config.ema_momentum) if config.ema_momentum else None
        if arrays is not None:
            restore(model, arrays)
            if average is not None:
                average.restore(arrays)
    return model, average


def sampling_proposal(config: TrainConfig, train_ids, vocab_size: int):
    """The log-frequencies a sampled softmax draws its classes from; None for the full softmax."""
    if config.sampled_softmax is None or config.sampled_softmax >= vocab_size:
        return None
    return unigram_log_probabilities(train_ids, vocab_size).astype("float32")


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
