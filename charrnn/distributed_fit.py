"""The training loop for strategy='mirrored' and 'multiworker': a `strategy.run` step driving Keras callbacks.

Why not `model.fit`: under MultiWorkerMirroredStrategy it fails in Keras 3
(keras-team/keras#20585), and under MirroredStrategy it differs from one device
(it draws one throwaway iterator, so a reshuffling dataset trains on the next
permutation; `clipnorm` clips each replica's partial gradient). This loop matches
one device to float noise. strategy='none' stays on `fit`, whose histories earlier
runs must keep reproducing byte for byte.

The loop calls the same callbacks `fit` would (`CallbackList`: train, epoch, batch
and test events, `model.stop_training`) with logs of the same keys (loss, accuracy,
bpc and their val_ twins), so history, best model, checkpoint of record, time
budget and resume are the callbacks' job here as on the `fit` path.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

SEED_STRIDE = 7919  # replica r's dropout stream: the layer's seed + r * SEED_STRIDE
EPOCH_DRAWS = 1 << 20  # each epoch's dropout draws start at epoch * EPOCH_DRAWS


def _sums(y, logits):
    """[sum of per-sequence mean loss, sum of per-sequence accuracy, sequences] of one replica's rows."""
    loss = keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
    hits = tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=y.dtype), y), loss.dtype)
    count = tf.cast(tf.shape(loss)[0], loss.dtype)
    return tf.reduce_mean(loss, axis=-1), tf.reduce_sum(tf.reduce_mean(hits, axis=-1)), count


def make_steps(strategy, model, clipnorm: float | None):
    """(train_step, eval_step, key_dropout): tf.functions of an iterator (or an epoch), across replicas."""
    optimizer = model.optimizer
    with strategy.scope():  # its slots now, not inside the first traced step
        optimizer.build(model.trainable_variables)

    def train_replica(x, y):
        context = tf.distribute.get_replica_context()
        with tf.GradientTape() as tape:
            per_sequence, hits, count = _sums(y, model(x, training=True))
            total = context.all_reduce("SUM", count)  # the global batch (a pass's last one may be short)
            loss = tf.reduce_sum(per_sequence) / total
        grads = tape.gradient(loss, model.trainable_variables)
        if clipnorm:
            # Clip the global gradient, as one device does (Keras would clip each replica's part):
            # sum it here, clip, and hand the optimizer 1/R of it, which it sums back.
            grads = [tf.clip_by_norm(g, clipnorm) / context.num_replicas_in_sync
                     for g in context.all_reduce("SUM", grads)]
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
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

    generators = [gru.cell.seed_generator for gru in model.body
                  if isinstance(getattr(gru.cell, "seed_generator", None), keras.random.SeedGenerator)]
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


def _logs(sums, prefix: str = "") -> dict:
    loss_sum, hits, count = (float(value) for value in sums)
    loss = loss_sum / count
    return {f"{prefix}loss": loss, f"{prefix}accuracy": hits / count, f"{prefix}bpc": loss / math.log(2.0)}


def fit_distributed(strategy, model, train_ds, val_ds, *, steps: int, val_steps: int, epochs: int,
                    initial_epoch: int, restart_each_epoch: bool, clipnorm: float | None, callbacks: list,
                    verbose: int | str = 2) -> None:
    """Train epochs initial_epoch..epochs-1 as `model.fit` would, on `strategy`'s replicas.

    `restart_each_epoch`: a new iterator every epoch (stateful streams read from their start);
    otherwise one iterator reads on through the epochs (stateless training's repeated, seeded
    windows; stateful streams with random_offsets).
    Every worker runs the same number of steps: the stop decisions come from values that
    are equal on all of them (reduced losses, the chief's clock).
    """
    train_step, eval_step, key_dropout = make_steps(strategy, model, clipnorm)
    callback_list = keras.callbacks.CallbackList(
        callbacks, add_history=False, add_progbar=verbose != 0, model=model,
        verbose=verbose, epochs=epochs, steps=steps)
    model.stop_training = False
    callback_list.on_train_begin()
    train_iterator = None if restart_each_epoch else iter(train_ds)
    logs = {}
    for epoch in range(initial_epoch, epochs):
        key_dropout(tf.constant(epoch, tf.int64))
        callback_list.on_epoch_begin(epoch)
        iterator = iter(train_ds) if restart_each_epoch else train_iterator
        sums = tf.zeros(3)
        for step in range(steps):
            callback_list.on_train_batch_begin(step)
            sums += train_step(iterator)
            callback_list.on_train_batch_end(step, _logs(sums))
            if model.stop_training:
                break
        logs = _logs(sums)
        callback_list.on_test_begin()
        val_iterator, val_sums = iter(val_ds), tf.zeros(3)
        for _ in range(val_steps):
            val_sums += eval_step(val_iterator)
        val_logs = _logs(val_sums)
        callback_list.on_test_end(val_logs)
        logs.update({f"val_{key}": value for key, value in val_logs.items()})
        callback_list.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    callback_list.on_train_end(logs)
