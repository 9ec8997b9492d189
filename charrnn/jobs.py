"""A notebook run as a job, what `make` runs for every notebook target:

    python -m charrnn.jobs NOTEBOOK EXECUTED [-p NAME VALUE] [-r NAME VALUE] [-y YAML] [--timeout S]

papermill's API, plus what a job on a shared machine needs:

- papermill writes into a temporary name beside EXECUTED, renamed over it only on success, so a
  failed or cancelled job never replaces a finished one's record;
- a failed or cancelled job keeps its partial notebook as <stem>.failed.ipynb (or
  <stem>.failed-<pid>.ipynb if a concurrent job wrote that one); a success removes only a failed
  notebook older than itself;
- SIGINT, SIGTERM and SIGHUP stop the kernel too: jupyter_client starts it in a session of its
  own, so no signal sent to make or to its process group reaches it. The kernel gets SIGINT (the
  cell unwinds and releases its run lock), then SIGKILL after GRACE_SECONDS, which is safe because
  every write is atomic; the job exits with 128 + the signal's number;
- an exception raised in a cell ends the job with one line on stderr, `make: <message>`; the
  traceback stays in the failed notebook. Cells' printed output streams through as it comes;
  papermill's progress and info lines and the kernel's own log lines are hidden.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from pathlib import Path

import yaml

GRACE_SECONDS = 3.0  # between the kernel's SIGINT and its SIGKILL
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# The kernel's own log (the TCP-transport warning, "KeyboardInterrupt caught in kernel" when
# jupyter_client interrupts it on shutdown) goes to our stderr, not to a cell: only fatal lines.
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=CRITICAL"]


class Cancelled(KeyboardInterrupt):
    """A signal asked the job to stop. A KeyboardInterrupt: asyncio (under papermill's kernel client)
    lets only that and SystemExit out of its loop at once; any other exception waits in a task."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.failed: Path | None = None  # the partial notebook kept


class JobFailed(Exception):
    """A notebook job that did not finish: `message` is the one line for the user."""


def _cancel(signum, frame):
    raise Cancelled(signum)


def temporary_path(executed: Path, pid: int | None = None) -> Path:
    return executed.with_name(f".{executed.name}.tmp-{pid or os.getpid()}.ipynb")


def run_notebook(notebook: Path, executed: Path, parameters: dict, timeout: float | None = None,
                 stdout=None, stderr=None) -> Path:
    """Execute `notebook` into `executed` (see the module's docstring); raises JobFailed or Cancelled.

    stdout/stderr: files the cells' streams are copied to as they come (none: not copied).
    """
    import papermill

    notebook, executed = Path(notebook), Path(executed)
    started = time.time()
    remove_stale_temporaries(executed)
    temporary = temporary_path(executed)
    before = set(descendants(os.getpid()))  # the test harness runs jobs inside a process with children
    try:
        papermill.execute_notebook(
            str(notebook), str(temporary), parameters=parameters, cwd=str(notebook.parent),
            kernel_name="python3", execution_timeout=timeout, progress_bar=False,
            stdout_file=stdout, stderr_file=stderr, extra_arguments=KERNEL_ARGUMENTS,
        )
    except BaseException as err:
        with _signals_ignored():  # a second Ctrl-C must not interrupt the clean-up
            stop_processes([pid for pid in descendants(os.getpid()) if pid not in before])
            failed = keep_failed(temporary, executed, started)
        if isinstance(err, Cancelled):
            err.failed = failed
            raise
        raise JobFailed(failure_line(err, notebook, failed)) from err
    os.replace(temporary, executed)
    earlier = executed.with_name(executed.stem + ".failed.ipynb")
    if earlier.is_file() and earlier.stat().st_mtime < started:  # superseded; a concurrent job's stays
        earlier.unlink()
    return executed


def failure_line(err: BaseException, notebook: Path, failed: Path | None) -> str:
    """One line: the error's own message (ours name the problem and the fix), then where to read more."""
    name, message = type(err).__name__, str(err)
    if hasattr(err, "ename") and hasattr(err, "evalue"):  # papermill's PapermillExecutionError
        name, message = err.ename, err.evalue
    message = " ".join(message.split()) or "no message"
    if name not in ("ValueError", "FileNotFoundError"):
        message = f"{name}: {message}"
    where = f" (traceback in {failed})" if failed else ""
    return f"{notebook.name}: {message}{where}"


def keep_failed(temporary: Path, executed: Path, started: float) -> Path | None:
    """Rename the partial notebook to <stem>.failed.ipynb, unless a concurrent job wrote that one."""
    if not temporary.is_file():
        return None
    failed = executed.with_name(executed.stem + ".failed.ipynb")
    if failed.is_file() and failed.stat().st_mtime >= started:
        failed = executed.with_name(f"{executed.stem}.failed-{os.getpid()}.ipynb")
    os.replace(temporary, failed)
    return failed


def remove_stale_temporaries(executed: Path) -> None:
    """Temporary notebooks of jobs that were SIGKILLed (the one signal nothing can catch)."""
    for path in executed.parent.glob(f".{executed.name}.tmp-*.ipynb"):
        pid = path.name.rsplit("tmp-", 1)[1].removesuffix(".ipynb")
        if pid.isdigit() and not alive(int(pid)):
            path.unlink(missing_ok=True)


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, read from /proc: the kernel is not in our process group."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def stop_processes(pids: list[int], grace: float = GRACE_SECONDS) -> None:
    """SIGINT, then SIGKILL for whatever is still running after `grace` seconds."""
    for signum, wait in ((signal.SIGINT, grace), (signal.SIGKILL, 10.0)):
        pids = [pid for pid in pids if alive(pid)]
        for pid in pids:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)


class _signals_ignored:
    def __enter__(self):
        self.saved = [signal.signal(signum, signal.SIG_IGN) for signum in SIGNALS]

    def __exit__(self, *exc):
        for signum, handler in zip(SIGNALS, self.saved):
            signal.signal(signum, handler)


def parse_parameters(args) -> dict:
    """papermill's -y YAML, -p NAME VALUE (YAML-typed) and -r NAME VALUE (kept as a string)."""
    parameters = {}
    for text in args.yaml or []:
        value = yaml.safe_load(text)
        if not isinstance(value, dict):
            raise JobFailed(f"-y {text!r} is not a YAML mapping: write -y 'name: value'.")
        parameters.update(value)
    # -p as papermill types it: YAML, plus Python's None (papermill's own `-p x None`).
    parameters.update({name: None if value == "None" else yaml.safe_load(value)
                       for name, value in args.parameters or []})
    parameters.update(dict(args.raw or []))
    return parameters


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebook", type=Path)
    parser.add_argument("executed", type=Path)
    parser.add_argument("-p", dest="parameters", nargs=2, action="append", metavar=("NAME", "VALUE"))
    parser.add_argument("-r", dest="raw", nargs=2, action="append", metavar=("NAME", "VALUE"))
    parser.add_argument("-y", dest="yaml", action="append", metavar="YAML")
    parser.add_argument("--timeout", type=float, help="seconds per cell (none or negative: no limit)")
    args = parser.parse_args(argv)
    for signum in SIGNALS:
        signal.signal(signum, _cancel)
    logging.basicConfig(format="papermill: %(message)s", level=logging.WARNING)  # its warnings only
    code = 0
    try:
        timeout = args.timeout if args.timeout and args.timeout > 0 else None
        run_notebook(args.notebook, args.executed, parse_parameters(args), timeout, sys.stdout, sys.stderr)
    except JobFailed as err:
        print(f"make: {err}", file=sys.stderr)
        code = 1
    except Cancelled as stop:
        where = f"; the partial notebook is {stop.failed}" if stop.failed else ""
        print(f"make: {args.notebook.name} stopped by {stop}{where}", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        # The abandoned event loop and ZeroMQ sockets of the stopped kernel can block or warn at exit.
        os._exit(128 + stop.signum)
    return code


if __name__ == "__main__":
    sys.exit(main())
