"""charrnn.pipelines against the seed notebook's tf.data chains, computed here on small arrays.

The seed tokenized to ids 1..V and subtracted 1 (`encoded = ids - 1`, `max_id = V`); our
pipelines take the ids 1..V themselves, so their targets (id - 1) and one-hot inputs must
equal the seed's exactly, and id-mode inputs must be the seed's X + 1.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from charrnn.pipelines import (
    count_stream_batches,
    count_windows,
    epoch_offset,
    shuffled_windows,
    stateful_streams,
    stream_windows,
)

VOCAB = 7


@pytest.fixture(scope="module")
def small_ids():
    return np.random.default_rng(0).integers(1, VOCAB + 1, size=300).astype(np.int32)


@pytest.fixture(scope="module")
def stream_ids():
    # 2,003 ids in 4 streams: parts of 501, 501, 501 and 500 ids, so the zip must stop at the shortest
    return np.random.default_rng(1).integers(1, VOCAB + 1, size=2003).astype(np.int32)


def seed_inputs(X, Y):
    return X + 1, Y  # Géron's chain yields classes (id - 1); the model reads ids


def seed_shuffled_windows(ids, n_steps, shift, batch_size):
    """The seed's stateless chain, verbatim but for its one-hot step (the model one-hots ids itself)."""
    encoded = ids.astype(np.int64) - 1
    dataset = tf.data.Dataset.from_tensor_slices(encoded)
    dataset = dataset.window(n_steps + 1, shift=shift, drop_remainder=True)
    dataset = dataset.flat_map(lambda window: window.batch(n_steps + 1))
    dataset = dataset.shuffle(10000).batch(batch_size)
    dataset = dataset.map(lambda windows: (windows[:, :-1], windows[:, 1:]))
    return dataset.map(lambda X, Y: seed_inputs(X, Y))


def seed_stateful_streams(ids, n_steps, batch_size):
    """The seed's stateful chain: array_split, one windowed dataset per part, zip and stack."""
    encoded = ids.astype(np.int64) - 1
    datasets = []
    for part in np.array_split(encoded, batch_size):
        dataset = tf.data.Dataset.from_tensor_slices(part)
        dataset = dataset.window(n_steps + 1, shift=n_steps, drop_remainder=True)
        dataset = dataset.flat_map(lambda window: window.batch(n_steps + 1))
        datasets.append(dataset)
    dataset = tf.data.Dataset.zip(tuple(datasets)).map(lambda *windows: tf.stack(windows))
    dataset = dataset.map(lambda windows: (windows[:, :-1], windows[:, 1:]))
    return dataset.map(lambda X, Y: seed_inputs(X, Y))


def as_numpy(X, Y):
    """One dtype, so ours and the seed's compare byte for byte."""
    return np.asarray(X, np.int64), np.asarray(Y, np.int64)


def row_multiset(dataset):
    rows = []
    for X, Y in dataset:
        X, Y = as_numpy(X, Y)
        rows.extend((x.tobytes(), y.tobytes()) for x, y in zip(X, Y))
    return sorted(rows)


def batches(dataset):
    return [as_numpy(X, Y) for X, Y in dataset]


def input_ids(dataset):
    """All X windows of an id-mode dataset, in order, as one (n_windows, n_steps) array."""
    return np.concatenate([X.numpy() for X, _ in dataset])


# ---------------------------------------------------------------- shuffled windows


@pytest.mark.parametrize("shift", [1, 3])
def test_shuffled_windows_match_the_seed_chain(small_ids, shift):
    n_steps, batch_size = 10, 8
    ours = shuffled_windows(small_ids, n_steps, shift, batch_size, vocab_size=VOCAB, seed=0)
    seed = seed_shuffled_windows(small_ids, n_steps, shift, batch_size)
    ours_rows = row_multiset(ours)
    assert len(ours_rows) == count_windows(len(small_ids), n_steps, shift) == (300 - 11) // shift + 1
    assert ours_rows == row_multiset(seed)


def test_default_batch_shapes_and_dtypes(tiny_data):
    vocab_size = tiny_data.tokenizer.vocab_size
    X, Y = next(iter(shuffled_windows(tiny_data.train_ids, vocab_size=vocab_size, seed=0)))
    assert X.shape == (32, 100) and X.dtype == tf.int32 and Y.shape == (32, 100) and Y.dtype == tf.int32
    assert 1 <= int(tf.reduce_min(X)) and int(tf.reduce_max(X)) <= vocab_size  # ids; the model one-hots them
    np.testing.assert_array_equal(X[:, 1:] - 1, Y[:, :-1])  # targets are the next inputs, minus 1


def test_same_seed_gives_the_same_order(small_ids):
    def order(seed):
        return input_ids(shuffled_windows(small_ids, 10, vocab_size=VOCAB, seed=seed))

    first = order(42)
    np.testing.assert_array_equal(first, order(42))
    assert not np.array_equal(first, order(43))


def test_shuffle_actually_shuffles_and_reshuffles_each_pass(small_ids):
    dataset = shuffled_windows(small_ids, 10, vocab_size=VOCAB, seed=0)
    in_order = input_ids(shuffled_windows(small_ids, 10, vocab_size=VOCAB, shuffle=False))
    first_pass, second_pass = input_ids(dataset), input_ids(dataset)
    assert not np.array_equal(first_pass, in_order)
    assert not np.array_equal(first_pass, second_pass)
    assert sorted(map(bytes, first_pass)) == sorted(map(bytes, second_pass))


@pytest.mark.parametrize("shift", [1, 4])
def test_no_shuffle_is_in_order(small_ids, shift):
    n_steps = 10
    dataset = shuffled_windows(small_ids, n_steps, shift, 16, vocab_size=VOCAB, shuffle=False)
    starts = range(0, count_windows(len(small_ids), n_steps, shift) * shift, shift)
    expected_X = np.stack([small_ids[s : s + n_steps] for s in starts])
    expected_Y = np.stack([small_ids[s + 1 : s + n_steps + 1] for s in starts]) - 1
    np.testing.assert_array_equal(input_ids(dataset), expected_X)
    np.testing.assert_array_equal(np.concatenate([Y.numpy() for _, Y in dataset]), expected_Y)


def test_drop_remainder_and_repeat(small_ids):
    n_windows = count_windows(len(small_ids), 10, 1)  # 290: 9 full batches of 32 and 2 left over
    kept = shuffled_windows(small_ids, 10, batch_size=32, vocab_size=VOCAB, shuffle=False)
    assert [int(X.shape[0]) for X, _ in kept] == [32] * 9 + [n_windows - 9 * 32]
    dropped = shuffled_windows(small_ids, 10, batch_size=32, vocab_size=VOCAB, drop_remainder=True)
    assert [int(X.shape[0]) for X, _ in dropped] == [32] * 9
    repeated = shuffled_windows(small_ids, 10, batch_size=32, vocab_size=VOCAB, repeat=True)
    assert len(list(repeated.take(20))) == 20  # more batches than one pass holds


# ---------------------------------------------------------------- stateful streams


def test_stateful_streams_match_the_seed_chain(stream_ids):
    n_steps, batch_size = 10, 4
    ours = stateful_streams(stream_ids, n_steps, batch_size, vocab_size=VOCAB)
    ours = batches(ours)
    seed = batches(seed_stateful_streams(stream_ids, n_steps, batch_size))
    assert len(ours) == len(seed) == (500 - 1) // n_steps  # the shortest part decides
    for (X, Y), (seed_X, seed_Y) in zip(ours, seed):
        np.testing.assert_array_equal(X, seed_X)
        np.testing.assert_array_equal(Y, seed_Y)


def test_stateful_batch_shapes(stream_ids):
    X, Y = next(iter(stateful_streams(stream_ids, 10, 4, vocab_size=VOCAB)))
    assert X.shape == (4, 10) and X.dtype == tf.int32
    assert Y.shape == (4, 10) and Y.dtype == tf.int32


def test_each_stream_continues_where_the_previous_batch_stopped(stream_ids):
    n_steps, batch_size = 10, 4
    ours = batches(stateful_streams(stream_ids, n_steps, batch_size, vocab_size=VOCAB))
    for (_, Y_prev), (X, _) in zip(ours, ours[1:]):
        # the first input of row i equals the last target (+1) of row i in the batch before
        np.testing.assert_array_equal(X[:, 0], Y_prev[:, -1] + 1)
    # stream i read through all batches is one contiguous stretch of the i-th part of the ids
    stream_starts = np.cumsum([0] + [len(p) for p in np.array_split(stream_ids, batch_size)])[:-1]
    read = len(ours) * n_steps
    for i, start in enumerate(stream_starts):
        np.testing.assert_array_equal(
            np.concatenate([X[i] for X, _ in ours]), stream_ids[start : start + read]
        )
        np.testing.assert_array_equal(
            np.concatenate([Y[i] for _, Y in ours]), stream_ids[start + 1 : start + read + 1] - 1
        )


def test_stream_windows_layout(stream_ids):
    windows = stream_windows(stream_ids, 10, 4)
    assert windows.shape == (49, 4, 11)
    np.testing.assert_array_equal(windows[1:, :, 0], windows[:-1, :, -1])  # consecutive windows share one id


def epoch_windows(dataset, epochs, per_epoch):
    """The (X, Y) id windows of the first `epochs` epochs of a multi-epoch stream dataset."""
    flat = batches(dataset.take(epochs * per_epoch))
    return [flat[e * per_epoch:(e + 1) * per_epoch] for e in range(epochs)]


def test_random_offsets_cut_each_epoch_as_the_streams_of_the_text_from_its_offset(stream_ids):
    n_steps, batch_size, seed = 10, 4, 3
    usable = len(stream_ids) - n_steps + 1
    per_epoch = count_stream_batches(usable, n_steps, batch_size)
    dataset = stateful_streams(stream_ids, n_steps, batch_size, vocab_size=VOCAB,
                               offsets_seed=seed)
    epochs = epoch_windows(dataset, 4, per_epoch)
    offsets = [epoch_offset(seed, e, n_steps) for e in range(4)]
    assert len(set(offsets)) > 1 and all(0 <= o < n_steps for o in offsets)
    for offset, batches_of_epoch in zip(offsets, epochs):
        expected = stream_windows(stream_ids[offset:offset + usable], n_steps, batch_size)
        assert len(expected) == per_epoch
        for (X, Y), windows in zip(batches_of_epoch, expected):
            np.testing.assert_array_equal(X, windows[:, :-1])
            np.testing.assert_array_equal(Y, windows[:, 1:] - 1)


def test_random_offsets_resume_at_any_epoch_and_split_over_replicas(stream_ids):
    n_steps, batch_size, per_epoch = 10, 4, 5  # epoch_batches: only the first 5 batches of each epoch

    def make(**kw):
        return stateful_streams(stream_ids, n_steps, batch_size, vocab_size=VOCAB,
                                offsets_seed=0, epoch_batches=per_epoch, **kw)

    straight = epoch_windows(make(), 3, per_epoch)
    resumed = epoch_windows(make(first_epoch=2), 1, per_epoch)
    halves = [epoch_windows(make(part=(r, 2)), 3, per_epoch) for r in range(2)]
    for (X, _), (X_resumed, _) in zip(straight[2], resumed[0]):
        np.testing.assert_array_equal(X, X_resumed)
    for e in range(3):
        for b, (X, _) in enumerate(straight[e]):
            np.testing.assert_array_equal(X, np.concatenate([halves[0][e][b][0], halves[1][e][b][0]]))


def test_short_epochs_read_on_through_the_pass_and_the_next_pass_moves_its_cut(stream_ids):
    n_steps, batch_size, seed = 10, 4, 3
    usable = len(stream_ids) - n_steps + 1
    per_pass = count_stream_batches(usable, n_steps, batch_size)
    short = per_pass // 2 + 1  # epochs that straddle the passes' boundaries
    whole = [X for pass_ in epoch_windows(stateful_streams(
        stream_ids, n_steps, batch_size, vocab_size=VOCAB, offsets_seed=seed), 3, per_pass) for X, _ in pass_]
    chunks = [X for epoch in epoch_windows(stateful_streams(
        stream_ids, n_steps, batch_size, vocab_size=VOCAB, offsets_seed=seed, epoch_batches=short),
        5, short) for X, _ in epoch]
    for X_whole, X_chunk in zip(whole, chunks):
        np.testing.assert_array_equal(X_whole, X_chunk)
    assert len(chunks) == 5 * short <= len(whole)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("make", [shuffled_windows, stateful_streams], ids=["shuffled", "stateful"])
def test_sequence_shorter_than_one_window_is_refused(make):
    ids = np.ones(100, dtype=np.int32)
    with pytest.raises(ValueError, match="fewer than one window"):
        make(ids, 100, batch_size=1, vocab_size=VOCAB)
    make(np.ones(101, dtype=np.int32), 100, batch_size=1, vocab_size=VOCAB)  # exactly one window is fine


def test_too_many_streams_for_the_text_is_refused(small_ids):
    with pytest.raises(ValueError, match="fewer streams"):
        stateful_streams(small_ids, 10, 32, vocab_size=VOCAB)  # 32 streams of ~9 ids < one window of 11
    with pytest.raises(ValueError, match="fewer streams"):
        stateful_streams(small_ids, 10, 400, vocab_size=VOCAB)  # more streams than ids


@pytest.mark.parametrize("make", [shuffled_windows, stateful_streams], ids=["shuffled", "stateful"])
@pytest.mark.parametrize("bad_id", [0, -1, VOCAB + 1])
def test_ids_outside_the_vocabulary_are_refused(make, small_ids, bad_id):
    ids = small_ids.copy()
    ids[150] = bad_id
    with pytest.raises(ValueError, match=f"1..vocab_size={VOCAB}"):
        make(ids, 10, batch_size=4, vocab_size=VOCAB)


@pytest.mark.parametrize("make", [shuffled_windows, stateful_streams], ids=["shuffled", "stateful"])
@pytest.mark.parametrize("bad", [0, -1])
@pytest.mark.parametrize("name", ["n_steps", "batch_size"])
def test_non_positive_sizes_are_refused(make, small_ids, name, bad):
    kwargs = {"n_steps": 10, "batch_size": 4, name: bad}
    with pytest.raises(ValueError, match=f"{name} must be a positive integer"):
        make(small_ids, vocab_size=VOCAB, **kwargs)


@pytest.mark.parametrize("bad", [0, -1])
def test_non_positive_shift_is_refused(small_ids, bad):
    with pytest.raises(ValueError, match="shift must be a positive integer"):
        shuffled_windows(small_ids, 10, bad, vocab_size=VOCAB)


@pytest.mark.parametrize(
    "ids", [np.ones((2, 200), dtype=np.int32), np.ones(200, dtype=np.float32)], ids=["2-D", "float"]
)
def test_ids_must_be_a_1d_integer_array(ids):
    with pytest.raises(ValueError, match="1-D integer array"):
        shuffled_windows(ids, 10, vocab_size=VOCAB)
