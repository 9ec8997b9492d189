"""Text generation: the seed's reference functions and a fast state-carrying generator.

Two ways to continue a prompt, with the same model and the same results at
temperature 0:

- The reference, kept from the seed notebook: `next_char` runs the model over
  the *whole* text to pick one character and `complete_text` calls it once per
  new character. Every character re-reads everything before it, so the cost
  grows with the square of the length. It is kept as the readable definition
  of what generation means, and as the baseline the fast generator is checked
  and timed against.
- `Generator`: reads each prompt once, keeps the GRU states, and produces one
  character per step inside compiled TensorFlow loops (XLA on by default).
  Several prompts run as one batch.

Temperature: logits are divided by it before sampling; 0 means greedy (argmax),
1 samples the model's own distribution, above 1 flattens it.
"""

from __future__ import annotations

import math
import secrets
import weakref
from collections.abc import Iterable, Sequence

import keras
import numpy as np
import tensorflow as tf

import charrnn.native
from charrnn.model import build_step_model, gru_layers, model_config, to_stateless
from charrnn.pipelines import model_inputs
from charrnn.runs import MODEL_FILE, load_run
from charrnn.tokenizer import CharTokenizer

# Steps per call of the compiled inner loop. A fixed size keeps every buffer
# shape static, so XLA compiles once per batch size instead of once per n_chars.
CHUNK_STEPS = 256
INT64_MAX = 2**63 - 1


# ----------------------------------------------------------------------------
# Checks shared by both generators
# ----------------------------------------------------------------------------


def is_stateful(model: keras.Model) -> bool:
    return any(getattr(layer, "stateful", False) for layer in model.layers)


def uses_one_hot(model: keras.Model) -> bool:
    """True when the model reads one-hot vectors, False when it has an Embedding."""
    return model_config(model)["embedding_dim"] is None


def check_vocabulary(model: keras.Model, tokenizer: CharTokenizer) -> None:
    vocab_size = model_config(model)["vocab_size"]
    if vocab_size != tokenizer.vocab_size:
        raise ValueError(
            f"The model predicts {vocab_size} characters but the tokenizer has "
            f"{tokenizer.vocab_size}: load both from the same run."
        )


def encode_prompt(tokenizer: CharTokenizer, text: str, drop_unknown: bool = False) -> np.ndarray:
    """Ids of a prompt. Characters the model never saw: a ValueError naming them, unless
    `drop_unknown` (skipped) or the tokenizer has an unknown id (they get it)."""
    if not isinstance(text, str):
        raise ValueError(f"A prompt must be a string, got {type(text).__name__}.")
    if not text:
        raise ValueError("A prompt must have at least one character: the model needs something to continue.")
    unknown = tokenizer.unknown_chars(text)
    if unknown and set(tokenizer.normalize(text)) <= set(unknown):
        raise ValueError(
            f"Prompt {text!r} has no character of the model's vocabulary (unknown: {unknown!r}). "
            "Give a prompt with characters of the training text."
        )
    if unknown and not drop_unknown and tokenizer.unknown is None:
        raise ValueError(
            f"Prompt {text!r} has characters not in the vocabulary: {unknown!r}. "
            "Remove or replace them, or drop them (drop_unknown=True; --drop-unknown on the command line)."
        )
    return tokenizer.encode(text, drop_unknown=drop_unknown)


def check_temperature(temperature) -> float:
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float, np.number)):
        raise ValueError(f"temperature must be a number, got {temperature!r}.")
    temperature = float(temperature)
    if not math.isfinite(temperature) or temperature < 0:
        raise ValueError(f"temperature must be a finite number >= 0 (0 = greedy), got {temperature}.")
    return temperature


def check_count(value, name: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def _require_stateless(model: keras.Model) -> None:
    if is_stateful(model):
        raise ValueError(
            "This model is stateful: it carries state between calls and has a fixed batch size. "
            "Convert it first with charrnn.model.to_stateless(model)."
        )


# ----------------------------------------------------------------------------
# The reference: the seed's functions (quadratic in the text length)
# ----------------------------------------------------------------------------

# One compiled forward pass per model, traced once for any batch and length.
# (Keras 3 runs an uncompiled GRU call step by step in Python, which would make
# the reference look ~60x slower than the seed's Keras 2 graph call.)
_forward_functions: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _forward(model: keras.Model):
    if model not in _forward_functions:
        if uses_one_hot(model):
            spec = tf.TensorSpec([None, None, model_config(model)["vocab_size"]], tf.float32)
        else:
            spec = tf.TensorSpec([None, None], tf.int32)
        _forward_functions[model] = tf.function(
            lambda inputs: model(inputs, training=False), input_signature=[spec]
        )
    return _forward_functions[model]


def preprocess(tokenizer: CharTokenizer, texts: Sequence[str], one_hot: bool = True) -> tf.Tensor:
    """The seed's `preprocess`: texts of equal length → the model's input batch.

    One-hot vectors of (id - 1) when `one_hot`, else the ids (for an Embedding).
    """
    ids = [encode_prompt(tokenizer, text) for text in texts]
    if len({len(row) for row in ids}) > 1:
        raise ValueError("preprocess needs texts of equal length (they form one batch).")
    return model_inputs(tf.constant(np.stack(ids)), tokenizer.vocab_size, one_hot)


def next_char_logits(model: keras.Model, tokenizer: CharTokenizer, text: str) -> tf.Tensor:
    """The model's logits for the character after `text`, shape (1, vocab_size)."""
    _require_stateless(model)
    check_vocabulary(model, tokenizer)
    inputs = preprocess(tokenizer, [text], one_hot=uses_one_hot(model))
    return _forward(model)(inputs)[:, -1, :]


def next_char(model: keras.Model, tokenizer: CharTokenizer, text: str, temperature: float = 1.0) -> str:
    """Reference: one character after `text`, re-reading the whole text (the seed's `next_char`).

    The seed divided log-probabilities by the temperature; our model outputs
    logits, which differ from log-probabilities by a constant, so logits /
    temperature gives the same distribution. Temperature 0 is greedy: the most
    likely character (what `tf.random.categorical` tends to as the temperature → 0).
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
    """Reference: `text` followed by `n_chars` characters, one `next_char` call each (the seed's).

    Each call re-reads the whole text so far: the cost grows with the square of
    the length. Use `Generator` for anything longer than a demo.
    """
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
    """A printable table; characters shown as Python literals so ' ' and '\\n' are visible."""
    lines = [f"next character after {text!r}:"] if text is not None else []
    lines += [f"  {char!r:>6}  {probability:6.1%}" for char, probability in table]
    return "\n".join(lines)


# ----------------------------------------------------------------------------
# The fast generator
# ----------------------------------------------------------------------------


def _pick_next_ids(logits, temperature, top_k, seed, step):
    """Sample class indices from `logits` → ids (index + 1). One row per stream.

    Inverse-CDF sampling: one uniform number per stream, looked up in the
    cumulative softmax(logits / T) (`_inverse_cdf`). It compiles with XLA (unlike
    `tf.random.stateless_categorical`) and, unlike Gumbel-max, draws one random
    number per stream instead of one per class, which matters for alphabets of
    thousands of characters. The draw is keyed on (seed, step), so a seed
    reproduces a text. Temperature 0 is greedy (argmax). `top_k` keeps the k
    largest logits (all of them when top_k = vocab_size; ties with the k-th are kept too).
    """
    logits = logits - tf.reduce_max(logits, axis=-1, keepdims=True)  # max 0: safe for tiny temperatures
    logits = tf.cond(
        top_k < tf.shape(logits)[-1], lambda: _keep_top_k(logits, top_k), lambda: logits
    )  # the sort costs as much as a GRU step: skip it when top-k is off
    greedy = tf.equal(temperature, 0.0)
    probabilities = tf.nn.softmax(logits / tf.where(greedy, 1.0, temperature))
    sampled = _inverse_cdf(probabilities, _draw_uniforms(seed, step, tf.shape(logits)[0]))
    greedy_ids = tf.argmax(logits, axis=-1, output_type=tf.int32)
    return tf.where(greedy, greedy_ids, sampled) + 1


def _draw_uniforms(seed, position, batch):
    """The uniform number of each stream's character at `position`: keyed on (seed, position)."""
    return tf.random.stateless_uniform(
        [batch], seed=tf.stack([seed, tf.cast(position, tf.int64)]), minval=1e-7, maxval=1.0
    )


def _inverse_cdf(probabilities, uniform):
    """Per row, the first class whose cumulative probability reaches `uniform` × the row's total.

    In two levels, blocks of about sqrt(V) classes and then the classes of the chosen
    block, because a cumulative sum over thousands of classes is slow under XLA on CPU.
    A class of probability 0 is never chosen.
    """
    vocab_size = tf.shape(probabilities)[-1]
    block_size = tf.cast(tf.math.ceil(tf.sqrt(tf.cast(vocab_size, tf.float32))), tf.int32)
    n_blocks = (vocab_size + block_size - 1) // block_size
    padded = tf.pad(probabilities, [[0, 0], [0, n_blocks * block_size - vocab_size]])
    blocks = tf.reshape(padded, [tf.shape(probabilities)[0], n_blocks, block_size])
    block_mass = tf.reduce_sum(blocks, axis=-1)
    block_cdf = tf.cumsum(block_mass, axis=-1)
    target = uniform * block_cdf[:, -1]
    block = _first_reaching(block_cdf, block_mass > 0, target)
    inside = tf.gather(blocks, block, batch_dims=1)
    target -= tf.gather(block_cdf, block, batch_dims=1) - tf.gather(block_mass, block, batch_dims=1)
    return block * block_size + _first_reaching(tf.cumsum(inside, axis=-1), inside > 0, target)


def _first_reaching(cdf, positive, target):
    """Index of the first entry of `cdf` >= `target`, within the positive entries' span (rounding
    can leave `target` beyond the last, or at or below 0 before the first)."""
    index = tf.reduce_sum(tf.cast(cdf < target[:, None], tf.int32), axis=-1)
    width = tf.shape(cdf)[-1]
    positive = tf.cast(positive, tf.int32)
    first_positive = tf.argmax(positive, axis=-1, output_type=tf.int32)
    last_positive = width - 1 - tf.argmax(tf.reverse(positive, [-1]), axis=-1, output_type=tf.int32)
    return tf.maximum(tf.minimum(index, last_positive), first_positive)


def _keep_top_k(logits, top_k):
    """Logits with all but the `top_k` largest per row set to -inf (ties with the k-th kept)."""
    kth_largest = tf.gather(tf.sort(logits, axis=-1, direction="DESCENDING"), top_k - 1, axis=-1)
    return tf.where(logits >= kth_largest[:, None], logits, -np.inf)


class Generator:
    """Continues prompts by carrying the GRU states: linear in the length, batched.

    One step is one call of the step model (`charrnn.model.build_step_model`:
    one character per stream and the GRU states in, the next character's
    logits and the new states out). While a stream is still inside its prompt,
    the next character is the prompt's; after that it is sampled. So prompts of
    any lengths share one batch, each is read once, and shorter prompts simply
    start sampling earlier (their extra characters are dropped). The step loop
    is a `tf.while_loop` compiled with XLA; it runs in chunks of `CHUNK_STEPS`
    steps so that XLA sees fixed shapes, inside one outer `tf.function`
    (`generate_ids`, also what `charrnn.export` saves).

    Both functions have fixed input signatures: repeated calls reuse one trace
    (XLA compiles once more for each new batch size).

    `generate` runs the same loop compiled for the CPU (`charrnn.native`, 3.1x to 3.8x
    as fast for one stream at 2,798 characters in `make bench`) when `native` is True, or when it is
    None (the default) and a C++ compiler is available: the same uniform numbers,
    the same texts up to float rounding. `native=False` keeps the XLA loop;
    `uses_native` says which one runs.

    A stateful model is converted with `to_stateless` (same weights).
    """

    def __init__(self, model: keras.Model, tokenizer: CharTokenizer, *, jit_compile: bool = True,
                 native: bool | None = None):
        if is_stateful(model):
            model = to_stateless(model)  # the reference functions (and compare_speed) need a stateless model
        self.step_model = build_step_model(model)
        check_vocabulary(model, tokenizer)
        if native not in (None, True, False):
            raise ValueError(f"native must be None (when available), True or False, got {native!r}.")
        reason = None if native is False else charrnn.native.unsupported_reason(model)
        if native and reason:
            raise ValueError(f"native=True, but the compiled step loop cannot run this model: {reason}.")
        self.uses_native = native is not False and reason is None and charrnn.native.library() is not None
        if native and not self.uses_native:
            raise RuntimeError(f"native=True, but the compiled step loop is unavailable: "
                               f"{charrnn.native.unavailable_reason()}.")
        self.model = model
        self.tokenizer = tokenizer
        self.vocab_size = tokenizer.vocab_size
        self._state_sizes = [gru.units for gru in gru_layers(model)]
        ids, scalar = tf.TensorSpec([None], tf.int32), tf.TensorSpec([], tf.int32)
        self._run_chunk = tf.function(
            self._chunk,
            jit_compile=jit_compile,
            input_signature=[
                ids,  # current_ids
                tuple(tf.TensorSpec([None, units], tf.float32) for units in self._state_sizes),
                tf.TensorSpec([CHUNK_STEPS, None], tf.int32),  # prompt_ahead
                ids,  # lengths
                scalar, scalar,  # n_steps, first_step
                tf.TensorSpec([], tf.float32), scalar, tf.TensorSpec([], tf.int64),
            ],
        )
        self.generate_ids = tf.function(
            self._generate_ids,
            input_signature=[
                tf.TensorSpec([None, None], tf.int32, name="prompt_ids"),
                tf.TensorSpec([None], tf.int32, name="prompt_lengths"),
                tf.TensorSpec([], tf.int32, name="n_chars"),
                tf.TensorSpec([], tf.float32, name="temperature"),
                tf.TensorSpec([], tf.int32, name="top_k"),
                tf.TensorSpec([], tf.int64, name="seed"),
            ],
        )
        # Calling the traced graph directly skips tf.function's argument matching (~0.3 ms a call).
        self._generate_ids_concrete = self.generate_ids.get_concrete_function()
        if self.uses_native:
            self._uniform_chunk = tf.function(
                self._uniforms_of_chunk, jit_compile=jit_compile,  # compiled as _chunk: the same draws
                input_signature=[ids, scalar, tf.TensorSpec([], tf.int64)],
            )
            self._uniforms = tf.function(
                self._uniform_table, input_signature=[ids, scalar, tf.TensorSpec([], tf.int64)]
            ).get_concrete_function()

    def generate(
        self,
        prompts: str | Sequence[str],
        n_chars: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        seed: int | None = None,
        drop_unknown: bool = False,
    ) -> list[str]:
        """Each prompt followed by `n_chars` generated characters: one string per prompt.

        `prompts` is a list of strings, or one string (then the list has one text).
        `top_k`: sample only among the k most likely characters (None: all).
        `seed`: the same seed, prompts and settings give the same texts; None
        draws a fresh one.
        `drop_unknown`: characters outside the vocabulary are skipped by the model (the
        returned prompt keeps them); without it they raise, unless the tokenizer has an
        unknown id, which they then get.
        """
        if isinstance(prompts, (bytes, bytearray)) or not isinstance(prompts, (str, Iterable)):
            raise ValueError(f"prompts must be a string or a list of strings, got {type(prompts).__name__}.")
        prompt_list = [prompts] if isinstance(prompts, str) else list(prompts)
        if not prompt_list:
            raise ValueError("prompts is empty: give a string or a list of strings.")
        prompt_ids = [encode_prompt(self.tokenizer, prompt, drop_unknown) for prompt in prompt_list]
        n_chars = check_count(n_chars, "n_chars")
        temperature = check_temperature(temperature)
        top_k = self._check_top_k(top_k)
        seed = secrets.randbits(62) if seed is None else check_count(seed, "seed")
        if seed > INT64_MAX:
            raise ValueError(f"seed must fit in 64 bits, got {seed}.")

        lengths = np.array([len(ids) for ids in prompt_ids], dtype=np.int32)
        padded = np.zeros((len(prompt_ids), lengths.max()), dtype=np.int32)
        for row, ids in zip(padded, prompt_ids):
            row[: len(ids)] = ids
        if self.uses_native:
            new_ids = self._native_ids(padded, lengths, n_chars, temperature, top_k, seed)
        else:
            new_ids = self._generate_ids_concrete(
                tf.constant(padded), tf.constant(lengths), tf.constant(n_chars, tf.int32),
                tf.constant(temperature, tf.float32), tf.constant(top_k, tf.int32),
                tf.constant(seed, tf.int64),
            ).numpy()
        return [prompt + self.tokenizer.decode(row) for prompt, row in zip(prompt_list, new_ids)]

    def _check_top_k(self, top_k) -> int:
        """top_k as the generator's tensor wants it: vocab_size when off."""
        if top_k is None:
            return self.vocab_size
        if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or not (
            1 <= top_k <= self.vocab_size
        ):
            raise ValueError(f"top_k must be None or an integer in 1..{self.vocab_size}, got {top_k!r}.")
        return int(top_k)

    def _native_ids(self, padded, lengths, n_chars, temperature, top_k, seed) -> np.ndarray:
        """What `generate_ids` returns, from the compiled step loop (`charrnn.native`)."""
        batch, width = padded.shape
        n_steps = max(width + n_chars - 1, 0)
        prompt_by_time = np.zeros((n_steps + 1, batch), np.int32)
        prompt_by_time[:width] = padded.T
        if temperature > 0 and n_steps > 0:
            uniforms = self._uniforms(tf.constant(lengths), tf.constant(n_steps, tf.int32),
                                      tf.constant(seed, tf.int64)).numpy()
        else:  # greedy draws nothing
            uniforms = np.zeros((n_steps, batch), np.float32)
        net = charrnn.native.NativeNet(self.model)  # the model's weights now: it may have trained since
        produced = charrnn.native.generate(net, prompt_by_time, lengths, uniforms, temperature, top_k)
        positions = lengths[:, None] - 1 + np.arange(n_chars)[None, :]
        return np.take_along_axis(produced.T, positions, axis=1)

    def _uniforms_of_chunk(self, lengths, first_step, seed):
        """The uniforms `_chunk` draws at steps first_step .. first_step + CHUNK_STEPS - 1."""
        batch = tf.shape(lengths)[0]
        table = tf.zeros([CHUNK_STEPS, batch])

        def body(step, table):
            uniforms = _draw_uniforms(seed, first_step + step + 1, batch)
            return step + 1, tf.tensor_scatter_nd_update(table, [[step]], uniforms[None])

        return tf.while_loop(lambda step, _: step < CHUNK_STEPS, body, (tf.constant(0), table))[1]

    def _uniform_table(self, lengths, n_steps, seed):
        """uniforms[t, i]: what `_chunk` draws for stream i at step t < n_steps (one per stream and step)."""
        n_chunks = (n_steps + CHUNK_STEPS - 1) // CHUNK_STEPS
        chunks = tf.TensorArray(tf.float32, size=n_chunks, element_shape=[CHUNK_STEPS, None])

        def body(index, chunks):
            return index + 1, chunks.write(index, self._uniform_chunk(lengths, index * CHUNK_STEPS, seed))

        _, chunks = tf.while_loop(lambda index, _: index < n_chunks, body, (tf.constant(0), chunks))
        return chunks.concat()[:n_steps]

    # --- the compiled parts ---------------------------------------------------

    def _step(self, ids, states):
        """One character per stream in, the logits of the next one and the new states out."""
        logits, *new_states = self.step_model([ids, *states], training=False)
        return logits, tuple(new_states)

    def _chunk(self, current_ids, states, prompt_ahead, lengths, n_steps, first_step, temperature, top_k,
               seed):
        """Steps first_step .. first_step + n_steps - 1 (n_steps <= CHUNK_STEPS).

        At global step t each stream reads `current_ids` (its character t); its
        character t + 1 is `prompt_ahead[t - first_step]` while t + 1 is inside
        its prompt, sampled otherwise. Returns those characters, shape
        (CHUNK_STEPS, batch) with rows past n_steps zero, and the carry.
        """
        produced = tf.zeros_like(prompt_ahead)

        def body(step, current_ids, states, produced):
            logits, states = self._step(current_ids, states)
            position = first_step + step + 1
            sampled = _pick_next_ids(logits, temperature, top_k, seed, position)
            next_ids = tf.where(position < lengths, prompt_ahead[step], sampled)
            produced = tf.tensor_scatter_nd_update(produced, [[step]], next_ids[None])
            return step + 1, next_ids, states, produced

        _, current_ids, states, produced = tf.while_loop(
            lambda step, *_: step < n_steps, body, (tf.constant(0), current_ids, states, produced)
        )
        return produced, current_ids, states

    def _generate_ids(self, prompt_ids, lengths, n_chars, temperature, top_k, seed):
        """New ids, shape (batch, n_chars), after right-padded `prompt_ids` of `lengths`."""
        batch = tf.shape(prompt_ids)[0]
        # Stream i needs lengths[i] + n_chars - 1 steps; the longest prompt sets the count.
        n_steps = tf.maximum(tf.shape(prompt_ids)[1] + n_chars - 1, 0)
        n_chunks = tf.maximum((n_steps + CHUNK_STEPS - 1) // CHUNK_STEPS, 1)
        # Prompt characters by position, time-major, zero past each prompt, one chunk of slack.
        slack = n_chunks * CHUNK_STEPS + 1 - tf.shape(prompt_ids)[1]
        prompt_by_time = tf.pad(tf.transpose(prompt_ids), [[0, slack], [0, 0]])
        states = tuple(tf.zeros([batch, units]) for units in self._state_sizes)
        chunks = tf.TensorArray(tf.int32, size=n_chunks, element_shape=[CHUNK_STEPS, None])

        def body(index, current_ids, states, chunks):
            first_step = index * CHUNK_STEPS
            produced, current_ids, states = self._run_chunk(
                current_ids, states, prompt_by_time[first_step + 1 : first_step + 1 + CHUNK_STEPS],
                lengths, tf.minimum(CHUNK_STEPS, n_steps - first_step), first_step, temperature, top_k,
                seed,
            )
            return index + 1, current_ids, states, chunks.write(index, produced)

        _, _, _, chunks = tf.while_loop(
            lambda index, *_: index < n_chunks, body, (tf.constant(0), prompt_by_time[0], states, chunks)
        )
        # Characters 1.. of every stream; stream i's new ones start at position lengths[i].
        sequence = tf.transpose(chunks.concat())
        positions = lengths[:, None] - 1 + tf.range(n_chars)[None, :]
        return tf.gather(sequence, positions, batch_dims=1)


# ----------------------------------------------------------------------------
# For the CLI
# ----------------------------------------------------------------------------


def generate_from_run(
    run_dir,
    prompt: str,
    n_chars: int,
    temperature: float = 1.0,
    *,
    num_samples: int = 1,
    top_k: int | None = None,
    seed: int | None = None,
    checkpoint: str | None = None,
    drop_unknown: bool = False,
) -> list[str]:
    """`num_samples` continuations of `prompt` from a run folder (the CLI's `generate`)."""
    # Cheap checks first: loading a run takes seconds.
    num_samples = check_count(num_samples, "num_samples", minimum=1)
    check_count(n_chars, "n_chars")
    check_temperature(temperature)
    run = load_run(run_dir, checkpoint or MODEL_FILE)
    generator = Generator(run.model, run.tokenizer)
    return generator.generate([prompt] * num_samples, n_chars, temperature, top_k=top_k, seed=seed,
                              drop_unknown=drop_unknown)
