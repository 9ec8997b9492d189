"""Finding the corpus, splitting it in time, and the prepared-data folder.

This is the one module that resolves paths from the environment
(`$CHARRNN_DATA`, `$CHARRNN_OUTPUTS`, the project's `outputs/` folder);
everything else takes paths as arguments.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from charrnn.atomic import atomic_path, write_json
from charrnn.tokenizer import CharTokenizer

# The folder holding the package: the project root when running from a checkout, site-packages
# (or similar) in an installed copy. Only `find_outputs_dir` decides which it is.
PROJECT_ROOT = Path(__file__).resolve().parents[1]
OUTPUTS_ENV_VAR = "CHARRNN_OUTPUTS"


def checkout_root(root: Path) -> Path | None:
    """`root` when it is a charrnn checkout (its pyproject.toml names the project charrnn), else None."""
    try:
        pyproject = (root / "pyproject.toml").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return root if re.search(r'(?m)^name\s*=\s*["\']charrnn["\']', pyproject) else None


def find_outputs_dir() -> Path:
    """Where outputs go: $CHARRNN_OUTPUTS, else <checkout>/outputs, else ./outputs.

    An installed (non-editable) package has no checkout beside it: it writes into
    the current directory, never into site-packages.
    """
    from_env = os.environ.get(OUTPUTS_ENV_VAR)
    if from_env:
        return Path(from_env).expanduser().absolute()
    root = checkout_root(PROJECT_ROOT)
    return (root if root is not None else Path.cwd()) / "outputs"


OUTPUTS_DIR = find_outputs_dir()  # resolved once, at import
CACHE_DIR = OUTPUTS_DIR / "data" / "raw"

SHAKESPEARE_URL = (
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
)
SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
SHAKESPEARE_FILENAME = "tinyshakespeare.txt"
ENV_VAR = "CHARRNN_DATA"


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_text(path: str | os.PathLike, min_chars: int = 1) -> str:
    """Read a UTF-8 corpus, refusing files that cannot train anything."""
    path = Path(path)
    if path.is_dir():
        raise FileNotFoundError(
            f"Corpus path {path} is a directory, not a file. Pass the path of a UTF-8 text file in it."
        )
    if not path.is_file():
        raise FileNotFoundError(
            f"Corpus file {path} does not exist. Pass the path of a UTF-8 text file, "
            f"or put tiny Shakespeare at {CACHE_DIR / SHAKESPEARE_FILENAME}."
        )
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark is not text: dropped
    except UnicodeDecodeError as err:
        raise ValueError(
            f"Corpus file {path} is not UTF-8 text ({err.reason} at byte {err.start}). "
            "Convert it first, e.g. `iconv -f latin1 -t utf-8`."
        ) from None
    if not text:
        raise ValueError(f"Corpus file {path} is empty: there is nothing to train on.")
    if len(text) < min_chars:
        raise ValueError(
            f"Corpus file {path} has {len(text)} characters, fewer than one window of "
            f"{min_chars}. Use a longer text or a smaller n_steps."
        )
    return text


def download_corpus(
    url: str = SHAKESPEARE_URL,
    sha256: str | None = SHAKESPEARE_SHA256,
    cache_dir: str | os.PathLike = CACHE_DIR,
    filename: str = SHAKESPEARE_FILENAME,
) -> Path:
    """Download `url` into `cache_dir/filename`, verified against `sha256`.

    The file lands in the cache only once its checksum matches, so a failed or
    corrupted download never leaves a file that looks valid.
    """
    import keras  # imported here: reading a cached corpus should not need TensorFlow

    cache_dir = Path(cache_dir)
    target = cache_dir / filename
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        try:
            fetched = keras.utils.get_file(
                fname=filename, origin=url, cache_dir=tmp, cache_subdir="."
            )
        except Exception as err:  # get_file raises bare Exception for HTTP and URL errors
            raise FileNotFoundError(
                f"Could not download the corpus from {url} ({err}). If this machine is "
                f"offline, copy the file to {target} or set ${ENV_VAR} to its path."
            ) from None
        actual = sha256_of(fetched)
        if sha256 is not None and actual != sha256:
            raise ValueError(
                f"The file downloaded from {url} has sha256 {actual}, expected {sha256}: "
                "it is corrupted or not the expected corpus. Nothing was cached; try again "
                f"or copy a good file to {target}."
            )
        os.replace(fetched, target)
    return target


def find_corpus(path: str | os.PathLike | None = None) -> Path:
    """Where the corpus is: explicit path, then $CHARRNN_DATA, then the cache, then download."""
    if path is not None:
        return Path(path)
    if os.environ.get(ENV_VAR):
        from_env = Path(os.environ[ENV_VAR])
        if not from_env.is_file():
            what = "a directory" if from_env.is_dir() else "not a file"
            raise FileNotFoundError(
                f"${ENV_VAR} is set to {from_env}, which is {what}. Set it to a UTF-8 text file or unset it."
            )
        return from_env
    cached = CACHE_DIR / SHAKESPEARE_FILENAME
    if cached.is_file():
        actual = sha256_of(cached)
        if actual != SHAKESPEARE_SHA256:
            raise ValueError(
                f"The cached corpus {cached} has sha256 {actual}, expected "
                f"{SHAKESPEARE_SHA256}. Delete it so it is downloaded again, or pass your "
                "file's path explicitly."
            )
        return cached
    return download_corpus(cache_dir=CACHE_DIR)  # the cache looked in above, not the default bound at import


def load_corpus(path: str | os.PathLike | None = None, min_chars: int = 1) -> str:
    """The corpus text (see `find_corpus` for where it is looked for)."""
    return read_text(find_corpus(path), min_chars=min_chars)


def split_ids(ids: np.ndarray, train_fraction: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """Time-ordered split: the first `train_fraction` trains, the rest validates."""
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be strictly between 0 and 1, got {train_fraction}.")
    # Exact decimal arithmetic: int(90 * 0.7) is 62 in floating point, the first 70% of 90 is 63.
    cut = int(len(ids) * Fraction(str(train_fraction)))
    return ids[:cut], ids[cut:]


@dataclass
class PreparedData:
    """What notebook 01 writes and the training notebooks read."""

    tokenizer: CharTokenizer
    train_ids: np.ndarray
    val_ids: np.ndarray
    meta: dict


def prepare_data(
    text: str,
    out_dir: str | os.PathLike,
    *,
    lower: bool = True,
    normalization: str | None = "NFC",
    min_count: int = 1,
    max_vocab: int | None = None,
    train_fraction: float = 0.9,
    corpus_sha256: str | None = None,
    corpus_path: str | None = None,
) -> PreparedData:
    """Fit the tokenizer, encode, split and write everything to `out_dir`.

    `lower`, `normalization`, `min_count` and `max_vocab` go to `CharTokenizer.fit`;
    the meta records how many characters of the text fell to the unknown id.
    """
    tokenizer = CharTokenizer.fit(
        text, lower=lower, normalization=normalization, min_count=min_count, max_vocab=max_vocab)
    ids = tokenizer.encode(text)
    train_ids, val_ids = split_ids(ids, train_fraction)
    rare = set(tokenizer.unknown_chars(text))
    normalized = tokenizer.normalize(text)
    meta = {
        "corpus_path": corpus_path,
        "corpus_sha256": corpus_sha256 or hashlib.sha256(text.encode("utf-8")).hexdigest(),
        "corpus_chars": len(text),
        "vocab_size": tokenizer.vocab_size,
        "lower": lower,
        "normalization": normalization,
        "min_count": min_count,
        "max_vocab": max_vocab,
        # Characters without an id of their own, mapped to the unknown id U+FFFD.
        "unknown_distinct_chars": len(rare),
        "unknown_chars": sum(1 for c in normalized if c in rare) if rare else 0,
        "train_fraction": train_fraction,
        "train_chars": len(train_ids),
        "val_chars": len(val_ids),
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "meta.json").unlink(missing_ok=True)  # the folder is incomplete until meta.json is back
    tokenizer.save(out_dir / "tokenizer.json")
    for name, array in (("train.npy", train_ids), ("val.npy", val_ids)):
        with atomic_path(out_dir / name) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, array)
    write_json(out_dir / "meta.json", meta)  # written last: its presence marks a complete folder
    return PreparedData(tokenizer, train_ids, val_ids, meta)


def load_prepared(data_dir: str | os.PathLike) -> PreparedData:
    data_dir = Path(data_dir)
    if not (data_dir / "meta.json").is_file():
        raise FileNotFoundError(
            f"No prepared data in {data_dir} (meta.json is missing). Run notebook 01 "
            "(`make data`) first, or point data_dir at its output folder."
        )
    meta = json.loads((data_dir / "meta.json").read_text(encoding="utf-8"))
    tokenizer = CharTokenizer.load(data_dir / "tokenizer.json")
    train_ids = np.load(data_dir / "train.npy")
    val_ids = np.load(data_dir / "val.npy")
    return PreparedData(tokenizer, train_ids, val_ids, meta)



# The seed's demonstration texts, for corpora whose vocabulary has their characters.
SEED_PROBE = "How are yo"
SEED_PROMPTS = ("ROMEO:", "the ")


def corpus_prompts(prepared: PreparedData, preferred, length: int = 10) -> list[str]:
    """Texts for a notebook's demonstrations that this corpus's vocabulary can encode.

    `preferred` (a list of texts, such as the seed's English ones) when the vocabulary
    has every character of them, as tiny Shakespeare's does; otherwise as many
    texts, each the first `length` characters of a line of the validation text.
    """
    preferred = list(preferred)
    if all(text and not prepared.tokenizer.unknown_chars(text) for text in preferred):
        return preferred
    text = prepared.tokenizer.decode(prepared.val_ids)
    lines = [line[:length] for line in text.split("\n")[1:] if line.strip()]  # [0] may start mid-line
    lines = lines or [text[:length]]
    return [lines[i % len(lines)] for i in range(len(preferred))]
