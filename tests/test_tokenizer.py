"""charrnn.tokenizer.CharTokenizer: ids 1..vocab_size, unknown characters, save/load."""

from __future__ import annotations

import numpy as np
import pytest

from charrnn.data import read_text
from charrnn.tokenizer import CharTokenizer


@pytest.fixture(scope="module")
def full_text(corpus_path):
    return read_text(corpus_path)


def test_encode_decode_round_trip(tiny_text):
    tokenizer = CharTokenizer.fit(tiny_text)
    ids = tokenizer.encode(tiny_text)
    assert ids.dtype == np.int32 and len(ids) == len(tiny_text)
    assert tokenizer.decode(ids) == tiny_text.lower()


def test_case_preserving_round_trip_is_exact(tiny_text):
    tokenizer = CharTokenizer.fit(tiny_text, lower=False)
    assert tokenizer.decode(tokenizer.encode(tiny_text)) == tiny_text


def test_lower_cased_full_corpus_ids_cover_1_to_39(full_text):
    tokenizer = CharTokenizer.fit(full_text)
    ids = tokenizer.encode(full_text)
    assert tokenizer.vocab_size == 39
    np.testing.assert_array_equal(np.unique(ids), np.arange(1, 40))


def test_case_preserving_full_corpus_ids_cover_1_to_vocab_size(full_text):
    tokenizer = CharTokenizer.fit(full_text, lower=False)
    ids = tokenizer.encode(full_text)
    assert tokenizer.vocab_size > 39
    assert tokenizer.vocab_size == len(set(full_text))
    np.testing.assert_array_equal(np.unique(ids), np.arange(1, tokenizer.vocab_size + 1))


def test_ids_follow_sorted_characters():
    tokenizer = CharTokenizer.fit("banana")
    assert tokenizer.chars == ["a", "b", "n"]
    np.testing.assert_array_equal(tokenizer.encode("abn"), [1, 2, 3])


def test_lower_casing_applies_to_encode():
    tokenizer = CharTokenizer.fit("abc")
    np.testing.assert_array_equal(tokenizer.encode("ABC"), tokenizer.encode("abc"))
    with pytest.raises(ValueError, match="not in the vocabulary"):
        CharTokenizer.fit("abc", lower=False).encode("ABC")


def test_unknown_characters_are_listed_in_the_error():
    tokenizer = CharTokenizer.fit("hello world")
    with pytest.raises(ValueError, match="not in the vocabulary") as err:
        tokenizer.encode("hello, world!")
    assert "','" in str(err.value) and "'!'" in str(err.value)
    assert "drop_unknown=True" in str(err.value)


def test_drop_unknown_skips_unknown_characters():
    tokenizer = CharTokenizer.fit("hello world")
    ids = tokenizer.encode("hello, world!", drop_unknown=True)
    assert tokenizer.decode(ids) == "hello world"


def test_decode_of_zero_gives_nothing():
    tokenizer = CharTokenizer.fit("abc")
    assert tokenizer.decode([0, 0]) == ""
    assert tokenizer.decode([1, 0, 2, 0, 3]) == "abc"
    assert tokenizer.decode(np.array([[1, 2], [0, 3]])) == "abc"


@pytest.mark.parametrize("bad", [-1, 4])
def test_decode_rejects_ids_outside_the_vocabulary(bad):
    with pytest.raises(ValueError, match=r"0\.\.3"):
        CharTokenizer.fit("abc").decode([1, bad])


def test_save_load_round_trip(tmp_path, tiny_text):
    for lower in (True, False):
        tokenizer = CharTokenizer.fit(tiny_text, lower=lower)
        tokenizer.save(tmp_path / "tokenizer.json")
        loaded = CharTokenizer.load(tmp_path / "tokenizer.json")
        assert loaded.chars == tokenizer.chars
        assert loaded.lower is lower
        np.testing.assert_array_equal(loaded.encode(tiny_text), tokenizer.encode(tiny_text))


@pytest.mark.parametrize(
    "content",
    [
        '{"chars": ["a", "b"',
        '{"lower": true}',
        "[1, 2, 3]",
        '{"chars": ["a", "a"], "lower": true}',
        "",
        '{"chars": "ab", "lower": true}',
        '{"chars": [1, 2], "lower": true}',
        '{"chars": ["ab", "c"], "lower": true}',
        '{"chars": ["a", "b"], "lower": "yes"}',
    ],
    ids=[
        "truncated",
        "no-chars",
        "not-a-dict",
        "duplicate-chars",
        "empty",
        "chars-not-a-list",
        "chars-not-strings",
        "multi-char-entry",
        "lower-not-bool",
    ],
)
def test_loading_a_corrupt_file_is_a_value_error(tmp_path, content):
    path = tmp_path / "tokenizer.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError):
        CharTokenizer.load(path)


def test_loading_a_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        CharTokenizer.load(tmp_path / "nope.json")


def test_fit_refuses_empty_text():
    with pytest.raises(ValueError, match="empty"):
        CharTokenizer.fit("")


@pytest.mark.parametrize("not_text", [123, None, b"bytes", ["a", "b"]])
def test_fit_refuses_what_is_not_a_string(not_text):
    with pytest.raises(ValueError, match="needs the text as a str, got"):
        CharTokenizer.fit(not_text)
