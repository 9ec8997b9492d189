"""The interactive sampler: its pieces add up to the generator's text, and it prints one sample headless."""

from __future__ import annotations

import keras

from charrnn.generate import Generator
from charrnn.model import build_model
from charrnn.sampler import PIECE_CHARS, show_sampler, stream_text


def test_the_streamed_text_grows_piece_by_piece_to_the_greedy_text(tiny_data, capsys):
    keras.utils.set_random_seed(2)
    model = build_model(tiny_data.tokenizer.vocab_size, units=8, n_layers=1)
    generator = Generator(model, tiny_data.tokenizer, backend="xla")
    n_chars = 2 * PIECE_CHARS + 5
    pieces = list(stream_text(generator, "the ", n_chars, 0.0, None, seed=0))
    assert [len(text) for text in pieces] == [4 + PIECE_CHARS, 4 + 2 * PIECE_CHARS, 4 + n_chars]
    assert pieces[-1] == generator.generate("the ", n_chars, temperature=0)[0]
    box = show_sampler(generator, "the ", n_chars=10, temperature=0.0)
    assert capsys.readouterr().out.startswith("the ")  # headless runs (papermill) record one sample
    assert len(box.children) == 6  # prompt, temperature, top-k, length, button, text
