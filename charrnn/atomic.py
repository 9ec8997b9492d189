"""Atomic file writes: a temporary name in the same folder, then a rename.

An interrupted run never leaves a half-written file under its final name.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import signal
import socket
import time
from pathlib import Path

# numpy's tofile reports a short write (what a full disk causes) as a bare OSError without an errno.
_SHORT_WRITE = re.compile(r"^\d+ requested and \d+ written$")
_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_READ_ONLY = {errno.EROFS, errno.EACCES, errno.EPERM}


class WriteError(OSError):
    """A write the system refused (disk full, read-only folder): one line naming the path and the fix."""

    def __str__(self) -> str:
        return self.strerror


def write_error(err: OSError, path: str | os.PathLike) -> OSError:
    """`err` as a WriteError naming `path` when it is a full disk or a read-only folder, else `err`."""
    path = Path(path)
    if err.errno in _DISK_FULL or (err.errno is None and _SHORT_WRITE.match(str(err))):
        return WriteError(errno.ENOSPC, f"Disk full while writing {path}: free some space (or write the "
                                        "outputs to another disk with $CHARRNN_OUTPUTS) and run again.")
    if err.errno in _READ_ONLY:
        reason = "read-only file system" if err.errno == errno.EROFS else "permission denied"
        return WriteError(err.errno, f"{path.parent} is read-only ({reason}): cannot write {path.name}. "
                                     "Make it writable, or write the outputs elsewhere ($CHARRNN_OUTPUTS).")
    return err


@contextlib.contextmanager
def explain_write_errors(path: str | os.PathLike):
    """Re-raise a full disk or a read-only folder met inside the block as a WriteError naming `path`."""
    try:
        yield
    except WriteError:
        raise
    except OSError as err:
        clear = write_error(err, path)
        if clear is err:
            raise
        raise clear from None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ""):
    """Yield a temporary path next to `path`; rename it onto `path` if the block succeeds.

    `suffix` keeps the extension when the writer insists on one (Keras wants `.keras`).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}{suffix}")
    try:
        with explain_write_errors(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            yield tmp
            crash_point("before-rename")
            os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):  # a read-only folder cannot hold a leftover either
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


# One writer per folder: a run folder (runs.run_lock) or a prepared dataset (data.prepare_data).
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


def _take_lock(folder: Path, path: Path, me: dict, what: str, rename_hint: str) -> None:
    """Create `path` holding `me`, taking over a dead owner's lock; a live owner is a ValueError."""
    while True:
        try:
            with explain_write_errors(path):
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                owner = _read_lock(path)
            except FileNotFoundError:
                continue  # released meanwhile: try again
            if owner is not None and owner["host"] != me["host"]:
                raise ValueError(
                    f"{what} {folder} is locked by process {owner['pid']} on host {owner['host']}. "
                    f"If that process is gone, delete {path}."
                ) from None
            if owner is not None and _process_alive(owner["pid"]):
                raise ValueError(
                    f"{what} {folder} is being written by process {owner['pid']} on this host. Wait for it "
                    f"to finish or stop it, or choose another {rename_hint}."
                ) from None
            who = f"process {owner['pid']}, no longer running" if owner else "an unreadable lock file"
            print(f"Taking over the lock of {folder} from {who}.")
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        return


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, lock_name: str, what: str = "Run", rename_hint: str = "run name"):
    """Hold `folder/lock_name` for the block: one process writes the folder at a time.

    A lock left by a dead process on this host is taken over with a message; a
    live owner's lock is a ValueError that names it (`what` and `rename_hint` word
    it for a run or a dataset). The folder is created if needed, and removed again
    if the block fails and leaves it empty.
    """
    folder = Path(folder)
    created = not folder.exists()
    with explain_write_errors(folder):
        folder.mkdir(parents=True, exist_ok=True)
    path = folder / lock_name
    me = {"pid": os.getpid(), "host": socket.gethostname()}
    try:
        _take_lock(folder, path, me, what, rename_hint)
    except BaseException:
        if created:
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    try:
        yield
    finally:
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            if json.loads(path.read_text()) == me:
                path.unlink()
        if created:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only succeeds when the failed start left nothing behind
