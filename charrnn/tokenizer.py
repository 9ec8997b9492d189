"""A character tokenizer: ids 1..vocab_size, 0 kept for padding and masking.

Keras 3 dropped `keras.preprocessing.text.Tokenizer`; this keeps Géron's
behaviour (character level, lower-casing by default, ids from 1) and adds what
large alphabets need:

- A character is one Unicode code point, after NFC normalisation by default:
  "e" + a combining acute accent becomes the one code point "é", so the same
  letter typed two ways gets one id. Characters beyond U+FFFF (emoji, rare CJK
  ideographs) are single code points in Python, so they are single characters
  here too. `normalization=None` keeps the text's code points as they are.
- `lower` uses `str.lower`, which changes only cased scripts (Latin, Greek,
  Cyrillic, ...); Chinese and other uncased scripts pass through unchanged.
- `min_count` / `max_vocab` keep only the frequent characters; the rest share
  one reserved unknown id, decoded as the visible replacement character U+FFFD "�".
"""

from __future__ import annotations

import json
import os
import unicodedata
from collections import Counter
from pathlib import Path

import numpy as np

from charrnn.atomic import write_json

UNKNOWN_CHAR = "\ufffd"  # what the unknown id decodes to (and what U+FFFD in a text encodes to)
NORMALIZATIONS = ("NFC", "NFKC", None)


class CharTokenizer:
    def __init__(
        self, chars: list[str], lower: bool = True, normalization: str | None = "NFC",
        unknown: str | None = None,
    ):
        if not chars:
            raise ValueError("A tokenizer needs at least one character.")
        if len(set(chars)) != len(chars):
            raise ValueError("The tokenizer's characters must be distinct.")
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}.")
        if unknown is not None and unknown not in chars:
            raise ValueError(f"The unknown character {unknown!r} must be one of the tokenizer's characters.")
        self.chars = list(chars)
        self.lower = lower
        self.normalization = normalization
        self.unknown = unknown
        self._ids = {c: i + 1 for i, c in enumerate(self.chars)}

    @classmethod
    def fit(
        cls, text: str, lower: bool = True, normalization: str | None = "NFC",
        min_count: int = 1, max_vocab: int | None = None,
    ) -> CharTokenizer:
        """One id per distinct character of `text`, in sorted order.

        Characters seen fewer than `min_count` times, and beyond the `max_vocab - 1`
        most frequent when `max_vocab` is set, share one unknown id (then
        `max_vocab` counts it: the vocabulary has at most `max_vocab` ids).
        """
        if not isinstance(text, str):
            raise ValueError(
                f"CharTokenizer.fit needs the text as a str, got {type(text).__name__}. "
                "Read the file first, e.g. charrnn.corpus.load_corpus(path)."
            )
        if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
            raise ValueError(f"min_count must be an integer >= 1, got {min_count!r}.")
        if max_vocab is not None and (
            isinstance(max_vocab, bool) or not isinstance(max_vocab, int) or max_vocab < 2
        ):
            raise ValueError(
                f"max_vocab must be None or an integer >= 2 (one character and the unknown id), "
                f"got {max_vocab!r}."
            )
        if not text:
            raise ValueError("Cannot fit a tokenizer on empty text.")
        probe = cls(["x"], lower=lower, normalization=normalization)  # validates normalization
        counts = Counter(probe.normalize(text))
        if not counts:
            raise ValueError("The text is empty after normalisation: there is nothing to tokenize.")
        # Most frequent first; ties in code point order, so the choice is deterministic.
        ranked = sorted(counts, key=lambda c: (-counts[c], c))
        kept = [c for c in ranked if counts[c] >= min_count]
        if not kept:
            top = ranked[0]
            raise ValueError(
                f"min_count={min_count} is larger than every character's count (the most frequent, "
                f"{top!r}, occurs {counts[top]:,} times): no character would be kept. Lower min_count."
            )
        if max_vocab is not None and len(kept) > max_vocab:
            kept = kept[: max_vocab - 1]  # one id is left for the unknown character
        has_unknown = len(kept) < len(ranked)
        chars = set(kept) | ({UNKNOWN_CHAR} if has_unknown else set())
        return cls(sorted(chars), lower=lower, normalization=normalization,
                   unknown=UNKNOWN_CHAR if has_unknown else None)

    @property
    def vocab_size(self) -> int:
        """Number of characters; ids run from 1 to vocab_size."""
        return len(self.chars)

    @property
    def unknown_id(self) -> int | None:
        """The id rare characters map to, or None when the tokenizer has none."""
        return self._ids[self.unknown] if self.unknown is not None else None

    def normalize(self, text: str) -> str:
        """Lower-case (when `lower`), then apply the Unicode normalisation form."""
        if self.lower:
            text = text.lower()
        return unicodedata.normalize(self.normalization, text) if self.normalization else text

    def unknown_chars(self, text: str) -> list[str]:
        """The distinct characters of `text` (after normalising) that have no id of their own."""
        return sorted(set(self.normalize(text)) - self._ids.keys())

    def encode(self, text: str, drop_unknown: bool = False) -> np.ndarray:
        """Text → int32 ids.

        A character without an id of its own is skipped when `drop_unknown`;
        otherwise it gets the unknown id if the tokenizer has one, else it raises.
        """
        text = self.normalize(text)
        unknown = self.unknown_chars(text)
        if unknown and not drop_unknown and self.unknown is None:
            raise ValueError(
                f"Characters not in the vocabulary: {unknown!r}. Remove them, or call "
                "encode(..., drop_unknown=True) to skip them."
            )
        if unknown and drop_unknown:
            text = "".join(c for c in text if c in self._ids)
        unknown_id = self.unknown_id
        return np.fromiter(
            (self._ids.get(c, unknown_id) for c in text), dtype=np.int32, count=len(text)
        )

    def decode(self, ids) -> str:
        """Ids → text; 0 (padding) decodes to nothing, the unknown id to U+FFFD."""
        ids = np.asarray(ids).ravel()
        if ids.size and (ids.min() < 0 or ids.max() > self.vocab_size):
            raise ValueError(f"Ids must be in 0..{self.vocab_size}, got {ids.min()}..{ids.max()}.")
        return "".join(self.chars[i - 1] for i in ids.tolist() if i)

    def to_dict(self) -> dict:
        return {"chars": self.chars, "lower": self.lower, "normalization": self.normalization,
                "unknown": self.unknown}

    def save(self, path: str | os.PathLike) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> CharTokenizer:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"Tokenizer file {path} does not exist.")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            chars, lower = data["chars"], data["lower"]
            if not isinstance(chars, list) or not all(isinstance(c, str) and len(c) == 1 for c in chars):
                raise TypeError("chars must be a list of single characters")
            if not isinstance(lower, bool):
                raise TypeError("lower must be true or false")
            # Files written before normalisation and unknown ids existed: neither applied.
            return cls(chars, lower=lower, normalization=data.get("normalization"),
                       unknown=data.get("unknown"))
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError) as err:
            raise ValueError(f"Tokenizer file {path} is not a saved CharTokenizer ({err}).") from None

    def __repr__(self) -> str:
        extra = f", unknown={self.unknown!r}" if self.unknown else ""
        return (f"CharTokenizer(vocab_size={self.vocab_size}, lower={self.lower}, "
                f"normalization={self.normalization!r}{extra})")
