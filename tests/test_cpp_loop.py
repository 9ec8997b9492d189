"""The compiled step loop (charrnn.extras.cpp_loop): its numbers against the model's step and the XLA loop."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from charrnn import sampling
from charrnn.extras import cpp_loop as native
from charrnn.generate import Generator
from charrnn.model import CharRNN, build_model
from charrnn.reference import next_char_logits
from charrnn.tokenizer import CharTokenizer

pytestmark = pytest.mark.skipif(native.compiler() is None, reason="no C++ compiler (set CXX or install g++)")


def seeded_model(vocab_size, **kwargs):
    keras.utils.set_random_seed(3)
    return build_model(vocab_size, **kwargs)


def spread_output(model, low=-3.0, high=3.0):
    """Output biases from low to high: untrained logits are near uniform, which would hide mistakes."""
    model.logits.bias.assign(np.linspace(low, high, model.vocab_size).astype("float32"))
    return model


def tokenizer_of(vocab_size) -> CharTokenizer:
    return CharTokenizer.fit("".join(chr(0x4E00 + i) for i in range(vocab_size)))


@pytest.mark.parametrize(
    "vocab_size, kwargs",
    [
        (39, {"units": 24}),  # one-hot inputs, one output block: no second thread
        (700, {"units": 13, "n_layers": 3, "embedding_dim": 8}),  # odd sizes; the output split over 2 threads
        (2798, {"units": 128, "embedding_dim": "auto"}),  # the bench model
    ],
    ids=["one-hot-39", "embedding-700-3-layers", "embedding-2798"],
)
def test_step_matches_the_models_step(vocab_size, kwargs):
    model = spread_output(seeded_model(vocab_size, **kwargs))
    rng = np.random.default_rng(0)
    ids = np.array([1, vocab_size, vocab_size // 2], np.int32)
    states = [rng.normal(0, 0.5, (3, size)).astype("float32") for size in model.state_sizes]
    expected_logits, expected_states = model.step(ids, states)
    logits, new_states = native.step(native.NativeNet(model), ids, states)
    np.testing.assert_allclose(logits, expected_logits.numpy(), rtol=1e-5, atol=1e-5)
    for got, expected in zip(new_states, expected_states):
        np.testing.assert_allclose(got, expected.numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=f"1..{vocab_size}"):
        native.step(native.NativeNet(model), np.array([0, 1, 1]), states)
    with pytest.raises(ValueError, match="states must have shapes"):
        native.step(native.NativeNet(model), ids, [state[:1] for state in states])


@pytest.mark.parametrize("vocab_size", [39, 700])
@pytest.mark.parametrize("temperature, top_k", [(1.0, None), (0.6, None), (1.3, 5), (1.0, 1), (0.0, None)])
def test_sampling_matches_pick_next_ids(vocab_size, temperature, top_k):
    """Same logits and uniform numbers → the same ids, except where rounding can tell them apart."""
    batch = 400
    rng = np.random.default_rng(vocab_size)
    logits = np.round(rng.normal(0, 2, (batch, vocab_size)), 1).astype("float32")  # rounded: many ties
    k = top_k or vocab_size
    uniforms = sampling.uniform_table(17, 5, batch).numpy()[4]
    expected = sampling.pick_next_ids(tf.constant(logits), tf.constant(temperature), tf.constant(k),
                                      tf.constant(uniforms)).numpy()
    got = native.sample(logits, uniforms, temperature, k)
    if temperature == 0:
        np.testing.assert_array_equal(got, logits.argmax(axis=1) + 1)  # the first of the largest
        np.testing.assert_array_equal(got, expected)
        return
    # Where the uniform falls within 1e-5 of a class boundary (float64 CDF), rounding may decide.
    shifted = (logits - logits.max(axis=1, keepdims=True)).astype("float64")
    kth = -np.sort(-logits, axis=1)[:, k - 1 : k]
    weights = np.where(logits >= kth, np.exp(shifted / temperature), 0.0)
    cdf = np.cumsum(weights, axis=1) / weights.sum(axis=1, keepdims=True)
    clear = np.abs(cdf - uniforms[:, None]).min(axis=1) > 1e-5
    assert clear.mean() > 0.95
    np.testing.assert_array_equal(got[clear], expected[clear])
    chosen_weight = weights[np.arange(batch), got - 1]
    assert (chosen_weight > 0).all(), "a class of probability 0 (outside the top k) was chosen"


def test_sample_refuses_bad_arguments():
    logits = np.zeros((2, 5), np.float32)
    with pytest.raises(ValueError, match="uniforms"):
        native.sample(logits, np.full(1, 0.5), 1.0, 5)
    for temperature, top_k in [(1.0, 0), (1.0, 6), (-1.0, 5)]:
        with pytest.raises(ValueError, match="top_k in 1..5"):
            native.sample(logits, np.full(2, 0.5), temperature, top_k)


def assert_same_up_to_rounding(model, tokenizer, prompts, texts, other_texts, seed, temperature, top_k=None):
    """Texts may part only where a draw falls within 1e-5 of a class boundary (float rounding decides)."""
    for stream, (text, other) in enumerate(zip(texts, other_texts)):
        if text == other:
            continue
        position = next(i for i, (a, b) in enumerate(zip(text, other)) if a != b)
        logits = next_char_logits(model, tokenizer, text[:position])[0].numpy().astype("float64")
        kept = logits >= np.sort(logits)[-(top_k or len(logits))]
        weights = np.where(kept, np.exp((logits - logits.max()) / temperature), 0.0)
        uniform = sampling.uniform_table(seed, position, len(prompts)).numpy()[position - 1, stream]
        gap = np.abs(np.cumsum(weights) / weights.sum() - uniform).min()
        assert gap < 1e-5, f"stream {stream} parts at character {position}, {gap:.2g} from any boundary"


def test_generator_loops_agree(tiny_data):
    """The compiled and the XLA loop: the same texts for the same seed (prompts of different lengths)."""
    tokenizer = tiny_data.tokenizer
    model = spread_output(seeded_model(tokenizer.vocab_size, units=32), -1.0, 1.0)
    compiled, xla = Generator(model, tokenizer, backend="cpp"), Generator(model, tokenizer, backend="xla")
    prompts = ["ROMEO:", "t", "the king hath "]
    for settings in [{"temperature": 1.0, "seed": 1}, {"temperature": 0.5, "top_k": 4, "seed": 2}]:
        texts = compiled.generate(prompts, 150, **settings)
        assert_same_up_to_rounding(model, tokenizer, prompts, texts, xla.generate(prompts, 150, **settings),
                                   **settings)
    assert compiled.generate(prompts, 150, temperature=0) == xla.generate(prompts, 150, temperature=0)
    assert compiled.generate(prompts, 0) == prompts
    assert compiled.generate("t", 1, seed=3) == xla.generate("t", 1, seed=3)


def test_generator_greedy_agrees_at_2798_characters_and_follows_new_weights():
    tokenizer = tokenizer_of(2798)
    model = seeded_model(2798, units=32, embedding_dim="auto")
    # Small rows keep the untrained greedy path varied (from unit-normal rows it falls into a short cycle).
    rows = model.embedding.embeddings
    rows.assign(np.random.default_rng(0).uniform(-0.05, 0.05, rows.shape).astype("float32"))
    compiled, xla = Generator(model, tokenizer, backend="cpp"), Generator(model, tokenizer, backend="xla")
    prompts = [tokenizer.decode([5, 6]), tokenizer.decode([2000])]
    before = compiled.generate(prompts, 100, temperature=0)
    assert before == xla.generate(prompts, 100, temperature=0)
    assert len(set(before[0])) > 10, "a repeated character would make this test weak"
    kernel = model.logits.kernel
    kernel.assign(-kernel.numpy())  # as training would, after the Generator was made
    after = compiled.generate(prompts, 100, temperature=0)
    assert after != before and after == xla.generate(prompts, 100, temperature=0)


def test_generate_refuses_ids_out_of_range():
    net = native.NativeNet(seeded_model(10, units=4, n_layers=1))
    with pytest.raises(ValueError, match=r"1\.\.10"):
        native.generate(net, np.array([[11], [0]]), np.array([1]), np.zeros((1, 1)), 1.0, 10)
    with pytest.raises(ValueError, match=r"prompt_by_time must be \(2, 1\)"):
        native.generate(net, np.array([[1]]), np.array([1]), np.zeros((1, 1)), 1.0, 10)
    # A bad id at step 1, while the second thread of a 700-class output layer is waiting.
    net = native.NativeNet(seeded_model(700, units=4, n_layers=1, embedding_dim=4))
    with pytest.raises(ValueError, match=r"1\.\.700"):
        native.generate(net, np.array([[1], [701], [0]]), np.array([2]), np.zeros((2, 1)), 1.0, 700)


def test_embedding_with_too_few_rows_is_refused():
    model = CharRNN(5, [keras.layers.GRU(4, return_sequences=True)])
    model.embedding = keras.layers.Embedding(5, 3)  # ids 0..4: id 5 has no row
    model(np.ones((1, 1), "int32"))
    assert "5 rows" in native.unsupported_reason(model)


def test_unsupported_model_falls_back_to_the_xla_loop_with_one_message():
    model = CharRNN(5, [keras.layers.GRU(4, reset_after=False, return_sequences=True)])
    model(np.ones((1, 1), "int32"))
    tokenizer = CharTokenizer.fit("abcde")
    assert "reset_after" in native.unsupported_reason(model)
    with pytest.warns(UserWarning, match="reset_after"):
        generator = Generator(model, tokenizer)
    assert generator.backend == "xla"
    assert generator.generate("ab", 5, temperature=0)[0].startswith("ab")


@pytest.fixture
def fresh_library(monkeypatch, tmp_path):
    """native's module state as before the first library() call, with an empty build cache."""
    monkeypatch.setattr(native, "_library", None)
    monkeypatch.setattr(native, "_library_error", None)
    monkeypatch.setenv("CHARRNN_CPP_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_without_a_compiler_generation_falls_back_to_xla(fresh_library, monkeypatch):
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    with pytest.warns(UserWarning, match="no C\\+\\+ compiler"):
        assert native.library() is None
    tokenizer = CharTokenizer.fit("abcde")
    with pytest.warns(UserWarning, match="no C\\+\\+ compiler"):
        generator = Generator(seeded_model(5, units=4, n_layers=1), tokenizer)
    assert generator.backend == "xla" and len(generator.generate("ab", 5, seed=0)[0]) == 7


def test_builds_are_keyed_on_the_source_and_never_half_written(fresh_library, monkeypatch, tmp_path):
    cxx = native.compiler()
    source = tmp_path / "step_loop.cc"
    monkeypatch.setattr(native, "SOURCE", source)
    source.write_text('extern "C" int charrnn_answer() { return 42; }\n')
    first = native.build(cxx)
    assert first.parent == fresh_library and first.exists()
    assert native.build(cxx) == first  # built once
    source.write_text("this is not C++\n")
    assert native.library_path(cxx) != first  # an edit gets its own build
    with pytest.raises(RuntimeError, match="failed"):
        native.build(cxx)
    assert sorted(path.name for path in fresh_library.iterdir()) == [first.name]  # no partial file left
