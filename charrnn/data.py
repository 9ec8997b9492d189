"""Prepared datasets: the time-ordered split, the folder notebook 01 writes, and its protection.

A dataset folder holds the tokenizer, the encoded train/validation ids and meta.json. It is
written under a lock and is never replaced while finished runs depend on it unless asked to
(`force`), and then the old data moves aside. Finding and reading the corpus is `charrnn.corpus`.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from charrnn.atomic import atomic_path, explain_write_errors, folder_lock, write_json
from charrnn.corpus import RAW_DIR, check_text
from charrnn.tokenizer import CharTokenizer

DATA_LOCK_FILE = "data.lock"  # in a dataset folder while prepare_data writes it
# What makes two prepared folders the same data (corpus_chars: a max_chars slice of the same file).
DATA_IDENTITY = ("corpus_sha256", "corpus_chars", "lower", "normalization", "min_count", "max_vocab",
                 "train_fraction")


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


def same_data(meta: dict, identity) -> bool:
    """Whether a dataset's meta.json agrees with a run's recorded data identity on every key."""
    return (isinstance(meta, dict) and isinstance(identity, dict) and bool(identity)
            and all(meta.get(key) == value for key, value in identity.items()))


def find_run_data(run_dir: str | os.PathLike, config: dict,
                  outputs_dir: str | os.PathLike | None = None) -> Path:
    """The prepared-data folder under `<outputs_dir>/data/` that the run in `run_dir` was trained on.

    `outputs_dir=None`: the folder that holds the run's runs/ folder (<outputs>/runs/<run>).
    The run's config.json records its data identity ("data": corpus sha256, vocabulary size, case,
    split); folders with equal identities hold the same data, so the first by name is as good as any.
    """
    outputs_dir = Path(run_dir).resolve().parents[1] if outputs_dir is None else outputs_dir
    identity, data_root = config.get("data"), Path(outputs_dir) / "data"
    if not isinstance(identity, dict) or not identity:
        raise ValueError(f"{run_dir}/config.json records no data identity ('data'): it was trained by an "
                         "older version. Pass the prepared data folder explicitly (data_dir=...).")
    for meta_path in sorted(data_root.glob("*/meta.json")):
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # an unreadable dataset cannot be the run's
        if same_data(meta, identity):
            return meta_path.parent
    sha = str(identity.get("corpus_sha256", "?"))[:12]
    raise ValueError(
        f"No prepared data under {data_root} matches run {Path(run_dir).name} (corpus sha256 {sha}..., "
        f"{identity.get('train_chars')} training characters, lower={identity.get('lower')}). Prepare the "
        "run's corpus with the same settings first (notebook 01, `make data CORPUS=... DATASET=...`), or "
        "pass outputs_dir where it was prepared.")


def runs_trained_on(meta: dict, runs_dir: str | os.PathLike) -> list[str]:
    """Names of the runs in `runs_dir` whose recorded data identity (config.json's 'data') matches `meta`,
    each marked '(unfinished)' when it has no model.keras yet."""
    names = []
    for config in sorted(Path(runs_dir).glob("*/config.json")):
        try:
            identity = json.loads(config.read_text(encoding="utf-8")).get("data")
        except (OSError, ValueError, AttributeError):
            continue  # not a readable run record: it cannot be matched
        if same_data(meta, identity):
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

    `preferred` (a list of texts, such as Géron's English ones) when the vocabulary
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
