"""Gate values of a traced text: each recurrent layer's gates recomputed from its cell weights.

The equations are Keras 3's own (keras/src/layers/rnn/gru.py, lstm.py, simple_rnn.py, the cells'
`call`), vectorised over time: the gates at position t need only the layer's input at t and its
states at t - 1, both in a `charrnn.inspect.Trace`. The states they give back are returned too,
so a test can hold them equal to the model's own step.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from charrnn.inspect import Trace, recurrent_layers
from charrnn.model import CharRNN

SATURATED_BELOW, SATURATED_ABOVE = 0.1, 0.9  # the 2015 paper's thresholds for a saturated gate
GATE_NAMES = {"GRUCell": ("update z", "reset r"), "LSTMCell": ("input i", "forget f", "output o"),
              "SimpleRNNCell": ()}


@dataclass
class LayerGates:
    """One recurrent layer over a trace: its gates (T, units) each, and the states they give."""

    layer: str
    cell: str  # "GRUCell", "LSTMCell", "SimpleRNNCell"
    gates: dict[str, np.ndarray]  # empty for a SimpleRNN, which has none
    states: dict[str, np.ndarray]  # "h" (and "c"), recomputed from the gates: equal to the step's


def layer_inputs(model: CharRNN, traced: Trace) -> dict[str, np.ndarray]:
    """What each recurrent layer read at every position (T, features): the ids' one-hot vectors or
    embeddings, or the layer below's states through any per-time-step layers between them."""
    x, inputs = model._inputs(traced.ids), {}
    for layer in model.body:
        if isinstance(layer, keras.layers.RNN):
            inputs[layer.name] = keras.ops.convert_to_numpy(x)
            x = traced.states[f"{layer.name}.h"]
        else:
            x = layer(x, training=False)
    return inputs


def gates(model: CharRNN, traced: Trace) -> list[LayerGates]:
    """Every recurrent layer's gates at every position, from its cell weights and the traced states.

    All positions at once: the gates at t need only the layer's input at t and its states at
    t - 1 (zeros before the first character), both in the trace.
    """
    result = []
    for layer, x in zip(recurrent_layers(model), layer_inputs(model, traced).values()):
        cell = layer.cell
        before = {part: np.concatenate([np.zeros_like(s[:1]), s[:-1]])
                  for part in "hc" if (s := traced.states.get(f"{layer.name}.{part}")) is not None}
        kind = type(cell).__name__ if type(cell).__name__ in GATE_NAMES else None
        if kind is None:
            raise ValueError(f"Layer {layer.name} has a {type(cell).__name__}: the gate view knows GRU, "
                             "LSTM and SimpleRNN cells only.")
        gate_values, states = _CELL_EQUATIONS[kind](cell, x, before)
        result.append(LayerGates(layer.name, kind, gate_values, states))
    return result


def _weights(cell) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    bias = keras.ops.convert_to_numpy(cell.bias) if cell.use_bias else None
    return keras.ops.convert_to_numpy(cell.kernel), keras.ops.convert_to_numpy(cell.recurrent_kernel), bias


def _apply(activation, x: np.ndarray) -> np.ndarray:
    return keras.ops.convert_to_numpy(activation(keras.ops.convert_to_tensor(x)))


def _gru(cell, x, before):
    """keras/src/layers/rnn/gru.py, GRUCell.call: kernel columns z | r | h; reset_after=True keeps
    an input and a recurrent bias (bias shape (2, 3 units)) and resets after the recurrent product."""
    kernel, recurrent, bias = _weights(cell)
    units, h_before = cell.units, before["h"]
    if bias is None:
        bias = np.zeros((2, 3 * units) if cell.reset_after else 3 * units, kernel.dtype)
    input_bias, recurrent_bias = (bias[0], bias[1]) if cell.reset_after else (bias, 0.0)
    x_z, x_r, x_h = np.split(x @ kernel + input_bias, 3, axis=-1)
    inner = h_before @ recurrent + recurrent_bias
    z = _apply(cell.recurrent_activation, x_z + inner[:, :units])
    r = _apply(cell.recurrent_activation, x_r + inner[:, units: 2 * units])
    if cell.reset_after:
        recurrent_h = r * inner[:, 2 * units:]
    else:
        recurrent_h = (r * h_before) @ recurrent[:, 2 * units:]
    candidate = _apply(cell.activation, x_h + recurrent_h)
    h = z * h_before + (1 - z) * candidate
    return {"update z": z, "reset r": r}, {"h": h}


def _lstm(cell, x, before):
    """keras/src/layers/rnn/lstm.py, LSTMCell.call: kernel columns i | f | c | o."""
    kernel, recurrent, bias = _weights(cell)
    z = x @ kernel + before["h"] @ recurrent + (0.0 if bias is None else bias)
    z_i, z_f, z_c, z_o = np.split(z, 4, axis=-1)
    i, f, o = (_apply(cell.recurrent_activation, part) for part in (z_i, z_f, z_o))
    c = f * before["c"] + i * _apply(cell.activation, z_c)
    h = o * _apply(cell.activation, c)
    return {"input i": i, "forget f": f, "output o": o}, {"h": h, "c": c}


def _simple_rnn(cell, x, before):
    """keras/src/layers/rnn/simple_rnn.py, SimpleRNNCell.call: no gates, h = act(x K + b + h R)."""
    kernel, recurrent, bias = _weights(cell)
    h = x @ kernel + (0.0 if bias is None else bias) + before["h"] @ recurrent
    return {}, {"h": h if cell.activation is None else _apply(cell.activation, h)}


_CELL_EQUATIONS = {"GRUCell": _gru, "LSTMCell": _lstm, "SimpleRNNCell": _simple_rnn}


def saturation(layer_gates: list[LayerGates]) -> dict[str, dict[str, dict[str, list[float]]]]:
    """{layer: {gate: {"left": [...], "right": [...]}}}: per unit, the fraction of positions where the
    gate is below SATURATED_BELOW (left-saturated) or above SATURATED_ABOVE (right-saturated)."""
    return {entry.layer: {name: {"left": (values < SATURATED_BELOW).mean(axis=0).tolist(),
                                 "right": (values > SATURATED_ABOVE).mean(axis=0).tolist()}
                          for name, values in entry.gates.items()}
            for entry in layer_gates}
