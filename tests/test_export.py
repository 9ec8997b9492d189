"""The exported SavedModel: strings in, strings out, loadable with TensorFlow alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf

from charrnn.export import export_generator, export_run
from charrnn.generate import Generator
from charrnn.runs import load_run

PROMPTS = ["ROMEO:", "the "]

# Runs in a fresh interpreter that imports nothing but TensorFlow.
LOAD_AND_GENERATE = """
import json, sys
import tensorflow as tf
generator = tf.saved_model.load(sys.argv[1])
prompts = tf.constant(json.loads(sys.argv[2]))
greedy = generator.generate(prompts, n_chars=60, temperature=0.0, seed=0)
sampled = generator.generate(prompts, n_chars=60, temperature=1.0, seed=5)
signature = generator.signatures["serving_default"](
    prompts=prompts, n_chars=tf.constant(10), temperature=tf.constant(0.0), seed=tf.constant(0, tf.int64)
)
print(json.dumps({
    "greedy": [t.decode() for t in greedy.numpy()],
    "sampled": [t.decode() for t in sampled.numpy()],
    "signature": [t.decode() for t in next(iter(signature.values())).numpy()],
    "charrnn_imported": any(name.startswith("charrnn") for name in sys.modules),
}))
"""


@pytest.fixture(scope="module")
def run(generation_run):
    return load_run(generation_run)


@pytest.fixture(scope="module")
def exported(generation_run, tmp_path_factory):
    return export_run(generation_run, tmp_path_factory.mktemp("export") / "generator")


@pytest.fixture(scope="module")
def generator(run):
    return Generator(run.model, run.tokenizer)


def test_export_loads_and_generates_without_charrnn(exported, generator, tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", LOAD_AND_GENERATE, str(exported), json.dumps(PROMPTS)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    output = json.loads(result.stdout.strip().splitlines()[-1])
    assert not output["charrnn_imported"]
    assert output["greedy"] == generator.generate(PROMPTS, 60, temperature=0)
    assert output["sampled"] == generator.generate(PROMPTS, 60, temperature=1.0, seed=5)
    assert output["signature"] == generator.generate(PROMPTS, 10, temperature=0)


@pytest.fixture(scope="module")
def loaded(exported):
    return tf.saved_model.load(str(exported))


def decode(strings) -> list[str]:
    return [s.decode() for s in strings.numpy()]


def test_export_lowercases_like_the_tokenizer_and_drops_unknown_characters(loaded, generator, run):
    assert run.tokenizer.lower
    texts = decode(loaded.generate(tf.constant(["RoMeO:", "ro#me€o:"]), 40, 0.0, 0))
    expected = generator.generate("romeo:", 40, temperature=0)[0][len("romeo:"):]
    assert texts == ["RoMeO:" + expected, "ro#me€o:" + expected]  # prompts come back as given


def test_export_seeds(loaded):
    prompts = tf.constant(PROMPTS)
    first = decode(loaded.generate(prompts, 50, 1.0, 3))
    assert decode(loaded.generate(prompts, 50, 1.0, 3)) == first
    assert decode(loaded.generate(prompts, 50, 1.0, 4)) != first
    assert decode(loaded.generate(prompts, 50, 1.0, -1)) != decode(loaded.generate(prompts, 50, 1.0, -1))
    assert decode(loaded.generate(prompts, 0, 1.0, 3)) == PROMPTS


@pytest.mark.parametrize(
    "prompts, n_chars, temperature, message",
    [
        (["#€"], 5, 1.0, "at least one character"),
        ([], 5, 1.0, "at least one prompt"),
        (["the "], -1, 1.0, "n_chars"),
        (["the "], 5, -1.0, "temperature"),
        (["the "], 5, float("nan"), "temperature"),
    ],
)
def test_export_rejects_bad_inputs(loaded, prompts, n_chars, temperature, message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        loaded.generate(tf.constant(prompts, tf.string), n_chars, temperature, 0)


def test_export_is_marked_and_never_goes_into_a_run_folder(run, exported, generation_run, tmp_path):
    assert (exported / "charrnn_export.json").is_file()  # what overwrite=True may replace
    with pytest.raises(ValueError, match="lies inside the run folder"):
        export_generator(run.model, run.tokenizer, generation_run / "export")
    assert not (generation_run / "export").exists()
    folder = tmp_path / "not-an-export"
    folder.mkdir()
    with pytest.raises(ValueError, match="not an export written by charrnn"):
        export_generator(run.model, run.tokenizer, folder, overwrite=True)


def test_export_never_replaces_silently_and_leaves_no_temporary_folders(run, exported):
    with pytest.raises(FileExistsError, match="overwrite"):
        export_generator(run.model, run.tokenizer, exported)
    stamp = exported / "stamp"
    stamp.write_text("old export")
    export_generator(run.model, run.tokenizer, exported, overwrite=True)
    assert not stamp.exists() and (exported / "saved_model.pb").is_file()
    assert sorted(p.name for p in exported.parent.iterdir()) == [exported.name]


def test_export_under_a_file_or_a_read_only_folder_is_one_clear_error(run, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ValueError, match="a-file is a file, not a folder"):
        export_generator(run.model, run.tokenizer, blocker / "export")
    real_access = os.access
    # As on a read-only file system, where even root cannot write.
    monkeypatch.setattr(os, "access", lambda path, mode: False if str(path) == str(tmp_path) else
                        real_access(path, mode))
    with pytest.raises(ValueError, match="is read-only"):
        export_generator(run.model, run.tokenizer, tmp_path / "export")
    assert not (tmp_path / "export").exists()
