"""Drawing the next character from logits: temperature, top-k, and one uniform number per stream.

Temperature: logits are divided by it before the softmax; 0 means greedy (argmax), 1
samples the model's own distribution, above 1 flattens it. Every draw reads a uniform
number from a table keyed on the seed (`uniform_table`), so the same seed gives the same
text, and the compiled CPU loop (`charrnn.extras.cpp_loop`) reads the very same numbers.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

CHUNK_STEPS = 256  # the generator's steps per compiled call; the uniform table comes in whole chunks


def uniform_table(seed, steps, batch):
    """uniforms[t, i] in (0, 1): stream i's draw at step t, in whole chunks covering `steps` steps.

    Stream i draws from its own key (seed, i), so its text does not depend on the other
    streams in the batch or on how long they run.
    """
    rows = tf.maximum((steps + CHUNK_STEPS - 1) // CHUNK_STEPS, 1) * CHUNK_STEPS
    seed = tf.cast(seed, tf.int64)
    streams = tf.map_fn(
        lambda stream: tf.random.stateless_uniform([rows], tf.stack([seed, stream]), minval=1e-7, maxval=1.0),
        tf.range(tf.cast(batch, tf.int64)), fn_output_signature=tf.float32)
    return tf.transpose(tf.reshape(streams, [batch, rows]))


def pick_next_ids(logits, temperature, top_k, uniforms):
    """Class indices sampled from `logits` (batch, V) → ids (index + 1), one uniform per row.

    Inverse-CDF sampling: the uniform number is looked up in the cumulative
    softmax(logits / T) (`_inverse_cdf`). It compiles with XLA (unlike
    `tf.random.stateless_categorical`) and, unlike Gumbel-max, needs one random number
    per stream instead of one per class, which matters for alphabets of thousands of
    characters. Temperature 0 is greedy (argmax). `top_k` keeps the k largest logits
    (all of them when top_k = V; ties with the k-th are kept too).
    """
    logits = logits - tf.reduce_max(logits, axis=-1, keepdims=True)  # max 0: safe for tiny temperatures
    logits = tf.cond(
        top_k < tf.shape(logits)[-1], lambda: _keep_top_k(logits, top_k), lambda: logits
    )  # the sort costs as much as a GRU step: skip it when top-k is off
    greedy = tf.equal(temperature, 0.0)
    probabilities = tf.nn.softmax(logits / tf.where(greedy, 1.0, temperature))
    sampled = _inverse_cdf(probabilities, uniforms)
    greedy_ids = tf.argmax(logits, axis=-1, output_type=tf.int32)
    return tf.where(greedy, greedy_ids, sampled) + 1


def _inverse_cdf(probabilities, uniform):
    """Per row, the first class whose cumulative probability reaches `uniform` × the row's total.

    In two levels, blocks of about sqrt(V) classes and then the classes of the chosen
    block, because a cumulative sum over thousands of classes is slow under XLA on CPU.
    A class of probability 0 is never chosen.
    """
    vocab_size = tf.shape(probabilities)[-1]
    block_size = tf.cast(tf.math.ceil(tf.sqrt(tf.cast(vocab_size, tf.float32))), tf.int32)
    n_blocks = (vocab_size + block_size - 1) // block_size
    padded = tf.pad(probabilities, [[0, 0], [0, n_blocks * block_size - vocab_size]])
    blocks = tf.reshape(padded, [tf.shape(probabilities)[0], n_blocks, block_size])
    block_mass = tf.reduce_sum(blocks, axis=-1)
    block_cdf = tf.cumsum(block_mass, axis=-1)
    target = uniform * block_cdf[:, -1]
    block = _first_reaching(block_cdf, block_mass > 0, target)
    inside = tf.gather(blocks, block, batch_dims=1)
    target -= tf.gather(block_cdf, block, batch_dims=1) - tf.gather(block_mass, block, batch_dims=1)
    return block * block_size + _first_reaching(tf.cumsum(inside, axis=-1), inside > 0, target)


def _first_reaching(cdf, positive, target):
    """Index of the first entry of `cdf` >= `target`, within the positive entries' span (rounding
    can leave `target` beyond the last, or at or below 0 before the first)."""
    index = tf.reduce_sum(tf.cast(cdf < target[:, None], tf.int32), axis=-1)
    width = tf.shape(cdf)[-1]
    positive = tf.cast(positive, tf.int32)
    first_positive = tf.argmax(positive, axis=-1, output_type=tf.int32)
    last_positive = width - 1 - tf.argmax(tf.reverse(positive, [-1]), axis=-1, output_type=tf.int32)
    return tf.maximum(tf.minimum(index, last_positive), first_positive)


def _keep_top_k(logits, top_k):
    """Logits with all but the `top_k` largest per row set to -inf (ties with the k-th kept)."""
    kth_largest = tf.gather(tf.sort(logits, axis=-1, direction="DESCENDING"), top_k - 1, axis=-1)
    return tf.where(logits >= kth_largest[:, None], logits, -np.inf)
