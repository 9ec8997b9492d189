"""charrnn.jobs, the runner behind every notebook target of make, on a two-cell notebook (real kernel).

The signals a job receives from make or a terminal are in tests/test_signals.py (`make test-signals`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from charrnn import jobs

ROOT = Path(__file__).resolve().parents[1]


def write_notebook(folder: Path, body: str) -> Path:
    """`x = 1` as the parameters cell, then `body`."""
    notebook = nbformat.v4.new_notebook()
    parameters = nbformat.v4.new_code_cell("x = 1")
    parameters.metadata["tags"] = ["parameters"]
    notebook.cells = [parameters, nbformat.v4.new_code_cell(body)]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / "job.ipynb"
    nbformat.write(notebook, path)
    return path


CHECK_X = 'print("x is", x)\nif x == 3:\n    raise ValueError("x is 3: choose\\n another x.")'


def run_job(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "charrnn.jobs", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


def hidden(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.name.startswith("."))


def test_a_failure_keeps_the_record_and_reports_one_line_then_a_success_replaces_both(tmp_path):
    notebook, executed = write_notebook(tmp_path, CHECK_X), tmp_path / "out" / "job.ipynb"
    executed.parent.mkdir()
    executed.write_text("the finished run's record")

    failed = run_job(str(notebook), str(executed), "-p", "x", "3")
    assert failed.returncode == 1
    failed_notebook = executed.with_name("job.failed.ipynb")
    assert failed.stderr.splitlines() == [
        f"make: job.ipynb: x is 3: choose another x. (traceback in {failed_notebook})"]
    assert executed.read_text() == "the finished run's record"
    assert "x is 3" in failed_notebook.read_text() and hidden(executed.parent) == []

    succeeded = run_job(str(notebook), str(executed), "-y", "x: 2")
    assert succeeded.returncode == 0, succeeded.stderr
    assert succeeded.stdout == "x is 2\n" and succeeded.stderr == ""  # the cell's output, no log lines
    assert "x is 2" in executed.read_text()
    assert not failed_notebook.exists() and hidden(executed.parent) == []  # superseded


def test_a_concurrent_jobs_failed_notebook_is_neither_replaced_nor_deleted(tmp_path, monkeypatch):
    notebook, executed = write_notebook(tmp_path, CHECK_X), tmp_path / "job.ipynb"
    theirs = tmp_path / "job.failed.ipynb"
    started = time.time()

    def written_by_another_job():  # after this job started
        theirs.write_text("another job's failure")
        os.utime(theirs, (started + 5, started + 5))

    original = jobs.remove_stale_temporaries
    monkeypatch.setattr(jobs, "remove_stale_temporaries",
                        lambda path: (original(path), written_by_another_job()))
    with pytest.raises(jobs.JobFailed, match=r"job\.failed-\d+\.ipynb"):
        jobs.run_notebook(notebook, executed, {"x": 3})
    jobs.run_notebook(notebook, executed, {"x": 1})
    assert theirs.read_text() == "another job's failure"
    assert len(list(tmp_path.glob("job.failed-*.ipynb"))) == 1


def test_a_killed_jobs_temporary_notebook_is_removed_by_the_next_job(tmp_path):
    notebook, executed = write_notebook(tmp_path, CHECK_X), tmp_path / "job.ipynb"
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale, live = jobs.temporary_path(executed, dead.pid), jobs.temporary_path(executed, os.getppid())
    stale.write_text("{}")
    live.write_text("{}")  # a running job's
    jobs.run_notebook(notebook, executed, {})
    assert not stale.exists() and live.exists()


@pytest.mark.parametrize("args, parameters", [
    (["-p", "n", "5", "-p", "flag", "True", "-p", "none", "None"], {"n": 5, "flag": True, "none": None}),
    (["-r", "name", "123", "-r", "prompt", 'he said "go" `echo x` $(id)'],
     {"name": "123", "prompt": 'he said "go" `echo x` $(id)'}),
    (["-y", "overrides: {units: 8, cell: lstm}", "-r", "run_name", "r"],
     {"overrides": {"units": 8, "cell": "lstm"}, "run_name": "r"}),
])
def test_parameters_as_papermill_reads_them(args, parameters, tmp_path):
    parser_args = type("Args", (), {"parameters": None, "raw": None, "yaml": None})()
    for flag, attribute in (("-p", "parameters"), ("-r", "raw")):
        pairs = [(args[i + 1], args[i + 2]) for i in range(len(args)) if args[i] == flag]
        setattr(parser_args, attribute, pairs or None)
    parser_args.yaml = [args[i + 1] for i in range(len(args)) if args[i] == "-y"] or None
    assert jobs.parse_parameters(parser_args) == parameters


def test_a_yaml_parameter_that_is_not_a_mapping_is_one_line(tmp_path):
    notebook = write_notebook(tmp_path, CHECK_X)
    result = run_job(str(notebook), str(tmp_path / "out.ipynb"), "-y", "just text")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "make: -y 'just text' is not a YAML mapping: write -y 'name: value'."]


def test_a_missing_notebook_is_one_line(tmp_path):
    result = run_job(str(tmp_path / "absent.ipynb"), str(tmp_path / "out.ipynb"))
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("make: absent.ipynb: ") and "absent.ipynb" in line[len("make: absent.ipynb: "):]
