"""Stateful models: state reset, the stateless copy, carried state, and stateful runs."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from interrupts import EpochRecorder, Interrupt, StopAfterEpoch

from charrnn.model import build_model, reset_states, to_stateless
from charrnn.pipelines import stateful_streams
from charrnn.runs import load_run
from charrnn.train import TrainConfig, train

VOCAB = 12
STREAMS = 4


def state_norms(model) -> list[float]:
    """One figure per GRU: the size of its state (in Keras 3, the variables in `layer.states`)."""
    return [sum(float(np.abs(state.numpy()).sum()) for state in gru.states) for gru in model.body]


def random_ids(batch_size, n_steps, seed=0):
    return np.random.default_rng(seed).integers(1, VOCAB + 1, size=(batch_size, n_steps)).astype("int32")


@pytest.fixture
def stateful_model():
    keras.utils.set_random_seed(0)
    return build_model(VOCAB, units=16, n_layers=2, dropout=0.0, stateful=True, batch_size=STREAMS)


def test_state_starts_at_zero_and_changes_after_a_batch(stateful_model):
    assert state_norms(stateful_model) == [0.0, 0.0]
    stateful_model(random_ids(STREAMS, 5))
    assert all(norm > 0 for norm in state_norms(stateful_model))


def test_reset_states_zeroes_every_gru(stateful_model):
    stateful_model(random_ids(STREAMS, 5))
    reset_states(stateful_model)
    assert state_norms(stateful_model) == [0.0, 0.0]


def test_carried_state_changes_the_next_output(stateful_model):
    x = random_ids(STREAMS, 5)
    first = np.asarray(stateful_model(x))
    second = np.asarray(stateful_model(x))
    assert not np.allclose(first, second)
    reset_states(stateful_model)
    np.testing.assert_allclose(stateful_model(x), first, rtol=1e-5, atol=1e-6)


def test_to_stateless_matches_the_stateful_model_from_a_zero_state(stateful_model):
    x = random_ids(STREAMS, 9)
    stateful_model(random_ids(STREAMS, 3, seed=1))  # leave some state behind first
    stateless = to_stateless(stateful_model)
    reset_states(stateful_model)
    expected = np.asarray(stateful_model(x))
    assert not stateless.stateful
    np.testing.assert_allclose(stateless(x), expected, rtol=1e-5, atol=1e-6)
    # any batch size: rows are independent, so the first two rows are the same predictions
    np.testing.assert_allclose(stateless(x[:2]), expected[:2], rtol=1e-5, atol=1e-6)
    assert stateless(random_ids(7, 4)).shape == (7, 4, VOCAB)


def test_to_stateless_keeps_an_embedding():
    model = build_model(VOCAB, units=16, n_layers=1, embedding_dim=6, stateful=True, batch_size=2)
    ids = np.random.default_rng(0).integers(1, VOCAB + 1, size=(2, 8))
    stateless = to_stateless(model)
    reset_states(model)
    np.testing.assert_allclose(stateless(ids), model(ids), rtol=1e-5, atol=1e-6)


# ---- stateful runs ----------------------------------------------------------------------------

STATEFUL_TINY = {  # short windows over 8 streams: the carried state has much to add
    "stateful": True,
    "units": 32,
    "n_layers": 1,
    "dropout": 0.0,
    "embedding_dim": 16,
    "n_steps": 10,
    "batch_size": 8,
    "epochs": 1,  # one pass: ~450 steps of 8 x 10 characters
    "learning_rate": 1e-2,
    "seed": 1,
}


@pytest.fixture(scope="module")
def stateful_run(tiny_data, tmp_path_factory):
    runs_dir = tmp_path_factory.mktemp("runs")
    config = TrainConfig(run_name="stateful", **STATEFUL_TINY)
    model, history = train(config, tiny_data, runs_dir, verbose=0)
    return config, model, history, runs_dir / "stateful"


def mean_validation_loss(model, data, config, carry_state: bool) -> float:
    """Mean loss over the validation streams read in order, with or without carried state."""
    streams = stateful_streams(data.val_ids, config.n_steps, config.batch_size,
                               vocab_size=data.tokenizer.vocab_size)
    reset_states(model)
    losses = []
    for x, y in streams:
        if not carry_state:
            reset_states(model)
        logits = model(x, training=False)
        losses.append(float(keras.ops.mean(
            keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))))
    return float(np.mean(losses))


def test_carried_state_lowers_the_validation_loss(stateful_run, tiny_data):
    config, model, _, _ = stateful_run
    carried = mean_validation_loss(model, tiny_data, config, carry_state=True)
    reset_every_window = mean_validation_loss(model, tiny_data, config, carry_state=False)
    assert carried < math.log(tiny_data.tokenizer.vocab_size)
    assert carried < reset_every_window - 0.02


def test_stateful_validation_reads_the_streams_with_carried_state(stateful_run, tiny_data):
    config, model, history, _ = stateful_run
    carried = mean_validation_loss(model, tiny_data, config, carry_state=True)
    assert history["val_loss"][-1] == pytest.approx(carried, rel=1e-4)


def test_stateful_run_reports_validation_bpc(stateful_run):
    config, _, history, run_dir = stateful_run
    assert history["epoch"] == list(range(config.epochs))
    np.testing.assert_allclose(history["val_bpc"], np.array(history["val_loss"]) / math.log(2.0),
                               rtol=1e-4)
    assert (run_dir / "model.keras").is_file() and not (run_dir / "checkpoints").exists()


def test_stateful_run_loads_back_as_a_stateful_model(stateful_run):
    config, _, _, run_dir = stateful_run
    model = load_run(run_dir).model
    assert model.stateful
    assert all(int(state.shape[0]) == config.batch_size for layer in model.body for state in layer.states)


def test_interrupted_stateful_run_resumes_at_the_next_epoch(tiny_data, tmp_path):
    config = TrainConfig(run_name="stateful-resume", stateful=True, units=16, n_layers=1, n_steps=50,
                         batch_size=STREAMS, epochs=3, steps_per_epoch=10, validation_steps=3)
    with pytest.raises(Interrupt):
        train(config, tiny_data, tmp_path, extra_callbacks=(StopAfterEpoch(0),), verbose=0)
    run_dir = tmp_path / config.run_name
    first_rows = (run_dir / "history.csv").read_text().splitlines()

    recorder = EpochRecorder()
    _, history = train(config, tiny_data, tmp_path, extra_callbacks=(recorder,), verbose=0)
    assert recorder.epochs == [1, 2]
    assert history["epoch"] == [0, 1, 2]
    assert (run_dir / "history.csv").read_text().splitlines()[:2] == first_rows
    assert len(history["val_bpc"]) == 3
