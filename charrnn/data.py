"""Finding the corpus, splitting it in time, and the prepared-data folder.

This is the one module that resolves paths from the environment
(`$CHARRNN_DATA`, `$CHARRNN_OUTPUTS`, the project's `outputs/` folder);
everything else takes paths as arguments.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from charrnn.atomic import atomic_path, explain_write_errors, folder_lock, write_json
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
RAW_DIR = "raw"  # <outputs>/data/raw: the downloaded corpora, not a dataset
CACHE_DIR = OUTPUTS_DIR / "data" / RAW_DIR

SHAKESPEARE_URL = (
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
)
SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
SHAKESPEARE_FILENAME = "tinyshakespeare.txt"
ENV_VAR = "CHARRNN_DATA"
DATA_LOCK_FILE = "data.lock"  # in a dataset folder while prepare_data writes it
# What makes two prepared folders the same data (corpus_chars: a max_chars slice of the same file).
DATA_IDENTITY = ("corpus_sha256", "corpus_chars", "lower", "normalization", "min_count", "max_vocab",
                 "train_fraction")


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# Byte-order marks of the encodings a UTF-8 reader would misread; UTF-32-LE's starts like UTF-16-LE's.
_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"),
         (b"\xff\xfe", "UTF-16"), (b"\xfe\xff", "UTF-16"))
# Control characters refused in a corpus: all of C0 and C1 but tab, newline, form feed (a page break in
# plain text) and carriage return (Windows line ends): those are layout, the others are not text.
_CONTROL = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")
_CONTROL_NAMES = {0x00: "NUL", 0x1B: "ESC", 0x7F: "DEL"}


def _nul_pattern(raw: bytes, loose: bool = False) -> str | None:
    """'UTF-16LE', 'UTF-16BE', 'UTF-32LE' or 'UTF-32BE' when NUL bytes fall where that encoding puts
    them (the high bytes of Latin characters); None for anything else, a stray NUL included.

    `loose`: for bytes that are not UTF-8 anyway, a few NULs of one parity suffice (UTF-16 Chinese
    text has them only in its newlines and ASCII)."""
    sample = raw[: 1 << 16]
    quarter = len(sample) // 4
    if quarter >= 2:
        zeros = [sample[k::4].count(0) for k in range(4)]
        if min(zeros[2], zeros[3]) >= 0.9 * quarter and zeros[0] < 0.5 * quarter:
            return "UTF-32LE"
        if min(zeros[0], zeros[1]) >= 0.9 * quarter and zeros[3] < 0.5 * quarter:
            return "UTF-32BE"
    units = len(sample) // 2
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    for encoding, high, low in (("UTF-16LE", odd, even), ("UTF-16BE", even, odd)):
        # Loose: CJK characters U+xx00 put NULs in the other half too, far fewer than the newlines do.
        if high >= (1 if loose else max(2, 0.01 * units)) and low <= high / (3 if loose else 10):
            return encoding
    return None


def _converted(path: Path, encoding: str) -> str:
    return f"`iconv -f {encoding} -t UTF-8 {path} > {path.with_name(path.stem + '.utf8' + path.suffix)}`"


def _decode(raw: bytes, path: Path) -> str:
    """The UTF-8 text of `raw`; UTF-16/32 (with a byte-order mark or by its NUL bytes) and other
    encodings are refused with the iconv command that converts them."""
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            raise ValueError(f"Corpus file {path} is {encoding} text (it starts with a {encoding} byte-order "
                             f"mark), not UTF-8. Convert it first: {_converted(path, encoding)}.")
    encoding = _nul_pattern(raw)
    if encoding:
        raise ValueError(f"Corpus file {path} looks like {encoding} text without a byte-order mark (its NUL "
                         f"bytes fall every {4 if '32' in encoding else 2} bytes), not UTF-8. "
                         f"Convert it first: {_converted(path, encoding)}.")
    try:
        return raw.decode("utf-8-sig")  # a UTF-8 byte-order mark is not text: dropped
    except UnicodeDecodeError as err:
        # Bytes 0x80-0x9F are printable in Windows' CP1252 (quotes, dashes) and controls in Latin-1.
        legacy = "CP1252" if any(0x80 <= b <= 0x9F for b in raw) else "LATIN1"
        guess = _nul_pattern(raw, loose=True) or legacy
        raise ValueError(
            f"Corpus file {path} is not UTF-8 text ({err.reason} at byte {err.start}). Convert it first, "
            f"e.g. {_converted(path, guess)} (a guess: use the file's real encoding, such as GB18030 or "
            "SHIFT_JIS for Chinese or Japanese text)."
        ) from None


def check_text(text: str, source: str = "The text", allow_control_chars: bool = False) -> None:
    """Refuse control characters (NUL, ESC, ... but not tab, newline, form feed or carriage return).

    `source` starts the message (e.g. 'Corpus file x.txt'). `allow_control_chars=True`
    accepts them as ordinary characters.
    """
    first = None if allow_control_chars else _CONTROL.search(text)
    if first is None:
        return
    counts: dict[str, int] = {}
    for char in _CONTROL.findall(text):
        counts[char] = counts.get(char, 0) + 1
    char, position = first.group(), first.start()
    name = f"U+{ord(char):04X}" + (f" ({_CONTROL_NAMES[ord(char)]})" if ord(char) in _CONTROL_NAMES else "")
    others = ", ".join(f"U+{ord(c):04X} ({n:,})" for c, n in counts.items() if c != char)
    share = sum(counts.values()) / len(text)
    raise ValueError(
        f"{source} contains the control character {name} "
        f"{'once' if counts[char] == 1 else f'{counts[char]:,} times'}, first at character "
        f"{position:,} (line {text.count(chr(10), 0, position) + 1})"
        + (f"; also {others}" if others else "")
        + (f"; control characters are {share:.0%} of it: a binary file, not text?" if share > 0.1 else "")
        + ". Remove them, or pass allow_control_chars=True (notebook 01's parameter of that name) "
        "to train on them as ordinary characters."
    )


def read_text(path: str | os.PathLike, min_chars: int = 1, *, allow_control_chars: bool = False) -> str:
    """Read a UTF-8 corpus, refusing files that cannot train anything or are not text.

    Control characters other than tab, newline, form feed and carriage return are
    refused unless `allow_control_chars` (see `check_text`).
    """
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
    text = _decode(path.read_bytes(), path)
    if not text:
        raise ValueError(f"Corpus file {path} is empty: there is nothing to train on.")
    check_text(text, f"Corpus file {path}", allow_control_chars)
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


def load_corpus(path: str | os.PathLike | None = None, min_chars: int = 1, *,
                allow_control_chars: bool = False) -> str:
    """The corpus text (see `find_corpus` for where it is looked for, `read_text` for the checks)."""
    return read_text(find_corpus(path), min_chars=min_chars, allow_control_chars=allow_control_chars)


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
    allow_control_chars: bool = False,
    force: bool = False,
    runs_dir: str | os.PathLike | None = None,
) -> PreparedData:
    """Fit the tokenizer, encode, split and write everything to `out_dir`.

    `lower`, `normalization`, `min_count` and `max_vocab` go to `CharTokenizer.fit`;
    the meta records how many characters of the text fell to the unknown id. The
    folder is locked while it is written (a second writer is refused). Prepared data
    of another corpus or settings already there is refused, naming the runs of
    `runs_dir` (default: <out_dir>/../../runs) trained on it, unless `force`: then it
    is moved aside to `<out_dir>.replaced-<n>`, never deleted. The same data again is fine.
    """
    check_text(text, "The text to prepare", allow_control_chars)
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
    runs_dir = Path(runs_dir) if runs_dir is not None else out_dir.parent.parent / "runs"
    with folder_lock(out_dir, DATA_LOCK_FILE, what="Dataset", rename_hint="dataset_name"):
        _make_room(out_dir, meta, force, runs_dir)
        tokenizer.save(out_dir / "tokenizer.json")
        for name, array in (("train.npy", train_ids), ("val.npy", val_ids)):
            with atomic_path(out_dir / name) as tmp:
                with open(tmp, "wb") as f:
                    np.save(f, array)
        write_json(out_dir / "meta.json", meta)  # written last: its presence marks a complete folder
    return PreparedData(tokenizer, train_ids, val_ids, meta)


def _make_room(out_dir: Path, meta: dict, force: bool, runs_dir: Path) -> None:
    """Nothing when `out_dir` holds no complete dataset or this same one; otherwise refuse, or with
    `force` move the old one aside (no file of it is left to mix with the new data)."""
    try:
        old = json.loads((out_dir / "meta.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return  # empty, or a write that never finished: nothing to keep
    except (OSError, ValueError):
        old = None
    changes = _data_changes(old, meta)
    if not changes:
        return
    trained = runs_trained_on(old, runs_dir) if old else []
    aside = _aside_name(out_dir)
    runs_note = (f" Runs trained on it: {', '.join(trained)} (each keeps loading from its own folder, "
                 "but cannot resume on other data)." if trained else "")
    if not force:
        raise ValueError(
            f"{out_dir} already holds other prepared data ({changes}).{runs_note} Choose another "
            f"dataset_name, or pass force=True (`make data FORCE=1`) to replace it: the old folder is "
            f"then kept as {aside.name}.")
    with explain_write_errors(aside):
        aside.mkdir()
        # meta.json first: from the first move on, out_dir no longer looks like a complete dataset.
        for entry in sorted(out_dir.iterdir(), key=lambda e: e.name != "meta.json"):
            if entry.name != DATA_LOCK_FILE:
                os.replace(entry, aside / entry.name)
    print(f"Replaced the prepared data in {out_dir} ({changes}); the old data is kept in {aside}.{runs_note}")


def _data_changes(old: dict | None, meta: dict) -> str:
    """'' when `old` (a meta.json) describes the data of `meta`; else the differences, old -> new."""
    if old is None:
        return "its meta.json is unreadable"
    defaults = {name: p.default for name, p in inspect.signature(prepare_data).parameters.items()}
    changes = []
    for key in DATA_IDENTITY:
        if key not in old and key not in defaults:
            continue  # not recorded by the version that wrote it, and no default to stand in
        before, after = old.get(key, defaults.get(key)), meta[key]
        if before != after:
            changes.append(f"{key} {_short(before)!r} -> {_short(after)!r}")
    return ", ".join(changes)


def _short(value):
    """A sha256 cut to 12 digits for messages; anything else as it is."""
    return value[:12] + "..." if isinstance(value, str) and len(value) == 64 else value


def runs_trained_on(meta: dict, runs_dir: str | os.PathLike) -> list[str]:
    """Names of the runs in `runs_dir` whose recorded data identity (config.json's 'data') matches `meta`,
    each marked '(unfinished)' when it has no model.keras yet."""
    names = []
    for config in sorted(Path(runs_dir).glob("*/config.json")):
        try:
            identity = json.loads(config.read_text(encoding="utf-8")).get("data")
        except (OSError, ValueError, AttributeError):
            continue  # not a readable run record: it cannot be matched
        if isinstance(identity, dict) and identity and all(meta.get(k) == v for k, v in identity.items()):
            finished = (config.parent / "model.keras").is_file()
            names.append(config.parent.name + ("" if finished else " (unfinished)"))
    return names


def _aside_name(out_dir: Path) -> Path:
    n = 1
    while out_dir.with_name(f"{out_dir.name}.replaced-{n}").exists():
        n += 1
    return out_dir.with_name(f"{out_dir.name}.replaced-{n}")


def dataset_dir(outputs_dir: str | os.PathLike, dataset_name: str) -> Path:
    """<outputs_dir>/data/<dataset_name>, refusing a name that is not one plain folder name."""
    if (not isinstance(dataset_name, str) or not dataset_name or dataset_name.startswith(".")
            or Path(dataset_name).name != dataset_name or "\\" in dataset_name or dataset_name == RAW_DIR):
        raise ValueError(
            f"dataset_name must be a plain folder name (no '/', not starting with '.', not {RAW_DIR!r}, "
            f"which holds the downloaded corpora), got {dataset_name!r}: e.g. `make data DATASET=mytext`.")
    return Path(outputs_dir) / "data" / dataset_name


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
