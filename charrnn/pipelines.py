"""tf.data pipelines: shuffled overlapping windows (stateless) and parallel streams (stateful).

Ids come from `CharTokenizer` (1..vocab_size). The model reads the ids themselves (it
one-hots or embeds them) and predicts classes `id - 1` (0..vocab_size-1), as Géron's
notebook did by subtracting 1 after tokenizing: inputs are ids, targets `id - 1`.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE


def _check(ids, n_steps: int, batch_size: int, vocab_size: int | None, what: str) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"ids must be a 1-D integer array, got shape {ids.shape} {ids.dtype}.")
    for name, value in (("n_steps", n_steps), ("batch_size", batch_size), ("vocab_size", vocab_size)):
        if value is not None and int(value) < 1:
            raise ValueError(f"{name} must be a positive integer, got {value}.")
    if vocab_size is not None and ids.size and (ids.min() < 1 or ids.max() > vocab_size):
        raise ValueError(
            f"ids must be in 1..vocab_size={vocab_size}, got {ids.min()}..{ids.max()}: "
            "were they encoded with this tokenizer?"
        )
    if len(ids) < n_steps + 1:
        raise ValueError(
            f"{what} has {len(ids)} characters, fewer than one window of n_steps + 1 = "
            f"{n_steps + 1}. Use more text or a smaller n_steps."
        )
    return ids.astype(np.int32)


def _to_xy(windows):
    return windows[..., :-1], windows[..., 1:] - 1


def count_windows(n_ids: int, n_steps: int, shift: int) -> int:
    return (n_ids - n_steps - 1) // shift + 1


def count_stream_batches(n_ids: int, n_steps: int, batch_size: int) -> int:
    """Batches of `stream_windows`: windows in the shortest of the `batch_size` parts."""
    return (n_ids // batch_size - 1) // n_steps


def shuffled_windows(
    ids,
    n_steps: int = 100,
    shift: int = 1,
    batch_size: int = 32,
    *,
    vocab_size: int,
    shuffle: bool = True,
    shuffle_buffer: int | None = None,
    seed: int | None = None,
    repeat: bool = False,
    drop_remainder: bool = False,
    skip_batches: int = 0,
    part: tuple[int, int] | None = None,
) -> tf.data.Dataset:
    """Batches of (X, Y) windows of `n_steps` characters, one every `shift` characters.

    The same windows as Géron's `window()` / `flat_map()` chain, but the
    dataset holds only window start offsets and gathers each batch from one
    constant tensor, which is much faster. `shuffle_buffer=None` shuffles all
    windows (the starts are small ints, so a full shuffle costs little).
    `skip_batches` drops the first batches of the stream before any window is
    gathered: a resumed run reads on where an uninterrupted one would be.
    `part=(index, count)` keeps one replica's rows of every batch (the
    index-th of `count` near-equal slices; every replica builds the same batches).
    """
    ids = _check(ids, n_steps, batch_size, vocab_size, "The id sequence")
    if shift < 1:
        raise ValueError(f"shift must be a positive integer, got {shift}.")
    n_windows = count_windows(len(ids), n_steps, shift)
    starts = tf.data.Dataset.range(0, n_windows * shift, shift)
    if shuffle:
        starts = starts.shuffle(shuffle_buffer or n_windows, seed=seed, reshuffle_each_iteration=True)
    corpus = tf.constant(ids)
    offsets = tf.range(n_steps + 1, dtype=tf.int64)
    to_xy = _to_xy
    dataset = starts.batch(batch_size, drop_remainder=drop_remainder)
    if repeat:  # after batching: every pass (reshuffled) starts a new batch
        dataset = dataset.repeat()
    if skip_batches:
        dataset = dataset.skip(skip_batches)
    if part is not None:  # this replica's near-equal share of each batch (a pass's last one may be short)
        index, count = part
        dataset = dataset.map(lambda s: s[index * tf.size(s) // count:(index + 1) * tf.size(s) // count])
    # One map per batch: gather the windows by index, then split and encode them.
    dataset = dataset.map(
        lambda s: to_xy(tf.gather(corpus, s[:, None] + offsets[None, :])), num_parallel_calls=AUTOTUNE
    )
    return dataset.prefetch(AUTOTUNE)


def stream_windows(ids, n_steps: int = 100, batch_size: int = 32) -> np.ndarray:
    """The stateful layout as an array of shape (n_batches, batch_size, n_steps + 1).

    The ids are cut into `batch_size` contiguous parts (`np.array_split`, as Géron
    did); each part into consecutive windows that overlap by one character
    (the last input of one window is the first of the next, so targets line up).
    Row i of batch k continues row i of batch k - 1 exactly. All parts yield the
    same number of windows as the shortest, like Géron's `Dataset.zip`.
    """
    ids = _check(ids, n_steps, batch_size, None, "The id sequence")
    parts = np.array_split(ids, batch_size)
    n_batches = count_stream_batches(len(ids), n_steps, batch_size)
    if n_batches < 1:
        raise ValueError(
            f"{len(ids)} characters cut into {batch_size} streams give streams of "
            f"{min(len(p) for p in parts)} characters, fewer than one window of "
            f"{n_steps + 1}. Use fewer streams (batch_size) or a smaller n_steps."
        )
    index = np.arange(n_batches)[:, None] * n_steps + np.arange(n_steps + 1)[None, :]
    return np.stack([part[index] for part in parts], axis=1)


def stateful_streams(
    ids,
    n_steps: int = 100,
    batch_size: int = 32,
    *,
    vocab_size: int,
    part: tuple[int, int] | None = None,
    offsets_seed: int | None = None,
    first_epoch: int = 0,
    epoch_batches: int | None = None,
) -> tf.data.Dataset:
    """Batches for a stateful model: `batch_size` parallel streams read in order.

    `part=(index, count)`: one replica's streams, [index·b, (index+1)·b) with b = batch_size / count.
    `offsets_seed`: every pass over the streams cuts the text `epoch_offset(offsets_seed, pass,
    n_steps)` characters later (0..n_steps-1), so its windows end at other places than the
    last pass's; the dataset then runs on from `first_epoch`, an epoch being a pass of
    `count_stream_batches(len(ids) - n_steps + 1, ...)` batches, or the next `epoch_batches`
    of the passes (a long text is then validated several times a pass, and still read through).
    None: one epoch, the same windows every time (Géron's).
    """
    ids = _check(ids, n_steps, batch_size, vocab_size, "The id sequence")
    if part is not None and batch_size % part[1]:
        raise ValueError(f"batch_size={batch_size} streams do not split evenly over {part[1]} replicas.")
    rows = slice(None) if part is None else slice(
        part[0] * batch_size // part[1], (part[0] + 1) * batch_size // part[1])
    if offsets_seed is None:
        dataset = tf.data.Dataset.from_tensor_slices(stream_windows(ids, n_steps, batch_size)[:, rows])
        return dataset.map(_to_xy).prefetch(AUTOTUNE)
    usable = len(ids) - n_steps + 1  # room for every offset: each epoch has the same batches
    n_batches = count_stream_batches(usable, n_steps, batch_size)
    epoch_batches = min(n_batches, epoch_batches or n_batches)
    stream_windows(ids[:usable], n_steps, batch_size)  # the clear error if the streams are too short
    # Where np.array_split starts each of the streams (as stream_windows cuts them), this replica's.
    starts = np.cumsum([0] + [len(p) for p in np.array_split(np.arange(usable), batch_size)])[:-1][rows]
    corpus = tf.constant(ids)
    window = tf.constant(starts[:, None] + np.arange(n_steps + 1)[None, :], tf.int64)

    def batch_at(index):  # the index-th batch since the first pass began
        offset = _epoch_offset(offsets_seed, index // n_batches, n_steps)
        return tf.gather(corpus, offset + index % n_batches * n_steps + window)

    dataset = tf.data.Dataset.range(first_epoch * epoch_batches, np.iinfo(np.int64).max).map(batch_at)
    return dataset.map(_to_xy).prefetch(AUTOTUNE)


def _epoch_offset(seed, epoch, n_steps: int):
    return tf.random.stateless_uniform(
        [], seed=tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)]), maxval=n_steps,
        dtype=tf.int64)


def epoch_offset(seed: int, epoch: int, n_steps: int) -> int:
    """The characters `stateful_streams(offsets_seed=seed)` skips in pass `epoch`: 0..n_steps-1."""
    return int(_epoch_offset(seed, epoch, n_steps))
