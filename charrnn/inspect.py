"""What a trained model learned: surprisal, hidden units, gates and n-gram baselines (notebook 05).

`trace` runs the model's own step (`CharRNN.step`) over a text, one character at a time with the
states carried, and keeps what each view needs: the surprisal of every character (bits, given all
before it), the model's top guesses for it, and every recurrent state after it.
`unit_correlations` searches every unit for the text features it tracks (`charrnn.features`).
The gates are in `charrnn.gates`, the drawing in `charrnn.inspect_views`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from charrnn.model import CharRNN, cell_state_sizes
from charrnn.runs import Run, read_history

WARMUP_CHARS = 200  # context read before the shown passage starts


def recorded_bits_per_char(run: Run) -> float | None:
    """The run's validation bits/char at its last epoch (the one model.keras holds); None if unrecorded."""
    history = read_history(run.path)
    if history.get("val_bpc"):
        return float(history["val_bpc"][-1])
    if history.get("val_loss"):
        return float(history["val_loss"][-1]) / math.log(2)
    return None


def _line_start(ids: np.ndarray, newline_id: int | None, after: int) -> int:
    """The first position at or after `after` that starts a non-empty line (`after` if none does)."""
    if newline_id is None or after == 0:
        return after
    starts = np.flatnonzero((ids[after - 1:-1] == newline_id) & (ids[after:] != newline_id))
    return after + int(starts[0]) if len(starts) else after


def analysis_window(val_ids, tokenizer, analysis_chars: int, passage_chars: int) -> tuple[np.ndarray, slice]:
    """The validation ids the views read, from its first line start, and the shown passage within them.

    At least `analysis_chars` characters (the unit search, gates and n-gram comparison), and
    enough for the passage to start at a line after WARMUP_CHARS of context (its first state
    then carries the text before it, as the model's states do in use).
    """
    for name, value in (("analysis_chars", analysis_chars), ("passage_chars", passage_chars)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 2:
            raise ValueError(f"{name} must be an integer >= 2 (characters of validation text), "
                             f"got {value!r}.")
    val_ids = np.asarray(val_ids)
    if len(val_ids) < 2:
        raise ValueError(f"The validation split has {len(val_ids)} characters: prepare the data with a "
                         "larger validation share (train_fraction) or a longer corpus.")
    newline_id = tokenizer.encode("\n")[0] if not tokenizer.unknown_chars("\n") else None
    ids = val_ids[_line_start(val_ids, newline_id, 1 if len(val_ids) > 2 else 0):]  # [0] may be mid-line
    ids = ids[: max(analysis_chars, 2 * WARMUP_CHARS + passage_chars)]  # room to find a line start
    start = _line_start(ids, newline_id, max(0, min(WARMUP_CHARS, len(ids) - passage_chars)))
    return ids, slice(start, min(start + passage_chars, len(ids)))


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
        names += [f"{layer.name}.{part}" for part in "hc"[: len(cell_state_sizes(layer.cell))]]
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


def unit_correlations(states: dict[str, np.ndarray], features: dict[str, np.ndarray]) -> dict:
    """Pearson r of every unit of every state with every feature: {"units": [(state, unit)], "features":
    [names], "r": (units, features)}. A unit constant over the text gets r = 0 (it tracks nothing)."""
    names = [(state, unit) for state, values in states.items() for unit in range(values.shape[1])]
    activations = np.concatenate(list(states.values()), axis=1).astype(np.float64)
    columns = np.stack(list(features.values()), axis=1).astype(np.float64)
    if len(activations) != len(columns):
        raise ValueError(f"{len(activations)} traced positions but {len(columns)} feature positions: "
                         "compute the features of the traced text.")
    a = activations - activations.mean(axis=0)
    f = columns - columns.mean(axis=0)
    a_norm, f_norm = np.linalg.norm(a, axis=0), np.linalg.norm(f, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a.T @ f) / np.outer(a_norm, f_norm)
    return {"units": names, "features": list(features), "r": np.nan_to_num(r)}


def best_units(correlations: dict) -> list[dict]:
    """For each feature, the unit with the largest |r|: rows of feature, state, unit, r."""
    rows = []
    for j, feature in enumerate(correlations["features"]):
        i = int(np.argmax(np.abs(correlations["r"][:, j])))
        state, unit = correlations["units"][i]
        rows.append({"feature": feature, "state": state, "unit": unit, "r": float(correlations["r"][i, j])})
    return rows


def bucket_means(values: np.ndarray, keys: np.ndarray, edges) -> list[dict]:
    """Mean of `values` per bucket of `keys` (bucket b: edges[b] <= key < edges[b + 1]), skipping NaN
    values; empty buckets are left out. Rows of label, count, mean."""
    rows, edges = [], list(edges)
    for low, high in zip(edges, edges[1:] + [math.inf]):
        chosen = (keys >= low) & (keys < high) & ~np.isnan(values)
        if chosen.any():
            label = (f"{low:g}" if high == low + 1 else f"{low:g}+" if high == math.inf
                     else f"{low:g}-{high - 1:g}")
            rows.append({"bucket": label, "count": int(chosen.sum()), "mean": float(values[chosen].mean())})
    return rows


POSITION_BUCKETS = (0, 1, 3, 6, 11, 21, 41)  # position in line: 0, 1-2, 3-5, 6-10, 11-20, 21-40, 41+


def ngram_comparison(models: dict, val_ids, traced: Trace, positions: np.ndarray) -> dict:
    """The n-gram curve on the whole validation split, and the RNN against the best order on the trace.

    `models`: order → fitted model (`ngram.fit_orders`). Position 0 of the trace is left out of
    both (the RNN has nothing to predict it from). Bits/char by position in line, bucketed.
    """
    curve = {order: model.bits_per_char(val_ids) for order, model in models.items()}
    best = min(curve, key=curve.get)
    ngram_bits = -models[best].log2_probs(traced.ids)
    ngram_bits[0] = np.nan
    rnn = bucket_means(traced.bits, positions, POSITION_BUCKETS)
    ngram = {row["bucket"]: row["mean"] for row in bucket_means(ngram_bits, positions, POSITION_BUCKETS)}
    return {"curve": curve, "best_order": best,
            "trace_bits": {"rnn": float(np.nanmean(traced.bits)), "ngram": float(np.nanmean(ngram_bits))},
            "by_position": [{**row, "rnn": row.pop("mean"), "ngram": ngram[row["bucket"]]} for row in rnn]}
