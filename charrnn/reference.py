"""Géron's Char-RNN as his notebook writes it: the window pipeline, the model and the generation
functions, kept as the readable reference that the package is checked and timed against.

`next_char` runs the model over the *whole* text to pick one character and
`complete_text` calls it once per new character: every character re-reads everything
before it, so the cost grows with the square of the length. `charrnn.generate.Generator`
carries the states instead (linear); at temperature 0 both give the same text, which the
tests check, and `make bench` times one against the other.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from charrnn.generate import check_count, check_temperature, check_vocabulary, encode_prompt
from charrnn.tokenizer import CharTokenizer

N_STEPS, BATCH_SIZE = 100, 32  # Géron's window length and batch

# One compiled forward pass per model, traced once for any batch and length (Keras 3 runs an
# uncompiled GRU call step by step in Python, ~60x slower than Géron's Keras 2 graph call).
_forward_functions: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _forward(model: keras.Model):
    if model not in _forward_functions:
        _forward_functions[model] = tf.function(
            lambda ids: model(ids, training=False), input_signature=[tf.TensorSpec([None, None], tf.int32)]
        )
    return _forward_functions[model]


def preprocess(tokenizer: CharTokenizer, texts: Sequence[str]) -> tf.Tensor:
    """Géron's `preprocess`: texts of equal length → the model's input batch (ids; the model one-hots)."""
    ids = [encode_prompt(tokenizer, text) for text in texts]
    if len({len(row) for row in ids}) > 1:
        raise ValueError("preprocess needs texts of equal length (they form one batch).")
    return tf.constant(np.stack(ids), tf.int32)


def next_char_logits(model: keras.Model, tokenizer: CharTokenizer, text: str) -> tf.Tensor:
    """The model's logits for the character after `text`, shape (1, vocab_size)."""
    if model.stateful:
        raise ValueError(
            "This model is stateful: it carries state between calls and has a fixed batch size. "
            "Convert it first with charrnn.model.to_stateless(model)."
        )
    check_vocabulary(model, tokenizer)
    return _forward(model)(preprocess(tokenizer, [text]))[:, -1, :]


def next_char(model: keras.Model, tokenizer: CharTokenizer, text: str, temperature: float = 1.0) -> str:
    """One character after `text`, re-reading the whole text (Géron's `next_char`).

    Géron divided log-probabilities by the temperature; this model outputs logits, which
    differ from log-probabilities by a constant, so logits / temperature gives the same
    distribution. Temperature 0 is greedy: the most likely character.
    """
    temperature = check_temperature(temperature)
    logits = next_char_logits(model, tokenizer, text)
    if temperature == 0:
        class_index = tf.argmax(logits, axis=-1)
    else:
        class_index = tf.random.categorical(logits / temperature, num_samples=1)[:, 0]
    return tokenizer.decode(class_index.numpy() + 1)


def complete_text(
    model: keras.Model, tokenizer: CharTokenizer, text: str, n_chars: int = 50, temperature: float = 1.0
) -> str:
    """`text` followed by `n_chars` characters, one `next_char` call each (Géron's `complete_text`)."""
    n_chars = check_count(n_chars, "n_chars")
    for _ in range(n_chars):
        text += next_char(model, tokenizer, text, temperature)
    return text


def next_char_table(
    model: keras.Model, tokenizer: CharTokenizer, text: str, k: int = 5
) -> list[tuple[str, float]]:
    """The `k` most likely next characters with their probabilities, most likely first.

    For "How are yo", a trained model puts "u" first.
    """
    k = check_count(k, "k", minimum=1)
    probabilities = tf.nn.softmax(next_char_logits(model, tokenizer, text))[0].numpy()
    best = np.argsort(-probabilities, kind="stable")[:k]
    return [(tokenizer.decode([index + 1]), float(probabilities[index])) for index in best]


def format_next_char_table(table: list[tuple[str, float]], text: str | None = None) -> str:
    """A printable table; characters shown as Python literals so ' ' and '\\n' are visible.

    Probabilities with three significant digits: over thousands of characters the
    likeliest may hold well under 1%.
    """
    lines = [f"next character after {text!r}:"] if text is not None else []
    lines += [f"  {char!r:>6}  {100 * probability:#.3g}%" for char, probability in table]
    return "\n".join(lines)


def geron_windows(encoded: np.ndarray, max_id: int) -> tf.data.Dataset:
    """Géron's stateless pipeline, verbatim apart from names (`encoded` = ids - 1)."""
    dataset = tf.data.Dataset.from_tensor_slices(encoded)
    dataset = dataset.window(N_STEPS + 1, shift=1, drop_remainder=True)
    dataset = dataset.flat_map(lambda window: window.batch(N_STEPS + 1))
    dataset = dataset.shuffle(10000).batch(BATCH_SIZE)
    dataset = dataset.map(lambda windows: (windows[:, :-1], windows[:, 1:]))
    dataset = dataset.map(lambda X_batch, Y_batch: (tf.one_hot(X_batch, depth=max_id), Y_batch))
    return dataset.prefetch(1)


def geron_model(max_id: int) -> keras.Model:
    """Géron's stateless model, in Keras 3 spelling (Input instead of input_shape).

    The Reshape only makes the time axis static: with a dynamic one (Géron's
    `[None, max_id]` fed by its window pipeline), Keras 3.15's TimeDistributed maps
    over the batch size instead of the time steps, and training fails with a
    (32, 100) vs (32, 32) shape error. A plain Dense, as `build_model` uses, has no such issue.
    """
    model = keras.Sequential([
        keras.Input(shape=(None, max_id)),
        keras.layers.Reshape((N_STEPS, max_id)),
        keras.layers.GRU(128, return_sequences=True, dropout=0.2),
        keras.layers.GRU(128, return_sequences=True, dropout=0.2),
        keras.layers.TimeDistributed(keras.layers.Dense(max_id, activation="softmax")),
    ])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    return model
