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
import json
import os
import platform
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

import charrnn.model  # noqa: F401  (registers CharRNN and FusedGRU for loading)
from charrnn.atomic import atomic_path, write_json, write_text
from charrnn.checkpoint import CHECKPOINT_DIR
from charrnn.data import PROJECT_ROOT
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
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"Run folder {run_dir} does not exist.")
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
        environment=json.loads(environment_path.read_text()) if environment_path.is_file() else {},
    )


def read_config(run_dir: str | os.PathLike) -> dict:
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"Run folder {run_dir} has no config.json; it is not a charrnn run.")
    return json.loads(path.read_text())


def _process_alive(pid: int) -> bool:
    """True for a running process; False for none or a zombie (killed, not yet reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        return True


def _read_lock(path: Path) -> dict | None:
    """The lock's owner; None while its owner is still writing it (or it was left empty)."""
    for _ in range(20):
        try:
            owner = json.loads(path.read_text())
            return {"pid": int(owner["pid"]), "host": str(owner["host"])}
        except FileNotFoundError:
            raise
        except (OSError, ValueError, KeyError, TypeError):
            time.sleep(0.05)
    return None


@contextlib.contextmanager
def run_lock(run_dir: str | os.PathLike):
    """Hold `run_dir/run.lock` for the block: one process writes a run folder at a time.

    A lock left by a dead process on this host is taken over with a message; a
    live owner's lock is a ValueError that names it. The folder is created if
    needed, and removed again if the block fails and leaves it empty.
    """
    run_dir = Path(run_dir)
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    me = {"pid": os.getpid(), "host": socket.gethostname()}
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                owner = _read_lock(path)
            except FileNotFoundError:
                continue  # released meanwhile: try again
            if owner is not None and owner["host"] != me["host"]:
                raise ValueError(
                    f"Run {run_dir} is locked by process {owner['pid']} on host {owner['host']}. "
                    f"If that process is gone, delete {path}."
                ) from None
            if owner is not None and _process_alive(owner["pid"]):
                raise ValueError(
                    f"Run {run_dir} is being written by process {owner['pid']} on this host. Wait for it "
                    "to finish or stop it, or choose another run name."
                ) from None
            who = f"process {owner['pid']}, no longer running" if owner else "an unreadable lock file"
            print(f"Taking over the lock of {run_dir} from {who}.")
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        break
    try:
        yield
    finally:
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            if json.loads(path.read_text()) == me:
                path.unlink()
        if created:
            with contextlib.suppress(OSError):
                run_dir.rmdir()  # only succeeds when the failed start left nothing behind
