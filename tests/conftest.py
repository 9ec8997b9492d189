"""Shared fixtures: a slice of the real corpus, prepared once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# No TF_CPP_MIN_LOG_LEVEL here: the notebook kernels must be quiet with the package's own default.
from charrnn.corpus import find_corpus, read_text
from charrnn.data import prepare_data

TINY_CHARS = 40_000  # enough for a few hundred windows of 100 and a 10% validation split


@pytest.fixture(scope="session")
def corpus_path():
    """tiny Shakespeare, from the cache that .ci/run fills (or $CHARRNN_DATA)."""
    return find_corpus()


@pytest.fixture(scope="session")
def shijing_path():
    """The Chinese test corpus (2,798 distinct characters): $CHARRNN_SHIJING (set by .ci/run), else the
    shared copy beside the repository; tests that need it are skipped, saying so, when it is absent."""
    path = Path(os.environ.get("CHARRNN_SHIJING")
                or Path(__file__).resolve().parents[2] / "shared" / "data" / "shijing.txt")
    if not path.is_file():
        pytest.skip(f"the Chinese test corpus is not at {path}: set $CHARRNN_SHIJING to shijing.txt")
    return path


@pytest.fixture(scope="session")
def tiny_text(corpus_path):
    return read_text(corpus_path)[:TINY_CHARS]


@pytest.fixture(scope="session")
def tiny_data(tiny_text, tmp_path_factory):
    """PreparedData for the first TINY_CHARS characters (lower-cased, 90/10 split)."""
    return prepare_data(tiny_text, tmp_path_factory.mktemp("data") / "tiny")


@pytest.fixture(scope="session")
def generation_run(tiny_data, tmp_path_factory):
    """A tiny trained *stateful* run folder, for generation, export and CLI tests (a few seconds)."""
    from charrnn.train import TrainConfig, train

    runs_dir = tmp_path_factory.mktemp("generation_runs")
    config = TrainConfig(
        run_name="stateful", stateful=True, units=16, n_steps=50, batch_size=4, epochs=1,
        steps_per_epoch=20, validation_steps=2,
    )
    train(config, tiny_data, runs_dir, verbose=0)
    return runs_dir / config.run_name
