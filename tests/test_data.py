"""charrnn.corpus and charrnn.data: reading the corpus, the checksummed download, splits, prepared folders."""

from __future__ import annotations

import functools
import hashlib
import http.server
import inspect
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import charrnn.corpus as corpus
import charrnn.data as data
from charrnn.corpus import SHAKESPEARE_FILENAME, download_corpus, find_corpus, load_corpus, read_text
from charrnn.data import load_prepared, prepare_data, split_ids
from charrnn.tokenizer import CharTokenizer

# ---------------------------------------------------------------- finding the corpus


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv(corpus.ENV_VAR, raising=False)


@pytest.fixture
def cache_dir(monkeypatch, tmp_path, no_env):
    """An empty cache folder standing in for outputs/data/raw."""
    cache = tmp_path / "raw"
    cache.mkdir()
    monkeypatch.setattr(corpus, "CACHE_DIR", cache)
    return cache


def test_explicit_path_wins_over_env_var(monkeypatch, tmp_path):
    mine = tmp_path / "mine.txt"
    mine.write_text("to be or not to be", encoding="utf-8")
    monkeypatch.setenv(corpus.ENV_VAR, str(tmp_path / "other.txt"))
    assert find_corpus(mine) == mine
    assert load_corpus(mine) == "to be or not to be"


def test_env_var_is_used_without_explicit_path(monkeypatch, tmp_path, cache_dir):
    env_file = tmp_path / "env.txt"
    env_file.write_text("from the environment", encoding="utf-8")
    monkeypatch.setenv(corpus.ENV_VAR, str(env_file))
    assert find_corpus() == env_file
    assert load_corpus() == "from the environment"


def test_cached_corpus_is_found_and_checked(cache_dir, corpus_path):
    cached = cache_dir / SHAKESPEARE_FILENAME
    shutil.copyfile(corpus_path, cached)
    assert find_corpus() == cached
    assert load_corpus().startswith("First Citizen:")


def test_cached_corpus_with_wrong_sha256_is_refused(cache_dir):
    (cache_dir / SHAKESPEARE_FILENAME).write_text("not Shakespeare", encoding="utf-8")
    with pytest.raises(ValueError, match=f"has sha256 [0-9a-f]{{64}}, expected {corpus.SHAKESPEARE_SHA256}"):
        find_corpus()


def test_empty_cache_downloads_into_the_cache(cache_dir, monkeypatch):
    real_download = corpus.download_corpus
    calls = []

    def fake_download(*args, **kwargs):
        bound = inspect.signature(real_download).bind(*args, **kwargs)
        bound.apply_defaults()  # what the real function would have used
        calls.append(Path(bound.arguments["cache_dir"]))
        return cache_dir / SHAKESPEARE_FILENAME

    monkeypatch.setattr(corpus, "download_corpus", fake_download)
    assert find_corpus() == cache_dir / SHAKESPEARE_FILENAME
    assert calls == [cache_dir]


# ---------------------------------------------------------------- reading the corpus


def test_missing_file_says_where_to_put_the_corpus(tmp_path, cache_dir):
    with pytest.raises(FileNotFoundError, match="does not exist") as err:
        read_text(tmp_path / "nowhere.txt")
    assert str(cache_dir / SHAKESPEARE_FILENAME) in str(err.value)


def test_directory_as_corpus_says_it_is_a_directory(tmp_path, no_env, monkeypatch):
    with pytest.raises(FileNotFoundError, match="is a directory, not a file"):
        read_text(tmp_path)
    with pytest.raises(FileNotFoundError, match="is a directory, not a file"):
        load_corpus(tmp_path)
    monkeypatch.setenv(corpus.ENV_VAR, str(tmp_path))
    with pytest.raises(FileNotFoundError, match="which is a directory"):
        find_corpus()


def test_non_utf8_file_is_refused(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("café crème".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8"):
        read_text(path)


def test_empty_file_is_refused(tmp_path):
    path = tmp_path / "blank.txt"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="is empty: there is nothing to train on"):
        read_text(path)


def test_text_shorter_than_one_window_is_refused(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("x" * 100, encoding="utf-8")
    with pytest.raises(ValueError, match="fewer than one window of 101"):
        read_text(path, min_chars=101)
    path.write_text("x" * 101, encoding="utf-8")
    assert len(read_text(path, min_chars=101)) == 101


def test_chinese_text_works_end_to_end(tmp_path):
    text = "床前明月光，疑是地上霜。\n举头望明月，低头思故乡。\n"
    path = tmp_path / "libai.txt"
    path.write_text(text, encoding="utf-8")
    read = read_text(path)
    assert read == text
    tokenizer = CharTokenizer.fit(read)
    assert tokenizer.vocab_size == len(set(text))
    ids = tokenizer.encode(read)
    assert len(ids) == len(text)
    assert tokenizer.decode(ids) == text
    tokenizer.save(tmp_path / "tokenizer.json")
    assert CharTokenizer.load(tmp_path / "tokenizer.json").decode(ids) == text


# ---------------------------------------------------------------- the download (loopback only)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    timeout = 10  # a stuck client cannot hold the server thread forever

    def log_message(self, format, *args):
        pass


@pytest.fixture
def http_root(tmp_path, monkeypatch):
    """(folder, base URL): files in the folder are served on 127.0.0.1 for one test."""
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)  # never send the request anywhere but loopback
    monkeypatch.setenv("no_proxy", "*")
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_download_caches_a_good_file(http_root, tmp_path):
    root, base = http_root
    content = b"First Citizen:\nBefore we proceed any further, hear me speak.\n"
    (root / "corpus.txt").write_bytes(content)
    cache = tmp_path / "cache"
    path = download_corpus(
        url=f"{base}/corpus.txt",
        sha256=hashlib.sha256(content).hexdigest(),
        cache_dir=cache,
        filename="shakespeare.txt",
    )
    assert path == cache / "shakespeare.txt"
    assert path.read_bytes() == content
    assert sorted(p.name for p in cache.iterdir()) == ["shakespeare.txt"]  # no temporary leftovers


def test_download_with_wrong_checksum_caches_nothing(http_root, tmp_path):
    root, base = http_root
    good = b"the expected corpus\n"
    (root / "corpus.txt").write_bytes(b"the expected corpuz\n")  # one byte corrupted
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match=r"has sha256 [0-9a-f]{64}, expected [0-9a-f]{64}") as err:
        download_corpus(
            url=f"{base}/corpus.txt",
            sha256=hashlib.sha256(good).hexdigest(),
            cache_dir=cache,
            filename="shakespeare.txt",
        )
    assert "Nothing was cached" in str(err.value)
    assert not (cache / "shakespeare.txt").exists()
    assert list(cache.iterdir()) == []


def test_download_of_missing_url_is_file_not_found(http_root, tmp_path):
    _, base = http_root
    cache = tmp_path / "cache"
    with pytest.raises(FileNotFoundError, match="Could not download the corpus") as err:
        download_corpus(url=f"{base}/missing.txt", sha256=None, cache_dir=cache, filename="x.txt")
    message = str(err.value)
    assert "404" in message
    assert str(cache / "x.txt") in message  # says where to copy the file by hand
    assert list(cache.iterdir()) == []


# ---------------------------------------------------------------- time-ordered split


def test_split_is_ninety_ten_in_time_order():
    ids = np.arange(1, 1001, dtype=np.int32)
    train, val = split_ids(ids)
    assert len(train) == 900 and len(val) == 100
    assert train[-1] == 900 and val[0] == 901
    np.testing.assert_array_equal(np.concatenate([train, val]), ids)


@pytest.mark.parametrize(
    ("n", "fraction", "expected_train"),
    [(1000, 0.5, 500), (1000, 0.75, 750), (101, 0.9, 90), (90, 0.7, 63), (1290, 0.7, 903), (10, 0.99, 9)],
)
def test_split_other_fractions(n, fraction, expected_train):
    ids = np.arange(n)
    train, val = split_ids(ids, fraction)
    assert len(train) == expected_train
    np.testing.assert_array_equal(np.concatenate([train, val]), ids)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5, float("nan")])
def test_split_rejects_fractions_outside_zero_one(fraction):
    with pytest.raises(ValueError, match="train_fraction"):
        split_ids(np.arange(100), fraction)


# ---------------------------------------------------------------- the prepared-data folder


def test_prepare_and_load_round_trip(tiny_text, tmp_path):
    prepared = prepare_data(tiny_text, tmp_path / "prep")
    assert sorted(p.name for p in (tmp_path / "prep").iterdir()) == [
        "meta.json",
        "tokenizer.json",
        "train.npy",
        "val.npy",
    ]
    loaded = load_prepared(tmp_path / "prep")
    np.testing.assert_array_equal(loaded.train_ids, prepared.train_ids)
    np.testing.assert_array_equal(loaded.val_ids, prepared.val_ids)
    assert loaded.tokenizer.chars == prepared.tokenizer.chars
    assert loaded.tokenizer.lower is True
    assert loaded.meta == prepared.meta
    meta = loaded.meta
    assert meta["lower"] is True
    assert meta["train_fraction"] == 0.9
    assert meta["corpus_sha256"] == hashlib.sha256(tiny_text.encode("utf-8")).hexdigest()
    assert meta["corpus_chars"] == len(tiny_text)
    assert meta["train_chars"] == len(loaded.train_ids) == len(tiny_text) * 9 // 10
    assert meta["val_chars"] == len(loaded.val_ids) == len(tiny_text) - meta["train_chars"]
    assert meta["vocab_size"] == loaded.tokenizer.vocab_size
    all_ids = np.concatenate([loaded.train_ids, loaded.val_ids])
    assert loaded.tokenizer.decode(all_ids) == tiny_text.lower()


def test_prepare_keeps_case_and_fraction_when_asked(tmp_path):
    text = "Hello World, hello world. " * 20
    prepared = prepare_data(text, tmp_path / "prep", lower=False, train_fraction=0.8)
    meta = load_prepared(tmp_path / "prep").meta
    assert meta["lower"] is False and meta["train_fraction"] == 0.8
    assert meta["train_chars"] == len(text) * 8 // 10
    assert prepared.tokenizer.decode(np.concatenate([prepared.train_ids, prepared.val_ids])) == text


def test_tiny_data_fixture_is_lower_cased_ninety_ten(tiny_data, tiny_text):
    assert len(tiny_data.train_ids) == len(tiny_text) * 9 // 10
    assert len(tiny_data.train_ids) + len(tiny_data.val_ids) == len(tiny_text)
    assert tiny_data.tokenizer.decode(tiny_data.val_ids) == tiny_text.lower()[len(tiny_data.train_ids) :]


def test_load_prepared_without_meta_says_how_to_make_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="meta.json") as err:
        load_prepared(tmp_path)
    assert "notebook 01" in str(err.value)
    assert "make data" in str(err.value)


# ---------------------------------------------------------------- where outputs go


def test_outputs_dir_env_var_wins(monkeypatch, tmp_path):
    monkeypatch.setenv(corpus.OUTPUTS_ENV_VAR, str(tmp_path / "elsewhere"))
    assert corpus.find_outputs_dir() == tmp_path / "elsewhere"


def test_outputs_dir_is_the_checkout_when_running_from_one(monkeypatch, tmp_path):
    monkeypatch.delenv(corpus.OUTPUTS_ENV_VAR, raising=False)
    checkout, other, cwd = tmp_path / "checkout", tmp_path / "other", tmp_path / "cwd"
    for folder in (checkout, other, cwd):
        folder.mkdir()
    (checkout / "pyproject.toml").write_text('[project]\nname = "charrnn"\nversion = "0.1.0"\n')
    (other / "pyproject.toml").write_text('[project]\nname = "something-else"\n')
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(corpus, "PROJECT_ROOT", checkout)
    assert corpus.find_outputs_dir() == checkout / "outputs"
    monkeypatch.setattr(corpus, "PROJECT_ROOT", other)  # a pyproject.toml, but not ours
    assert corpus.find_outputs_dir() == cwd / "outputs"


def test_installed_package_never_writes_into_site_packages(tmp_path):
    """A copy of the package without its checkout (a non-editable install) resolves to ./outputs."""
    site = tmp_path / "site-packages"
    shutil.copytree(Path(data.__file__).parent, site / "charrnn",
                    ignore=shutil.ignore_patterns("__pycache__"))
    work = tmp_path / "work"
    work.mkdir()
    env = {key: value for key, value in os.environ.items() if key != corpus.OUTPUTS_ENV_VAR}
    env["PYTHONPATH"] = str(site)
    result = subprocess.run(
        [sys.executable, "-c", "import charrnn.corpus as d; print(d.OUTPUTS_DIR); print(d.CACHE_DIR)"],
        capture_output=True, text=True, cwd=work, env=env, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    outputs, cache = (Path(line) for line in result.stdout.split())
    assert outputs == work / "outputs" and cache == work / "outputs" / "data" / "raw"
