"""charrnn.inspect, gates and features: the analysis views' figures against Keras and hand counts."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from charrnn import features, gates, inspect
from charrnn.data import find_run_data
from charrnn.model import build_model, cell_state_sizes
from charrnn.runs import Run
from charrnn.tokenizer import CharTokenizer

VOCAB = 12


@pytest.fixture(scope="module", params=["gru", "lstm", "rnn"])
def traced_model(request):
    keras.utils.set_random_seed(3)
    model = build_model(VOCAB, units=8, n_layers=2, cell=request.param)
    ids = np.random.default_rng(0).integers(1, VOCAB + 1, 40)
    return request.param, model, inspect.trace(model, ids)


def keras_step_by_step(model, ids):
    """Each layer's states after every character, from the Keras cells called one step at a time."""
    x = model._inputs(np.asarray(ids)[:, None])[:, 0]  # (T, features): one-hot or embedding
    result = {}
    for layer in model.body:
        states = [np.zeros((1, size), "float32") for size in cell_state_sizes(layer.cell)]
        outputs = {part: [] for part in "hc"[: len(states)]}
        for t in range(len(ids)):
            _, states = layer.cell(x[t][None], states, training=False)
            states = list(states) if isinstance(states, (list, tuple)) else [states]
            for part, state in zip(outputs, states):
                outputs[part].append(keras.ops.convert_to_numpy(state)[0])
        for part, values in outputs.items():
            result[f"{layer.name}.{part}"] = np.array(values)
        x = result[f"{layer.name}.h"]
    return result


def test_traced_states_equal_a_keras_step_by_step_run(traced_model):
    _, model, traced = traced_model
    expected = keras_step_by_step(model, traced.ids)
    assert set(traced.states) == set(expected)
    for name, values in expected.items():
        np.testing.assert_allclose(traced.states[name], values, atol=1e-5)


def test_gates_rebuild_the_steps_states(traced_model):
    cell, model, traced = traced_model
    layer_gates = gates.gates(model, traced)
    assert [entry.layer for entry in layer_gates] == [layer.name for layer in model.body]
    expected_gates = {"gru": {"update z", "reset r"}, "lstm": {"input i", "forget f", "output o"},
                      "rnn": set()}
    for entry in layer_gates:
        assert set(entry.gates) == expected_gates[cell]
        for part, values in entry.states.items():
            np.testing.assert_allclose(values, traced.states[f"{entry.layer}.{part}"], atol=1e-5)
        for values in entry.gates.values():
            assert values.shape == (len(traced.ids), 8) and ((values >= 0) & (values <= 1)).all()


def test_gru_gates_by_hand_on_one_step():
    # One character from the zero state: z = sigmoid(x Kz + bz_in + bz_rec), candidate with r * b_h_rec.
    keras.utils.set_random_seed(5)
    model = build_model(VOCAB, units=4, n_layers=1, cell="gru")
    ids = np.array([3, 7])
    entry = gates.gates(model, inspect.trace(model, ids))[0]
    kernel, _, bias = (w.numpy() for w in model.body[0].cell.weights)
    x = kernel[ids[0] - 1]  # a one-hot input picks a kernel row
    sigmoid = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    z = sigmoid(x[:4] + bias[0, :4] + bias[1, :4])
    r = sigmoid(x[4:8] + bias[0, 4:8] + bias[1, 4:8])
    np.testing.assert_allclose(entry.gates["update z"][0], z, atol=1e-6)
    np.testing.assert_allclose(entry.gates["reset r"][0], r, atol=1e-6)
    np.testing.assert_allclose(entry.states["h"][0], (1 - z) * np.tanh(x[8:] + bias[0, 8:] + r * bias[1, 8:]),
                               atol=1e-6)


def test_surprisal_equals_the_softmax_of_a_full_sequence_call(traced_model):
    _, model, traced = traced_model
    logits = keras.ops.convert_to_numpy(model(traced.ids[None, :-1]))[0].astype(np.float64)
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    targets = traced.ids[1:] - 1
    np.testing.assert_allclose(traced.bits[1:], -log_probs[np.arange(len(targets)), targets] / np.log(2),
                               atol=1e-4)
    assert np.isnan(traced.bits[0])
    top = np.argsort(-log_probs, axis=1)[:, :5] + 1
    np.testing.assert_array_equal(traced.top_ids[1:], top)
    np.testing.assert_allclose(traced.top_probs[1:], np.exp(np.sort(log_probs, axis=1)[:, ::-1][:, :5]),
                               atol=1e-5)


def test_saturation_counts_the_share_of_positions_beyond_the_thresholds():
    values = np.array([[0.05, 0.5], [0.95, 0.5], [0.05, 0.99], [0.5, 0.5]])
    entry = gates.LayerGates("gru_1", "GRUCell", {"update z": values}, {})
    fractions = gates.saturation([entry])["gru_1"]["update z"]
    assert fractions == {"left": [0.5, 0.0], "right": [0.25, 0.25]}


def test_features_of_a_small_english_text():
    text = 'ab "c" (d)\nEF:\nx y'
    values, notes = features.text_features(text, cased=True)
    assert values["position in line"].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0, 1, 2, 3, 0, 1, 2]
    assert values["since space"].tolist() == [1, 2, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 0, 1]
    assert values["inside quotes"].tolist() == [0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    assert values["inside brackets"].tolist() == [0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    assert values["speaker line"].tolist() == [0] * 11 + [1] * 4 + [0] * 3
    assert values["since punctuation"][:6].tolist() == [1, 2, 3, 0, 1, 0]
    assert notes == []
    lowered, notes = features.text_features(text.lower(), cased=False)
    assert "speaker line" not in lowered and any("lower-cased" in note for note in notes)


def test_features_of_chinese_text():
    text = "关关雎鸠，在河之洲。\n「窈窕」淑女"
    values, notes = features.text_features(text, cased=False)
    assert "since space" not in values and any("no spaces" in note for note in notes)
    assert values["position in line"].tolist() == [*range(11), *range(6)]
    assert values["since punctuation"].tolist() == [1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1, 0, 1, 2, 0, 1, 2]
    assert values["inside quotes"].tolist() == [0] * 11 + [1, 1, 1, 0, 0, 0]
    assert any("inside brackets: constant" in note for note in notes)


def test_correlations_find_a_unit_that_counts_the_line_position():
    text = "abc de\nfghij\nkl mnop qr\n" * 3
    position = features.position_in_line(text)
    noise = np.random.default_rng(1).normal(size=(len(text), 3))
    states = {"gru_1.h": noise, "gru_2.h": np.stack([noise[:, 0], -0.1 * position + 0.01 * noise[:, 1]], 1)}
    found = inspect.unit_correlations(states, {"position in line": position, "constant": np.zeros(len(text))})
    best = inspect.best_units(found)
    assert best[0]["state"] == "gru_2.h" and best[0]["unit"] == 1 and best[0]["r"] < -0.99
    assert np.all(found["r"][:, 1] == 0)  # a constant feature correlates with nothing


def test_bucket_means():
    values = np.array([np.nan, 1.0, 2.0, 3.0, 4.0])
    rows = inspect.bucket_means(values, np.array([0, 0, 1, 2, 5]), (0, 1, 3))
    assert rows == [{"bucket": "0", "count": 1, "mean": 1.0}, {"bucket": "1-2", "count": 2, "mean": 2.5},
                    {"bucket": "3+", "count": 1, "mean": 4.0}]


def test_analysis_window_starts_at_a_line_and_leaves_context_before_the_passage():
    tokenizer = CharTokenizer.fit("abc\n")
    ids = tokenizer.encode(("abc\n" * 300)[2:])
    window, passage = inspect.analysis_window(ids, tokenizer, 1000, 50)
    text = tokenizer.decode(window)
    assert text.startswith("abc") and len(window) == 1000
    assert passage.start >= inspect.WARMUP_CHARS and text[passage.start - 1] == "\n"
    assert passage.stop - passage.start == 50
    with pytest.raises(ValueError, match="passage_chars must be an integer >= 2"):
        inspect.analysis_window(ids, tokenizer, 1000, 0)


def test_find_run_data_matches_the_recorded_identity(tmp_path):
    identity = {"corpus_sha256": "ab" * 32, "vocab_size": 39, "lower": True, "train_chars": 900}
    for name, sha in (("other", "cd" * 32), ("mine", "ab" * 32)):
        (tmp_path / "data" / name).mkdir(parents=True)
        (tmp_path / "data" / name / "meta.json").write_text(json.dumps({**identity, "corpus_sha256": sha}))
    run = Run(tmp_path / "runs" / "r", None, None, {"data": identity}, {})
    assert find_run_data(run.path, run.config, tmp_path) == tmp_path / "data" / "mine"
    assert find_run_data(run.path, run.config) == (tmp_path / "data" / "mine").resolve()  # beside runs/
    run.config["data"] = {**identity, "train_chars": 5}
    with pytest.raises(ValueError, match="No prepared data under .* matches run r.*notebook 01"):
        find_run_data(run.path, run.config, tmp_path)
    run.config.pop("data")
    with pytest.raises(ValueError, match="records no data identity"):
        find_run_data(run.path, run.config, tmp_path)


def test_trace_refuses_ids_outside_the_vocabulary(traced_model):
    _, model, _ = traced_model
    with pytest.raises(ValueError, match="ids must be in 1..12"):
        inspect.trace(model, np.array([1, 13]))
    with pytest.raises(ValueError, match="at least 2 character ids"):
        inspect.trace(model, np.array([1]))


def test_views_save_html_and_png_and_show_the_top_guesses(tmp_path):
    from charrnn import inspect_views

    tokenizer = CharTokenizer.fit("关关雎鸠，在河之洲。\nab (c) d\n")
    keras.utils.set_random_seed(4)
    model = build_model(tokenizer.vocab_size, units=8, n_layers=1)
    ids = tokenizer.encode("关关雎鸠，在河之洲。\nab (c) d\n" * 3)
    traced = inspect.trace(model, ids)
    passage = slice(3, 30)
    body = inspect_views.surprisal_view(tokenizer, traced, passage, tmp_path)
    first_guess = tokenizer.chars[traced.top_ids[3, 0] - 1]
    assert f"{inspect_views.shown(first_guess)} {traced.top_probs[3, 0]:.1%}" in body
    values, _ = features.text_features(tokenizer.decode(ids), cased=False)
    best = inspect.best_units(inspect.unit_correlations(traced.states, values))
    units = inspect_views.units_view(tokenizer, traced, passage, best, tmp_path)
    assert units.count("<b>") == len(best) and "雎" in units
    saved = {path.name for path in tmp_path.iterdir()}
    assert {"surprisal.html", "surprisal.png", "units.html", "units.png"} <= saved


def test_ngram_comparison_scores_the_traced_text_with_the_best_order():
    from charrnn.ngram import fit_orders

    train = np.tile([1, 2, 3, 1, 2], 40)
    traced = inspect.Trace(np.array([1, 2, 3, 1, 2, 3]), np.array([np.nan, 1, 1, 2, 2, 2.0]),
                           np.zeros((6, 1), int), np.zeros((6, 1)), {})
    models = fit_orders(train, 3, range(1, 4))
    result = inspect.ngram_comparison(models, train[:50], traced, np.array([0, 1, 2, 3, 4, 5]))
    assert result["best_order"] == min(result["curve"], key=result["curve"].get)
    expected = -models[result["best_order"]].log2_probs(traced.ids)[1:].mean()
    assert result["trace_bits"] == {"rnn": 1.6, "ngram": pytest.approx(expected)}
    # position 0 has no RNN figure (nothing before it), so its bucket is left out
    assert [(row["bucket"], row["count"], row["rnn"]) for row in result["by_position"]] == [
        ("1-2", 2, 1.0), ("3-5", 3, 2.0)]
