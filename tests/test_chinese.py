"""Chinese text end to end: prompts through the Generator, the CLI and the exported SavedModel;
characters the model never saw (an error, --drop-unknown, or the unknown id)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from charrnn.corpus import read_text
from charrnn.data import prepare_data
from charrnn.export import export_run
from charrnn.generate import Generator, encode_prompt
from charrnn.runs import load_run

PROMPT = "关关"


def is_chinese(char: str) -> bool:
    return "\u4e00" <= char <= "\u9fff"


@pytest.fixture(scope="module")
def chinese_run(shijing_path, tmp_path_factory):
    """A tiny stateful run on the first 12,000 characters of shijing, rare characters as unknown."""
    from charrnn.train import TrainConfig, train

    prepared = prepare_data(read_text(shijing_path)[:12_000], tmp_path_factory.mktemp("data") / "shijing",
                            min_count=2)
    assert prepared.tokenizer.unknown_id is not None and prepared.tokenizer.vocab_size > 100
    runs_dir = tmp_path_factory.mktemp("runs")
    config = TrainConfig(run_name="shijing", stateful=True, units=16, n_steps=40, batch_size=4, epochs=1,
                         steps_per_epoch=10, validation_steps=2)
    model, _ = train(config, prepared, runs_dir, verbose=0)
    assert model.embedding is not None  # "auto"
    return runs_dir / config.run_name


@pytest.fixture(scope="module")
def generator(chinese_run):
    run = load_run(chinese_run)
    return Generator(run.model, run.tokenizer)


def test_generator_continues_a_chinese_prompt(generator):
    text = generator.generate(PROMPT, 30, temperature=0.8, seed=1)[0]
    assert text.startswith(PROMPT) and len(text) == 32
    assert sum(map(is_chinese, text[2:])) >= 10


def test_unknown_characters_get_the_unknown_id_when_the_tokenizer_has_one(generator):
    tokenizer = generator.tokenizer
    ids = encode_prompt(tokenizer, "关😀关")
    assert ids.tolist() == [tokenizer.encode("关")[0], tokenizer.unknown_id, tokenizer.encode("关")[0]]
    assert encode_prompt(tokenizer, "关😀关", drop_unknown=True).tolist() == tokenizer.encode("关关").tolist()
    text = generator.generate("关😀关", 10, temperature=0, seed=0)[0]
    assert text.startswith("关😀关") and len(text) == 13


@pytest.mark.parametrize("drop_unknown", [False, True])
def test_a_prompt_of_only_unknown_characters_is_a_clear_error(generator, drop_unknown):
    with pytest.raises(ValueError, match="no character of the model's vocabulary"):
        generator.generate("😀🙂", 10, drop_unknown=drop_unknown)


def test_without_an_unknown_id_unknown_characters_raise_or_are_dropped(generation_run):
    run = load_run(generation_run)  # tiny Shakespeare: no unknown id
    english = Generator(run.model, run.tokenizer)
    with pytest.raises(ValueError, match=r"not in the vocabulary: \['关'\].*drop"):
        english.generate("the 关", 5)
    dropped = english.generate("the 关", 5, temperature=0, seed=0, drop_unknown=True)[0]
    assert dropped == "the 关" + english.generate("the ", 5, temperature=0, seed=0)[0][4:]


def run_cli(*argv):
    return subprocess.run([sys.executable, "-m", "charrnn", *argv], capture_output=True, text=True,
                          encoding="utf-8", timeout=300)


def test_cli_generates_from_a_chinese_prompt(chinese_run, generator):
    result = run_cli("generate", "--run", str(chinese_run), "--prompt", PROMPT, "--n-chars", "20",
                     "--temperature", "0")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.rstrip("\n") == generator.generate(PROMPT, 20, temperature=0)[0]


def test_cli_drop_unknown_and_its_error(generation_run):
    refused = run_cli("generate", "--run", str(generation_run), "--prompt", "the 关", "--n-chars", "5")
    assert refused.returncode == 2 and "'关'" in refused.stderr and "--drop-unknown" in refused.stderr
    dropped = run_cli("generate", "--run", str(generation_run), "--prompt", "the 关", "--n-chars", "5",
                      "--drop-unknown")
    assert dropped.returncode == 0, dropped.stderr[-2000:]
    # The prompt, then 5 characters (a newline among them), then print's newline.
    assert dropped.stdout.startswith("the 关") and len(dropped.stdout.removesuffix("\n")) == 10


# Runs in a fresh interpreter that imports nothing but TensorFlow.
LOAD_AND_CONTINUE = """
import json, sys
import tensorflow as tf
generator = tf.saved_model.load(sys.argv[1])
texts = generator.generate(tf.constant(json.loads(sys.argv[2])), n_chars=30, temperature=0.0, seed=0)
try:
    generator.generate(tf.constant(["😀"]), n_chars=5, temperature=0.0, seed=0)
    only_unknown = "accepted"
except tf.errors.InvalidArgumentError as err:
    only_unknown = str(err)
print(json.dumps({"texts": [t.decode() for t in texts.numpy()], "only_unknown": only_unknown,
                  "charrnn_imported": any(name.startswith("charrnn") for name in sys.modules)}))
"""


def test_export_continues_chinese_prompts_with_tensorflow_alone(chinese_run, generator, tmp_path):
    exported = export_run(chinese_run, tmp_path / "generator")
    prompts = [PROMPT, "关😀关"]
    result = subprocess.run(
        [sys.executable, "-c", LOAD_AND_CONTINUE, str(exported), json.dumps(prompts)],
        capture_output=True, text=True, encoding="utf-8", timeout=300, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    output = json.loads(result.stdout.strip().splitlines()[-1])
    assert not output["charrnn_imported"]
    # The same texts as the Generator: the emoji reads as the unknown id in both.
    assert output["texts"] == generator.generate(prompts, 30, temperature=0)
    assert "at least one character" in output["only_unknown"]
