"""Finding, downloading, reading and checking a corpus, and where outputs go.

This is the one module that resolves paths from the environment
(`$CHARRNN_DATA`, `$CHARRNN_OUTPUTS`, the project's `outputs/` folder);
everything else takes paths as arguments.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

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
