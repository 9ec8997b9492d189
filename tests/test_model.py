"""Building models: ids in, logits out, the step function for every cell and body, weights moved."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from charrnn.extras.fused_gru import FusedGRU
from charrnn.model import CharRNN, build_model, compile_model, resolve_embedding_dim, to_stateless

VOCAB = 20
CELLS = ["gru", "lstm", "rnn"]


def ids_batch(batch=3, length=9, seed=0):
    return np.random.default_rng(seed).integers(1, VOCAB + 1, size=(batch, length)).astype("int32")


@pytest.mark.parametrize("embedding_dim", [None, 8], ids=["one-hot", "embedding"])
def test_the_model_reads_ids_and_outputs_logits_per_time_step(embedding_dim):
    model = build_model(VOCAB, units=16, n_layers=2, embedding_dim=embedding_dim)
    assert model(ids_batch(2, 11)).shape == (2, 11, VOCAB)
    assert (model.embedding is not None) is (embedding_dim is not None)


def test_one_hot_inputs_are_the_vectors_of_class_id_minus_one():
    model = build_model(VOCAB, units=8, n_layers=1, dropout=0.0)
    kernel = model.body[0].cell.kernel.numpy()
    ids = np.array([[3]], "int32")
    x = np.eye(VOCAB, dtype="float32")[ids - 1]
    expected = keras.layers.GRU(8, return_sequences=True)
    expected(x)
    expected.set_weights(model.body[0].get_weights())
    np.testing.assert_allclose(model.body[0](model._inputs(ids)), expected(x), atol=1e-6)
    assert kernel.shape == (VOCAB, 3 * 8)


def test_outputs_are_logits_not_probabilities():
    logits = np.asarray(build_model(VOCAB, units=16, n_layers=1, dropout=0.0)(ids_batch(1, VOCAB)))
    assert (logits < 0).any()  # a softmax output would be non-negative and sum to one
    assert not np.allclose(logits.sum(axis=-1), 1.0)


def test_stateful_model_has_a_fixed_batch_size():
    model = build_model(VOCAB, units=16, n_layers=2, stateful=True, batch_size=4)
    assert model(ids_batch(4, 5)).shape == (4, 5, VOCAB)
    assert model.stateful and all(layer.stateful for layer in model.body)
    with pytest.raises(ValueError, match="batch size"):
        model(ids_batch(3, 5))


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
        ({"cell": "transformer"}, "cell must be one of"),
        ({"gru_kernel": "cudnn"}, "gru_kernel must be one of"),
    ],
)
def test_bad_arguments_raise_a_clear_value_error(kwargs, message):
    arguments = {"vocab_size": VOCAB, "units": 16, **kwargs}
    with pytest.raises(ValueError, match=message):
        build_model(**arguments)


@pytest.mark.parametrize("cell", CELLS)
def test_recurrent_layers_keep_cudnn_constraints(cell):
    model = build_model(VOCAB, units=16, n_layers=2, dropout=0.2, cell=cell)
    assert [type(layer) for layer in model.body] == [type(model.body[0])] * 2
    for layer in model.body:
        assert layer.recurrent_dropout == 0
        assert layer.dropout == pytest.approx(0.2)
        assert getattr(layer, "reset_after", True) is True


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("embedding_dim", [None, 8], ids=["one-hot", "embedding"])
def test_the_step_function_steps_through_a_sequence_like_the_full_model(cell, embedding_dim):
    keras.utils.set_random_seed(3)
    model = build_model(VOCAB, units=16, n_layers=2, embedding_dim=embedding_dim, cell=cell)
    ids = ids_batch()
    full = np.asarray(model(ids, training=False))
    states = model.initial_states(3)
    assert len(states) == (4 if cell == "lstm" else 2)  # an LSTM carries h and c
    for t in range(ids.shape[1]):
        logits, states = model.step(ids[:, t], states)
        np.testing.assert_allclose(np.asarray(logits), full[:, t], atol=1e-5)


def test_a_body_with_an_extra_layer_steps_like_its_full_model():
    keras.utils.set_random_seed(4)
    body = [keras.layers.GRU(16, return_sequences=True), keras.layers.LayerNormalization(),
            keras.layers.LSTM(8, return_sequences=True)]
    model = CharRNN(VOCAB, body, embedding_dim=6)
    ids = ids_batch()
    full = np.asarray(model(ids))
    states = model.initial_states(3)
    assert model.state_sizes == [16, 8, 8]
    for t in range(ids.shape[1]):
        logits, states = model.step(ids[:, t], states)
        np.testing.assert_allclose(np.asarray(logits), full[:, t], atol=1e-5)


def test_the_step_uses_the_trained_weights():
    model = build_model(VOCAB, units=16, n_layers=2)
    model.logits.bias.assign(np.full(VOCAB, 5.0, "float32"))  # training the model changes the step
    logits, _ = model.step(np.array([1], "int32"), model.initial_states(1))
    assert np.asarray(logits).min() > 4.0


def test_the_step_of_a_stateful_model_takes_any_batch_size():
    stateful = build_model(VOCAB, units=8, n_layers=1, stateful=True, batch_size=4)
    ids = np.arange(1, 8, dtype="int32")
    logits, _ = stateful.step(ids, stateful.initial_states(7))
    expected, _ = to_stateless(stateful).step(ids, stateful.initial_states(7))
    np.testing.assert_allclose(np.asarray(logits), np.asarray(expected), atol=1e-6)


@pytest.mark.parametrize("cell", CELLS)
def test_a_stateful_model_saved_and_loaded_becomes_the_same_stateless_model(cell, tmp_path):
    stateful = build_model(VOCAB, units=8, n_layers=2, stateful=True, batch_size=3, cell=cell,
                           embedding_dim=4)
    stateful.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert isinstance(loaded, CharRNN) and loaded.stateful
    ids = ids_batch(5, 4)
    stateless = to_stateless(loaded)
    assert not stateless.stateful
    np.testing.assert_allclose(stateless(ids), to_stateless(stateful)(ids), atol=1e-6)


# ---- embedding_dim="auto" ---------------------------------------------------------------------


@pytest.mark.parametrize("vocab_size, expected", [(39, None), (100, None), (101, 64), (2798, 64)])
def test_auto_input_is_one_hot_for_small_alphabets_and_an_embedding_above(vocab_size, expected):
    assert resolve_embedding_dim("auto", vocab_size) == expected
    model = build_model(vocab_size, units=8, n_layers=1, embedding_dim="auto")
    assert (model.embedding is not None) is (expected is not None)


def test_embedding_rows_start_from_a_unit_normal_and_survive_saving(tmp_path):
    model = build_model(2798, units=8, n_layers=1, embedding_dim=64)  # docs/recipes.md, "Embeddings"
    rows = model.embedding.embeddings.numpy()
    assert abs(rows.mean()) < 0.02 and 0.97 < rows.std() < 1.03
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(loaded.embedding.embeddings.numpy(), rows)


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
    assert all(isinstance(layer, FusedGRU) for layer in fused.body)
    fused.set_weights(reference.get_weights())  # the same weight list, one to one
    ids = ids_batch()
    np.testing.assert_allclose(fused(ids), reference(ids), atol=1e-6)


def test_a_stateful_fused_model_becomes_a_stateless_fused_model_that_steps():
    stateful = build_model(VOCAB, units=8, n_layers=1, stateful=True, batch_size=4, gru_kernel="fused")
    stateless = to_stateless(stateful)
    assert isinstance(stateless.body[0], FusedGRU)
    logits, _ = stateless.step(np.array([1, 2, 3], "int32"), stateless.initial_states(3))
    assert np.asarray(logits).shape == (3, VOCAB)


def test_the_fused_kernel_falls_back_for_other_cells_with_one_message():
    with pytest.warns(UserWarning, match="GRUs only"):
        model = build_model(VOCAB, units=8, n_layers=2, gru_kernel="fused", cell="lstm")
    assert all(type(layer) is keras.layers.LSTM for layer in model.body)
