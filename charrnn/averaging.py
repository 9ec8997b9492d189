"""The moving average of the weights that validation, best.keras and model.keras see (`ema_momentum`).

Own code rather than Keras's `use_ema`: Keras averages with the full momentum from the first
step, so early in a run the average leans on the untrained weights (at 0.995, 40% of it is
still the initial weights after 180 steps, and a 7,000-character alphabet validates above its
unigram baseline for minutes). Here step t averages with min(momentum, (1 + t) / (10 + t)),
the warm-up of `tf.train.ExponentialMovingAverage(num_updates=t)`: the average follows the
weights closely at first and settles into the full momentum after a few thousand steps.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

PREFIX = "average/"  # the averages' keys in a checkpoint's arrays


def warm_momentum(momentum, step):
    """The momentum of update number `step` (1 for the first)."""
    return tf.minimum(tf.cast(momentum, tf.float32), (1.0 + step) / (10.0 + step))


class WeightAverage:
    """An average of each trainable variable of `model`; build it in the strategy's scope.

    `update` runs inside the training step (in a replica context every replica computes the
    same value, so the first one's is kept); `swap` and `finalize` run outside it.
    """

    def __init__(self, model: keras.Model, momentum: float):
        self.model, self.momentum = model, momentum
        self.averages = [tf.Variable(keras.ops.convert_to_tensor(variable), trainable=False,
                                     aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
                         for variable in model.trainable_variables]

    def update(self, step) -> None:
        momentum = warm_momentum(self.momentum, tf.cast(step, tf.float32))
        for average, variable in zip(self.averages, self.model.trainable_variables):
            average.assign(momentum * average + (1.0 - momentum) * keras.ops.convert_to_tensor(variable))

    def swap(self) -> None:
        """Exchange the model's weights and the averages: validate between two swaps."""
        for average, variable in zip(self.averages, self.model.trainable_variables):
            kept = np.asarray(variable)
            variable.assign(average.read_value())
            average.assign(kept)

    def finalize(self) -> None:
        """Put the averages into the model (the saved model is the averaged one)."""
        for average, variable in zip(self.averages, self.model.trainable_variables):
            variable.assign(average.read_value())

    def arrays(self) -> dict[str, np.ndarray]:
        return {f"{PREFIX}{i:04d}": np.asarray(average) for i, average in enumerate(self.averages)}

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        saved = [arrays[key] for key in sorted(arrays) if key.startswith(PREFIX)]
        if [a.shape for a in saved] != [tuple(a.shape) for a in self.averages]:
            raise ValueError(f"The checkpoint holds {len(saved)} weight averages, this model needs "
                             f"{len(self.averages)}: it was written by another version or config. "
                             "Delete the run's checkpoints/ folder to start over.")
        for average, value in zip(self.averages, saved):
            average.assign(value)
