"""Simple text features per position, for the search for hidden units that track them (notebook 05).

Each feature describes position t after its character is read, the moment the model's state
at t describes:

    position in line       characters since the line began (its first character: 0)
    since space            characters since the last whitespace (a space: 0, the next one: 1)
    since punctuation      characters since the last punctuation mark (Unicode category P*)
    inside quotes          1 from an opening quote up to (not including) its closing quote
    inside brackets        1 from an opening bracket up to (not including) its closing one
    speaker line           1 on a line whose letters are all upper case (ROMEO:), cased text only

"since space" is left out of texts almost without spaces (Chinese), "speaker line" out of
lower-cased ones; a feature that is constant over the text is left out too (a correlation with
it is undefined), and `text_features` says which.
"""

from __future__ import annotations

import unicodedata

import numpy as np

OPENING_QUOTES = {"“": "”", "‘": "’", "「": "」", "『": "』", "«": "»", "„": "“"}
BRACKETS = {"(": ")", "[": "]", "{": "}", "（": "）", "［": "］", "【": "】", "《": "》", "〈": "〉",
            "〔": "〕", "｛": "｝"}
TOGGLING_QUOTES = {'"', "＂"}  # the same mark opens and closes; ' is left out: mostly an apostrophe
WHITESPACE_SHARE = 0.01  # below this share of whitespace (other than newlines), no "since space"


def since_last(flags: np.ndarray) -> np.ndarray:
    """For each position, how many positions since the last True at or before it (the start: -1)."""
    index = np.arange(len(flags))
    last = np.maximum.accumulate(np.where(flags, index, -1))
    return index - last


def position_in_line(text: str) -> np.ndarray:
    """0 for a line's first character; a newline gets the position after its line's last character."""
    newline = np.array([char == "\n" for char in text], bool)
    previous = np.concatenate([[True], newline[:-1]])  # a line starts after a newline or at the start
    return since_last(previous).astype(float)


def _nesting(text: str, opening: dict[str, str], toggling=frozenset()) -> np.ndarray:
    """1 where an opened pair (quotes, brackets) is still open after the character; unmatched closers
    are ignored, so a stray one does not push the depth below zero."""
    closing = set(opening.values())
    depth, toggled, inside = 0, False, np.zeros(len(text))
    for t, char in enumerate(text):
        if char in toggling:
            toggled = not toggled
        elif char in opening:
            depth += 1
        elif char in closing and depth:
            depth -= 1
        inside[t] = depth > 0 or toggled
    return inside


def speaker_lines(text: str) -> np.ndarray:
    """1 on every character (newline included) of a line with at least 2 letters, all upper case."""
    flags = []
    for line in text.split("\n"):
        letters = [char for char in line if char.isalpha()]
        upper = len(letters) >= 2 and all(char.isupper() for char in letters)
        flags += [float(upper)] * (len(line) + 1)  # + its newline
    return np.array(flags[: len(text)])


def text_features(text: str, cased: bool) -> tuple[dict[str, np.ndarray], list[str]]:
    """The features of every position of `text` (name → float array), and why any were left out.

    `cased`: the model saw upper and lower case (the tokenizer's `lower` is False).
    """
    if not text:
        raise ValueError("text_features needs a non-empty text.")
    is_space = np.array([char.isspace() and char != "\n" for char in text], bool)
    is_punctuation = np.array([unicodedata.category(char).startswith("P") for char in text], bool)
    features = {"position in line": position_in_line(text)}
    notes = []
    if is_space.mean() >= WHITESPACE_SHARE:
        features["since space"] = since_last(is_space | np.array([c == "\n" for c in text])).astype(float)
    else:
        notes.append("since space: the text has almost no spaces")
    features["since punctuation"] = since_last(is_punctuation).astype(float)
    features["inside quotes"] = _nesting(text, OPENING_QUOTES, TOGGLING_QUOTES)
    features["inside brackets"] = _nesting(text, BRACKETS)
    if cased:
        features["speaker line"] = speaker_lines(text)
    else:
        notes.append("speaker line: the model's text is lower-cased")
    for name in [name for name, values in features.items() if np.ptp(values) == 0]:
        notes.append(f"{name}: constant over the analysed text")
        del features[name]
    return features, notes
