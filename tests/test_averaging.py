"""The weight average with a warm-up (`ema_momentum`): its recursion, its swap, its checkpoint arrays."""

from __future__ import annotations

import numpy as np
import pytest

from charrnn.averaging import WeightAverage, warm_momentum
from charrnn.model import build_model


def test_the_momentum_warms_up_to_the_configured_one():
    assert float(warm_momentum(0.995, 1.0)) == pytest.approx(2 / 11)
    assert float(warm_momentum(0.995, 100.0)) == pytest.approx(101 / 110)
    assert float(warm_momentum(0.995, 10_000.0)) == pytest.approx(0.995)


def test_the_average_follows_the_warm_recursion_and_swaps_back_and_forth():
    model = build_model(5, units=3, n_layers=1, dropout=0.0)
    average = WeightAverage(model, 0.9)
    start = [np.asarray(v) for v in model.trainable_variables]
    expected = [w.copy() for w in start]
    for step in range(1, 6):
        for variable in model.trainable_variables:
            variable.assign(np.asarray(variable) + 1.0)  # what a training step would do
        average.update(step)
        m = min(0.9, (1 + step) / (10 + step))
        expected = [m * e + (1 - m) * (w + step) for e, w in zip(expected, start)]
    for got, want in zip(average.arrays().values(), expected):
        np.testing.assert_allclose(got, want, rtol=1e-6)
    trained = [np.asarray(v) for v in model.trainable_variables]
    average.swap()
    for variable, want in zip(model.trainable_variables, expected):
        np.testing.assert_allclose(np.asarray(variable), want, rtol=1e-6)
    average.swap()
    for variable, want in zip(model.trainable_variables, trained):
        np.testing.assert_array_equal(np.asarray(variable), want)


def test_a_checkpoint_of_another_model_is_refused_with_the_fix():
    average = WeightAverage(build_model(5, units=3, n_layers=1), 0.9)
    other = WeightAverage(build_model(5, units=4, n_layers=1), 0.9).arrays()
    with pytest.raises(ValueError, match="Delete the run's checkpoints/ folder"):
        average.restore(other)
    average.restore(average.arrays())  # its own arrays fit
