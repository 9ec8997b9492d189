"""The Makefile runs every notebook as a job (charrnn.jobs: replaced only on success, tested in
test_jobs.py), passes what the user typed as data, and checks folder names before creating anything.

Most tests run `make` with a stand-in for the project's Python (`PY=`) that plays the job runner:
it writes the executed notebook it is given, then exits with $FAKE_JOB_EXIT. One test runs the
real runner on notebook 01.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

FAKE_PYTHON = f"""#!{sys.executable}
# Stands in for `python -m charrnn.jobs input output -p ...`: writes `output`, exits as told.
import json, os, sys
args = sys.argv[1:]
if args[:2] == ["-m", "charrnn.config"]:  # the make-variable bridge runs for real
    os.execv({sys.executable!r}, [{sys.executable!r}, *args])
if args[:2] == ["-m", "charrnn"]:  # the CLI: record what it was given
    json.dump(args, open(os.environ["FAKE_CLI_RECORD"], "w"))
    sys.exit(0)
assert args[:2] == ["-m", "charrnn.jobs"], args
with open(args[3], "w") as f:
    json.dump({{"fake_job": args}}, f)
sys.exit(int(os.environ.get("FAKE_JOB_EXIT", "0")))
"""

# target -> (executed notebook under OUT, extra make variables)
TARGETS = {
    "data": ("data/tinyshakespeare/01_data_prep.ipynb", []),
    "train-stateless": ("runs/ref/02_train_stateless.ipynb", ["RUN=ref"]),
    "train-stateful": ("runs/sref/03_train_stateful.ipynb", ["SRUN=sref"]),
}


@pytest.fixture
def fake_python(tmp_path):
    tools = tmp_path / "tools"
    tools.mkdir()
    script = tools / "python"
    script.write_text(FAKE_PYTHON)
    script.chmod(0o755)
    stamp = tools / "installed"
    stamp.touch()
    return script, stamp


def make_environment(env=None) -> dict:
    """This environment without an outer make's variables (`make test` runs the tests), plus `env`."""
    environment = {
        key: value for key, value in os.environ.items()
        if key not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "CHARRNN_OUTPUTS")
    }
    return {**environment, **(env or {})}


def run_make(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), *args],
        capture_output=True, text=True, env=make_environment(env), timeout=600,
    )


def hidden_files(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.name.startswith("."))


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_each_notebook_target_runs_as_a_job_and_passes_its_failure_on(target, tmp_path, fake_python):
    script, stamp = fake_python
    out = tmp_path / "outputs"
    executed_name, variables = TARGETS[target]
    executed = out / executed_name
    (out / "data" / "tinyshakespeare").mkdir(parents=True, exist_ok=True)
    (out / "data" / "tinyshakespeare" / "meta.json").write_text("{}")  # prepared: training targets run
    base = [target, f"OUT={out}", f"PY={script}", f"STAMP={stamp}", *variables]

    succeeded = run_make(*base)
    assert succeeded.returncode == 0, succeeded.stderr
    args = json.loads(executed.read_text())["fake_job"]
    assert args[2].startswith("notebooks/0") and args[3] == str(executed)
    assert ("--timeout", "7200") in zip(args, args[1:])  # a stuck kernel fails
    assert ("outputs_dir", str(out)) in zip(args, args[1:])

    failed = run_make(*base, env={"FAKE_JOB_EXIT": "3"})
    assert failed.returncode != 0


@pytest.mark.parametrize(
    "variable", ["RUN=../escape", "SRUN=../escape", "DATASET=../escape", "RUN=.hidden", "RUN=a b", "DATASET="]
)
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_bad_folder_name_creates_nothing(target, variable, tmp_path, fake_python):
    script, stamp = fake_python
    out = tmp_path / "outputs"
    result = run_make(target, f"OUT={out}", f"PY={script}", f"STAMP={stamp}", variable)
    assert result.returncode != 0
    assert "is not a plain folder name" in result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["tools"]  # no outputs/, no escape/


@pytest.mark.notebook
def test_failed_data_notebook_keeps_the_prepared_datasets_notebook(tmp_path):
    """The finding as reported: `make data CORPUS=bad.bin` on a prepared dataset, real papermill."""
    out = tmp_path / "outputs"
    executed = out / "data" / "tinyshakespeare" / "01_data_prep.ipynb"
    executed.parent.mkdir(parents=True)
    executed.write_text("the prepared dataset's record")
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\xff\xfe not text")
    stamp = tmp_path / "installed"
    stamp.touch()
    result = run_make("data", f"OUT={out}", f"PY={sys.executable}", f"STAMP={stamp}", f"CORPUS={bad}",
                      "TIMEOUT=300")
    assert result.returncode != 0
    assert executed.read_text() == "the prepared dataset's record"
    failed = json.loads((executed.parent / "01_data_prep.failed.ipynb").read_text())
    errors = [output for cell in failed["cells"] for output in cell.get("outputs", [])
              if output.get("output_type") == "error"]
    assert errors and "not UTF-8" in errors[0]["evalue"]
    assert hidden_files(executed.parent) == []
    [line] = [line for line in result.stderr.splitlines() if not line.startswith("make: ***")]
    assert line.startswith("make: 01_data_prep.ipynb: ") and "not UTF-8" in line
    assert "01_data_prep.failed.ipynb" in line


def test_preset_and_every_option_variable_reach_papermill_as_overrides(tmp_path, fake_python):
    script, stamp = fake_python
    out = tmp_path / "outputs"
    (out / "data" / "tinyshakespeare").mkdir(parents=True)
    (out / "data" / "tinyshakespeare" / "meta.json").write_text("{}")
    result = run_make("train-stateful", f"OUT={out}", f"PY={script}", f"STAMP={stamp}", "SRUN=s",
                      "PRESET=fast", "GRU=keras", "MINUTES=3", "TENSORBOARD=1", "CELL=lstm", "EPOCHS=2")
    assert result.returncode == 0, result.stderr
    args = json.loads((out / "runs" / "s" / "03_train_stateful.ipynb").read_text())["fake_job"]
    pairs = list(zip(args, args[1:]))
    assert ("preset", "fast") in pairs and ("run_name", "s") in pairs
    overrides = yaml.safe_load(args[args.index("-y") + 1])["overrides"]
    assert overrides == {"gru_kernel": "keras", "max_minutes": "3", "tensorboard": "1", "cell": "lstm",
                         "epochs": "2"}


def test_generate_passes_the_prompt_verbatim(tmp_path, fake_python):
    script, stamp = fake_python
    record = tmp_path / "cli.json"
    prompt = 'he said "go" `echo x` $(id) \'quoted\'\n关关'
    result = run_make("generate", f"PY={script}", f"STAMP={stamp}", f"PROMPT={prompt}", "NCHARS=5",
                      env={"FAKE_CLI_RECORD": str(record)})
    assert result.returncode == 0, result.stderr
    args = json.loads(record.read_text())
    assert args[args.index("--prompt") + 1] == prompt and args[args.index("--n-chars") + 1] == "5"


@pytest.mark.parametrize("target", ["train-stateless", "train-stateful"])
def test_an_unknown_preset_stops_before_a_run_folder_exists(target, tmp_path, fake_python):
    script, stamp = fake_python
    out = tmp_path / "outputs"
    (out / "data" / "tinyshakespeare").mkdir(parents=True)
    (out / "data" / "tinyshakespeare" / "meta.json").write_text("{}")
    result = run_make(target, f"OUT={out}", f"PY={script}", f"STAMP={stamp}", "PRESET=nonexistent")
    assert result.returncode != 0
    assert "PRESET=nonexistent is not a preset: choose one of fast geron gpu small" in result.stderr
    assert not (out / "runs").exists()


@pytest.mark.notebook
@pytest.mark.parametrize("variable, message", [
    ("EPOCHS=0", "epochs must be"),
    ("DROPOUT=abc", "dropout must be a number in [0, 1), got 'abc'"),
])
def test_an_error_in_a_training_notebook_is_one_line(variable, message, tmp_path, tiny_text):
    from charrnn.data import prepare_data

    out = tmp_path / "outputs"
    prepare_data(tiny_text, out / "data" / "tinyshakespeare")
    stamp = tmp_path / "installed"
    stamp.touch()
    result = run_make("train-stateful", f"OUT={out}", f"PY={sys.executable}", f"STAMP={stamp}", "SRUN=bad",
                      variable, "TIMEOUT=300")
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if not line.startswith("make: ***")]
    assert len(lines) == 1 and lines[0].startswith("make: 03_train_stateful.ipynb: "), result.stderr
    assert message in lines[0] and "03_train_stateful.failed.ipynb" in lines[0]
    assert "Traceback" not in result.stdout + result.stderr
