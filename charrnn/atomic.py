"""Atomic file writes: a temporary name in the same folder, then a rename.

An interrupted run never leaves a half-written file under its final name.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ""):
    """Yield a temporary path next to `path`; rename it onto `path` if the block succeeds.

    `suffix` keeps the extension when the writer insists on one (Keras wants `.keras`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}{suffix}")
    try:
        yield tmp
        crash_point("before-rename")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: str | os.PathLike, text: str, durable: bool = False) -> None:
    """Write `text` atomically; `durable` also fsyncs it before the rename."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            if durable:
                f.flush()
                os.fsync(f.fileno())


def write_json(path: str | os.PathLike, obj, durable: bool = False) -> None:
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n", durable=durable)


def fsync_dir(folder: str | os.PathLike) -> None:
    """Make the renames inside `folder` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# The kill-anywhere test (tests/kill_anywhere.py) sets CHARRNN_CRASH_AT=<label>:<n> to SIGKILL the
# process the n-th time it reaches `crash_point(label)`: moments inside a write that random timing
# rarely hits. Unset, this costs one dictionary lookup.
_crash_counts: dict[str, int] = {}


def crash_point(label: str) -> None:
    target = os.environ.get("CHARRNN_CRASH_AT")
    if not target:
        return
    wanted, _, count = target.rpartition(":")
    if wanted != label:
        return
    _crash_counts[label] = _crash_counts.get(label, 0) + 1
    if _crash_counts[label] == int(count):
        os.kill(os.getpid(), signal.SIGKILL)
