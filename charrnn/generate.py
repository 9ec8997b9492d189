"""The state-carrying generator: reads each prompt once, then one model step per character.

`Generator` calls the model's own step function (`CharRNN.step`: one character per stream
and the recurrent states in, the next character's logits and the new states out), so it
works for any body the model has. Several prompts run as one batch. Géron's quadratic
functions (`next_char`, `complete_text`) are in `charrnn.reference`.
"""

from __future__ import annotations

import math
import secrets
import warnings
from collections.abc import Iterable, Sequence

import numpy as np
import tensorflow as tf

from charrnn.extras import cpp_loop
from charrnn.model import CharRNN, to_stateless
from charrnn.runs import MODEL_FILE, load_run
from charrnn.sampling import CHUNK_STEPS, pick_next_ids, uniform_table
from charrnn.tokenizer import CharTokenizer

INT64_MAX = 2**63 - 1
BACKENDS = ("xla", "cpp")


def check_vocabulary(model: CharRNN, tokenizer: CharTokenizer) -> None:
    if model.vocab_size != tokenizer.vocab_size:
        raise ValueError(
            f"The model predicts {model.vocab_size} characters but the tokenizer has "
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


def check_top_k(top_k, vocab_size: int) -> int:
    """top_k as the loops want it: vocab_size when off (None)."""
    if top_k is None:
        return vocab_size
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or not 1 <= top_k <= vocab_size:
        raise ValueError(f"top_k must be None or an integer in 1..{vocab_size}, got {top_k!r}.")
    return int(top_k)


def choose_backend(model: CharRNN, backend: str) -> str:
    """"cpp" when asked for and it can run this model; else "xla", saying why once."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}.")
    if backend == "xla":
        return "xla"
    reason = cpp_loop.unsupported_reason(model)
    if reason is None and cpp_loop.library() is None:
        reason = cpp_loop.unavailable_reason()
    if reason is None:
        return "cpp"
    warnings.warn(f"Generator: the compiled step loop cannot run here ({reason}); using the XLA loop.",
                  stacklevel=3)
    return "xla"


class Generator:
    """Continues prompts by carrying the recurrent states: linear in the length, batched.

    While a stream is still inside its prompt, its next character is the prompt's; after
    that it is sampled (`charrnn.sampling`). Prompts of any lengths share one batch, each
    is read once, and shorter prompts simply start sampling earlier. The XLA loop runs
    `model.step` in a `tf.while_loop` compiled in chunks of `CHUNK_STEPS` steps (fixed
    shapes: one compilation per batch size), inside one outer `tf.function`,
    `generate_ids`, which is also what `charrnn.export` saves.

    `backend="cpp"` (the default) runs the loop compiled for the CPU instead
    (`charrnn.extras.cpp_loop`: stacked GRUs only) on the same uniform numbers, so the
    same texts up to float rounding; where it cannot run, the XLA loop does, with one
    warning. `self.backend` says which runs. A stateful model is converted with
    `to_stateless` (same weights).
    """

    def __init__(self, model: CharRNN, tokenizer: CharTokenizer, *, backend: str = "cpp",
                 jit_compile: bool = True):
        self.model = to_stateless(model) if model.stateful else model
        check_vocabulary(self.model, tokenizer)
        self.backend = choose_backend(self.model, backend)
        self.tokenizer = tokenizer
        self.vocab_size = tokenizer.vocab_size
        ids, scalar = tf.TensorSpec([None], tf.int32), tf.TensorSpec([], tf.int32)
        self._run_chunk = tf.function(self._chunk, jit_compile=jit_compile, input_signature=[
            ids,  # current_ids
            tuple(tf.TensorSpec([None, size], tf.float32) for size in self.model.state_sizes),
            tf.TensorSpec([CHUNK_STEPS, None], tf.int32),  # prompt_ahead
            tf.TensorSpec([CHUNK_STEPS, None], tf.float32),  # uniforms
            ids, scalar, scalar,  # lengths, count, first_step
            tf.TensorSpec([], tf.float32), scalar,  # temperature, top_k
        ])
        self.generate_ids = tf.function(self._generate_ids, input_signature=[
            tf.TensorSpec([None, None], tf.int32, name="prompt_ids"),
            tf.TensorSpec([None], tf.int32, name="prompt_lengths"),
            tf.TensorSpec([], tf.int32, name="n_chars"),
            tf.TensorSpec([], tf.float32, name="temperature"),
            tf.TensorSpec([], tf.int32, name="top_k"),
            tf.TensorSpec([], tf.int64, name="seed"),
        ])
        # Calling the traced graphs directly skips tf.function's argument matching (~0.3 ms a call).
        self._generate_ids_concrete = self.generate_ids.get_concrete_function()
        self._uniforms = tf.function(uniform_table, input_signature=[
            tf.TensorSpec([], tf.int64), scalar, scalar]).get_concrete_function()

    def generate(self, prompts: str | Sequence[str], n_chars: int, temperature: float = 1.0,
                 top_k: int | None = None, seed: int | None = None, drop_unknown: bool = False) -> list[str]:
        """Each prompt followed by `n_chars` generated characters: one string per prompt.

        `prompts`: a list of strings, or one string. `top_k`: sample only among the k
        likeliest characters (None: all). `seed`: the same seed, prompts and settings give
        the same texts; None draws a fresh one. `drop_unknown`: characters outside the
        vocabulary are skipped by the model (the returned prompt keeps them); without it
        they raise, unless the tokenizer has an unknown id, which they then get.
        """
        if isinstance(prompts, (bytes, bytearray)) or not isinstance(prompts, (str, Iterable)):
            raise ValueError(f"prompts must be a string or a list of strings, got {type(prompts).__name__}.")
        prompt_list = [prompts] if isinstance(prompts, str) else list(prompts)
        if not prompt_list:
            raise ValueError("prompts is empty: give a string or a list of strings.")
        prompt_ids = [encode_prompt(self.tokenizer, prompt, drop_unknown) for prompt in prompt_list]
        n_chars = check_count(n_chars, "n_chars")
        temperature = check_temperature(temperature)
        top_k = check_top_k(top_k, self.vocab_size)
        seed = secrets.randbits(62) if seed is None else check_count(seed, "seed")
        if seed > INT64_MAX:
            raise ValueError(f"seed must fit in 64 bits, got {seed}.")
        lengths = np.array([len(ids) for ids in prompt_ids], dtype=np.int32)
        padded = np.zeros((len(prompt_ids), lengths.max()), dtype=np.int32)
        for row, ids in zip(padded, prompt_ids):
            row[: len(ids)] = ids
        run = self._cpp_ids if self.backend == "cpp" else self._xla_ids
        new_ids = run(padded, lengths, n_chars, temperature, top_k, seed)
        return [prompt + self.tokenizer.decode(row) for prompt, row in zip(prompt_list, new_ids)]

    def _xla_ids(self, padded, lengths, n_chars, temperature, top_k, seed) -> np.ndarray:
        return self._generate_ids_concrete(
            tf.constant(padded), tf.constant(lengths), tf.constant(n_chars, tf.int32),
            tf.constant(temperature, tf.float32), tf.constant(top_k, tf.int32), tf.constant(seed, tf.int64),
        ).numpy()

    def _cpp_ids(self, padded, lengths, n_chars, temperature, top_k, seed) -> np.ndarray:
        """What `generate_ids` returns, from the compiled step loop, on the same uniform numbers."""
        batch, width = padded.shape
        steps = max(width + n_chars - 1, 0)
        prompt_by_time = np.zeros((steps + 1, batch), np.int32)
        prompt_by_time[:width] = padded.T
        uniforms = self._uniforms(tf.constant(seed, tf.int64), tf.constant(steps), tf.constant(batch))
        uniforms = uniforms.numpy()[:steps]
        net = cpp_loop.NativeNet(self.model)  # the weights now: the model may have trained since
        produced = cpp_loop.generate(net, prompt_by_time, lengths, uniforms, temperature, top_k)
        positions = lengths[:, None] - 1 + np.arange(n_chars)[None, :]
        return np.take_along_axis(produced.T, positions, axis=1)

    def _chunk(self, current_ids, states, prompt_ahead, uniforms, lengths, count, first_step,
               temperature, top_k):
        """Steps first_step .. first_step + count - 1 (count <= CHUNK_STEPS).

        At global step t each stream reads `current_ids` (its character t); its character
        t + 1 is `prompt_ahead[t - first_step]` while t + 1 is inside its prompt, sampled
        otherwise. Returns those characters, shape (CHUNK_STEPS, batch) with rows past
        `count` zero, and the carry.
        """
        produced = tf.zeros_like(prompt_ahead)

        def body(step, current_ids, states, produced):
            logits, states = self.model.step(current_ids, states)
            sampled = pick_next_ids(logits, temperature, top_k, uniforms[step])
            next_ids = tf.where(first_step + step + 1 < lengths, prompt_ahead[step], sampled)
            produced = tf.tensor_scatter_nd_update(produced, [[step]], next_ids[None])
            return step + 1, next_ids, tuple(states), produced

        _, current_ids, states, produced = tf.while_loop(
            lambda step, *_: step < count, body, (tf.constant(0), current_ids, states, produced)
        )
        return produced, current_ids, states

    def _generate_ids(self, prompt_ids, lengths, n_chars, temperature, top_k, seed):
        """New ids, shape (batch, n_chars), after right-padded `prompt_ids` of `lengths`."""
        batch = tf.shape(prompt_ids)[0]
        # Stream i needs lengths[i] + n_chars - 1 steps; the longest prompt sets the count.
        steps = tf.maximum(tf.shape(prompt_ids)[1] + n_chars - 1, 0)
        uniforms = uniform_table(seed, steps, batch)
        n_chunks = tf.shape(uniforms)[0] // CHUNK_STEPS
        # Prompt characters by position, time-major, zero past each prompt, one chunk of slack.
        slack = n_chunks * CHUNK_STEPS + 1 - tf.shape(prompt_ids)[1]
        prompt_by_time = tf.pad(tf.transpose(prompt_ids), [[0, slack], [0, 0]])
        states = tuple(tf.zeros([batch, size]) for size in self.model.state_sizes)
        chunks = tf.TensorArray(tf.int32, size=n_chunks, element_shape=[CHUNK_STEPS, None])

        def body(index, current_ids, states, chunks):
            first = index * CHUNK_STEPS
            produced, current_ids, states = self._run_chunk(
                current_ids, states, prompt_by_time[first + 1 : first + 1 + CHUNK_STEPS],
                uniforms[first : first + CHUNK_STEPS], lengths, tf.minimum(CHUNK_STEPS, steps - first),
                first, temperature, top_k,
            )
            return index + 1, current_ids, states, chunks.write(index, produced)

        _, _, _, chunks = tf.while_loop(
            lambda index, *_: index < n_chunks, body, (tf.constant(0), prompt_by_time[0], states, chunks)
        )
        # Characters 1.. of every stream; stream i's new ones start at position lengths[i].
        sequence = tf.transpose(chunks.concat())
        positions = lengths[:, None] - 1 + tf.range(n_chars)[None, :]
        return tf.gather(sequence, positions, batch_dims=1)


def generate_from_run(run_dir, prompt: str, n_chars: int, temperature: float = 1.0, *, num_samples: int = 1,
                      top_k: int | None = None, seed: int | None = None, checkpoint: str | None = None,
                      drop_unknown: bool = False) -> list[str]:
    """`num_samples` continuations of `prompt` from a run folder (the CLI's `generate`)."""
    # Cheap checks first: loading a run takes seconds.
    num_samples = check_count(num_samples, "num_samples", minimum=1)
    check_count(n_chars, "n_chars")
    check_temperature(temperature)
    run = load_run(run_dir, checkpoint or MODEL_FILE)
    generator = Generator(run.model, run.tokenizer)
    return generator.generate([prompt] * num_samples, n_chars, temperature, top_k=top_k, seed=seed,
                              drop_unknown=drop_unknown)
