"""Hostile input and silent overwrites: text that is not text, replaced datasets, damaged runs, messages."""

from __future__ import annotations

import csv
import errno
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from interrupts import Interrupt, StopAfterEpoch

import charrnn.atomic as atomic
from charrnn.atomic import WriteError, write_json
from charrnn.checkpoint import CHECKPOINT_DIR, TrainingState, load_checkpoint
from charrnn.corpus import read_text
from charrnn.data import DATA_LOCK_FILE, dataset_dir, load_prepared, prepare_data
from charrnn.runs import HISTORY_FILE, MODEL_FILE, load_run, read_config, repair_history

ENGLISH = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n" * 20
NOTEBOOK_01 = Path(__file__).resolve().parents[1] / "notebooks" / "01_data_prep.ipynb"
TINY = {"units": 8, "n_layers": 1, "n_steps": 20, "batch_size": 4, "steps_per_epoch": 3,
        "validation_steps": 1}

# ---- text that is not text -------------------------------------------------------------------

NOT_UTF8 = [  # (case, file bytes, what the message must say)
    ("utf-16 le, bom", b"\xff\xfe" + ENGLISH.encode("utf-16-le"), r"UTF-16 text .*`iconv -f UTF-16 -t UTF-8"),
    ("utf-16 be, bom", b"\xfe\xff" + ENGLISH.encode("utf-16-be"), r"UTF-16 text .*`iconv -f UTF-16 -t UTF-8"),
    ("utf-32 le, bom", b"\xff\xfe\0\0" + ENGLISH.encode("utf-32-le"), r"is UTF-32 text .*iconv -f UTF-32 "),
    ("utf-32 be, bom", b"\0\0\xfe\xff" + ENGLISH.encode("utf-32-be"), r"is UTF-32 text .*iconv -f UTF-32 "),
    ("utf-16 le", ENGLISH.encode("utf-16-le"), r"UTF-16LE text without a byte-order mark.*-f UTF-16LE "),
    ("utf-16 be", ENGLISH.encode("utf-16-be"), r"UTF-16BE text without a byte-order mark.*-f UTF-16BE "),
    ("utf-32 le", ENGLISH.encode("utf-32-le"), r"UTF-32LE text without a byte-order mark.*-f UTF-32LE "),
    ("utf-32 be", ENGLISH.encode("utf-32-be"), r"UTF-32BE text without a byte-order mark.*-f UTF-32BE "),
    # Long lines: too few NULs for the pattern; not UTF-8 either, and the guess sees the NULs' parity.
    ("chinese utf-16 le", (("关关雎鸠，在河之洲。" * 20 + "\n") * 3 + "一\n").encode("utf-16-le"),
     r"not UTF-8 text .*iconv -f UTF-16LE -t UTF-8"),
    ("latin1", "Café, naïve, déjà vu.\n".encode("latin1") * 5, r"not UTF-8 .*iconv -f LATIN1 -t UTF-8"),
    ("cp1252", "\u201cQuoted\u201d \u2014 and caf\u00e9.\n".encode("cp1252") * 5,
     r"not UTF-8 text .*iconv -f CP1252 -t UTF-8"),
]


@pytest.mark.parametrize("raw, message", [case[1:] for case in NOT_UTF8], ids=[case[0] for case in NOT_UTF8])
def test_text_in_another_encoding_is_refused_with_the_conversion(tmp_path, raw, message):
    path = tmp_path / "corpus.txt"
    path.write_bytes(raw)
    with pytest.raises(ValueError, match=message) as caught:
        read_text(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(ValueError, match=message):  # allowing control characters does not make it UTF-8
        read_text(path, allow_control_chars=True)


CONTROL = [  # (case, text, what the message must say)
    ("mostly NUL", "\0" * 1000 + "abc", r"U\+0000 \(NUL\) 1,000 times, first at character 0 \(line 1\).*bin"),
    ("one NUL", "hear me\nspe\0ak", r"U\+0000 \(NUL\) once, first at character 11 \(line 2\)"),
    ("escape codes", "red \x1b[31mtext\x1b[0m\n", r"U\+001B \(ESC\) 2 times, first at character 4"),
    ("C1 control", "caf\u0085e\n\x01", r"U\+0085 once, first at character 3 \(line 1\); also U\+0001 \(1\)"),
    ("vertical tab", "a\x0bb", r"U\+000B once"),
]


@pytest.mark.parametrize("text, message", [case[1:] for case in CONTROL], ids=[case[0] for case in CONTROL])
def test_control_characters_are_refused_unless_allowed(tmp_path, text, message):
    path = tmp_path / "corpus.txt"
    path.write_bytes(text.encode("utf-8"))
    with pytest.raises(ValueError, match=message) as caught:
        read_text(path)
    assert "allow_control_chars=True" in str(caught.value) and str(path) in str(caught.value)
    assert read_text(path, allow_control_chars=True) == text
    with pytest.raises(ValueError, match=message):
        prepare_data(text, tmp_path / "data" / "x")
    prepared = prepare_data(text, tmp_path / "data" / "x", allow_control_chars=True, lower=False)
    assert prepared.tokenizer.decode(prepared.tokenizer.encode(text)) == text


@pytest.mark.parametrize("text", ["windows\r\nline ends\r\n", "tab\tseparated\n", "page one\fpage two\n",
                                  "\ufeffa UTF-8 byte-order mark is dropped\n"])
def test_layout_characters_are_text(tmp_path, text):
    path = tmp_path / "corpus.txt"
    path.write_bytes(text.encode("utf-8"))
    assert read_text(path) == text.lstrip("\ufeff")


def test_the_project_corpora_still_load(corpus_path, shijing_path):
    assert read_text(corpus_path).startswith("First Citizen:")
    assert len(set(read_text(shijing_path))) > 2000


# ---- a prepared dataset is protected like a run ----------------------------------------------


@pytest.fixture
def outputs(tmp_path, tiny_text):
    """<outputs>/data/x prepared from the first 20,000 characters of tiny Shakespeare."""
    prepare_data(tiny_text[:20_000], tmp_path / "data" / "x")
    return tmp_path


def test_the_same_data_again_is_fine(outputs, tiny_text):
    before = {p.name: p.read_bytes() for p in (outputs / "data" / "x").iterdir()}
    prepare_data(tiny_text[:20_000], outputs / "data" / "x")
    assert {p.name: p.read_bytes() for p in (outputs / "data" / "x").iterdir()} == before
    assert not list((outputs / "data").glob("x.replaced-*"))


REPLACEMENTS = [  # (case, the new text's slice end, settings, the difference the message names)
    ("other corpus", -1, {}, r"corpus_sha256 '[0-9a-f]{12}\.\.\.' -> '[0-9a-f]{12}\.\.\.'"),
    ("longer slice", 30_000, {}, r"corpus_chars 20000 -> 30000"),
    ("case kept", 20_000, {"lower": False}, r"lower True -> False"),
    ("other normal form", 20_000, {"normalization": "NFKC"}, r"normalization 'NFC' -> 'NFKC'"),
    ("rare characters", 20_000, {"min_count": 5}, r"min_count 1 -> 5"),
    ("vocabulary cap", 20_000, {"max_vocab": 20}, r"max_vocab None -> 20"),
    ("other split", 20_000, {"train_fraction": 0.8}, r"train_fraction 0.9 -> 0.8"),
]


@pytest.mark.parametrize("end, settings, difference", [case[1:] for case in REPLACEMENTS],
                         ids=[case[0] for case in REPLACEMENTS])
def test_other_data_is_refused_then_forced_aside(outputs, tiny_text, end, settings, difference):
    folder = outputs / "data" / "x"
    old = {p.name: p.read_bytes() for p in folder.iterdir()}
    text = tiny_text[20_000:] if end == -1 else tiny_text[:end]
    refusal = rf"{folder} already holds other prepared data \(.*{difference}.*force=True"
    with pytest.raises(ValueError, match=refusal):
        prepare_data(text, folder, **settings)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == old, "a refusal changes nothing"
    prepare_data(text, folder, force=True, **settings)
    assert {p.name: p.read_bytes() for p in (outputs / "data" / "x.replaced-1").iterdir()} == old
    assert load_prepared(folder).meta["corpus_chars"] == len(text)
    assert not (folder / DATA_LOCK_FILE).exists()


def test_a_replaced_dataset_names_its_runs_and_they_still_load(outputs, tiny_text, capsys):
    from charrnn.train import TrainConfig, train

    folder = outputs / "data" / "x"
    prepared, runs = load_prepared(folder), outputs / "runs"
    train(TrainConfig(run_name="finished", epochs=1, **TINY), prepared, runs, verbose=0)
    with pytest.raises(Interrupt):
        train(TrainConfig(run_name="halfway", epochs=2, **TINY), prepared, runs,
              extra_callbacks=(StopAfterEpoch(0),), verbose=0)
    (outputs / "runs" / "elsewhere").mkdir()  # a run on other data is not named
    write_json(outputs / "runs" / "elsewhere" / "config.json", {"data": {"corpus_sha256": "0" * 64}})
    with pytest.raises(ValueError, match=r"Runs trained on it: finished, halfway \(unfinished\) \(each"):
        prepare_data(tiny_text[:30_000], folder)
    prepare_data(tiny_text[:30_000], folder, force=True)
    assert "kept in" in capsys.readouterr().out
    run = load_run(outputs / "runs" / "finished")
    old_meta = json.loads((outputs / "data" / "x.replaced-1" / "meta.json").read_text())
    new_meta = load_prepared(folder).meta
    assert run.config["data"]["train_chars"] == old_meta["train_chars"] != new_meta["train_chars"]
    assert run.tokenizer.vocab_size == old_meta["vocab_size"]
    prepare_data(tiny_text[:25_000], folder, force=True)  # a second replacement takes the next free name
    assert (outputs / "data" / "x.replaced-2" / "meta.json").is_file()


def test_a_second_writer_is_refused(outputs, tiny_text):
    folder = outputs / "data" / "x"
    old = (folder / "meta.json").read_bytes()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (folder / DATA_LOCK_FILE).write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname()}))
        for text in (tiny_text[:20_000], tiny_text[:30_000]):
            refusal = rf"Dataset {folder} is being written by process {holder.pid} on this host.*dataset_name"
            with pytest.raises(ValueError, match=refusal):
                prepare_data(text, folder, force=True)
        assert (folder / "meta.json").read_bytes() == old and (folder / DATA_LOCK_FILE).exists()
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize("name", ["a/b", "../x", ".hidden", "raw", "", "a\\b"])
def test_a_dataset_name_that_is_not_a_folder_name_blames_dataset_name(tmp_path, name):
    with pytest.raises(ValueError, match=r"dataset_name must be a plain folder name"):
        dataset_dir(tmp_path, name)
    assert dataset_dir(tmp_path, "mytext") == tmp_path / "data" / "mytext"


def test_notebook_01_passes_force_and_allow_control_chars():
    """`make data FORCE=1` sets notebook 01's `force`; the parameters reach prepare_data."""
    cells = ["".join(c["source"]) for c in json.loads(NOTEBOOK_01.read_text())["cells"]]
    parameters = next(c for c in cells if c.startswith("corpus_path"))
    assert "\nforce = False  #" in parameters and "\nallow_control_chars = False  #" in parameters
    code = "\n".join(cells)
    assert "force=force)" in code and code.count("allow_control_chars=allow_control_chars") == 2
    assert "data.dataset_dir(outputs_dir, dataset_name)" in code


# ---- damaged finished and interrupted runs ---------------------------------------------------


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory):
    """A finished 2-epoch run and one interrupted after its second of 3 epochs, to copy and damage."""
    from charrnn.train import TrainConfig, train

    runs = tmp_path_factory.mktemp("trained")
    train(TrainConfig(run_name="finished", epochs=2, **TINY), tiny_data, runs, verbose=0)
    with pytest.raises(Interrupt):
        train(TrainConfig(run_name="interrupted", epochs=3, **TINY), tiny_data, runs,
              extra_callbacks=(StopAfterEpoch(1),), verbose=0)
    return runs


def copy_run(trained, name, tmp_path):
    shutil.copytree(trained / name, tmp_path / name)
    return tmp_path / name


@pytest.mark.parametrize("epochs", [2, 3], ids=["same config", "other config"])
def test_a_finished_run_without_model_keras_is_not_retrained(trained, tiny_data, tmp_path, epochs):
    from charrnn.train import TrainConfig, train

    run_dir = copy_run(trained, "finished", tmp_path)
    (run_dir / MODEL_FILE).unlink()
    history = (run_dir / HISTORY_FILE).read_bytes()
    with pytest.raises(ValueError, match=rf"model.keras is missing from finished run {run_dir} .*restore it "
                                         "from a backup, or train again under another run name"):
        train(TrainConfig(run_name="finished", epochs=epochs, **TINY), tiny_data, tmp_path, verbose=0)
    assert (run_dir / HISTORY_FILE).read_bytes() == history and (run_dir / "best.keras").is_file()


def last_figures(history_text: str) -> dict:
    """The last row as the saver records it: the epoch's logs (ints stay ints), without the epoch."""
    *_, row = csv.DictReader(history_text.splitlines())
    return {k: int(v) if v.isdigit() else float(v) for k, v in row.items() if k != "epoch"}


def add_last_row(run_dir: Path, figures: dict) -> None:
    """What the checkpoint saver is to do: record the last epoch's figures in the newest marker."""
    marker = sorted((run_dir / CHECKPOINT_DIR).glob("epoch-*.json"))[-1]
    write_json(marker, {**json.loads(marker.read_text()), "last_row": figures})


def test_a_truncated_history_is_repaired_from_the_checkpoint(trained, tiny_data, tmp_path, capsys):
    from charrnn.train import TrainConfig, train

    run_dir = copy_run(trained, "interrupted", tmp_path)
    original = (run_dir / HISTORY_FILE).read_text()
    add_last_row(run_dir, last_figures(original))
    assert load_checkpoint(run_dir)[0].last_row == last_figures(original)
    (run_dir / HISTORY_FILE).write_text(original[:-60])
    train(TrainConfig(run_name="interrupted", epochs=3, **TINY), tiny_data, tmp_path, verbose=0)
    assert "had lost the row of epoch 1: restored it" in capsys.readouterr().out
    lines = (run_dir / HISTORY_FILE).read_text().splitlines(keepends=True)
    assert "".join(lines[:3]) == original and len(lines) == 4


def test_a_truncated_history_without_figures_is_refused(trained, tiny_data, tmp_path):
    from charrnn.train import TrainConfig, train

    run_dir = copy_run(trained, "interrupted", tmp_path)
    assert load_checkpoint(run_dir)[0].last_row is not None  # the saver records the last epoch's figures
    add_last_row(run_dir, None)  # as a checkpoint written before it did
    (run_dir / HISTORY_FILE).write_text((run_dir / HISTORY_FILE).read_text()[:-60])
    with pytest.raises(ValueError, match=r"lacks the rows of epochs \[1\] .*holds no figures.*from a backup"):
        train(TrainConfig(run_name="interrupted", epochs=3, **TINY), tiny_data, tmp_path, verbose=0)


HEADER = "epoch,loss,train_chars\r\n"
ROWS = ["0,2.5,80\r\n", "1,2.25,160\r\n", "2,2.125,240\r\n"]
FIGURES = {"loss": 2.125, "train_chars": 240}
REPAIRS = [  # (case, history.csv before, the checkpoint's last_row, history.csv after or the refusal)
    ("intact", HEADER + "".join(ROWS), FIGURES, HEADER + "".join(ROWS)),
    ("last row lost", HEADER + "".join(ROWS[:2]), FIGURES, HEADER + "".join(ROWS)),
    ("last line cut in its last figure", HEADER + "".join(ROWS)[:-4], FIGURES, HEADER + "".join(ROWS)),
    ("row past the checkpoint", HEADER + "".join(ROWS) + "3,2.0,320\r\n", FIGURES, HEADER + "".join(ROWS)),
    ("last row lost, no figures", HEADER + "".join(ROWS[:2]), None, r"lacks the rows of epochs \[2\]"),
    ("figures lack a column", HEADER + "".join(ROWS[:2]), {"loss": 2.125}, r"lacks the rows of epochs \[2\]"),
    ("a middle row lost", HEADER + ROWS[0] + ROWS[2], FIGURES, r"lacks the rows of epochs \[1\] .*only its"),
]


@pytest.mark.parametrize("before, figures, after", [c[1:] for c in REPAIRS], ids=[c[0] for c in REPAIRS])
def test_repair_history(tmp_path, before, figures, after):
    path = tmp_path / HISTORY_FILE
    path.write_bytes(before.encode())
    state = TrainingState(epochs_done=3, last_row=figures)
    if after.startswith("epoch"):
        repair_history(path, state)
        assert path.read_bytes() == after.encode()
    else:
        with pytest.raises(ValueError, match=after):
            repair_history(path, state)
        assert path.read_bytes() == before.encode(), "a refusal leaves the file as it was"


def test_a_lost_history_of_one_epoch_is_rebuilt_with_its_header(tmp_path):
    repair_history(tmp_path / HISTORY_FILE, TrainingState(epochs_done=1, last_row={"loss": 2.5, "acc": 0.25}))
    assert (tmp_path / HISTORY_FILE).read_text() == "epoch,acc,loss\n0,0.25,2.5\n"


# ---- messages that name the file -------------------------------------------------------------


@pytest.mark.parametrize("content, message", [("{bad json", r"is not valid JSON \(Expecting property name"),
                                              ("[1, 2]", r"holds a JSON list, not an object")])
def test_a_damaged_config_json_is_named(tmp_path, content, message):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(content)
    for load in (read_config, load_run):
        with pytest.raises(ValueError, match=rf"{tmp_path / 'run' / 'config.json'} {message}"):
            load(tmp_path / "run")


def test_load_run_given_config_json_asks_for_the_folder(trained):
    with pytest.raises(FileNotFoundError, match=r"pass the run folder, not its config.json \(here .*ished\)"):
        load_run(trained / "finished" / "config.json")


def short_write(*args, **kwargs):
    raise OSError("1003854 requested and 782304 written")  # what numpy's tofile says on a full disk


def failing(code):
    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))
    return fail


WRITE_ERRORS = [  # (case, what fails, how, the message)
    ("numpy short write", (np, "save"), short_write, r"Disk full while writing {x}/train\.npy: free some"),
    ("rename ENOSPC", (os, "replace"), failing(errno.ENOSPC), r"Disk full while writing {x}/tokenizer\.json"),
    ("rename EROFS", (os, "replace"), failing(errno.EROFS),
     r"{x} is read-only \(read-only file system\): cannot write tokenizer\.json"),
    ("lock EACCES", (os, "open"), failing(errno.EACCES),
     r"{x} is read-only \(permission denied\): cannot write data\.lock"),
    ("folder EROFS", (os, "mkdir"), failing(errno.EROFS), r"{data} is read-only \(read-only file system\): "
                                                          r"cannot write x\."),
]


@pytest.mark.parametrize("target, fault, message", [c[1:] for c in WRITE_ERRORS],
                         ids=[c[0] for c in WRITE_ERRORS])
def test_a_full_disk_or_read_only_folder_is_one_line_naming_the_path(tmp_path, monkeypatch, target, fault,
                                                                     message):
    folder = tmp_path / "data" / "x"
    if target[1] != "mkdir":
        folder.mkdir(parents=True)
    monkeypatch.setattr(*target, fault)
    with pytest.raises(WriteError, match=message.format(x=folder, data=folder.parent)) as caught:
        prepare_data(ENGLISH, folder)
    monkeypatch.undo()
    assert isinstance(caught.value, OSError) and "\n" not in str(caught.value)
    assert not [p for p in folder.parent.rglob("*") if ".tmp-" in p.name], "no temporary file is left"


def test_other_os_errors_pass_through(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "replace", failing(errno.EIO))
    with pytest.raises(OSError) as caught:
        atomic.write_text(tmp_path / "a.txt", "x")
    assert caught.value.errno == errno.EIO and not isinstance(caught.value, WriteError)
