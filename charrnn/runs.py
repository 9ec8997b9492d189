"""The run directory: what a run writes beside its model, and loading it back.

    outputs/runs/<run>/
        config.json        every training parameter
        environment.json   Python / TensorFlow / Keras / NumPy versions, platform, git commit, corpus sha256
        tokenizer.json     the vocabulary
        history.csv        a row per epoch: loss, accuracy, bpc, their val_ twins, train_seconds, train_chars
        model.keras        the final model (written when training ends)
        best.keras         the model with the lowest validation loss so far
        checkpoints/       the checkpoint of record while a run is unfinished (removed when it ends)
        run.lock           while a process trains the run: its PID and host
        *.png, samples.txt, <notebook>.ipynb   figures, generated text, the executed notebook

A run folder is self-describing: `load_run` needs nothing but its path.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

import charrnn.model  # noqa: F401  (registers CharRNN and FusedGRU for loading)
from charrnn.atomic import atomic_path, folder_lock, write_json, write_text
from charrnn.checkpoint import CHECKPOINT_DIR
from charrnn.corpus import PROJECT_ROOT
from charrnn.tokenizer import CharTokenizer

MODEL_FILE = "model.keras"
BEST_FILE = "best.keras"
HISTORY_FILE = "history.csv"
LOCK_FILE = "run.lock"
TIME_COLUMN = "train_seconds"  # the one history column that differs between identical runs
CHARS_COLUMN = "train_chars"  # training characters read by the end of each epoch


def git_commit() -> str:
    """The project's commit, with '-dirty' when the work tree has changes; 'unknown' outside git."""
    def git(*args):
        return subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), *args], capture_output=True, text=True, timeout=10
        )

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return "unknown"
        dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
        return head.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment_record(corpus_sha256: str | None, layout: dict | None = None) -> dict:
    return {
        "python": sys.version.split()[0],
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "processor": platform.machine(),
        "git_commit": git_commit(),
        "corpus_sha256": corpus_sha256,
        **({"distribution": layout} if layout else {}),
    }


def write_run_records(run_dir: Path, config: dict, tokenizer: CharTokenizer, corpus_sha256,
                      layout: dict | None = None) -> None:
    write_json(run_dir / "environment.json", environment_record(corpus_sha256, layout))
    tokenizer.save(run_dir / "tokenizer.json")
    write_json(run_dir / "config.json", config)  # last: its presence marks a run folder


def save_model(model: keras.Model, path: str | os.PathLike) -> None:
    """Save a `.keras` file atomically: a crash mid-save never leaves a file that looks complete."""
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp)


def read_history(run_dir: str | os.PathLike) -> dict[str, list[float]]:
    """history.csv as columns: {'epoch': [...], 'loss': [...], 'val_loss': [...], ...}."""
    path = Path(run_dir) / HISTORY_FILE
    if not path.is_file():
        return {}
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    columns: dict[str, list[float]] = {key: [] for key in (rows[0] if rows else {})}
    for row in rows:
        for key, value in row.items():
            columns[key].append(int(value) if key in ("epoch", CHARS_COLUMN) else float(value))
    return columns


def _history_rows(path: Path) -> tuple[list[str] | None, list[list[str]]]:
    """history.csv's header and complete rows; a last line without its line end was half written."""
    if not path.is_file():
        return None, []
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        lines = [line for line in f.read().splitlines(keepends=True) if line.endswith(("\n", "\r"))]
    parsed = list(csv.reader(lines))
    if not parsed or not parsed[0] or parsed[0][0] != "epoch":
        return None, []
    header = parsed[0]
    return header, [row for row in parsed[1:] if len(row) == len(header) and row[0].isdigit()]


def _restored_row(header: list[str], epoch: int, figures: dict | None) -> list | None:
    """The history row of `epoch` from a checkpoint's figures; None if they lack a column."""
    if not figures or any(column not in figures for column in header[1:]):
        return None
    return [epoch, *(figures[column] for column in header[1:])]


def repair_history(path: str | os.PathLike, state) -> list[int]:
    """Make history.csv hold one complete row for each epoch the checkpoint `state` covers.

    `state` is the checkpoint's `TrainingState`. Rows past it and a half-written last
    line are dropped (the resumed run does those epochs again). A missing row of its
    last epoch is restored from `state.last_row`, as CSVLogger wrote it; any other
    missing row is a ValueError, as those figures are lost. Returns the restored epochs.
    """
    path, done = Path(path), state.epochs_done
    if done == 0:
        return []
    header, rows = _history_rows(path)
    by_epoch: dict[int, list] = {}
    for row in rows:
        by_epoch.setdefault(int(row[0]), row)
    missing = [epoch for epoch in range(done) if epoch not in by_epoch]
    restored = []
    if missing == [done - 1]:
        header = header or ["epoch", *sorted(state.last_row or {})]
        row = _restored_row(header, done - 1, state.last_row)
        if row is not None:
            by_epoch[done - 1], restored, missing = row, missing, []
    if missing:
        why = ("the checkpoint holds only its last epoch's figures" if state.last_row
               else "the checkpoint holds no figures to restore them from")
        raise ValueError(
            f"{path} lacks the rows of epochs {missing} (its epoch column) that the checkpoint of record "
            f"covers ({done} epochs), and {why}. Restore history.csv from a backup, or delete the run "
            f"folder {path.parent} to train again.")
    text = io.StringIO()
    csv.writer(text).writerows([header, *(by_epoch[epoch] for epoch in range(done))])
    if not path.is_file() or path.read_bytes() != text.getvalue().encode("utf-8"):
        write_text(path, text.getvalue())
    return restored


def check_run_folder(run_dir: str | os.PathLike, checkpoint) -> None:
    """Before a run with a config.json resumes or starts again: refuse or repair a damaged folder.

    `checkpoint` is what `checkpoint.load_checkpoint(run_dir)` returned: (state, arrays)
    or None. With one, history.csv is repaired against it (`repair_history`). A run with
    two or more history rows but neither model.keras nor checkpoints/ is a finished run
    that lost its model (epoch 1's row comes after epoch 0's checkpoint, and checkpoints/
    is removed only once model.keras is saved): a ValueError, not a silent retraining.
    """
    run_dir = Path(run_dir)
    if checkpoint is not None:
        for epoch in repair_history(run_dir / HISTORY_FILE, checkpoint[0]):
            print(f"{run_dir / HISTORY_FILE} had lost the row of epoch {epoch}: restored it from the "
                  "checkpoint of record.")
        return
    # A checkpoints/ folder whose every checkpoint is damaged: an unfinished run, started again.
    if (run_dir / MODEL_FILE).exists() or (run_dir / CHECKPOINT_DIR).exists():
        return
    _, rows = _history_rows(run_dir / HISTORY_FILE)
    if len(rows) >= 2:
        raise ValueError(
            f"{MODEL_FILE} is missing from finished run {run_dir} ({len(rows)} epochs in its history.csv): "
            "restore it from a backup, or train again under another run name / delete the folder "
            "(that replaces its history.csv and best.keras).")


def read_histories(runs_dir: str | os.PathLike, names) -> dict[str, dict]:
    """{name: history} for each run of `names` (one name or a list) that has a history with time columns."""
    names = [names] if isinstance(names, str) else list(names or [])
    histories = {}
    for name in names:
        history = read_history(Path(runs_dir) / name)
        if history and TIME_COLUMN in history:
            histories[name] = history
        else:
            print(f"No run {name!r} with a history of this version in {runs_dir}: not compared.")
    return histories


def save_samples(
    run_dir: str | os.PathLike, samples: dict[str, str], filename: str = "samples.txt"
) -> Path:
    """Write generated text, one headed section per setting (e.g. 'temperature 0.2').

    `filename` keeps the samples of different notebooks apart (e.g. 'samples_generate.txt').
    """
    path = Path(run_dir) / filename
    write_text(path, "".join(f"=== {title} ===\n{text}\n\n" for title, text in samples.items()))
    return path


@dataclass
class Run:
    path: Path
    model: keras.Model
    tokenizer: CharTokenizer
    config: dict
    environment: dict


def load_run(run_dir: str | os.PathLike, checkpoint: str = MODEL_FILE) -> Run:
    """Load a finished run (or its best checkpoint with checkpoint='best.keras')."""
    run_dir = _run_folder(run_dir)
    config = read_config(run_dir)
    model_path = run_dir / checkpoint
    if not model_path.is_file():
        hint = (
            "the run has not finished: run training again with the same run name to resume it"
            if (run_dir / CHECKPOINT_DIR).exists()
            else "train the run first, or pass checkpoint='best.keras'"
        )
        raise FileNotFoundError(f"Run folder {run_dir} has no {checkpoint}: {hint}.")
    try:
        model = keras.saving.load_model(model_path, compile=False)
    except Exception as err:  # Keras raises several types for a damaged zip/h5
        raise ValueError(
            f"{model_path} could not be loaded ({type(err).__name__}: {err}). The file is damaged "
            "or not a Keras model; retrain the run or use another checkpoint."
        ) from None
    environment_path = run_dir / "environment.json"
    return Run(
        path=run_dir,
        model=model,
        tokenizer=CharTokenizer.load(run_dir / "tokenizer.json"),
        config=config,
        environment=_read_json(environment_path) if environment_path.is_file() else {},
    )


def _run_folder(run_dir: str | os.PathLike) -> Path:
    """`run_dir` as a Path, refusing a file given in place of the folder (config.json, model.keras)."""
    run_dir = Path(run_dir)
    if run_dir.is_file():
        raise FileNotFoundError(
            f"{run_dir} is a file: pass the run folder, not its {run_dir.name} (here {run_dir.parent}).")
    if not run_dir.is_dir():
        raise FileNotFoundError(f"Run folder {run_dir} does not exist.")
    return run_dir


def _read_json(path: Path) -> dict:
    """A run record (config.json, environment.json); a damaged one is a ValueError naming the file."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err}): restore it from a backup, or delete the "
                         "run folder to train again.") from None
    if not isinstance(record, dict):
        raise ValueError(f"{path} holds a JSON {type(record).__name__}, not an object: it is not a "
                         "charrnn record. Restore it from a backup, or delete the run folder to train again.")
    return record


def read_config(run_dir: str | os.PathLike) -> dict:
    path = _run_folder(run_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"Run folder {run_dir} has no config.json; it is not a charrnn run.")
    return _read_json(path)


@contextlib.contextmanager
def run_lock(run_dir: str | os.PathLike):
    """Hold `run_dir/run.lock` for the block: one process writes a run folder at a time.

    See `atomic.folder_lock`: a dead owner's lock is taken over, a live owner's is a ValueError.
    """
    with folder_lock(run_dir, LOCK_FILE, what="Run", rename_hint="run name"):
        yield
