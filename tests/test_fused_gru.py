"""FusedGRU against keras.layers.GRU: same outputs, dropout masks, states and (up to rounding) gradients."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from charrnn.extras.fused_gru import FusedGRU

BATCH, STEPS, FEATURES, UNITS = 4, 7, 5, 6


def twin_layers(**kwargs):
    """A Keras GRU and a FusedGRU with the same weights, built on (BATCH, STEPS, FEATURES) inputs."""
    reference = keras.layers.GRU(UNITS, return_sequences=True, seed=3, **kwargs)
    fused = FusedGRU(UNITS, return_sequences=True, seed=3, **kwargs)
    shape = (BATCH, STEPS, FEATURES)
    reference.build(shape)
    fused.build(shape)
    fused.set_weights(reference.get_weights())
    return reference, fused


@pytest.fixture
def sequences():
    return tf.constant(np.random.default_rng(0).normal(size=(BATCH, STEPS, FEATURES)), tf.float32)


@pytest.mark.parametrize("training", [False, True])
def test_outputs_equal_keras_gru_with_the_same_weights_and_dropout_seed(sequences, training):
    reference, fused = twin_layers(dropout=0.3)
    np.testing.assert_allclose(fused(sequences, training=training), reference(sequences, training=training),
                               rtol=1e-6, atol=1e-6)


def test_gradients_equal_autodiff_of_keras_gru(sequences):
    reference, fused = twin_layers()
    weights = tf.constant(np.random.default_rng(1).normal(size=(BATCH, STEPS, UNITS)), tf.float32)
    gradients = []
    for layer in (reference, fused):
        with tf.GradientTape() as tape:
            tape.watch(sequences)
            loss = tf.reduce_sum(layer(sequences, training=True) * weights)
        gradients.append(tape.gradient(loss, [sequences, *layer.trainable_weights]))
    for expected, got in zip(*gradients):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_a_stateful_fused_gru_carries_its_state_like_keras(sequences):
    reference, fused = twin_layers(stateful=True)
    for _ in range(2):  # the second call starts from the state the first one left
        np.testing.assert_allclose(fused(sequences), reference(sequences), rtol=1e-6, atol=1e-6)
    fused.reset_state()
    reference.reset_state()
    np.testing.assert_allclose(fused(sequences), reference(sequences), rtol=1e-6, atol=1e-6)


def test_uncovered_configurations_fall_back_to_keras_loop(sequences):
    reference, fused = twin_layers(go_backwards=True)
    np.testing.assert_allclose(fused(sequences), reference(sequences), rtol=1e-6, atol=1e-6)


def test_a_model_with_a_fused_gru_saves_and_loads(tmp_path, sequences):
    model = keras.Sequential([keras.Input((STEPS, FEATURES)), FusedGRU(UNITS, return_sequences=True)])
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert isinstance(loaded.layers[0], FusedGRU)
    np.testing.assert_allclose(loaded(sequences), model(sequences))
