"""A cancelled job stops entirely: SIGINT, SIGTERM or SIGHUP to make, to its process group (a Ctrl-C, a
closed terminal) or to the job itself ends the job and its Jupyter kernel, keeps the partial notebook,
and the rerun resumes to the history an uninterrupted run writes. `make test-signals` (in CI).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_jobs import ROOT, write_notebook
from test_makefile import make_environment

from charrnn.jobs import alive, descendants

pytestmark = pytest.mark.signals

SLEEPER = "import os, time\nprint('kernel', os.getpid(), flush=True)\ntime.sleep(600)"


def wait_for_line(process: subprocess.Popen, text: str, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if text in line:
            return line
        if not line and process.poll() is not None:
            break
    raise AssertionError(f"no line with {text!r} within {timeout} s")


def gone_within(pids: list[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [pid for pid in pids if alive(pid)]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_to_the_job_stops_its_kernel_and_keeps_the_partial_notebook(signum, tmp_path):
    notebook, executed = write_notebook(tmp_path, SLEEPER), tmp_path / "out" / "job.ipynb"
    executed.parent.mkdir()
    job = subprocess.Popen([sys.executable, "-m", "charrnn.jobs", str(notebook), str(executed)], cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    kernel = int(wait_for_line(job, "kernel").split()[1])
    assert kernel in descendants(job.pid)
    job.send_signal(signum)
    assert job.wait(timeout=20) == 128 + signum
    assert gone_within([kernel], 10) == []
    failed = executed.with_name("job.failed.ipynb")
    assert f"stopped by {signal.Signals(signum).name}; the partial notebook is {failed}" in job.stderr.read()
    assert f"kernel {kernel}" in failed.read_text()
    assert sorted(path.name for path in executed.parent.iterdir()) == ["job.failed.ipynb"]


TINY = ["DATASET=tiny", "EPOCHS=6", "UNITS=16", "TIMEOUT=300"]


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    from charrnn.corpus import find_corpus, read_text
    from charrnn.data import prepare_data

    out = tmp_path_factory.mktemp("signals") / "outputs"
    prepare_data(read_text(find_corpus())[:40_000], out / "data" / "tiny")
    return out


def make_train(out: Path, run: str) -> subprocess.Popen:
    command = ["make", "--no-print-directory", "-C", str(ROOT), "train-stateful", f"OUT={out}", f"SRUN={run}",
               *TINY]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=make_environment(), start_new_session=True)


def history_without_time(run_dir: Path) -> list[str]:
    lines = (run_dir / "history.csv").read_text().splitlines()
    skip = lines[0].split(",").index("train_seconds")
    return [",".join(field for i, field in enumerate(line.split(",")) if i != skip) for line in lines]


@pytest.fixture(scope="module")
def uninterrupted(outputs):
    make = make_train(outputs, "whole")
    output = make.communicate(timeout=600)[0]
    assert make.returncode == 0, output[-3000:]
    return history_without_time(outputs / "runs" / "whole")


@pytest.mark.parametrize("signum, target", [
    (signal.SIGTERM, "make"),  # kill <make pid>, what a scheduler sends: make passes it to its recipe
    (signal.SIGINT, "group"),  # Ctrl-C in the terminal
    (signal.SIGHUP, "group"),  # the terminal closed
    (signal.SIGTERM, "job"),
    (signal.SIGINT, "job"),
])
def test_stopping_make_mid_epoch_stops_the_whole_job_and_the_rerun_resumes(signum, target, outputs,
                                                                           uninterrupted):
    run = f"{signal.Signals(signum).name}-{target}"
    make = make_train(outputs, run)
    wait_for_line(make, "Epoch 2/")  # mid-run: the first epoch is recorded, the second under way
    time.sleep(0.5)
    job = [pid for pid in descendants(make.pid)
           if b"charrnn.jobs" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    assert len(job) == 1
    everything = descendants(make.pid)
    {"make": lambda: os.kill(make.pid, signum), "group": lambda: os.killpg(make.pid, signum),
     "job": lambda: os.kill(job[0], signum)}[target]()
    output = make.communicate(timeout=60)[0]
    assert make.returncode != 0
    assert gone_within(everything, 10) == [], f"survivors of {target} {signum!r}"
    assert f"stopped by {signal.Signals(signum).name}" in output
    run_dir = outputs / "runs" / run
    assert not [path.name for path in run_dir.iterdir() if path.name.startswith(".")], "no temporary or lock"
    assert (run_dir / "03_train_stateful.failed.ipynb").is_file()

    rerun = make_train(outputs, run)
    output = rerun.communicate(timeout=600)[0]
    assert rerun.returncode == 0, output[-3000:]
    assert f"Resuming {run_dir} after epoch" in output
    assert history_without_time(run_dir) == uninterrupted
    assert not (run_dir / "03_train_stateful.failed.ipynb").exists()
