"""What a trained model learned: surprisal, hidden units, gates and n-gram baselines (notebook 05).

`trace` runs the model's own step (`CharRNN.step`) over a text, one character at a time with the
states carried, and keeps what each view needs: the surprisal of every character (bits, given all
before it), the model's top guesses for it, and every recurrent state after it. `gates` recomputes
each recurrent layer's gates from its cell weights (the Keras 3 equations, vectorised over time from
the traced states), `text_features` describes each position (`charrnn.features`), and
`unit_correlations` searches every unit for the features it tracks. Drawing is in `inspect_views`.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from charrnn.model import CharRNN, _sizes
from charrnn.runs import Run, read_history

SATURATED_BELOW, SATURATED_ABOVE = 0.1, 0.9  # the 2015 paper's thresholds for a saturated gate
GATE_NAMES = {"GRUCell": ("update z", "reset r"), "LSTMCell": ("input i", "forget f", "output o"),
              "SimpleRNNCell": ()}


def find_run_data(run: Run, outputs_dir: str | os.PathLike) -> Path:
    """The prepared-data folder under `<outputs_dir>/data/` that the run was trained on.

    The run's config.json records its data identity ("data": corpus sha256, vocabulary size,
    case, split); a folder matches when its meta.json agrees on every recorded key. A
    recorded dataset_name that matches is preferred; several other matches: the first by name.
    """
    identity = run.config.get("data")
    data_root = Path(outputs_dir) / "data"
    if not isinstance(identity, dict) or not identity:
        raise ValueError(f"{run.path}/config.json records no data identity ('data'): it was trained by an "
                         "older version. Pass the prepared data folder explicitly (data_dir=...).")
    matches = []
    for meta_path in sorted(data_root.glob("*/meta.json")):
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # an unreadable dataset cannot be the run's
        if isinstance(meta, dict) and all(meta.get(key) == value for key, value in identity.items()):
            matches.append(meta_path.parent)
    named = [path for path in matches if path.name in (run.config.get("dataset_name"),
                                                       identity.get("dataset_name"))]
    if named or matches:
        return (named or matches)[0]
    sha = str(identity.get("corpus_sha256", "?"))[:12]
    raise ValueError(
        f"No prepared data under {data_root} matches run {run.path.name} (corpus sha256 {sha}..., "
        f"{identity.get('train_chars')} training characters, lower={identity.get('lower')}). Prepare the "
        "run's corpus with the same settings first (notebook 01, `make data CORPUS=... DATASET=...`), or "
        "pass outputs_dir where it was prepared.")


def recorded_bits_per_char(run: Run) -> float | None:
    """The run's validation bits/char at its last epoch (the one model.keras holds); None if unrecorded."""
    history = read_history(run.path)
    if history.get("val_bpc"):
        return float(history["val_bpc"][-1])
    if history.get("val_loss"):
        return float(history["val_loss"][-1]) / math.log(2)
    return None


def passage_start(text: str, after: int = 0) -> int:
    """The first line start at or after `after` (the text's start when no newline follows)."""
    newline = text.find("\n", max(after - 1, 0))
    return newline + 1 if 0 <= newline < len(text) - 1 else 0


@dataclass
class Trace:
    """One pass of the step over `ids` (T,): everything indexed by the position of a character."""

    ids: np.ndarray
    bits: np.ndarray  # (T,) -log2 P(ids[t] | ids[:t]); nan at t = 0 (nothing before it)
    top_ids: np.ndarray  # (T, k) the model's k likeliest ids for position t (row 0: zeros)
    top_probs: np.ndarray  # (T, k) their probabilities (row 0: nan)
    states: dict[str, np.ndarray]  # "<layer>.h" (and "<layer>.c" for an LSTM) → (T, units), after ids[t]


def recurrent_layers(model: CharRNN) -> list:
    return [layer for layer in model.body if isinstance(layer, keras.layers.RNN)]


def state_names(model: CharRNN) -> list[str]:
    """The names of the states `step` carries, in its order: '<layer>.h', and '<layer>.c' for an LSTM."""
    names = []
    for layer in recurrent_layers(model):
        names += [f"{layer.name}.{part}" for part in "hc"[: len(_sizes(layer.cell))]]
    return names


def trace(model: CharRNN, ids, top_k: int = 5) -> Trace:
    """Run `model.step` over `ids` (one stream, states from zero) and keep the views' figures."""
    ids = np.asarray(ids)
    if ids.ndim != 1 or len(ids) < 2 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"trace needs a 1-D array of at least 2 character ids, got shape {ids.shape} "
                         f"of {ids.dtype}.")
    if ids.min() < 1 or ids.max() > model.vocab_size:
        raise ValueError(f"ids must be in 1..{model.vocab_size} (the model's vocabulary); got "
                         f"{ids.min()}..{ids.max()}: encode the text with the run's tokenizer.")
    k = min(top_k, model.vocab_size)
    log_probs, top_log, top_ids, states = _step_loop(model, k)(tf.constant(ids, tf.int32))
    # Step t reads ids[t] and predicts ids[t + 1]: shift by one so row t is about character t.
    bits = np.concatenate([[np.nan], -log_probs.numpy()[:-1] / math.log(2)])
    top_ids = np.concatenate([np.zeros((1, k), np.int64), top_ids.numpy()[:-1] + 1])
    top_probs = np.concatenate([np.full((1, k), np.nan), np.exp(top_log.numpy()[:-1])])
    return Trace(ids, bits, top_ids, top_probs,
                 {name: s.numpy()[:, 0] for name, s in zip(state_names(model), states)})


def _step_loop(model: CharRNN, k: int):
    """`model.step` over a sequence in one graph: log P(next id), the top k and the states, per step."""
    @tf.function
    def run(ids):
        steps = tf.shape(ids)[0]
        next_ids = tf.concat([ids[1:], ids[-1:]], 0)  # the last step's target is dropped by `trace`
        outputs = [tf.TensorArray(dtype, size=steps) for dtype in (tf.float32, tf.float32, tf.int32)]
        carried = [tf.TensorArray(tf.float32, size=steps) for _ in model.state_sizes]

        def body(t, states, outputs, carried):
            logits, states = model.step(ids[t][None], states)
            log_probs = tf.nn.log_softmax(logits[0])
            top = tf.math.top_k(log_probs, k)
            figures = (log_probs[next_ids[t] - 1], top.values, top.indices)
            outputs = [array.write(t, value) for array, value in zip(outputs, figures)]
            carried = [array.write(t, state) for array, state in zip(carried, states)]
            return t + 1, tuple(states), outputs, carried

        _, _, outputs, carried = tf.while_loop(
            lambda t, *_: t < steps, body, [0, tuple(model.initial_states(1)), outputs, carried])
        return (*[array.stack() for array in outputs], [array.stack() for array in carried])
    return run


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
