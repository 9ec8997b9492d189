"""Géron's reference functions and the state-carrying Generator, on both backends."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import charrnn.generate
from charrnn import sampling
from charrnn.export import export_generator
from charrnn.extras import cpp_loop
from charrnn.generate import Generator, generate_from_run
from charrnn.model import CharRNN, build_model, to_stateless
from charrnn.reference import (
    complete_text,
    format_next_char_table,
    next_char,
    next_char_logits,
    next_char_table,
)

PROMPTS = ["ROMEO:", "t", "the king hath "]  # different lengths in one batch


@pytest.fixture(scope="module")
def tokenizer(tiny_data):
    return tiny_data.tokenizer


def untrained_model(vocab_size, embedding_dim=None, **kwargs):
    """Random weights, wide enough that greedy texts are not constant (the same on every run)."""
    model = build_model(vocab_size, units=24, n_layers=2, embedding_dim=embedding_dim, **kwargs)
    rng = np.random.default_rng(7)
    model.set_weights([rng.normal(0.0, 1.0, w.shape).astype("float32") for w in model.get_weights()])
    return model


@pytest.fixture(scope="module")
def model(tokenizer):
    return untrained_model(tokenizer.vocab_size)


@pytest.fixture(scope="module", params=["cpp", "xla"])
def backend(request):
    """Every Generator test runs on both step loops: the compiled one and the XLA one."""
    if request.param == "cpp" and cpp_loop.compiler() is None:
        pytest.skip("no C++ compiler for the compiled step loop (set CXX or install g++)")
    return request.param


@pytest.fixture(scope="module")
def generator(model, tokenizer, backend):
    generator = Generator(model, tokenizer, backend=backend)
    assert generator.backend == backend
    return generator


@pytest.mark.parametrize("embedding_dim", [None, 8], ids=["one-hot", "embedding"])
def test_greedy_generator_matches_complete_text(tokenizer, embedding_dim, backend):
    model = untrained_model(tokenizer.vocab_size, embedding_dim)
    fast = Generator(model, tokenizer, backend=backend).generate(PROMPTS, 120, temperature=0)
    reference = [complete_text(model, tokenizer, prompt, 120, temperature=0) for prompt in PROMPTS]
    assert fast == reference
    assert all(len(set(text[-120:])) > 3 for text in fast), "a constant text would make this test weak"


def test_greedy_matches_across_chunk_boundaries(tokenizer, model, monkeypatch, backend):
    """State is carried from one compiled chunk to the next, also in the middle of a prompt."""
    for module in (sampling, charrnn.generate):  # read when the Generator's functions are traced
        monkeypatch.setattr(module, "CHUNK_STEPS", 5)
    prompts = ["to be or not to be", "a"]
    fast = Generator(model, tokenizer, backend=backend).generate(prompts, 23, temperature=0)
    assert fast == [complete_text(model, tokenizer, prompt, 23, temperature=0) for prompt in prompts]


def test_generate_keeps_prompts_and_shapes(generator):
    texts = generator.generate(PROMPTS, 30, seed=0)
    assert isinstance(texts, list) and len(texts) == len(PROMPTS)
    for prompt, text in zip(PROMPTS, texts):
        assert text.startswith(prompt) and len(text) == len(prompt) + 30
    assert generator.generate("ROMEO:", 30, seed=0) == texts[:1]  # a single string: a list of one
    assert generator.generate(PROMPTS, 0) == PROMPTS


def test_seed_makes_samples_reproducible(generator):
    first = generator.generate(PROMPTS, 80, temperature=1.0, seed=3)
    assert generator.generate(PROMPTS, 80, temperature=1.0, seed=3) == first
    assert generator.generate(PROMPTS, 80, temperature=1.0, seed=4) != first
    unseeded = [generator.generate(PROMPTS, 80, temperature=1.0) for _ in range(2)]
    assert unseeded[0] != unseeded[1]


def softmax(logits):
    exp = np.exp(logits - logits.max())
    return exp / exp.sum()


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_samples_follow_the_softmax_of_logits_over_temperature(tokenizer, temperature, backend):
    """The first sampled character of 10,000 streams has the model's distribution at that temperature."""
    model = untrained_model(tokenizer.vocab_size)
    # Spread the logits (an untrained model is near uniform) so a wrong temperature would show.
    model.logits.bias.assign(np.linspace(-3.0, 3.0, tokenizer.vocab_size))
    prompt = "the "
    counts = np.zeros(tokenizer.vocab_size)
    generator = Generator(model, tokenizer, backend=backend)
    for text in generator.generate([prompt] * 10_000, 1, temperature, seed=11):
        counts[tokenizer.encode(text[-1])[0] - 1] += 1
    logits = next_char_logits(model, tokenizer, prompt)[0].numpy()
    frequencies = counts / counts.sum()
    other_temperature = 1.5 - temperature
    assert 0.5 * np.abs(frequencies - softmax(logits / temperature)).sum() < 0.05  # total variation
    assert 0.5 * np.abs(frequencies - softmax(logits / other_temperature)).sum() > 0.15


def test_top_k_samples_only_among_the_k_likeliest(generator, model, tokenizer):
    [text] = generator.generate("the ", 25, temperature=5.0, top_k=2, seed=5)
    for end in range(4, len(text)):
        likeliest = [char for char, _ in next_char_table(model, tokenizer, text[:end], k=2)]
        assert text[end] in likeliest
    assert generator.generate("the ", 40, temperature=1.0, top_k=1, seed=9) == generator.generate(
        "the ", 40, temperature=0
    )


def test_stateful_model_is_converted(tokenizer, backend):
    stateful = untrained_model(tokenizer.vocab_size, stateful=True, batch_size=4)
    from_stateful = Generator(stateful, tokenizer, backend=backend).generate(PROMPTS, 40, temperature=0)
    stateless = Generator(to_stateless(stateful), tokenizer, backend=backend)
    assert from_stateful == stateless.generate(PROMPTS, 40, temperature=0)
    with pytest.raises(ValueError, match="to_stateless"):
        complete_text(stateful, tokenizer, "the ", 5)


def test_step_loop_compiles_with_xla(generator, tokenizer):
    """The chunk of steps (the step model in a tf.while_loop) is one XLA computation."""
    batch = 2
    states = tuple(tf.zeros([batch, size]) for size in generator.model.state_sizes)
    hlo = generator._run_chunk.experimental_get_compiler_ir(
        tf.constant([1, 2]), states, tf.zeros([sampling.CHUNK_STEPS, batch], tf.int32),
        tf.fill([sampling.CHUNK_STEPS, batch], 0.5), tf.constant([1, 1]), tf.constant(3), tf.constant(0),
        tf.constant(1.0), tf.constant(tokenizer.vocab_size),
    )(stage="hlo")
    assert "while" in hlo


def test_functions_are_traced_once(generator):
    for prompts, n_chars, temperature, top_k in [
        (["a"], 5, 0.0, None), (PROMPTS, 300, 1.5, 3), (["x", "yy"], 1, 0.7, None),
    ]:
        generator.generate(prompts, n_chars, temperature, top_k=top_k, seed=1)
    assert generator.generate_ids.experimental_get_tracing_count() == 1
    if generator.backend == "xla":
        assert generator._run_chunk.experimental_get_tracing_count() == 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"prompts": "the €uro#"}, r"'#', '€'"),
        ({"prompts": ["ok", "b@d"]}, "'@'"),
        ({"prompts": ""}, "at least one character"),
        ({"prompts": []}, "prompts is empty"),
        ({"n_chars": -1}, "n_chars"),
        ({"n_chars": 2.5}, "n_chars"),
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": math.nan}, "temperature"),
        ({"temperature": math.inf}, "temperature"),
        ({"top_k": 0}, "top_k"),
        ({"top_k": 10_000}, "top_k"),
        ({"seed": -3}, "seed"),
        ({"prompts": None}, "prompts must be a string or a list of strings, got NoneType"),
        ({"prompts": 42}, "prompts must be a string or a list of strings, got int"),
        ({"prompts": b"the "}, "prompts must be a string or a list of strings, got bytes"),
        ({"prompts": ["the ", None]}, "A prompt must be a string, got NoneType"),
    ],
)
def test_bad_arguments_raise_clear_errors(generator, kwargs, message):
    arguments = {"prompts": "the ", "n_chars": 5, **kwargs}
    with pytest.raises(ValueError, match=message):
        generator.generate(**arguments)


def test_model_and_tokenizer_must_match(tokenizer):
    with pytest.raises(ValueError, match="same run"):
        Generator(build_model(tokenizer.vocab_size + 1, units=8, n_layers=1), tokenizer)
    with pytest.raises(ValueError, match="backend must be one of"):
        Generator(build_model(tokenizer.vocab_size, units=8, n_layers=1), tokenizer, backend="native")


@pytest.mark.parametrize("cell", ["lstm", "rnn"])
def test_other_cells_generate_through_their_step_and_the_cpp_backend_falls_back(tokenizer, cell):
    keras.utils.set_random_seed(7)  # Keras's initialisation: no near-ties for rounding to flip
    model = build_model(tokenizer.vocab_size, units=24, n_layers=2, cell=cell)
    with pytest.warns(UserWarning, match=r"GRUs only\); using the XLA loop"):
        generator = Generator(model, tokenizer)  # backend="cpp" by default
    assert generator.backend == "xla"
    fast = generator.generate(PROMPTS, 40, temperature=0)
    assert fast == [complete_text(model, tokenizer, prompt, 40, temperature=0) for prompt in PROMPTS]


def test_a_model_with_an_extra_layer_generates_and_exports_unchanged(tokenizer, tmp_path):
    """Nothing in the generator or the export knows the body: a LayerNormalization between GRUs."""
    keras.utils.set_random_seed(8)
    body = [keras.layers.GRU(16, return_sequences=True, name="gru_1"), keras.layers.LayerNormalization(),
            keras.layers.GRU(16, return_sequences=True, name="gru_2")]
    model = CharRNN(tokenizer.vocab_size, body, embedding_dim=8)
    model(np.ones((1, 1), "int32"))
    with pytest.warns(UserWarning, match="LayerNormalization"):
        generator = Generator(model, tokenizer)
    fast = generator.generate(PROMPTS, 60, temperature=0)
    assert fast == [complete_text(model, tokenizer, prompt, 60, temperature=0) for prompt in PROMPTS]
    exported = tf.saved_model.load(str(export_generator(model, tokenizer, tmp_path / "export")))
    texts = exported.generate(tf.constant(PROMPTS), 60, 0.0, 1).numpy()
    assert [text.decode() for text in texts] == fast


def test_reference_next_char_and_table(model, tokenizer):
    table = next_char_table(model, tokenizer, "How are yo", k=tokenizer.vocab_size)
    probabilities = [probability for _, probability in table]
    assert probabilities == sorted(probabilities, reverse=True)
    assert math.isclose(sum(probabilities), 1.0, rel_tol=1e-4)
    assert sorted(char for char, _ in table) == sorted(tokenizer.chars)
    assert next_char(model, tokenizer, "How are yo", temperature=0) == table[0][0]
    assert len(next_char_table(model, tokenizer, "How are yo")) == 5
    printed = format_next_char_table(table[:2], "How are yo")
    assert repr(table[0][0]) in printed and "How are yo" in printed
    with pytest.raises(ValueError, match="'#'"):
        next_char(model, tokenizer, "#")


def test_generate_from_a_stateful_run(generation_run):
    samples = generate_from_run(generation_run, "ROMEO:", 30, 0.8, num_samples=3, seed=1)
    assert len(samples) == 3 and all(s.startswith("ROMEO:") and len(s) == 36 for s in samples)
    assert len(set(samples)) > 1  # each sample draws its own characters
    best = generate_from_run(generation_run, "ROMEO:", 30, 0, checkpoint="best.keras")
    assert best[0].startswith("ROMEO:")
    with pytest.raises(FileNotFoundError, match="no nope.keras"):
        generate_from_run(generation_run, "ROMEO:", 5, checkpoint="nope.keras")


@pytest.mark.parametrize("vocab_size", [5, 39, 2798])
def test_inverse_cdf_sampling_follows_the_probabilities_and_never_picks_a_zero(vocab_size):
    from charrnn.sampling import _inverse_cdf

    rng = np.random.default_rng(0)
    probabilities = np.zeros((4000, vocab_size), "float32")
    support = rng.choice(vocab_size, size=min(4, vocab_size), replace=False)  # zeros everywhere else
    weights = np.array([0.1, 0.2, 0.3, 0.4][: len(support)], "float32")
    probabilities[:, support] = weights / weights.sum()
    uniform = tf.random.stateless_uniform([4000], seed=[1, 2], minval=1e-7, maxval=1.0)
    picked = _inverse_cdf(tf.constant(probabilities), uniform).numpy()
    assert set(picked) <= set(support.tolist())
    shares = np.array([(picked == s).mean() for s in support])
    np.testing.assert_allclose(shares, weights / weights.sum(), atol=0.03)
