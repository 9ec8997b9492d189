"""The checkpoint of record: the only thing a resumed run reads.

At each epoch end the run writes `checkpoints/epoch-NNNNN.npz` (every model
variable, random-seed states included, and every optimizer variable) and then,
once that file is on disk, `checkpoints/epoch-NNNNN.json` (the training state
and the npz's size and sha256). A checkpoint counts only when both agree, so a
kill at any moment leaves either the previous checkpoint or the new one, never
a half-written file that looks complete. The two newest are kept: a damaged
newest one falls back to the one before, with a message.

Only public Keras APIs are used (`Model.variables`, `Optimizer.variables`,
`Optimizer.build`); nothing depends on Keras's own backup files.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np

from charrnn.atomic import atomic_path, crash_point, fsync_dir, write_json

CHECKPOINT_DIR = "checkpoints"
KEEP = 2  # the newest and one to fall back on
_NAME = re.compile(r"^epoch-(\d{5,})\.json$")


@dataclass
class TrainingState:
    """What a resumed run needs beside the variables."""

    epochs_done: int = 0  # finished epochs; training resumes at this epoch index
    best_val_loss: float | None = None  # lowest val_loss among those epochs (None: no validation yet)
    best_epoch: int | None = None  # the epoch that reached it (early stopping counts from there)
    train_seconds: float = 0.0  # wall time spent in training so far, across attempts
    train_chars: int = 0  # training characters (targets) read so far
    stop_reason: str | None = None  # "time budget", "early stopping": the run is over
    # The last epoch's history.csv figures ({column: value}, JSON numbers): a resume restores that row
    # if history.csv lost it (see runs.repair_history). None: not recorded (an older checkpoint).
    last_row: dict | None = None


_OPTIONAL = {"last_row"}  # fields a marker written before they existed may lack


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_checkpoint(run_dir: str | os.PathLike, model: keras.Model, state: TrainingState,
                    average=None) -> Path:
    """Write the checkpoint for `state.epochs_done` finished epochs, then drop the older ones.

    `average`: the run's `WeightAverage`, saved beside the model and optimizer variables.
    """
    folder = Path(run_dir) / CHECKPOINT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"epoch-{state.epochs_done:05d}"
    arrays = {f"model/{i:04d}": np.asarray(v) for i, v in enumerate(model.variables)}
    arrays.update({f"optimizer/{i:04d}": np.asarray(v) for i, v in enumerate(model.optimizer.variables)})
    arrays.update(average.arrays() if average is not None else {})
    with atomic_path(folder / f"{stem}.npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        crash_point("checkpoint-data")
    marker = {**asdict(state), "file": f"{stem}.npz", "bytes": (folder / f"{stem}.npz").stat().st_size,
              "sha256": _file_digest(folder / f"{stem}.npz")}
    crash_point("checkpoint-marker")
    write_json(folder / f"{stem}.json", marker, durable=True)
    fsync_dir(folder)
    for old in _markers(folder)[KEEP:]:
        (folder / old["file"]).unlink(missing_ok=True)
        (folder / f"{Path(old['file']).stem}.json").unlink(missing_ok=True)
    for orphan in folder.glob("*.npz"):  # data files whose marker was never written
        if not (folder / f"{orphan.stem}.json").exists():
            orphan.unlink(missing_ok=True)
    return folder / f"{stem}.npz"


def _markers(folder: Path) -> list[dict]:
    """Readable markers, newest first; unreadable ones are reported and skipped."""
    markers = []
    for path in folder.glob("epoch-*.json") if folder.is_dir() else []:
        if not _NAME.match(path.name):
            continue
        try:
            marker = json.loads(path.read_text())
            marker["epochs_done"] = int(marker["epochs_done"])
            markers.append(marker)
        except (OSError, ValueError, KeyError, TypeError):
            print(f"Checkpoint marker {path} is unreadable: ignored.")
    return sorted(markers, key=lambda m: m["epochs_done"], reverse=True)


def load_checkpoint(run_dir: str | os.PathLike) -> tuple[TrainingState, dict[str, np.ndarray]] | None:
    """The newest intact checkpoint as (state, arrays), or None when there is none.

    A checkpoint whose data file is missing, of the wrong size or checksum, or
    unreadable is skipped with a message; the one before it is used.
    """
    folder = Path(run_dir) / CHECKPOINT_DIR
    for marker in _markers(folder):
        path = folder / marker["file"]
        problem = None
        if not path.is_file():
            problem = "its data file is missing"
        elif path.stat().st_size != marker.get("bytes"):
            problem = f"its data file has {path.stat().st_size} bytes, {marker.get('bytes')} expected"
        elif _file_digest(path) != marker.get("sha256"):
            problem = "its data file does not match the recorded sha256"
        if problem is None:
            try:
                with np.load(path) as npz:
                    arrays = {key: npz[key] for key in npz.files}
                state = TrainingState(**{field: marker[field] for field in TrainingState.__annotations__
                                         if field in marker or field not in _OPTIONAL})
                return state, arrays
            except (OSError, ValueError, KeyError, TypeError) as err:
                problem = f"it cannot be read ({type(err).__name__}: {err})"
        print(f"Checkpoint {path.name} (epoch {marker['epochs_done']}) is damaged: {problem}. "
              "Falling back to the one before.")
    return None


def restore(model: keras.Model, arrays: dict[str, np.ndarray]) -> None:
    """Put a checkpoint's values back into a compiled `model` of the same architecture."""
    optimizer = model.optimizer
    optimizer.build(model.trainable_variables)  # creates the slots the checkpoint fills
    for prefix, variables in (("model", model.variables), ("optimizer", optimizer.variables)):
        saved = [arrays[key] for key in sorted(arrays) if key.startswith(f"{prefix}/")]
        shapes = [tuple(v.shape) for v in variables]
        if [tuple(a.shape) for a in saved] != shapes:
            raise ValueError(
                f"The checkpoint's {prefix} variables do not fit this model "
                f"({len(saved)} saved, {len(shapes)} expected): it belongs to another architecture. "
                f"Delete the run's {CHECKPOINT_DIR}/ folder to start over."
            )
        for variable, value in zip(variables, saved):
            variable.assign(value)
