"""A character tokenizer: ids 1..vocab_size, 0 kept for padding and masking.

Keras 3 dropped `keras.preprocessing.text.Tokenizer`; this keeps the seed's
behaviour (character level, lower-casing by default, ids from 1).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from charrnn.atomic import write_json


class CharTokenizer:
    def __init__(self, chars: list[str], lower: bool = True):
        if not chars:
            raise ValueError("A tokenizer needs at least one character.")
        if len(set(chars)) != len(chars):
            raise ValueError("The tokenizer's characters must be distinct.")
        self.chars = list(chars)
        self.lower = lower
        self._ids = {c: i + 1 for i, c in enumerate(self.chars)}

    @classmethod
    def fit(cls, text: str, lower: bool = True) -> CharTokenizer:
        """One id per distinct character of `text`, in sorted order."""
        if not isinstance(text, str):
            raise ValueError(
                f"CharTokenizer.fit needs the text as a str, got {type(text).__name__}. "
                "Read the file first, e.g. charrnn.data.load_corpus(path)."
            )
        if not text:
            raise ValueError("Cannot fit a tokenizer on empty text.")
        return cls(sorted(set(text.lower() if lower else text)), lower=lower)

    @property
    def vocab_size(self) -> int:
        """Number of characters; ids run from 1 to vocab_size."""
        return len(self.chars)

    def normalize(self, text: str) -> str:
        return text.lower() if self.lower else text

    def unknown_chars(self, text: str) -> list[str]:
        return sorted(set(self.normalize(text)) - self._ids.keys())

    def encode(self, text: str, drop_unknown: bool = False) -> np.ndarray:
        """Text → int32 ids. Unknown characters raise, unless `drop_unknown`."""
        text = self.normalize(text)
        unknown = self.unknown_chars(text)
        if unknown and not drop_unknown:
            raise ValueError(
                f"Characters not in the vocabulary: {unknown!r}. Remove them, or call "
                "encode(..., drop_unknown=True) to skip them."
            )
        if unknown:
            text = "".join(c for c in text if c in self._ids)
        return np.fromiter((self._ids[c] for c in text), dtype=np.int32, count=len(text))

    def decode(self, ids) -> str:
        """Ids → text; 0 (padding) decodes to nothing."""
        ids = np.asarray(ids).ravel()
        if ids.size and (ids.min() < 0 or ids.max() > self.vocab_size):
            raise ValueError(f"Ids must be in 0..{self.vocab_size}, got {ids.min()}..{ids.max()}.")
        return "".join(self.chars[i - 1] for i in ids.tolist() if i)

    def to_dict(self) -> dict:
        return {"chars": self.chars, "lower": self.lower}

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
            return cls(chars, lower=lower)
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ValueError(f"Tokenizer file {path} is not a saved CharTokenizer ({err}).") from None

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size}, lower={self.lower})"
