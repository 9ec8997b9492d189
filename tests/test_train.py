"""Training into a run folder: records, bpc, reproducibility, resume, refusals, loading back."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from interrupts import EpochRecorder, Interrupt, StopAfterEpoch

from charrnn.checkpoint import CHECKPOINT_DIR
from charrnn.data import prepare_data
from charrnn.model import compile_model
from charrnn.runs import TIME_COLUMN, load_run, read_history
from charrnn.tokenizer import CharTokenizer
from charrnn.train import TrainConfig, make_datasets, train

TINY = {  # small enough for seconds per run, big enough to learn something
    "units": 32,
    "n_layers": 1,
    "dropout": 0.1,
    "embedding_dim": None,  # one-hot, as "auto" gives for 39 characters; tests below build inputs for it
    "n_steps": 50,
    "batch_size": 16,
    "epochs": 3,
    "steps_per_epoch": 15,
    "validation_steps": 3,
    "learning_rate": 3e-3,
}


def history_lines(run_dir):
    """history.csv's lines without the wall-time column, the one that differs between identical runs."""
    lines = (run_dir / "history.csv").read_text().splitlines()
    column = lines[0].split(",").index(TIME_COLUMN)
    return [",".join(field for i, field in enumerate(line.split(",")) if i != column) for line in lines]


@pytest.fixture(scope="module")
def finished_run(tiny_data, tmp_path_factory):
    """One finished tiny run, shared by the tests that only read it."""
    runs_dir = tmp_path_factory.mktemp("runs")
    config = TrainConfig(run_name="tiny", **TINY)
    model, history = train(config, tiny_data, runs_dir, verbose=0)
    return config, model, history, runs_dir / "tiny"


def copy_run(run_dir, tmp_path):
    """A private copy for tests that damage the run folder."""
    return shutil.copytree(run_dir, tmp_path / run_dir.name)


# ---- a finished run ---------------------------------------------------------------------------


def test_tiny_run_beats_the_uniform_baseline(finished_run, tiny_data):
    _, _, history, _ = finished_run
    assert history["val_loss"][-1] < math.log(tiny_data.tokenizer.vocab_size)
    assert history["val_loss"][-1] < history["val_loss"][0]


def test_run_folder_holds_every_record_and_no_checkpoints(finished_run):
    *_, run_dir = finished_run
    for name in ("config.json", "environment.json", "tokenizer.json", "history.csv",
                 "model.keras", "best.keras"):
        assert (run_dir / name).is_file(), name
    assert not (run_dir / CHECKPOINT_DIR).exists()
    assert not (run_dir / "run.lock").exists(), "the lock is released when training ends"
    assert not list(run_dir.glob(".*tmp*")), "temporary files left behind"


def test_config_json_records_every_train_config_field_and_the_data(finished_run, tiny_data):
    config, *_, run_dir = finished_run
    recorded = json.loads((run_dir / "config.json").read_text())
    data = recorded.pop("data")
    assert recorded == dataclasses.asdict(config)
    assert data["corpus_sha256"] == tiny_data.meta["corpus_sha256"]
    assert data["vocab_size"] == tiny_data.tokenizer.vocab_size


def test_same_run_name_on_other_data_is_refused(finished_run, tiny_data, tiny_text, tmp_path):
    config, *_, run_dir = finished_run
    other = prepare_data(tiny_text[:30_000], tmp_path / "other")
    with pytest.raises(ValueError, match="other parameters or data"):
        train(config, other, run_dir.parent, verbose=0)


def test_environment_json_records_versions_commit_and_corpus(finished_run, tiny_data):
    *_, run_dir = finished_run
    environment = json.loads((run_dir / "environment.json").read_text())
    assert environment["python"] == platform.python_version()
    assert environment["tensorflow"] == tf.__version__
    assert environment["keras"] == keras.__version__
    assert environment["numpy"] == np.__version__
    assert environment["platform"]
    assert isinstance(environment["git_commit"], str) and environment["git_commit"]
    assert environment["corpus_sha256"] == tiny_data.meta["corpus_sha256"]


def test_tokenizer_json_is_the_training_vocabulary(finished_run, tiny_data):
    *_, run_dir = finished_run
    tokenizer = CharTokenizer.load(run_dir / "tokenizer.json")
    assert tokenizer.chars == tiny_data.tokenizer.chars
    assert tokenizer.lower == tiny_data.tokenizer.lower


def test_history_has_one_row_per_epoch(finished_run):
    config, _, history, run_dir = finished_run
    assert history["epoch"] == list(range(config.epochs))
    assert read_history(run_dir) == history
    for column in ("loss", "val_loss", "accuracy", "val_accuracy", "bpc", "val_bpc", TIME_COLUMN):
        assert len(history[column]) == config.epochs, column
    assert history[TIME_COLUMN] == sorted(history[TIME_COLUMN]) and history[TIME_COLUMN][0] > 0


@pytest.mark.parametrize("prefix", ["", "val_"])
def test_bpc_is_loss_in_bits(finished_run, prefix):
    _, _, history, _ = finished_run
    loss = np.array(history[f"{prefix}loss"])
    np.testing.assert_allclose(history[f"{prefix}bpc"], loss / math.log(2.0), rtol=1e-4)


# ---- reproducibility --------------------------------------------------------------------------


def test_same_seed_gives_a_byte_identical_history(finished_run, tiny_data, tmp_path):
    config, *_, run_dir = finished_run
    train(dataclasses.replace(config, run_name="again"), tiny_data, tmp_path, verbose=0)
    assert history_lines(tmp_path / "again") == history_lines(run_dir)


def test_another_seed_gives_another_history(finished_run, tiny_data, tmp_path):
    config, _, history, _ = finished_run
    _, other = train(dataclasses.replace(config, run_name="other", seed=config.seed + 1),
                     tiny_data, tmp_path, verbose=0)
    assert other["loss"] != history["loss"]


# ---- refusing to clobber a run ----------------------------------------------------------------


def test_running_a_finished_run_again_loads_it_without_training(finished_run, tiny_data):
    config, *_, run_dir = finished_run
    before = {name: (run_dir / name).read_bytes() for name in ("history.csv", "model.keras", "best.keras")}
    model, history = train(config, tiny_data, run_dir.parent, verbose=0)
    after = {name: (run_dir / name).read_bytes() for name in before}
    assert after == before
    assert history == read_history(run_dir)
    expected = load_run(run_dir).model.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), expected))


def test_same_run_name_with_other_parameters_is_refused(finished_run, tiny_data):
    config, *_, run_dir = finished_run
    before = (run_dir / "config.json").read_bytes()
    with pytest.raises(ValueError, match="other parameters"):
        train(dataclasses.replace(config, units=config.units * 2), tiny_data, run_dir.parent, verbose=0)
    assert (run_dir / "config.json").read_bytes() == before


@pytest.mark.parametrize("kwargs", [{"units": 0}, {"epochs": 0}, {"run_name": ""},
                                    {"run_name": f"a{os.sep}b"}, {"clipnorm": -1}, {"clipnorm": 0},
                                    {"max_minutes": 0}, {"learning_rate": float("nan")},
                                    {"random_offsets": 2, "stateful": True},
                                    {"ema_momentum": 0}, {"ema_momentum": 1.0}, {"ema_momentum": True},
                                    {"weight_decay": 0}, {"weight_decay": -0.1}, {"weight_decay": "0.1x"}])
def test_bad_train_config_is_refused(kwargs):
    with pytest.raises(ValueError):
        TrainConfig(**kwargs)


# ---- interrupt and resume ---------------------------------------------------------------------


def test_interrupted_run_resumes_at_the_next_epoch(tiny_data, tmp_path):
    config = TrainConfig(run_name="resumable", **TINY)
    with pytest.raises(Interrupt):
        train(config, tiny_data, tmp_path, extra_callbacks=(StopAfterEpoch(1),), verbose=0)
    run_dir = tmp_path / "resumable"
    done = history_lines(run_dir)
    assert read_history(run_dir)["epoch"] == [0, 1]
    assert (run_dir / CHECKPOINT_DIR).is_dir()
    with pytest.raises(FileNotFoundError, match="resume"):
        load_run(run_dir)
    with pytest.raises(ValueError, match="other parameters"):
        train(dataclasses.replace(config, epochs=5), tiny_data, tmp_path, verbose=0)

    recorder = EpochRecorder()
    _, history = train(config, tiny_data, tmp_path, extra_callbacks=(recorder,), verbose=0)
    assert recorder.epochs == [2]
    assert history["epoch"] == [0, 1, 2]
    assert history_lines(run_dir)[: len(done)] == done  # finished epochs are kept, not redone
    assert not (run_dir / CHECKPOINT_DIR).exists()


@pytest.mark.parametrize("gru_kernel", ["keras", "fused"])
@pytest.mark.parametrize("stateful", [False, True], ids=["stateless", "stateful"])
def test_resumed_run_has_the_history_of_an_uninterrupted_one(stateful, gru_kernel, tiny_data, tmp_path):
    # Same data order (skipped batches) and same dropout masks (seed states in the checkpoint).
    settings = {**TINY, "stateful": stateful, "n_steps": 20 if stateful else 50, "gru_kernel": gru_kernel}
    train(TrainConfig(run_name="straight", **settings), tiny_data, tmp_path, verbose=0)
    resumed = TrainConfig(run_name="resumed", **settings)
    with pytest.raises(Interrupt):
        train(resumed, tiny_data, tmp_path, extra_callbacks=(StopAfterEpoch(0),), verbose=0)
    train(resumed, tiny_data, tmp_path, verbose=0)
    assert history_lines(tmp_path / "resumed") == history_lines(tmp_path / "straight")


def test_random_offsets_ema_and_weight_decay_resume_with_the_same_history(tiny_data, tmp_path):
    # The epoch's offsets come from (seed, epoch); the moving average is an optimizer slot in the
    # checkpoint; the biases' exemption from weight decay is set again when the resume compiles.
    settings = {**TINY, "stateful": True, "n_steps": 20, "random_offsets": True, "ema_momentum": 0.9,
                "weight_decay": 0.5}
    model, _ = train(TrainConfig(run_name="straight", **settings), tiny_data, tmp_path, verbose=0)
    assert model.optimizer.weight_decay == 0.5  # the config reached the optimizer
    resumed = TrainConfig(run_name="resumed", **settings)
    with pytest.raises(Interrupt):
        train(resumed, tiny_data, tmp_path, extra_callbacks=(StopAfterEpoch(0),), verbose=0)
    train(resumed, tiny_data, tmp_path, verbose=0)  # epochs 1 and 2 read from their own offsets again
    assert history_lines(tmp_path / "resumed") == history_lines(tmp_path / "straight")
    fixed = TrainConfig(run_name="fixed", **{**settings, "random_offsets": False})
    train(fixed, tiny_data, tmp_path, verbose=0)
    assert history_lines(tmp_path / "fixed")[1:] != history_lines(tmp_path / "straight")[1:]


def test_ema_validates_and_saves_the_averaged_weights(tiny_data, tmp_path):
    config = TrainConfig(run_name="ema", **TINY, ema_momentum=0.9)
    _, history = train(config, tiny_data, tmp_path, verbose=0)
    _, plain = train(TrainConfig(run_name="plain", **TINY), tiny_data, tmp_path, verbose=0)
    assert history["loss"][0] == plain["loss"][0]  # the same training steps...
    assert history["val_loss"][0] != plain["val_loss"][0]  # ...validated with other weights
    _, val, _ = make_datasets(config, tiny_data)
    expected_losses = {"model.keras": history["val_loss"][-1], "best.keras": min(history["val_loss"])}
    for name, expected in expected_losses.items():
        saved = keras.saving.load_model(tmp_path / "ema" / name)
        compile_model(saved)
        assert saved.evaluate(val, verbose=0, return_dict=True)["loss"] == pytest.approx(expected, rel=1e-5)


def test_a_fused_run_learns_and_loads_back_with_its_kernel(tiny_data, tmp_path):
    config = TrainConfig(run_name="fused", **TINY, gru_kernel="fused")
    _, history = train(config, tiny_data, tmp_path, verbose=0)
    assert history["val_loss"][-1] < history["val_loss"][0]
    assert type(load_run(tmp_path / "fused").model.get_layer("gru_1")).__name__ == "FusedGRU"


def test_a_run_recorded_before_gru_kernel_existed_is_still_the_same_run(finished_run, tiny_data, tmp_path):
    config, _, history, run_dir = finished_run
    old = copy_run(run_dir, tmp_path)
    record = json.loads((old / "config.json").read_text())
    del record["gru_kernel"]  # config.json as earlier versions wrote it: their GRU was keras.layers.GRU
    (old / "config.json").write_text(json.dumps(record))
    _, loaded = train(config, tiny_data, tmp_path, verbose=0)  # complete: loaded, not refused
    assert loaded["val_loss"] == history["val_loss"]


def test_resume_drops_history_rows_of_an_epoch_that_was_not_backed_up(tiny_data, tmp_path):
    """A kill between writing epoch k's row and its checkpoint: the resumed run redoes epoch k once."""
    config = TrainConfig(run_name="half-saved", **TINY)
    with pytest.raises(Interrupt):
        train(config, tiny_data, tmp_path, extra_callbacks=(StopAfterEpoch(0),), verbose=0)
    run_dir = tmp_path / "half-saved"
    header, row = (run_dir / "history.csv").read_text().splitlines()
    orphan = ",".join(["1"] + ["999.0"] * (len(row.split(",")) - 1))  # epoch 1, never backed up
    (run_dir / "history.csv").write_text(f"{header}\n{row}\n{orphan}\n")

    recorder = EpochRecorder()
    _, history = train(config, tiny_data, tmp_path, extra_callbacks=(recorder,), verbose=0)
    assert recorder.epochs == [1, 2]
    assert history["epoch"] == [0, 1, 2]
    assert 999.0 not in history["loss"]


TRAIN_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from charrnn.data import load_prepared
    from charrnn.train import TrainConfig, train

    train(TrainConfig(**json.loads(sys.argv[3])), load_prepared(sys.argv[1]), sys.argv[2], verbose=0)
    """
)


def epochs_in_history(run_dir) -> list[int]:
    """The epochs history.csv shows so far ([] while a row is half-written)."""
    try:
        return read_history(run_dir).get("epoch", [])
    except (ValueError, TypeError):
        return []


def backed_up_epochs(run_dir) -> int:
    """How many epochs the run's newest checkpoint marks as done (0 if none is readable yet)."""
    markers = sorted((run_dir / CHECKPOINT_DIR).glob("epoch-*.json"))
    try:
        return json.loads(markers[-1].read_text())["epochs_done"] if markers else 0
    except (OSError, ValueError, KeyError):
        return 0


def test_killed_training_process_resumes_at_the_next_epoch(tiny_text, tiny_data, tmp_path):
    data_dir, runs_dir = tmp_path / "data", tmp_path / "runs"
    prepare_data(tiny_text, data_dir)
    config = TrainConfig(run_name="killed", **{**TINY, "epochs": 4, "steps_per_epoch": 20})
    run_dir = runs_dir / config.run_name
    script = tmp_path / "train_run.py"
    script.write_text(TRAIN_SCRIPT)
    kill_after = 1  # kill once epoch 1 is in history.csv and in a checkpoint
    with open(tmp_path / "train_run.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(script), str(data_dir), str(runs_dir),
             json.dumps(dataclasses.asdict(config))],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        )
        try:
            deadline = time.monotonic() + 120
            while not (kill_after in epochs_in_history(run_dir) and backed_up_epochs(run_dir) > kill_after):
                assert process.poll() is None, "training ended before it could be killed:\n" + (
                    (tmp_path / "train_run.log").read_text()[-3000:])
                assert time.monotonic() < deadline, "no epoch finished in time"
                time.sleep(0.02)
            process.send_signal(signal.SIGKILL)
        finally:
            process.kill()
            process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert not (run_dir / "model.keras").exists()
    done = history_lines(run_dir)
    resume_at = backed_up_epochs(run_dir)
    assert resume_at == kill_after + 1

    recorder = EpochRecorder()
    _, history = train(config, tiny_data, runs_dir, extra_callbacks=(recorder,), verbose=0)
    assert recorder.epochs == list(range(resume_at, config.epochs))
    assert history["epoch"] == list(range(config.epochs))
    assert history_lines(run_dir)[: resume_at + 1] == done[: resume_at + 1]  # header and kept rows
    assert (run_dir / "model.keras").is_file() and not (run_dir / CHECKPOINT_DIR).exists()


# ---- loading a run back -----------------------------------------------------------------------


def validation_inputs(data, config):
    windows = np.stack([data.val_ids[i: i + config.n_steps] for i in (0, 100, 200)])
    return windows.astype("int32")


def test_load_run_predicts_like_the_trained_model(finished_run, tiny_data):
    config, model, _, run_dir = finished_run
    run = load_run(run_dir)
    x = validation_inputs(tiny_data, config)
    np.testing.assert_allclose(run.model.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-5)
    assert {k: v for k, v in run.config.items() if k != "data"} == dataclasses.asdict(config)
    assert run.tokenizer.chars == tiny_data.tokenizer.chars
    assert run.environment["corpus_sha256"] == tiny_data.meta["corpus_sha256"]


def test_best_checkpoint_loads_and_has_the_lowest_validation_loss(finished_run, tiny_data):
    config, _, history, run_dir = finished_run
    best = load_run(run_dir, checkpoint="best.keras").model
    compile_model(best)
    _, val, _ = make_datasets(config, tiny_data)
    val_loss = best.evaluate(val, verbose=0, return_dict=True)["loss"]
    assert val_loss == pytest.approx(min(history["val_loss"]), rel=1e-4)


def test_load_run_without_model_file_raises_file_not_found(finished_run, tmp_path):
    run_dir = copy_run(finished_run[-1], tmp_path)
    (run_dir / "model.keras").unlink()
    with pytest.raises(FileNotFoundError, match="model.keras"):
        load_run(run_dir)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_load_run_with_a_damaged_model_file_raises_value_error(finished_run, tmp_path, damage):
    run_dir = copy_run(finished_run[-1], tmp_path)
    path = run_dir / "model.keras"
    good = path.read_bytes()
    path.write_bytes({"garbage": b"\x00not a keras file" * 64, "truncated": good[: len(good) // 2],
                      "empty": b""}[damage])
    with pytest.raises(ValueError, match="damaged"):
        load_run(run_dir)


def test_unigram_init_starts_the_model_at_the_character_frequencies(tiny_data, tmp_path):
    from charrnn.baselines import baselines

    settings = {**TINY, "epochs": 1, "steps_per_epoch": 2, "learning_rate": 1e-7, "dropout": 0.0}
    _, plain = train(TrainConfig(run_name="plain", **settings), tiny_data, tmp_path, verbose=0)
    _, counted = train(TrainConfig(run_name="counted", unigram_init=True, **settings), tiny_data, tmp_path,
                       verbose=0)
    reference = baselines(tiny_data.train_ids, tiny_data.val_ids, tiny_data.tokenizer.vocab_size)
    assert plain["val_bpc"][0] == pytest.approx(reference["uniform"], abs=0.3)
    assert counted["val_bpc"][0] == pytest.approx(reference["unigram"], abs=0.3)
    assert counted["val_bpc"][0] < plain["val_bpc"][0] - 0.5


def test_the_sampled_softmax_loss_tends_to_the_full_softmax_loss():
    from charrnn.loop import _sampled_sums, _sums
    from charrnn.model import build_model

    vocab_size = 39
    model = compile_model(build_model(vocab_size, units=16, n_layers=1, dropout=0.0))
    model.logits.bias.assign(np.random.default_rng(1).normal(0, 2, vocab_size).astype("float32"))
    rng = np.random.default_rng(0)
    x = tf.constant(rng.integers(1, vocab_size + 1, (4, 30)), tf.int32)
    y = tf.constant(rng.integers(0, vocab_size, (4, 30)), tf.int32)
    full, _, count = _sums(y, model(x, training=True))
    log_q = tf.constant(np.log(np.full(vocab_size, 1 / vocab_size)), tf.float32)
    few, hits, _ = _sampled_sums(model, x, y, (8, log_q, 0))
    many, _, _ = _sampled_sums(model, x, y, (200_000, log_q, 0))
    np.testing.assert_allclose(many.numpy(), full.numpy(), rtol=0.01)  # the estimate converges...
    assert np.abs(few.numpy() - full.numpy()).max() > 0.01  # ...and 8 draws of 39 are an estimate
    assert math.isnan(float(hits)) and float(count) == 4


def test_a_sampled_softmax_run_learns_validates_exactly_and_resumes_identically(tiny_data, tmp_path):
    settings = {**TINY, "stateful": True, "n_steps": 20, "random_offsets": True, "sampled_softmax": 8,
                "unigram_init": True}
    model, history = train(TrainConfig(run_name="straight", **settings), tiny_data, tmp_path, verbose=0)
    assert history["val_loss"][-1] < history["val_loss"][0]
    assert all(math.isnan(value) for value in history["accuracy"])  # needs the full logits: not computed
    _, val, _ = make_datasets(TrainConfig(**settings), tiny_data)
    saved = compile_model(keras.saving.load_model(tmp_path / "straight" / "model.keras"))
    assert saved.evaluate(val, verbose=0, return_dict=True)["loss"] == pytest.approx(
        history["val_loss"][-1], rel=1e-5)  # validation is the full softmax
    resumed = TrainConfig(run_name="resumed", **settings)
    with pytest.raises(Interrupt):
        train(resumed, tiny_data, tmp_path, extra_callbacks=(StopAfterEpoch(0),), verbose=0)
    train(resumed, tiny_data, tmp_path, verbose=0)  # the draws are keyed by the restored step
    assert history_lines(tmp_path / "resumed") == history_lines(tmp_path / "straight")
    full = TrainConfig(run_name="full", **{**settings, "sampled_softmax": tiny_data.tokenizer.vocab_size})
    _, full_history = train(full, tiny_data, tmp_path, verbose=0)  # as many as the alphabet: the full softmax
    assert not math.isnan(full_history["accuracy"][0]) and full_history["loss"] != history["loss"]



def test_the_sampled_classes_are_drawn_by_the_training_frequencies(tiny_data):
    from charrnn.baselines import unigram_log_probabilities
    from charrnn.train import sampling_proposal

    vocab_size = tiny_data.tokenizer.vocab_size
    config = TrainConfig(sampled_softmax=8, unigram_init=True)
    log_q = sampling_proposal(config, tiny_data.train_ids, vocab_size)
    np.testing.assert_allclose(log_q, unigram_log_probabilities(tiny_data.train_ids, vocab_size), rtol=1e-6)
    full = TrainConfig(sampled_softmax=vocab_size, unigram_init=True)  # no fewer than the alphabet: full
    ids = tiny_data.train_ids
    assert sampling_proposal(full, ids, vocab_size) is None
    assert sampling_proposal(TrainConfig(), ids, vocab_size) is None
