"""Baselines a model must beat, in bits per character of the validation text.

- uniform: every character of the vocabulary equally likely, log2(vocab_size).
- unigram: each character as likely as it is frequent in the training text, ignoring
  all context. A model at or above this figure has learned character frequencies
  and nothing more. Counts get add-one (Laplace) smoothing, so a validation
  character never seen in training costs a finite number of bits.
"""

from __future__ import annotations

import math

import numpy as np


def uniform_bits_per_char(vocab_size: int) -> float:
    if vocab_size < 1:
        raise ValueError(f"vocab_size must be positive, got {vocab_size}.")
    return math.log2(vocab_size)


def _check_ids(name: str, ids, vocab_size: int) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.size and (ids.min() < 1 or ids.max() > vocab_size):
        raise ValueError(f"{name} must be in 1..vocab_size={vocab_size}, got {ids.min()}..{ids.max()}.")
    return ids


def unigram_log_probabilities(train_ids, vocab_size: int, smoothing: float = 1.0) -> np.ndarray:
    """Natural-log probability of each class (id - 1) under the smoothed training frequencies."""
    counts = np.bincount(_check_ids("train_ids", train_ids, vocab_size), minlength=vocab_size + 1)[1:]
    counts = counts + smoothing
    return np.log(counts) - np.log(counts.sum())


def unigram_bits_per_char(train_ids, val_ids, vocab_size: int, smoothing: float = 1.0) -> float:
    """Cross-entropy of `val_ids` under the (smoothed) character frequencies of `train_ids`."""
    val_ids = _check_ids("val_ids", val_ids, vocab_size)
    if val_ids.size == 0:
        raise ValueError("The validation ids are empty: there is nothing to score.")
    log_p = unigram_log_probabilities(train_ids, vocab_size, smoothing) / math.log(2)
    return float(-log_p[val_ids - 1].mean())


def baselines(train_ids, val_ids, vocab_size: int) -> dict[str, float]:
    """Both baselines, for printing beside a run's validation bits/char."""
    return {"uniform": uniform_bits_per_char(vocab_size),
            "unigram": unigram_bits_per_char(train_ids, val_ids, vocab_size)}
