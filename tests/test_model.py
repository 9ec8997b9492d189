"""Building models: shapes, argument checks, and the cuDNN-compatible GRU layout."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from charrnn.fused_gru import FusedGRU
from charrnn.model import (
    build_model,
    build_step_model,
    compile_model,
    gru_layers,
    model_config,
    resolve_embedding_dim,
    to_stateless,
)

VOCAB = 20


def test_one_hot_model_outputs_logits_per_time_step():
    model = build_model(VOCAB, units=16, n_layers=2)
    x = np.zeros((3, 7, VOCAB), dtype="float32")
    assert model(x).shape == (3, 7, VOCAB)


def test_embedding_model_reads_ids_and_outputs_logits_per_time_step():
    model = build_model(VOCAB, units=16, n_layers=1, embedding_dim=8)
    ids = np.random.default_rng(0).integers(1, VOCAB + 1, size=(2, 11))
    assert model(ids).shape == (2, 11, VOCAB)
    assert any(isinstance(layer, keras.layers.Embedding) for layer in model.layers)


def test_outputs_are_logits_not_probabilities():
    model = build_model(VOCAB, units=16, n_layers=1, dropout=0.0)
    x = np.eye(VOCAB, dtype="float32")[None, :, :]
    logits = np.asarray(model(x))
    assert (logits < 0).any()  # a softmax output would be non-negative and sum to one
    assert not np.allclose(logits.sum(axis=-1), 1.0)


def test_stateful_model_has_a_fixed_batch_size():
    model = build_model(VOCAB, units=16, n_layers=2, stateful=True, batch_size=4)
    assert model.input_shape == (4, None, VOCAB)
    assert model(np.zeros((4, 5, VOCAB), dtype="float32")).shape == (4, 5, VOCAB)
    assert all(gru.stateful for gru in gru_layers(model))


def test_stateful_model_without_batch_size_is_refused():
    with pytest.raises(ValueError, match="batch_size"):
        build_model(VOCAB, units=16, stateful=True)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"vocab_size": 0}, "must be positive"),
        ({"units": 0}, "must be positive"),
        ({"n_layers": 0}, "must be positive"),
        ({"dropout": 1.0}, "dropout"),
        ({"dropout": -0.1}, "dropout"),
        ({"embedding_dim": 0}, "embedding_dim"),
        ({"embedding_dim": -4}, "embedding_dim"),
        ({"stateful": True, "batch_size": 0}, "batch_size"),
        ({"stateful": True, "batch_size": -2}, "batch_size"),
    ],
)
def test_bad_arguments_raise_a_clear_value_error(kwargs, message):
    arguments = {"vocab_size": VOCAB, "units": 16, **kwargs}
    with pytest.raises(ValueError, match=message):
        build_model(**arguments)


@pytest.mark.parametrize("embedding_dim", [None, 8])
def test_grus_keep_cudnn_constraints(embedding_dim):
    model = build_model(VOCAB, units=16, n_layers=2, dropout=0.2, embedding_dim=embedding_dim)
    grus = gru_layers(model)
    assert len(grus) == 2
    for gru in grus:
        assert gru.recurrent_dropout == 0
        assert gru.reset_after is True
        assert gru.dropout == pytest.approx(0.2)


def test_no_time_distributed_layer():
    model = build_model(VOCAB, units=16, n_layers=2)
    assert not any(isinstance(layer, keras.layers.TimeDistributed) for layer in model.layers)
    assert isinstance(model.layers[-1], keras.layers.Dense)


@pytest.mark.parametrize("embedding_dim", [None, 8], ids=["one-hot", "embedding"])
def test_step_model_steps_through_a_sequence_like_the_full_model(embedding_dim):
    keras.utils.set_random_seed(3)
    model = build_model(VOCAB, units=16, n_layers=2, embedding_dim=embedding_dim)
    step = build_step_model(model)
    ids = np.random.default_rng(0).integers(1, VOCAB + 1, size=(3, 9)).astype("int32")
    inputs = ids if embedding_dim else np.eye(VOCAB, dtype="float32")[ids - 1]
    full = np.asarray(model(inputs, training=False))
    states = [np.zeros((3, 16), "float32") for _ in range(2)]
    for t in range(ids.shape[1]):
        logits, *states = (np.asarray(output) for output in step([ids[:, t], *states], training=False))
        np.testing.assert_allclose(logits, full[:, t], atol=1e-5)
    assert len(states) == 2 and states[1].shape == (3, 16)


def test_step_model_shares_the_trained_layers():
    model = build_model(VOCAB, units=16, n_layers=2)
    step = build_step_model(model)
    assert {id(weight) for weight in step.weights} == {id(weight) for weight in model.weights}
    model.layers[-1].bias.assign(np.full(VOCAB, 5.0, "float32"))  # training the model changes the step model
    logits, *_ = step([np.array([1], "int32"), np.zeros((1, 16), "float32"), np.zeros((1, 16), "float32")])
    assert np.asarray(logits).min() > 4.0


def test_step_model_of_a_stateful_model_takes_any_batch_size():
    stateful = build_model(VOCAB, units=8, n_layers=1, stateful=True, batch_size=4)
    step = build_step_model(stateful)
    ids = np.array([1, 2, 3, 4, 5, 6, 7], "int32")
    logits, state = step([ids, np.zeros((7, 8), "float32")])
    expected, _ = build_step_model(to_stateless(stateful))([ids, np.zeros((7, 8), "float32")])
    np.testing.assert_allclose(np.asarray(logits), np.asarray(expected), atol=1e-6)


def test_step_model_refuses_other_architectures():
    other = keras.Sequential([
        keras.Input((None, VOCAB)),
        keras.layers.LSTM(8, return_sequences=True),
        keras.layers.Dense(VOCAB),
    ])
    with pytest.raises(ValueError, match="build_model"):
        build_step_model(other)
# ---- embedding_dim="auto" ---------------------------------------------------------------------


@pytest.mark.parametrize("vocab_size, expected", [(39, None), (100, None), (101, 64), (2798, 64)])
def test_auto_input_is_one_hot_for_small_alphabets_and_an_embedding_above(vocab_size, expected):
    assert resolve_embedding_dim("auto", vocab_size) == expected
    model = build_model(vocab_size, units=8, n_layers=1, embedding_dim="auto")
    has_embedding = any(isinstance(layer, keras.layers.Embedding) for layer in model.layers)
    assert has_embedding is (expected is not None)


def test_one_hot_for_thousands_of_characters_is_never_silent():
    with pytest.warns(UserWarning, match="One-hot inputs 2798 wide"):
        assert resolve_embedding_dim(None, 2798) is None
    assert resolve_embedding_dim(16, 2798) == 16


@pytest.mark.parametrize("bad", ["big", 0, -3, 2.5, True])
def test_bad_embedding_dim_is_refused_by_the_resolver_and_the_config(bad):
    from charrnn.train import TrainConfig

    with pytest.raises(ValueError, match="embedding_dim"):
        resolve_embedding_dim(bad, 50)
    with pytest.raises(ValueError, match="embedding_dim"):
        TrainConfig(embedding_dim=bad)


def test_train_config_defaults_to_auto():
    from charrnn.train import TrainConfig

    assert TrainConfig().embedding_dim == "auto"


def test_weight_decay_shrinks_kernels_and_embeddings_but_not_biases():
    keras.utils.set_random_seed(1)
    model = build_model(VOCAB, units=8, n_layers=1, embedding_dim=4, gru_kernel="fused")
    compile_model(model, learning_rate=0.5, weight_decay=0.4)
    for variable in model.trainable_variables:  # give the zero-initialised biases something to lose
        variable.assign(np.random.default_rng(0).normal(size=variable.shape).astype("float32"))
    before = [variable.numpy() for variable in model.trainable_variables]
    zero_gradients = [np.zeros_like(value) for value in before]  # Adam's own step is then 0
    model.optimizer.apply_gradients(zip(zero_gradients, model.trainable_variables))
    for variable, old in zip(model.trainable_variables, before):
        factor = 1.0 if variable.path.endswith("bias") else 1.0 - 0.5 * 0.4
        np.testing.assert_allclose(variable.numpy(), old * factor, rtol=1e-6, err_msg=variable.path)


# ---- gru_kernel ---------------------------------------------------------------------------------


def test_a_fused_model_has_the_keras_models_weights_and_outputs():
    keras.utils.set_random_seed(5)
    reference = build_model(VOCAB, units=16, n_layers=2, embedding_dim=8)
    fused = build_model(VOCAB, units=16, n_layers=2, embedding_dim=8, gru_kernel="fused")
    assert all(isinstance(layer, FusedGRU) for layer in gru_layers(fused))
    fused.set_weights(reference.get_weights())  # the same weight list, one to one
    ids = np.random.default_rng(0).integers(1, VOCAB + 1, size=(3, 9)).astype("int32")
    np.testing.assert_allclose(fused(ids), reference(ids), atol=1e-6)
    assert model_config(fused) == {**model_config(reference), "gru_kernel": "fused"}


def test_a_stateful_fused_model_becomes_a_stateless_fused_model_that_generates():
    stateful = build_model(VOCAB, units=8, n_layers=1, stateful=True, batch_size=4, gru_kernel="fused")
    stateless = to_stateless(stateful)
    assert isinstance(gru_layers(stateless)[0], FusedGRU)
    ids = np.array([1, 2, 3], "int32")
    logits, _ = build_step_model(stateless)([ids, np.zeros((3, 8), "float32")])
    assert np.asarray(logits).shape == (3, VOCAB)


def test_an_unknown_gru_kernel_is_refused():
    with pytest.raises(ValueError, match="gru_kernel must be one of"):
        build_model(VOCAB, gru_kernel="cudnn")
