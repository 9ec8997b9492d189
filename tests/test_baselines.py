"""charrnn.baselines: uniform and unigram bits per character."""

from __future__ import annotations

import math

import numpy as np
import pytest

from charrnn.baselines import baselines, uniform_bits_per_char, unigram_bits_per_char


def test_uniform_is_log2_of_the_vocabulary():
    assert uniform_bits_per_char(39) == pytest.approx(5.2854, abs=1e-4)


def test_unigram_is_the_cross_entropy_of_smoothed_training_frequencies():
    train, val = np.array([1, 1, 1, 2]), np.array([1, 2, 3])
    # add-one counts: 4, 2, 1 of 7
    expected = -(math.log2(4 / 7) + math.log2(2 / 7) + math.log2(1 / 7)) / 3
    assert unigram_bits_per_char(train, val, vocab_size=3) == pytest.approx(expected)


def test_unigram_beats_uniform_on_skewed_text_and_equals_it_on_flat_text():
    skewed = np.array([1] * 90 + [2] * 10)
    assert unigram_bits_per_char(skewed, skewed, 2) < uniform_bits_per_char(2)
    flat = np.arange(1, 5).repeat(25)
    figures = baselines(flat, flat, 4)
    assert figures["unigram"] == pytest.approx(figures["uniform"]) == pytest.approx(2.0)


@pytest.mark.parametrize("train, val", [([1, 2], []), ([1, 5], [1]), ([1], [0])])
def test_bad_ids_are_refused(train, val):
    with pytest.raises(ValueError):
        unigram_bits_per_char(np.array(train, dtype=int), np.array(val, dtype=int), vocab_size=3)


@pytest.mark.parametrize("val, message", [(np.array([1.0, 2.0]), "integer"), (np.array([[1, 2]]), "1-D")])
def test_ids_that_are_not_encoded_text_are_refused(val, message):
    with pytest.raises(ValueError, match=message):
        unigram_bits_per_char(np.array([1, 2]), val, vocab_size=3)
