"""`FusedGRU`: `keras.layers.GRU` with a faster CPU training loop; same weights, same forward results.

On CPU, Keras runs a GRU as its cell once per time step and lets autodiff derive the
backward loop: per step an input product, a recurrent product, two weight-gradient
accumulations and some forty small ops, whose per-op overhead dominates at 2 cores.
Here (own code: Keras has no such option on CPU; its fast path is cuDNN only):
  - the input projections of all time steps are one matrix product before the loop;
  - the loop runs only the recurrent product and the gates, and keeps the gates;
  - the backward loop is written out (one product per step), and the weight
    gradients are single products over all steps after it;
  - both loops are compiled with XLA.
The forward pass is the same arithmetic as Keras's (reset_after=True), and the
dropout mask is the cell's own, so training sees the same masks; the gradients
differ from autodiff's only in summation order (float rounding).
"""

from __future__ import annotations

import keras
import tensorflow as tf


@tf.function(jit_compile=True, reduce_retracing=True)
def _forward(projected, h0, recurrent_kernel, recurrent_bias):
    """Time-major `projected` (T, B, 3U) and h0 (B, U) → every state and the gates backward needs."""
    steps = tf.shape(projected)[0]
    arrays = [tf.TensorArray(projected.dtype, size=steps) for _ in range(5)]

    def body(t, h, states, updates, resets, candidates, recurrent_candidates):
        x_z, x_r, x_h = tf.split(projected[t], 3, axis=1)
        r_z, r_r, r_h = tf.split(tf.matmul(h, recurrent_kernel) + recurrent_bias, 3, axis=1)
        z = tf.sigmoid(x_z + r_z)
        r = tf.sigmoid(x_r + r_r)
        candidate = tf.tanh(x_h + r * r_h)
        h = z * h + (1.0 - z) * candidate
        return (t + 1, h, states.write(t, h), updates.write(t, z), resets.write(t, r),
                candidates.write(t, candidate), recurrent_candidates.write(t, r_h))

    _, _, *arrays = tf.while_loop(lambda t, *_: t < steps, body, [0, h0, *arrays])
    return [array.stack() for array in arrays]


@tf.function(jit_compile=True, reduce_retracing=True)
def _backward(d_states, h0, recurrent_kernel, states, updates, resets, candidates, recurrent_candidates):
    """Gradients of the projections, h0, the recurrent kernel and bias, from those of every state."""
    steps = tf.shape(d_states)[0]
    units = tf.shape(h0)[1]
    previous = tf.concat([h0[None], states[:-1]], axis=0)
    transposed_kernel = tf.transpose(recurrent_kernel)

    def body(i, d_h, d_projected, d_recurrent):
        t = steps - 1 - i
        d_h = d_h + d_states[t]
        z, r, candidate = updates[t], resets[t], candidates[t]
        d_pre_candidate = d_h * (1.0 - z) * (1.0 - candidate * candidate)
        d_pre_reset = d_pre_candidate * recurrent_candidates[t] * r * (1.0 - r)
        d_pre_update = d_h * (previous[t] - candidate) * z * (1.0 - z)
        d_recurrent_t = tf.concat([d_pre_update, d_pre_reset, d_pre_candidate * r], axis=1)
        d_h = d_h * z + tf.matmul(d_recurrent_t, transposed_kernel)
        return (i + 1, d_h,
                d_projected.write(t, tf.concat([d_pre_update, d_pre_reset, d_pre_candidate], axis=1)),
                d_recurrent.write(t, d_recurrent_t))

    arrays = [tf.TensorArray(d_states.dtype, size=steps) for _ in range(2)]
    _, d_h0, d_projected, d_recurrent = tf.while_loop(
        lambda i, *_: i < steps, body, [0, tf.zeros_like(h0), *arrays])
    d_recurrent = tf.reshape(d_recurrent.stack(), [-1, 3 * units])
    d_kernel = tf.matmul(tf.reshape(previous, [-1, units]), d_recurrent, transpose_a=True)
    return d_projected.stack(), d_h0, d_kernel, tf.reduce_sum(d_recurrent, axis=0)


@tf.custom_gradient
def gru_recurrence(projected, h0, recurrent_kernel, recurrent_bias):
    """Every state (T, B, U) of a reset_after GRU, from time-major input projections (T, B, 3U)."""
    # stop_gradient: a tape watching the inputs would otherwise differentiate the XLA loop itself.
    saved = _forward(*(tf.stop_gradient(x) for x in (projected, h0, recurrent_kernel, recurrent_bias)))

    def grad(d_states):
        return _backward(d_states, h0, recurrent_kernel, *saved)

    return saved[0], grad


@keras.saving.register_keras_serializable(package="charrnn")
class FusedGRU(keras.layers.GRU):
    """A `keras.layers.GRU` (same arguments, weights and cell) whose sequence loop is `gru_recurrence`.

    Configurations the fused loop does not cover (masks, go_backwards, recurrent
    dropout, reset_after=False, other activations) run Keras's own loop. Use it on CPU:
    on a GPU, `keras.layers.GRU` runs cuDNN, which is faster still.
    """

    def inner_loop(self, sequences, initial_state, mask, training=False):
        # inner_loop is the hook keras.layers.GRU itself uses to plug in cuDNN; RNN.call around it
        # keeps the stateful states, the dropout-mask cache and return_sequences as for any GRU.
        cell = self.cell
        covered = (mask is None and not self.go_backwards and not cell.recurrent_dropout
                   and cell.reset_after and cell.use_bias
                   and cell.activation is keras.activations.tanh
                   and cell.recurrent_activation is keras.activations.sigmoid)
        if not covered:
            return super().inner_loop(sequences, initial_state, mask, training=training)
        h0 = initial_state[0] if isinstance(initial_state, (list, tuple)) else initial_state
        if training and cell.dropout:  # the cell's mask, the same at every step
            sequences = sequences * cell.get_dropout_mask(sequences[:, 0, :])[:, None, :]
        kernel, recurrent_kernel, bias = (tf.convert_to_tensor(weight) for weight in
                                          (cell.kernel, cell.recurrent_kernel, cell.bias))
        projected = tf.einsum("btd,dk->tbk", sequences, kernel) + bias[0]
        states = gru_recurrence(projected, h0, recurrent_kernel, bias[1])
        last = states[-1]
        return last, tf.transpose(states, [1, 0, 2]), [last]
