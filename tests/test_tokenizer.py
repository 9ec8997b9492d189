"""charrnn.tokenizer.CharTokenizer: ids 1..vocab_size, unknown characters, save/load."""

from __future__ import annotations

import numpy as np
import pytest

from charrnn.corpus import read_text
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
# ---- any script: normalisation, code points beyond U+FFFF, rare characters -------------------


def test_nfc_joins_a_letter_and_its_combining_mark():
    decomposed = "cafe\u0301 cafe\u0301"  # e + COMBINING ACUTE ACCENT
    tokenizer = CharTokenizer.fit(decomposed)
    assert "\u00e9" in tokenizer.chars and "\u0301" not in tokenizer.chars
    assert tokenizer.decode(tokenizer.encode("caf\u00e9")) == "caf\u00e9"
    np.testing.assert_array_equal(tokenizer.encode("cafe\u0301"), tokenizer.encode("caf\u00e9"))
    raw = CharTokenizer.fit(decomposed, normalization=None)
    assert "\u0301" in raw.chars and raw.vocab_size == tokenizer.vocab_size + 1


def test_characters_beyond_u_ffff_are_one_character_each(tmp_path):
    text = "春眠😀不觉晓𠀀"  # an emoji and a CJK Extension B ideograph, both above U+FFFF
    tokenizer = CharTokenizer.fit(text)
    assert tokenizer.vocab_size == len(set(text)) == 7
    assert len(tokenizer.encode(text)) == 7
    tokenizer.save(tmp_path / "tokenizer.json")
    loaded = CharTokenizer.load(tmp_path / "tokenizer.json")
    assert loaded.decode(loaded.encode(text)) == text


def test_lower_changes_only_cased_scripts():
    tokenizer = CharTokenizer.fit("关关雎鸠 ΑΒΓ Привет")
    assert "关" in tokenizer.chars and "α" in tokenizer.chars and "п" in tokenizer.chars
    assert "Α" not in tokenizer.chars and "П" not in tokenizer.chars


def test_min_count_sends_rare_characters_to_one_visible_unknown_id():
    tokenizer = CharTokenizer.fit("aaabbc", min_count=2)
    assert tokenizer.chars == ["a", "b", "\ufffd"] and tokenizer.unknown_id == 3
    ids = tokenizer.encode("abcz")  # c was rare, z never seen: both get the unknown id
    np.testing.assert_array_equal(ids, [1, 2, 3, 3])
    assert tokenizer.decode(ids) == "ab\ufffd\ufffd"
    np.testing.assert_array_equal(tokenizer.encode("abcz", drop_unknown=True), [1, 2])


def test_max_vocab_keeps_the_most_frequent_characters_and_counts_the_unknown_id():
    tokenizer = CharTokenizer.fit("aaaabbbccd", max_vocab=3)
    assert tokenizer.vocab_size == 3 and tokenizer.chars == ["a", "b", "\ufffd"]
    assert CharTokenizer.fit("aab", max_vocab=2).unknown is None  # nothing dropped: no unknown id


def test_unknown_id_survives_save_and_load(tmp_path):
    tokenizer = CharTokenizer.fit("aaabbc", min_count=2)
    tokenizer.save(tmp_path / "tokenizer.json")
    loaded = CharTokenizer.load(tmp_path / "tokenizer.json")
    assert loaded.unknown_id == tokenizer.unknown_id and loaded.normalization == "NFC"
    assert loaded.decode(loaded.encode("cab")) == "\ufffdab"


def test_a_file_from_before_normalisation_loads_without_it(tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text('{"chars": ["a", "b"], "lower": true}', encoding="utf-8")
    loaded = CharTokenizer.load(path)
    assert loaded.normalization is None and loaded.unknown is None


def test_min_count_above_every_count_is_a_clear_error():
    with pytest.raises(ValueError, match=r"min_count=10 is larger than every character's count.*'a'.*3 "):
        CharTokenizer.fit("aaabbc", min_count=10)


@pytest.mark.parametrize("kwargs", [{"min_count": 0}, {"min_count": 1.5}, {"max_vocab": 1},
                                    {"max_vocab": True}, {"normalization": "NFX"}])
def test_bad_options_are_refused(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        CharTokenizer.fit("abc", **kwargs)


def test_a_corpus_empty_after_normalisation_is_refused(tmp_path):
    from charrnn.data import prepare_data

    bom_only = tmp_path / "bom.txt"
    bom_only.write_bytes("\ufeff".encode())  # a byte-order mark and nothing else
    with pytest.raises(ValueError, match="empty"):
        read_text(bom_only)
    with pytest.raises(ValueError, match="empty"):
        prepare_data("", tmp_path / "prepared")


def test_prepared_meta_counts_the_characters_sent_to_the_unknown_id(tmp_path):
    from charrnn.data import prepare_data

    prepared = prepare_data("aaaa bbbb c d e aaaa bbbb" * 3, tmp_path, min_count=4)
    assert prepared.meta["unknown_distinct_chars"] == 3  # c, d, e: 3 times each
    assert prepared.meta["unknown_chars"] == 9
    assert int((prepared.train_ids == prepared.tokenizer.unknown_id).sum()
               + (prepared.val_ids == prepared.tokenizer.unknown_id).sum()) == 9
    assert prepared.meta["min_count"] == 4 and prepared.meta["normalization"] == "NFC"


def test_shijing_has_2798_characters_and_round_trips(shijing_path):
    text = read_text(shijing_path)
    tokenizer = CharTokenizer.fit(text)
    assert len(text) == 39_569 and tokenizer.vocab_size == 2_798
    assert tokenizer.decode(tokenizer.encode(text)) == text
    limited = CharTokenizer.fit(text, max_vocab=1000)
    assert limited.vocab_size == 1000
    assert limited.decode(limited.encode("关关雎鸠")) == "关关\ufffd鸠"  # 雎 is not among the 999 commonest
