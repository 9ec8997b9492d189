"""The training loop of every strategy: one `strategy.run` step, the epoch's bookkeeping, the run's records.

strategy='none' runs it on TensorFlow's default strategy (one replica), 'mirrored' and
'multiworker' on theirs, so one device and R replicas share every line. Not `model.fit`:
under MultiWorkerMirroredStrategy it fails in Keras 3 (keras-team/keras#20585), and under
MirroredStrategy it differs from one device (it draws one throwaway iterator, so a
reshuffling dataset trains on the next permutation; `clipnorm` clips each replica's part).

The training loss, accuracy and gradient clipping are computed in one place, `make_steps`.
Callbacks (Keras's progress line, TensorBoard, the caller's) get the events `fit` would give
them; the run's records are plain calls in a fixed order: best.keras inside the validation
window (with the weight average swapped in, `charrnn.averaging`), then at the epoch's end
the history row, the stop decisions and the checkpoint of record, and only then the
callbacks' `on_epoch_end` (a caller's callback that raises there finds the epoch saved).
"""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path

import keras
import tensorflow as tf

from charrnn.checkpoint import TrainingState, save_checkpoint
from charrnn.config import cosine_rate
from charrnn.model import reset_states
from charrnn.runs import BEST_FILE, CHARS_COLUMN, HISTORY_FILE, TIME_COLUMN, save_model

SEED_STRIDE = 7919  # replica r's dropout stream: the layer's seed + r * SEED_STRIDE
EPOCH_DRAWS = 1 << 20  # each epoch's dropout draws start at epoch * EPOCH_DRAWS


def _sums(y, logits):
    """[sum of per-sequence mean loss, sum of per-sequence accuracy, sequences] of one replica's rows."""
    loss = keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
    hits = tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=y.dtype), y), loss.dtype)
    count = tf.cast(tf.shape(loss)[0], loss.dtype)
    return tf.reduce_mean(loss, axis=-1), tf.reduce_sum(tf.reduce_mean(hits, axis=-1)), count


def _sampled_sums(model, x, y, sampler):
    """`_sums` for training with a sampled softmax: each target against `n` classes drawn from `log_q`.

    The draws (with replacement, shared by the batch) are keyed by (seed, optimizer step), so a
    resumed run and every replica draw the same ones. tf.nn.sampled_softmax_loss subtracts
    log(expected count) from each logit; with the target's own draws kept (no removal of
    "accidental hits"), the gradient tends to the full softmax's as n grows, and so does the loss
    once the target's correction is added back. Accuracy would need the full logits: it is NaN.
    """
    n, log_q, seed = sampler
    features = model.features(x, training=True)
    flat = tf.reshape(features, [-1, tf.shape(features)[-1]])  # the width may be unknown when traced
    labels = tf.reshape(tf.cast(y, tf.int64), [-1, 1])
    step_seed = tf.stack([tf.constant(seed, tf.int64), tf.cast(model.optimizer.iterations, tf.int64)])
    drawn = tf.random.stateless_categorical(log_q[None], n, seed=step_seed, dtype=tf.int64)[0]
    expected = lambda ids: n * tf.exp(tf.gather(log_q, ids))  # noqa: E731
    loss = tf.nn.sampled_softmax_loss(
        tf.transpose(model.logits.kernel), model.logits.bias, labels, flat, n, model.vocab_size,
        sampled_values=(drawn, expected(labels), expected(drawn)), remove_accidental_hits=False)
    # The target's own log(expected count) is constant in the weights: taken off, the loss is the
    # full softmax's, estimated.
    loss -= tf.math.log(expected(labels[:, 0]))
    per_sequence = tf.reduce_mean(tf.reshape(loss, tf.shape(y)), axis=-1)
    count = tf.cast(tf.shape(y)[0], loss.dtype)
    return per_sequence, tf.constant(math.nan, loss.dtype) * count, count


def make_steps(strategy, model, clipnorm: float | None, sampler=None, average=None):
    """(train_step, eval_step, key_dropout): tf.functions of an iterator (or an epoch), across replicas.

    `sampler`: (n, log_q, seed) trains on a sampled softmax (`_sampled_sums`); validation is exact.
    `average`: a `WeightAverage` updated after every step.
    """
    optimizer = model.optimizer
    with strategy.scope():  # its slots now, not inside the first traced step
        optimizer.build(model.trainable_variables)

    def train_replica(x, y):
        context = tf.distribute.get_replica_context()
        with tf.GradientTape() as tape:
            per_sequence, hits, count = (_sums(y, model(x, training=True)) if sampler is None
                                         else _sampled_sums(model, x, y, sampler))
            total = context.all_reduce("SUM", count)  # the global batch (a pass's last one may be short)
            loss = tf.reduce_sum(per_sequence) / total
        # Embedding and sampled-softmax gradients come as IndexedSlices whose row counts can differ
        # between replicas; the optimizer's collective sum then fails on a shape mismatch: densify.
        grads = [tf.convert_to_tensor(g) for g in tape.gradient(loss, model.trainable_variables)]
        if clipnorm:
            # Clip the global gradient, as one device does (Keras would clip each replica's part):
            # sum it here, clip, and hand the optimizer 1/R of it, which it sums back.
            grads = [tf.clip_by_norm(g, clipnorm) / context.num_replicas_in_sync
                     for g in context.all_reduce("SUM", grads)]
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        if average is not None:
            average.update(optimizer.iterations)
        return tf.stack([tf.reduce_sum(per_sequence), hits, count])

    def eval_replica(x, y):
        per_sequence, hits, count = _sums(y, model(x, training=False))
        return tf.stack([tf.reduce_sum(per_sequence), hits, count])

    @tf.function
    def train_step(iterator):
        return strategy.reduce("SUM", strategy.run(train_replica, args=next(iterator)), axis=None)

    @tf.function
    def eval_step(iterator):
        return strategy.reduce("SUM", strategy.run(eval_replica, args=next(iterator)), axis=None)

    generators = dropout_seed_generators(model)
    bases = [int(generator.state.numpy()[0]) for generator in generators]

    @tf.function
    def key_dropout(epoch):
        # In replica context an assign writes this replica's copy only: every replica gets its own
        # dropout masks, a function of (seed, replica, epoch), so a resumed run draws the same ones.
        def key():
            replica = tf.distribute.get_replica_context().replica_id_in_sync_group
            for generator, base in zip(generators, bases):
                dtype = generator.state.dtype
                generator.state.assign(tf.stack([
                    tf.cast(replica, dtype) * SEED_STRIDE + base, tf.cast(epoch, dtype) * EPOCH_DRAWS]))
        strategy.run(key)

    return train_step, eval_step, key_dropout


def dropout_seed_generators(model: keras.Model) -> list[keras.random.SeedGenerator]:
    """The random streams of `model`'s dropout: each layer's `seed_generator`, or its recurrent cell's."""
    found = []
    for layer in model.layers:
        for owner in (layer, getattr(layer, "cell", None)):
            generator = getattr(owner, "seed_generator", None)
            if isinstance(generator, keras.random.SeedGenerator) and all(generator is not g for g in found):
                found.append(generator)
    return found


def _logs(sums, prefix: str = "") -> dict:
    loss_sum, hits, count = sums.numpy().tolist()
    loss = loss_sum / count
    return {f"{prefix}loss": loss, f"{prefix}accuracy": hits / count, f"{prefix}bpc": loss / math.log(2.0)}


class Clock:
    """Training seconds and characters across attempts; whether the time budget is spent.

    `agree` (multiworker): flag -> the chief's flag, so every worker stops at the same batch.
    """

    def __init__(self, state: TrainingState, chars_per_batch: int, budget_seconds: float | None, agree=None):
        self.seconds_before, self.chars = state.train_seconds, state.train_chars
        self.chars_per_batch, self.budget_seconds, self.agree = chars_per_batch, budget_seconds, agree
        self.budget_spent = False
        self.start = time.perf_counter()

    def seconds(self) -> float:
        return self.seconds_before + time.perf_counter() - self.start

    def check_budget(self) -> bool:
        if self.budget_seconds is not None and not self.budget_spent:
            spent = self.seconds() >= self.budget_seconds
            self.budget_spent = self.agree(spent) if self.agree else spent
        return self.budget_spent


def append_history(path: Path, epoch: int, logs: dict) -> None:
    """One row of history.csv: the epoch, then the columns in name order (the header starts a new file).

    Own code rather than `CSVLogger`: the row must be on disk before the checkpoint that
    counts it, whatever order the callbacks come in.
    """
    new = not path.exists() or path.stat().st_size == 0
    with open(path, "a", newline="") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow(["epoch", *sorted(logs)])
        writer.writerow([epoch, *(logs[key] for key in sorted(logs))])


class TrainingLoop:
    """Epochs `state.epochs_done`..`config.epochs - 1` of a compiled `model`, recorded in `run_dir`.

    `strategy`: None for the default one (one device). Best model and early stopping are
    own code rather than `ModelCheckpoint`/`EarlyStopping`: ModelCheckpoint writes best.keras
    in place (a kill mid-save leaves a damaged file under the final name) and EarlyStopping's
    counter is not restored on resume; both work here from the checkpoint's `state`.
    """

    def __init__(self, config, model: keras.Model, state: TrainingState, steps: int, run_dir: Path, *,
                 strategy=None, callbacks=(), verbose: int | str = 0, agree=None, log_q=None, average=None):
        self.config, self.model, self.state, self.steps, self.run_dir = config, model, state, steps, run_dir
        self.average = average  # validation (and so best.keras) sees the averaged weights
        sampler = None if log_q is None else (config.sampled_softmax, tf.constant(log_q), config.seed)
        self.train_step, self.eval_step, self.key_dropout = make_steps(
            strategy or tf.distribute.get_strategy(), model, config.clipnorm, sampler, average)
        budget = None if config.max_minutes is None else 60.0 * config.max_minutes
        self.clock = Clock(state, config.batch_size * config.n_steps, budget, agree)
        keras_pieces = [keras.callbacks.TensorBoard(str(run_dir / "logs"))] if config.tensorboard else []
        self.callbacks = keras.callbacks.CallbackList(
            [*keras_pieces, *callbacks], add_history=False, add_progbar=verbose != 0, model=model,
            verbose=verbose, epochs=config.epochs, steps=steps)

    def fit(self, train_ds, val_ds, val_steps: int) -> None:
        """Train and validate every remaining epoch, until the last, the time budget or early stopping.

        One iterator reads on through the epochs (`train_ds` runs on: stateless training's repeated,
        seeded windows, the stateful streams' passes). Every worker runs the same steps: the stop
        decisions come from values equal on all of them (reduced losses, the chief's clock).
        """
        self.model.stop_training = False
        self.callbacks.on_train_begin()
        self.clock.start = time.perf_counter()
        iterator = iter(train_ds)
        logs = {}
        for epoch in range(self.state.epochs_done, self.config.epochs):
            self.key_dropout(tf.constant(epoch, tf.int64))
            reset_states(self.model)  # a stateful model starts every epoch from zero states
            self.callbacks.on_epoch_begin(epoch)
            logs = self.train_epoch(iterator)
            logs.update(self.validate(val_ds, val_steps, epoch))
            self._end_epoch(epoch, logs)
            if self.model.stop_training:
                break
        self.callbacks.on_train_end(logs)

    def train_epoch(self, iterator) -> dict:
        """One epoch's batches (fewer once the time budget is spent): their loss, accuracy and bpc."""
        optimizer, sums = self.model.optimizer, tf.zeros(3)
        for step in range(self.steps):
            self.callbacks.on_train_batch_begin(step)
            if self.config.lr_schedule == "cosine":
                optimizer.learning_rate = cosine_rate(self.config.learning_rate, self._progress())
            sums += self.train_step(iterator)
            self.clock.chars += self.clock.chars_per_batch
            if self.clock.check_budget():
                self.model.stop_training = True
            self.callbacks.on_train_batch_end(step, _logs(sums))
            if self.model.stop_training:
                break
        return _logs(sums)

    def _progress(self) -> float:
        """How far the run is: its time budget when it has one, else its batches (a resume restores both).

        Own code: Keras's LearningRateScheduler changes the rate once per epoch and knows no time budget.
        """
        if self.clock.budget_seconds is not None:
            return self.clock.seconds() / self.clock.budget_seconds
        return int(self.model.optimizer.iterations.numpy()) / (self.config.epochs * self.steps)

    def validate(self, dataset, steps: int, epoch: int) -> dict:
        """The val_ logs of `steps` batches; a new best val_loss saves best.keras with the weights it saw."""
        reset_states(self.model)
        self.callbacks.on_test_begin()
        if self.average is not None:
            self.average.swap()  # the averaged weights in
        iterator, sums = iter(dataset), tf.zeros(3)
        for _ in range(steps):
            sums += self.eval_step(iterator)
        logs = _logs(sums)
        reset_states(self.model)
        state = self.state
        if state.best_val_loss is None or logs["loss"] < state.best_val_loss:
            state.best_val_loss, state.best_epoch = logs["loss"], epoch
            save_model(self.model, self.run_dir / BEST_FILE)
        if self.average is not None:
            self.average.swap()  # ...and the trained ones back
        self.callbacks.on_test_end(logs)
        return {f"val_{key}": value for key, value in logs.items()}

    def _end_epoch(self, epoch: int, logs: dict) -> None:
        """The epoch's history row, the stop decisions, the checkpoint of record, then the callbacks."""
        state, clock, patience = self.state, self.clock, self.config.early_stopping_patience
        if clock.check_budget():  # validation counts against the budget too
            state.stop_reason = "time budget"
        elif patience and epoch - state.best_epoch >= patience:
            state.stop_reason = "early stopping"
        if state.stop_reason:
            self.model.stop_training = True
        logs[TIME_COLUMN], logs[CHARS_COLUMN] = round(clock.seconds(), 3), clock.chars
        append_history(self.run_dir / HISTORY_FILE, epoch, logs)
        state.epochs_done, state.train_seconds, state.train_chars = epoch + 1, logs[TIME_COLUMN], clock.chars
        state.last_row = {key: getattr(value, "item", lambda v=value: v)() for key, value in logs.items()}
        save_checkpoint(self.run_dir, self.model, state, self.average)
        # The metrics only, as `fit` gives them: Keras's progress line prints every value as a
        # float (train_chars: 96000.0000), and the counts are in history.csv.
        self.callbacks.on_epoch_end(epoch, {key: value for key, value in logs.items()
                                            if key not in (TIME_COLUMN, CHARS_COLUMN)})
