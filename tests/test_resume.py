"""Crash-proof runs: checkpoint of record, damaged checkpoints, failed starts, run lock, time budgets."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from interrupts import EpochRecorder, Interrupt, StopAfterEpoch

from charrnn.checkpoint import CHECKPOINT_DIR, load_checkpoint
from charrnn.data import prepare_data
from charrnn.runs import LOCK_FILE, TIME_COLUMN, load_run, read_history, run_lock
from charrnn.train import TrainConfig, train

PACKAGE = Path(__file__).resolve().parents[1] / "charrnn"
TINY = {"units": 16, "n_layers": 1, "dropout": 0.1, "n_steps": 50, "batch_size": 16, "epochs": 3,
        "steps_per_epoch": 10, "validation_steps": 2, "learning_rate": 3e-3}


def checkpoint_markers(run_dir):
    return sorted((run_dir / CHECKPOINT_DIR).glob("epoch-*.json"))


def interrupted_run(tiny_data, runs_dir, name, after_epoch):
    config = TrainConfig(run_name=name, **TINY)
    with pytest.raises(Interrupt):
        train(config, tiny_data, runs_dir, extra_callbacks=(StopAfterEpoch(after_epoch),), verbose=0)
    return config, runs_dir / name


# ---- the checkpoint of record -----------------------------------------------------------------


def test_no_keras_private_file_or_variable_name_is_used():
    sources = "\n".join(path.read_text() for path in PACKAGE.rglob("*.py"))
    for private in ("training_metadata.json", "seed_generator_state", "BackupAndRestore", "keras.src"):
        assert private not in sources, private


def test_checkpoints_keep_the_two_newest_with_checksums(tiny_data, tmp_path):
    _, run_dir = interrupted_run(tiny_data, tmp_path, "kept", after_epoch=2)
    markers = checkpoint_markers(run_dir)
    assert [m.name for m in markers] == ["epoch-00002.json", "epoch-00003.json"]
    marker = json.loads(markers[-1].read_text())
    assert marker["epochs_done"] == 3
    assert marker["bytes"] == (run_dir / CHECKPOINT_DIR / marker["file"]).stat().st_size
    assert len(marker["sha256"]) == 64
    assert marker["best_val_loss"] == min(read_history(run_dir)["val_loss"])


@pytest.mark.parametrize("damage", ["truncated", "flipped", "missing"])
def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before(damage, tiny_data, tmp_path, capsys):
    config, run_dir = interrupted_run(tiny_data, tmp_path, "damaged", after_epoch=1)
    newest = run_dir / CHECKPOINT_DIR / "epoch-00002.npz"
    data = newest.read_bytes()
    if damage == "truncated":
        newest.write_bytes(data[: len(data) // 3])
    elif damage == "flipped":
        newest.write_bytes(data[:-10] + bytes(b ^ 0xFF for b in data[-10:]))
    else:
        newest.unlink()
    state, _ = load_checkpoint(run_dir)
    assert state.epochs_done == 1
    assert "epoch-00002.npz" in capsys.readouterr().out

    recorder = EpochRecorder()
    _, history = train(config, tiny_data, tmp_path, extra_callbacks=(recorder,), verbose=0)
    assert recorder.epochs == [1, 2]
    assert history["epoch"] == [0, 1, 2]


def test_every_checkpoint_damaged_starts_again_from_scratch(tiny_data, tmp_path, capsys):
    config, run_dir = interrupted_run(tiny_data, tmp_path, "all-damaged", after_epoch=1)
    for npz in (run_dir / CHECKPOINT_DIR).glob("*.npz"):
        npz.write_bytes(b"")
    recorder = EpochRecorder()
    _, history = train(config, tiny_data, tmp_path, extra_callbacks=(recorder,), verbose=0)
    assert recorder.epochs == [0, 1, 2]
    assert history["epoch"] == [0, 1, 2]
    assert "damaged" in capsys.readouterr().out


CRASH_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from charrnn.data import load_prepared
    from charrnn.train import TrainConfig, train

    train(TrainConfig(**json.loads(sys.argv[3])), load_prepared(sys.argv[1]), sys.argv[2], verbose=0)
    """
)


@pytest.fixture(scope="module")
def data_dir(tiny_text, tmp_path_factory):
    folder = tmp_path_factory.mktemp("data") / "tiny"
    prepare_data(tiny_text, folder)
    return folder


@pytest.fixture(scope="module")
def straight_dir(tiny_data, tmp_path_factory):
    """The uninterrupted run that the killed ones must end up identical to."""
    runs_dir = tmp_path_factory.mktemp("straight")
    train(TrainConfig(run_name="straight", **TINY), tiny_data, runs_dir, verbose=0)
    return runs_dir / "straight"


@pytest.mark.parametrize("crash_at", ["checkpoint-data:1", "checkpoint-marker:2", "after-final-model:1"])
def test_a_kill_inside_a_checkpoint_write_resumes_without_a_traceback(crash_at, tiny_data, data_dir,
                                                                       straight_dir, tmp_path):
    """Finding 1: a kill while the first checkpoint was written left a run that could never resume."""
    config = TrainConfig(run_name="crashed", **TINY)
    script = tmp_path / "train_run.py"
    script.write_text(CRASH_SCRIPT)
    process = subprocess.run(
        [sys.executable, str(script), str(data_dir), str(tmp_path), json.dumps(dataclasses.asdict(config))],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "CHARRNN_CRASH_AT": crash_at, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert process.returncode == -signal.SIGKILL, process.stderr[-2000:]
    _, history = train(config, tiny_data, tmp_path, verbose=0)  # must not raise
    run_dir = tmp_path / "crashed"
    assert history["epoch"] == [0, 1, 2]
    assert history["val_loss"] == read_history(straight_dir)["val_loss"]
    straight = load_run(straight_dir).model.get_weights()
    for ours, theirs in zip(load_run(run_dir).model.get_weights(), straight):
        np.testing.assert_array_equal(ours, theirs)
    assert not (run_dir / CHECKPOINT_DIR).exists() and not (run_dir / LOCK_FILE).exists()


# ---- nothing recorded before the run is known to start ----------------------------------------


def test_a_config_that_cannot_start_records_nothing_and_does_not_lock_the_name(tiny_data, tmp_path):
    """Finding 4: a failed start wrote config.json, so the corrected retry was refused."""
    too_many_streams = TrainConfig(run_name="retry", stateful=True, **{**TINY, "batch_size": 100_000})
    with pytest.raises(ValueError, match="streams"):
        train(too_many_streams, tiny_data, tmp_path, verbose=0)
    assert not (tmp_path / "retry").exists()
    _, history = train(dataclasses.replace(too_many_streams, batch_size=4), tiny_data, tmp_path, verbose=0)
    assert history["epoch"] == [0, 1, 2]


def test_a_run_that_never_finished_an_epoch_can_take_a_new_config(tiny_data, tmp_path):
    config = TrainConfig(run_name="restarted", **TINY)
    with pytest.raises(Interrupt):  # raised inside epoch 0, before its checkpoint
        train(config, tiny_data, tmp_path, extra_callbacks=(RaiseMidEpoch(),), verbose=0)
    assert (tmp_path / "restarted" / "config.json").is_file()
    changed = dataclasses.replace(config, units=24)
    train(changed, tiny_data, tmp_path, verbose=0)
    assert json.loads((tmp_path / "restarted" / "config.json").read_text())["units"] == 24


class BatchCounter(EpochRecorder):
    def __init__(self):
        super().__init__()
        self.batches = []

    def on_epoch_begin(self, epoch, logs=None):
        self.batches.append(0)

    def on_train_batch_end(self, batch, logs=None):
        self.batches[-1] += 1


class RaiseMidEpoch(EpochRecorder):
    def on_train_batch_end(self, batch, logs=None):
        if batch == 3:
            raise Interrupt("inside epoch 0")


# ---- one process per run folder ---------------------------------------------------------------


def test_a_live_lock_is_a_clear_error(tiny_data, tmp_path):
    """Finding 6: two processes could write one run folder."""
    config = TrainConfig(run_name="locked", **TINY)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "locked").mkdir()
        (tmp_path / "locked" / LOCK_FILE).write_text(
            json.dumps({"pid": holder.pid, "host": socket.gethostname()}))
        with pytest.raises(ValueError, match=f"process {holder.pid}"):
            train(config, tiny_data, tmp_path, verbose=0)
        assert (tmp_path / "locked" / LOCK_FILE).exists(), "someone else's lock is left alone"
    finally:
        holder.kill()
        holder.wait()


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / LOCK_FILE).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname()}))
    with run_lock(tmp_path / "run"):
        assert json.loads((tmp_path / "run" / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert "no longer running" in capsys.readouterr().out
    assert not (tmp_path / "run" / LOCK_FILE).exists()


# ---- time budget --------------------------------------------------------------------------------


def test_a_time_budget_stops_mid_epoch_saves_and_completes(tiny_data, tmp_path):
    config = TrainConfig(run_name="budget", **{**TINY, "epochs": 50, "steps_per_epoch": 400,
                                                 "max_minutes": 0.05})
    counter = BatchCounter()
    model, history = train(config, tiny_data, tmp_path, extra_callbacks=(counter,), verbose=0)
    run_dir = tmp_path / "budget"
    assert len(history["epoch"]) < config.epochs, "the budget, not the epochs, ended the run"
    assert 0 < counter.batches[-1] < config.steps_per_epoch, "the last epoch stopped part-way"
    assert history[TIME_COLUMN][-1] >= 3.0
    assert load_run(run_dir).model.count_params() == model.count_params()
    assert not (run_dir / CHECKPOINT_DIR).exists()
    again = EpochRecorder()
    train(config, tiny_data, tmp_path, extra_callbacks=(again,), verbose=0)
    assert again.epochs == [], "a finished budget run is complete: loaded, not trained again"


def test_a_resumed_budget_counts_the_time_already_spent(tiny_data, tmp_path):
    config = TrainConfig(run_name="budget-resumed", **{**TINY, "epochs": 100, "max_minutes": 0.25})
    with pytest.raises(Interrupt):
        train(config, tiny_data, tmp_path, extra_callbacks=(StopAfterEpoch(1),), verbose=0)
    spent = read_history(tmp_path / "budget-resumed")[TIME_COLUMN][-1]
    _, history = train(config, tiny_data, tmp_path, verbose=0)
    seconds = history[TIME_COLUMN]
    assert seconds[1] == spent and seconds[2] > spent, "the clock goes on from the checkpoint's time"
    assert 15.0 <= seconds[-1] < 15.0 + 10.0, "the budget counts both attempts"


def test_a_cosine_schedule_decays_and_resumes_on_the_same_curve(tiny_data, tmp_path):
    settings = {**TINY, "lr_schedule": "cosine", "learning_rate": 1e-2}
    model, _ = train(TrainConfig(run_name="cosine", **settings), tiny_data, tmp_path, verbose=0)
    assert float(model.optimizer.learning_rate) < 0.1 * settings["learning_rate"]
    resumed = TrainConfig(run_name="cosine-resumed", **settings)
    with pytest.raises(Interrupt):
        train(resumed, tiny_data, tmp_path, extra_callbacks=(StopAfterEpoch(0),), verbose=0)
    train(resumed, tiny_data, tmp_path, verbose=0)
    assert read_history(tmp_path / "cosine-resumed")["loss"] == read_history(tmp_path / "cosine")["loss"]
