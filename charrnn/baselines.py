"""Baselines a model must beat, in bits per character of the validation text.

- uniform: every character of the vocabulary equally likely, log2(vocab_size).
- unigram: each character as likely as it is frequent in the training text, ignoring
  all context. A model at or above this figure has learned character frequencies
  and nothing more. Counts get add-one (Laplace) smoothing, so a validation
  character never seen in training costs a finite number of bits.

Baselines that use context, smoothed n-gram models of orders 1..10, are in `charrnn.ngram`; its
order 1 is this unigram with Kneser–Ney discounting in place of add-one.
"""

from __future__ import annotations

import math

import numpy as np


def uniform_bits_per_char(vocab_size: int) -> float:
    if vocab_size < 1:
        raise ValueError(f"vocab_size must be positive, got {vocab_size}.")
    return math.log2(vocab_size)


def check_ids(name: str, ids, vocab_size: int, allow_empty: bool = False) -> np.ndarray:
    """A 1-D int64 copy of `ids`, refused with a message when it cannot be token ids 1..vocab_size."""
    array = np.asarray(ids)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sequence of token ids, got shape {array.shape}.")
    if array.size == 0:
        if allow_empty:
            return np.zeros(0, np.int64)
        raise ValueError(f"{name} is empty: pass at least one token id.")
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must hold integer token ids, got dtype {array.dtype}: "
                         "encode the text first.")
    if array.min() < 1 or array.max() > vocab_size:
        raise ValueError(f"{name} must be in 1..vocab_size={vocab_size}, got {array.min()}..{array.max()}: "
                         "ids start at 1 (0 is padding) and vocab_size must count every character.")
    return array.astype(np.int64)


def unigram_log_probabilities(train_ids, vocab_size: int, smoothing: float = 1.0) -> np.ndarray:
    """Natural-log probability of each class (id - 1) under the smoothed training frequencies."""
    train_ids = check_ids("train_ids", train_ids, vocab_size, allow_empty=True)  # add-one copes with none
    counts = np.bincount(train_ids, minlength=vocab_size + 1)[1:]
    counts = counts + smoothing
    return np.log(counts) - np.log(counts.sum())


def unigram_bits_per_char(train_ids, val_ids, vocab_size: int, smoothing: float = 1.0) -> float:
    """Cross-entropy of `val_ids` under the (smoothed) character frequencies of `train_ids`."""
    val_ids = check_ids("val_ids", val_ids, vocab_size)
    log_p = unigram_log_probabilities(train_ids, vocab_size, smoothing) / math.log(2)
    return float(-log_p[val_ids - 1].mean())


def baselines(train_ids, val_ids, vocab_size: int) -> dict[str, float]:
    """Both baselines, for printing beside a run's validation bits/char."""
    return {"uniform": uniform_bits_per_char(vocab_size),
            "unigram": unigram_bits_per_char(train_ids, val_ids, vocab_size)}
