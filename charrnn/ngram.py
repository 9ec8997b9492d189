"""Smoothed character n-gram models: the context-aware baseline a Char-RNN must beat.

Smoothing: interpolated *modified* Kneser–Ney (Chen & Goodman 1998, "An empirical study of
smoothing techniques for language modeling"), three discounts per order. At each order k:

    P_k(w | h) = (c(hw) - D(c(hw))) / c(h·)  +  gamma(h) * P_{k-1}(w | h')
    gamma(h)   = (D1 N1(h·) + D2 N2(h·) + D3+ N3+(h·)) / c(h·)

where h' drops the oldest character of h, D(c) is D1, D2 or D3+ for c = 1, 2, >= 3, and N_r(h·)
counts the characters w with c(hw) = r (N3+: r >= 3). The highest order counts occurrences; every
lower order counts continuations, c(hw) = N1+(·hw), the number of distinct characters seen just
before hw (the start of the training text counts as one such character). Order 1 interpolates
with the uniform distribution 1/V, so every probability is > 0. A context never followed by a
character in training (unseen, or seen only at the text's end) leaves P_k = P_{k-1}.

Discounts, three per order, come from that order's count-of-counts n1..n4:
Y = n1 / (n1 + 2 n2), D1 = 1 - 2Y n2/n1, D2 = 2 - 3Y n3/n2, D3+ = 3 - 4Y n4/n3. Where that is
undefined (some n_r = 0, as on tiny texts) or a D_r falls outside (0, r), the order uses the
fixed discounts 0.5, 1, 1.5 instead (the defaults of KenLM's --discount_fallback).

Start of a text: no padding; position i uses the i characters before it when i < order - 1, so
the first position gets the order-1 probability.

Keys are exact, with no hashing and so no collisions, for any vocabulary and order: a k-gram is
stored as (rank of its first k-1 characters among the training text's distinct (k-1)-grams)
* (V + 1) + its last id. Ranks are below the text's length N, so keys stay below N (V + 1), which
is checked to fit in int64. Counting is np.unique over one key per position and order; look-ups
are np.searchsorted into the sorted distinct keys, whose position is the k-gram's rank.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from charrnn.baselines import check_ids

FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)  # used where the count-of-counts cannot give discounts


def _check_vocab_size(vocab_size) -> int:
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, (int, np.integer)) or vocab_size < 1:
        raise ValueError(f"vocab_size must be a positive integer, got {vocab_size!r}.")
    return int(vocab_size)


def _check_order(order) -> int:
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or order < 1:
        raise ValueError(f"order must be an integer >= 1 (1 = unigram), got {order!r}.")
    return int(order)


def estimate_discounts(counts: np.ndarray) -> tuple[float, float, float]:
    """(D1, D2, D3+) from the count-of-counts of `counts` (Chen & Goodman), else the fallback."""
    n1, n2, n3, n4 = np.bincount(np.minimum(counts, 5), minlength=6)[1:5].astype(float)
    if min(n1, n2, n3, n4) == 0:
        return FALLBACK_DISCOUNTS
    y = n1 / (n1 + 2 * n2)
    discounts = (1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3)
    if not all(0 < d < r for r, d in enumerate(discounts, start=1)):
        return FALLBACK_DISCOUNTS
    return tuple(float(d) for d in discounts)


@dataclass(frozen=True)
class _GramCounts:
    """One order k of the training text: sorted distinct k-gram keys and their two kinds of count."""

    keys: np.ndarray  # context rank * (V + 1) + last id, sorted; a key's index is the k-gram's rank
    occurrences: np.ndarray  # c(hw), used at the model's highest order
    continuations: np.ndarray | None  # N1+(·hw), used below it; None at the largest order counted
    n_contexts: int  # distinct (k-1)-grams, the range of context ranks


def _count_grams(ids: np.ndarray, base: int, max_order: int) -> list[_GramCounts]:
    """Counts of every order 1..max_order, each order's keys built from the ranks of the one below."""
    if len(ids) * base >= 2**62:
        raise ValueError(f"{len(ids)} ids with {base - 1} symbols overflow the int64 n-gram keys: "
                         "fit on a shorter text.")
    keys, occurrences, continuations, n_contexts = [], [], [], [1]
    ranks = np.zeros(len(ids) + 1, np.int64)  # rank of the (k-1)-gram ending at each position; empty: 0
    for k in range(1, min(max_order, len(ids)) + 1):
        distinct, grams, counts = np.unique(ranks[:-1] * base + ids[k - 1 :],
                                            return_inverse=True, return_counts=True)
        if k > 1:  # each distinct k-gram is one distinct character before its last k-1
            continuations.append(_continuations(ranks, grams, n_contexts[-1]))
        keys.append(distinct), occurrences.append(counts), n_contexts.append(len(distinct))
        ranks = grams
    continuations.append(None)  # the largest order is only ever the highest
    return [_GramCounts(*columns) for columns in zip(keys, occurrences, continuations, n_contexts)]


def _continuations(shorter: np.ndarray, longer: np.ndarray, n_shorter: int) -> np.ndarray:
    """N1+(·g) for each (k-1)-gram g, from the (k-1)-gram and k-gram ranks at each position."""
    suffix = np.empty(longer.max() + 1, np.int64)
    suffix[longer] = shorter[1:]  # the k-gram ending at i ends with the (k-1)-gram ending at i
    counts = np.bincount(suffix, minlength=n_shorter)
    counts[shorter[0]] += 1  # the text's first (k-1)-gram also follows the start of the text
    return counts


@dataclass(frozen=True)
class _Level:
    """One order of a fitted model, ready for look-ups."""

    keys: np.ndarray  # as in _GramCounts
    own: np.ndarray  # (c - D(c)) / c(h·) per key: the probability the order keeps for itself
    gamma: np.ndarray  # per context rank: the weight given to the order below
    seen: np.ndarray  # per context rank: followed by some character in training
    discounts: tuple[float, float, float]

    def ranks(self, keys: np.ndarray) -> np.ndarray:
        """Index of each key in this order's table (its k-gram rank), -1 where training never saw it."""
        index = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        return np.where(self.keys[index] == keys, index, -1)


def _level(table: _GramCounts, counts: np.ndarray, base: int) -> _Level:
    discounts = estimate_discounts(counts)
    context = table.keys // base
    total = np.bincount(context, weights=counts, minlength=table.n_contexts)
    discount = np.array([0.0, *discounts])[np.minimum(counts, 3)]
    reserved = np.bincount(context, weights=discount, minlength=table.n_contexts)
    seen = total > 0
    total = np.where(seen, total, 1.0)  # unseen contexts are skipped; avoid dividing by zero
    return _Level(table.keys, (counts - discount) / total[context], reserved / total, seen, discounts)


class NGramModel:
    """An interpolated modified Kneser–Ney character model; build it with `fit_kneser_ney`."""

    def __init__(self, tables: list[_GramCounts], vocab_size: int, order: int):
        self.vocab_size, self.order = vocab_size, order
        self._base = vocab_size + 1
        top = min(order, len(tables))  # orders beyond the training text's length have no counts
        self._levels = [_level(t, t.occurrences if k == top else t.continuations, self._base)
                        for k, t in enumerate(tables[:top], start=1)]

    @property
    def discounts(self) -> list[tuple[float, float, float]]:
        """(D1, D2, D3+) of each order, lowest first."""
        return [level.discounts for level in self._levels]

    def log2_probs(self, ids) -> np.ndarray:
        """log2 P(ids[i] | up to order-1 ids before it) for every position; an empty input gives []."""
        ids = check_ids("ids", ids, self.vocab_size, allow_empty=True)
        probs = np.full(len(ids), 1.0 / self.vocab_size)
        previous = np.zeros(len(ids) + 1, np.int64)  # rank of the (k-1)-gram ending at i - 1, -1: none
        for level in self._levels:
            context = previous[:-1]
            grams = level.ranks(context * self._base + ids)  # negative contexts never match
            known = context >= 0
            seen = known & level.seen[np.where(known, context, 0)]
            own = np.where(grams >= 0, level.own[grams], 0.0)
            probs = np.where(seen, own + level.gamma[np.where(seen, context, 0)] * probs, probs)
            previous = np.concatenate([[-1], grams])
        return np.log2(probs)

    def bits_per_char(self, ids) -> float:
        """Cross-entropy of `ids` under the model, in bits per character."""
        ids = check_ids("ids", ids, self.vocab_size)
        return float(-self.log2_probs(ids).mean())

    def distribution(self, context_ids=()) -> np.ndarray:
        """P(next id | context) for ids 1..V (index id - 1); sums to 1. Only the last order-1 ids count."""
        context = check_ids("context_ids", context_ids, self.vocab_size, allow_empty=True)
        context = context[max(0, len(context) - (self.order - 1)):]
        suffix_ranks = self._suffix_ranks(context)
        targets = np.arange(1, self.vocab_size + 1)
        probs = np.full(self.vocab_size, 1.0 / self.vocab_size)
        for level, rank in zip(self._levels, suffix_ranks):
            if rank < 0 or not level.seen[rank]:
                continue  # an unseen context: keep the shorter context's distribution
            grams = level.ranks(rank * self._base + targets)
            probs = np.where(grams >= 0, level.own[grams], 0.0) + level.gamma[rank] * probs
        return probs

    def _suffix_ranks(self, context: np.ndarray) -> list[int]:
        """Rank of the context's last k ids among training (k)-grams for k = 0, 1, ...; -1: unseen."""
        ranks, previous = [0], np.zeros(len(context) + 1, np.int64)
        for level in self._levels[: len(context)]:
            previous = np.concatenate([[-1], level.ranks(previous[:-1] * self._base + context)])
            ranks.append(int(previous[-1]))
        return ranks


def fit_kneser_ney(train_ids, vocab_size: int, order: int) -> NGramModel:
    """An order-`order` character model of `train_ids` (ids 1..vocab_size); order 1 is a unigram model."""
    vocab_size, order = _check_vocab_size(vocab_size), _check_order(order)
    train_ids = check_ids("train_ids", train_ids, vocab_size)
    return NGramModel(_count_grams(train_ids, vocab_size + 1, order), vocab_size, order)


def fit_orders(train_ids, vocab_size: int, orders=range(1, 11)) -> dict[int, NGramModel]:
    """A model of each order in `orders` fitted on `train_ids`, the counts made once for all of them."""
    vocab_size = _check_vocab_size(vocab_size)
    orders = [_check_order(order) for order in orders]
    if not orders:
        raise ValueError("orders is empty: pass the n-gram orders to fit, e.g. range(1, 11).")
    train_ids = check_ids("train_ids", train_ids, vocab_size)
    tables = _count_grams(train_ids, vocab_size + 1, max(orders))
    return {order: NGramModel(tables, vocab_size, order) for order in orders}


def ngram_curve(train_ids, val_ids, vocab_size: int, orders=range(1, 11)) -> dict[int, float]:
    """Validation bits/char of the model of each order fitted on `train_ids`; counts are made once."""
    models = fit_orders(train_ids, vocab_size, orders)
    val_ids = check_ids("val_ids", val_ids, vocab_size)
    return {order: model.bits_per_char(val_ids) for order, model in models.items()}
