"""charrnn.ngram: interpolated modified Kneser–Ney character models."""

from __future__ import annotations

import numpy as np
import pytest

from charrnn.baselines import unigram_bits_per_char
from charrnn.ngram import FALLBACK_DISCOUNTS, estimate_discounts, fit_kneser_ney, ngram_curve

A, B, C = 1, 2, 3
ABAB = np.array([A, B, A, B])  # "abab" with V = 3: "c" never occurs
# On "abab" every order's count-of-counts has a zero, so each order uses the fallback
# discounts D1 = 0.5, D2 = 1, D3+ = 1.5.


def _encode(text: str) -> tuple[np.ndarray, int]:
    chars = sorted(set(text))
    index = {char: i + 1 for i, char in enumerate(chars)}
    return np.array([index[char] for char in text]), len(chars)


@pytest.fixture(scope="module")
def shakespeare(tiny_text):
    ids, vocab_size = _encode(tiny_text.lower())
    cut = int(len(ids) * 0.9)
    return ids[:cut], ids[cut:], vocab_size


def test_order_1_by_hand():
    # raw counts a 2, b 2, c 0 of 4; both counts are 2, so D = D2 = 1; gamma = (1 + 1) / 4 = 1/2
    # P(a) = P(b) = (2 - 1)/4 + 1/2 * 1/3 = 5/12;  P(c) = 1/2 * 1/3 = 1/6
    model = fit_kneser_ney(ABAB, 3, order=1)
    np.testing.assert_allclose(model.distribution([]), [5 / 12, 5 / 12, 1 / 6])
    np.testing.assert_allclose(model.distribution([B, A]), [5 / 12, 5 / 12, 1 / 6])  # order 1: no context
    assert model.discounts == [FALLBACK_DISCOUNTS]


# Below the highest order the counts are continuations (distinct characters before, the start
# counting as one). Unigram continuations: a follows {start, b} -> 2, b follows {a} -> 1, of 3;
# gamma = (D2 + D1) / 3 = 1/2:
#   P1(a) = (2 - 1)/3 + 1/2 * 1/3 = 1/2,  P1(b) = (1 - 0.5)/3 + 1/6 = 1/3,  P1(c) = 1/6
P1 = [1 / 2, 1 / 3, 1 / 6]
# Bigrams ab (2) and ba (1); as continuations ab follows {start, b} -> 2 and ba follows {a} -> 1,
# the same numbers. Context a: total 2, gamma = D2 / 2 = 1/2; context b: total 1, gamma = D1 / 1 = 1/2:
#   P2(a|a) = 0 + 1/2 * 1/2 = 1/4,  P2(b|a) = (2 - 1)/2 + 1/2 * 1/3 = 2/3,  P2(c|a) = 1/2 * 1/6 = 1/12
#   P2(a|b) = (1 - 0.5)/1 + 1/2 * 1/2 = 3/4,  P2(b|b) = 1/2 * 1/3 = 1/6,  P2(c|b) = 1/12
P2_A = [1 / 4, 2 / 3, 1 / 12]
P2_B = [3 / 4, 1 / 6, 1 / 12]


def test_order_2_by_hand():
    model = fit_kneser_ney(ABAB, 3, order=2)
    np.testing.assert_allclose(model.distribution([]), P1)
    np.testing.assert_allclose(model.distribution([A]), P2_A)
    np.testing.assert_allclose(model.distribution([A, B]), P2_B)  # only the last id counts
    np.testing.assert_allclose(model.distribution([C]), P1)  # "c" never seen as a context: P1


def test_order_3_by_hand():
    # trigrams aba (1), bab (1); context ab: total 1, gamma = D1 / 1 = 1/2; likewise ba:
    #   P(a|ab) = (1 - 0.5)/1 + 1/2 * P2(a|b) = 1/2 + 3/8 = 7/8,  P(b|ab) = 1/2 * 1/6 = 1/12,
    #   P(c|ab) = 1/2 * 1/12 = 1/24
    #   P(b|ba) = 1/2 + 1/2 * 2/3 = 5/6,  P(a|ba) = 1/2 * 1/4 = 1/8,  P(c|ba) = 1/24
    model = fit_kneser_ney(ABAB, 3, order=3)
    np.testing.assert_allclose(model.distribution([A, B]), [7 / 8, 1 / 12, 1 / 24])
    np.testing.assert_allclose(model.distribution([B, A]), [1 / 8, 5 / 6, 1 / 24])
    np.testing.assert_allclose(model.distribution([A]), P2_A)  # a short context uses order 2
    np.testing.assert_allclose(model.distribution([C, A]), P2_A)  # "ca" unseen: back off to P2(.|a)
    np.testing.assert_allclose(model.distribution([B, B]), P2_B)  # "bb" unseen as well
    # scoring "abab": the first position has no history (P1), the second one character of it
    np.testing.assert_allclose(model.log2_probs(ABAB), np.log2([1 / 2, 2 / 3, 7 / 8, 5 / 6]))
    assert model.bits_per_char(ABAB) == pytest.approx(-np.log2([1 / 2, 2 / 3, 7 / 8, 5 / 6]).mean())


def test_discounts_from_count_of_counts():
    # n1..n4 = 4, 2, 1, 1: Y = 4 / (4 + 2*2) = 1/2;  D1 = 1 - 2 * 1/2 * 2/4 = 1/2,
    # D2 = 2 - 3 * 1/2 * 1/2 = 5/4,  D3+ = 3 - 4 * 1/2 * 1/1 = 1
    counts = np.array([1, 1, 1, 1, 2, 2, 3, 4, 7])
    assert estimate_discounts(counts) == pytest.approx((0.5, 1.25, 1.0))
    assert estimate_discounts(np.array([1, 2, 3])) == FALLBACK_DISCOUNTS  # no count of 4: undefined
    # n1..n4 = 1, 1, 10, 1: D2 = 2 - 3 * 1/3 * 10 < 0, out of range
    assert estimate_discounts(np.array([1, 2, *[3] * 10, 4])) == FALLBACK_DISCOUNTS


def test_distributions_sum_to_one_and_agree_with_scoring(shakespeare):
    train, _, vocab_size = shakespeare
    rng = np.random.default_rng(0)
    for order in (1, 2, 4, 7):
        model = fit_kneser_ney(train, vocab_size, order)
        for length in (0, 1, order - 1, order + 3):
            # half from the text (seen contexts), half random (mostly unseen)
            start = rng.integers(len(train) - length)
            for context in (train[start : start + length], rng.integers(1, vocab_size + 1, length)):
                probs = model.distribution(context)
                assert probs.shape == (vocab_size,) and probs.min() > 0
                assert probs.sum() == pytest.approx(1.0, abs=1e-12)
                target = int(rng.integers(1, vocab_size + 1))
                scored = model.log2_probs(np.append(context, target).astype(int))[-1]
                assert 2.0**scored == pytest.approx(probs[target - 1], rel=1e-12)


def test_bits_per_char_fall_from_order_1_to_3(shakespeare):
    curve = ngram_curve(*shakespeare, orders=(1, 2, 3))
    assert curve[1] - curve[2] > 0.5 and curve[2] - curve[3] > 0.3


def test_order_1_is_close_to_the_add_one_unigram_baseline(shakespeare):
    # Both are nearly the training frequencies; they part only in how they spread a little mass:
    # add-one gives each of V characters one extra count, KN takes D from each seen character and
    # spreads it uniformly. With a ~36,000-character training text either is a small change.
    train, val, vocab_size = shakespeare
    kneser_ney = fit_kneser_ney(train, vocab_size, 1).bits_per_char(val)
    assert kneser_ney == pytest.approx(unigram_bits_per_char(train, val, vocab_size), abs=1e-3)


def test_unseen_characters_and_contexts_get_finite_costs():
    train = np.array([A, B] * 50)
    model = fit_kneser_ney(train, 3, order=4)
    scored = model.log2_probs(np.array([C, C, C, A, C, B]))
    assert np.isfinite(scored).all() and (scored < 0).all()
    # "cc" never seen: the model falls back to what the unigram level says of c
    assert scored[2] == pytest.approx(np.log2(model.distribution([])[C - 1]))


def test_orders_beyond_the_text_length_still_score():
    model = fit_kneser_ney(np.array([A, B]), 3, order=10)
    assert model.distribution([A] * 20).sum() == pytest.approx(1.0)
    assert np.isfinite(model.log2_probs(np.array([A, B, A, B, C]))).all()


def test_shijing_sized_vocabularies_do_not_overflow_keys():
    rng = np.random.default_rng(1)
    vocab_size = 3000
    text = rng.integers(1, vocab_size + 1, 2000)
    model = fit_kneser_ney(np.concatenate([text, text]), vocab_size, order=8)  # 3001^8 >> 2^63
    assert model.distribution(text[:7]).sum() == pytest.approx(1.0)
    assert model.distribution(text[:7])[text[7] - 1] > 0.9  # the repeat is remembered exactly


@pytest.mark.parametrize("train, vocab_size, order, message", [
    ([1, 2, 4], 3, 2, "1..vocab_size=3"),
    ([0, 1], 3, 2, "1..vocab_size=3"),
    ([], 3, 2, "empty"),
    ([1, 2], 3, 0, "order"),
    ([1, 2], 3, 1.5, "order"),
    ([1, 2], 0, 1, "vocab_size"),
    ([1.0, 2.0], 3, 1, "integer"),
    ([[1, 2]], 3, 1, "1-D"),
])
def test_bad_input_is_refused(train, vocab_size, order, message):
    with pytest.raises(ValueError, match=message):
        fit_kneser_ney(np.array(train), vocab_size, order)


def test_bad_scoring_input_is_refused():
    model = fit_kneser_ney(ABAB, 3, order=2)
    with pytest.raises(ValueError, match="empty"):
        model.bits_per_char(np.array([], dtype=int))
    with pytest.raises(ValueError, match="1..vocab_size"):
        model.log2_probs(np.array([1, 4]))
    with pytest.raises(ValueError, match="1..vocab_size"):
        model.distribution([0])
    with pytest.raises(ValueError, match="orders"):
        ngram_curve(ABAB, ABAB, 3, orders=[])
    assert model.log2_probs(np.array([], dtype=int)).shape == (0,)
