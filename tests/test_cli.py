"""`python -m charrnn train | generate | export`: output, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf

from charrnn.__main__ import build_parser, main, training_config


def run_main(capsys, *argv) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of the CLI, run in this process."""
    try:
        code = main(list(argv))
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def run_module(*argv, cwd=None, **variables) -> subprocess.CompletedProcess:
    """The CLI in a fresh process, with no TensorFlow log settings in the environment (a new user's shell)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("TF_CPP_")} | variables
    return subprocess.run(
        [sys.executable, "-m", "charrnn", *argv], capture_output=True, text=True, timeout=300, cwd=cwd,
        env=env,
    )


def test_generate_prints_prompt_and_samples(capsys, generation_run):
    args = ("generate", "--run", str(generation_run), "--prompt", "ROMEO:", "--n-chars", "40",
            "--temperature", "0.8", "--seed", "1", "--num-samples", "3", "--top-k", "5")
    code, out, err = run_main(capsys, *args)
    assert code == 0, err
    samples = out.split("=== sample ")[1:]
    assert len(samples) == 3
    texts = [sample.split(" ===\n", 1)[1].rstrip("\n") for sample in samples]
    assert all(text.startswith("ROMEO:") and len(text) == 46 for text in texts)
    assert run_main(capsys, *args)[1] == out  # --seed reproduces


def test_generate_from_best_checkpoint_greedy(capsys, generation_run):
    code, out, _ = run_main(
        capsys, "generate", "--run", str(generation_run), "--prompt", "the ", "--n-chars", "30",
        "--temperature", "0", "--checkpoint", "best.keras", "--verbose",
    )
    assert code == 0
    assert out.startswith("the ") and len(out.rstrip("\n")) == 34 and "===" not in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--n-chars", "-5"], "--n-chars: must be >= 0"),
        (["--n-chars", "many"], "not an integer"),
        (["--temperature", "-1"], "--temperature"),
        (["--temperature", "nan"], "--temperature"),
        (["--num-samples", "0"], "--num-samples"),
        (["--top-k", "0"], "--top-k"),
        (["--prompt", "R#MEO€"], "'#', '€'"),
        (["--top-k", "1000"], "top_k"),
        (["--checkpoint", "nope.keras"], "no nope.keras"),
    ],
)
def test_generate_bad_arguments_exit_2_with_one_line(capsys, generation_run, argv, message):
    base = ["generate", "--run", str(generation_run), "--prompt", "the ", "--n-chars", "5"]
    code, out, err = run_main(capsys, *base, *argv)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "error:" in err and message in err


def test_missing_run_folder_exits_2(capsys, tmp_path):
    code, _, err = run_main(capsys, "generate", "--run", str(tmp_path / "missing"), "--prompt", "a")
    assert code == 2 and "does not exist" in err and len(err.strip().splitlines()) == 1


def test_export_command(capsys, generation_run, tmp_path):
    out_dir = tmp_path / "exported"
    code, out, err = run_main(capsys, "export", "--run", str(generation_run), "--out", str(out_dir))
    assert code == 0, err
    assert str(out_dir) in out
    loaded = tf.saved_model.load(str(out_dir))  # kept in a name: its variables must outlive the call
    texts = loaded.generate(tf.constant(["the "]), 12, 0.0, 0).numpy()
    assert texts[0].decode().startswith("the ") and len(texts[0].decode()) == 16
    code, _, err = run_main(capsys, "export", "--run", str(generation_run), "--out", str(out_dir))
    assert code == 2 and "--overwrite" in err


def test_module_help_and_errors_in_a_real_process(tmp_path):
    help_ = run_module("generate", "--help")
    assert help_.returncode == 0
    for option in ("--run", "--prompt", "--n-chars", "--temperature", "--seed", "--num-samples", "--top-k",
                   "--checkpoint"):
        assert option in help_.stdout
    missing = run_module("generate", "--run", str(tmp_path / "missing"), "--prompt", "ROMEO:")
    assert missing.returncode == 2
    assert missing.stderr.startswith("python -m charrnn generate: error: Run folder")  # no TensorFlow logs
    assert len(missing.stderr.splitlines()) == 1


def test_module_generates_quietly_in_a_real_process(generation_run):
    result = run_module("generate", "--run", str(generation_run), "--prompt", "ROMEO:", "--n-chars", "25",
                        "--temperature", "0")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("ROMEO:") and len(result.stdout.rstrip("\n")) == 31
    # TensorFlow's start-up logs (oneDNN, cuInit, CPU features, XLA) are hidden without --verbose.
    assert result.stderr == ""


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


@pytest.mark.parametrize(
    "out, message",
    [
        ("runs/copy", "is the run folder"),  # the finding: --out the run itself
        ("runs/copy/export", "lies inside the run folder"),
        ("runs", "not an export written by charrnn"),  # a folder holding runs
        ("notes", "not an export written by charrnn"),  # any other folder
        ("old-export", "contains the run folder"),  # an export someone put a run into
    ],
)
def test_export_overwrite_never_deletes_a_run_or_a_foreign_folder(capsys, generation_run, tmp_path, out,
                                                                  message):
    run = tmp_path / "runs" / "copy"
    shutil.copytree(generation_run, run)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    old_export = tmp_path / "old-export"
    (old_export / "nested").mkdir(parents=True)
    (old_export / "charrnn_export.json").write_text("{}")
    shutil.copytree(generation_run, old_export / "nested" / "run")
    before = snapshot(tmp_path)
    argv = ["export", "--run", str(run), "--out", str(tmp_path / out), "--overwrite"]
    code, stdout, err = run_main(capsys, *argv)
    assert code == 2 and stdout == ""
    assert message in err and len(err.strip().splitlines()) == 1
    assert snapshot(tmp_path) == before  # nothing deleted, nothing written


def test_train_options_build_the_config_from_the_preset_and_set():
    args = build_parser().parse_args(["train", "--preset", "fast", "--set", "tensorboard=true",
                                      "--set", "stateful=true", "--set", "units=64"])
    config = training_config(args)
    assert (config.preset, config.stateful, config.tensorboard, config.units) == ("fast", True, True, 64)
    assert config.run_name == "stateful" and config.lr_schedule == "cosine"  # the mode's run, fast's schedule
    stateless = training_config(build_parser().parse_args(["train", "--run", "mine"]))
    assert (stateless.preset, stateless.run_name, stateless.steps_per_epoch) == ("geron", "mine", 1000)


@pytest.mark.parametrize("argv, message", [
    (["--set", "dropout=abc"], "dropout must be a number in [0, 1), got 'abc'"),
    (["--set", "tensorbord=true"], "did you mean tensorboard"),
    (["--set", "epochs"], "is not key=value"),
    (["--preset", "nonexistent"], "Unknown preset 'nonexistent': the presets are fast, geron"),
    (["--set", "dataset_name=x"], "--set dataset_name=...: give it as --dataset NAME instead"),
    (["--dataset", "../x"], "--dataset must be a folder name"),
    (["--set", "stateful=maybe"], "stateful must be true or false"),
])
def test_train_bad_options_exit_2_with_one_line(capsys, argv, message):
    code, out, err = run_main(capsys, "train", *argv)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err


def train_tiny(tiny_text, outputs: Path, run: str, **settings) -> subprocess.CompletedProcess:
    """`python -m charrnn train` in a fresh process on a tiny prepared dataset under `outputs`."""
    from charrnn.data import prepare_data

    prepare_data(tiny_text, outputs / "data" / "tiny")
    tiny = {"epochs": 1, "steps_per_epoch": 3, "validation_steps": 1, "units": 8, "n_layers": 1,
            "n_steps": 20, "batch_size": 4}
    argv = ["train", "--dataset", "tiny", "--run", run]
    for key, value in {**tiny, **settings}.items():
        argv += ["--set", f"{key}={value}"]
    return run_module(*argv, cwd=Path(__file__).resolve().parents[1], CHARRNN_OUTPUTS=str(outputs))


def test_train_trains_a_tiny_run_with_the_preset_and_set(tiny_text, tmp_path):
    result = train_tiny(tiny_text, tmp_path, "tiny-cli", stateful="true", dropout=0)
    assert result.returncode == 0, result.stderr[-2000:]
    recorded = json.loads((tmp_path / "runs" / "tiny-cli" / "config.json").read_text())
    assert (recorded["preset"], recorded["stateful"], recorded["units"], recorded["dropout"]) == (
        "geron", True, 8, 0.0)
    assert "final val_loss" in result.stdout


def test_train_set_tensorboard_true_writes_logs(tiny_text, tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard=true needs the tensorboard package")
    result = train_tiny(tiny_text, tmp_path, "tb", tensorboard="true")
    assert result.returncode == 0, result.stderr[-2000:]
    run = tmp_path / "runs" / "tb"
    assert (run / "logs").is_dir() and any((run / "logs").rglob("*tfevents*"))
    assert json.loads((run / "config.json").read_text())["tensorboard"] is True
