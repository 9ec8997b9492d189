"""Exporting the fast generator as a SavedModel: strings in, strings out, no charrnn needed.

    import tensorflow as tf
    generator = tf.saved_model.load("outputs/export/stateful")
    texts = generator.generate(tf.constant(["ROMEO:", "the "]), n_chars=200, temperature=0.8, seed=1)
    print(texts.numpy()[0].decode())

Inputs of `generate` (also the `serving_default` signature):
    prompts      string, shape (batch,)
    n_chars      int32 scalar, characters to add to each prompt (>= 0)
    temperature  float32 scalar, >= 0 (0 = greedy)
    seed         int64 scalar; the same seed gives the same texts, -1 draws a fresh one
Output: string, shape (batch,): each prompt as given, followed by its new characters.

Prompts are lower-cased first when the tokenizer was (`lower=True`); they are not
NFC-normalised (core TensorFlow has no op for it), so pass NFC text, as typed text
and `unicodedata.normalize("NFC", text)` are. Characters that are not in the
vocabulary get the unknown id when the tokenizer has one (data prepared with
`min_count` / `max_vocab`), else they are dropped from what the model reads (the
returned prompt keeps them either way); a prompt with no known character at all is
an InvalidArgumentError. Top-k sampling is not exported.

Every export holds a marker file, `charrnn_export.json`: `overwrite` only ever
replaces a folder that has it, and an export never goes into a run folder.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from charrnn.atomic import write_json
from charrnn.generate import Generator
from charrnn.runs import MODEL_FILE, load_run
from charrnn.tokenizer import CharTokenizer

EXPORT_MARKER = "charrnn_export.json"  # written into every export: what `overwrite` may replace
RUN_CONFIG = "config.json"  # its presence marks a run folder (see charrnn.runs)


class ExportedGenerator(tf.Module):
    """The tf.Module that is saved: tokenizing, `Generator.generate_ids` and decoding, all in TF ops."""

    def __init__(self, model: keras.Model, tokenizer: CharTokenizer):
        super().__init__(name="char_rnn_generator")
        self._generator = Generator(model, tokenizer, backend="xla")  # a SavedModel holds TF ops only
        # Variables reach the SavedModel only when tracked by the module; a Keras model is not
        # tracked as such. `variables` includes the dropout seed states the GRU calls capture.
        self.model_variables = list(self._generator.model.variables)
        self.vocab_size = tokenizer.vocab_size
        self.lower = tokenizer.lower
        self.vocabulary = tf.constant(tokenizer.chars)
        self.char_ids = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                self.vocabulary, tf.range(1, tokenizer.vocab_size + 1, dtype=tf.int32)
            ),
            default_value=0,  # unknown characters get id 0, then the unknown id or dropped (_encode)
        )
        self.unknown_id = tokenizer.unknown_id or 0  # 0: the tokenizer has none

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.string, name="prompts"),
            tf.TensorSpec([], tf.int32, name="n_chars"),
            tf.TensorSpec([], tf.float32, name="temperature"),
            tf.TensorSpec([], tf.int64, name="seed"),
        ]
    )
    def generate(self, prompts, n_chars, temperature, seed):
        prompt_ids, lengths, known = self._encode(prompts)
        checks = [
            tf.debugging.assert_positive(tf.size(prompts), message="give at least one prompt"),
            tf.debugging.assert_non_negative(n_chars, message="n_chars must be >= 0"),
            tf.debugging.Assert(  # also false for NaN
                tf.logical_and(temperature >= 0, temperature < np.inf),
                ["temperature must be a finite number >= 0 (0 = greedy), got", temperature],
            ),
            tf.debugging.assert_positive(
                known, message="every prompt needs at least one character of the model's vocabulary"
            ),
        ]
        with tf.control_dependencies(checks):  # every input waits for the checks: none runs ahead
            prompt_ids, lengths, n_chars, temperature, seed = (
                tf.identity(t) for t in (prompt_ids, lengths, n_chars, temperature, seed)
            )
        seed = tf.where(seed < 0, tf.random.uniform([], 0, 2**62, dtype=tf.int64), seed)
        new_ids = self._generator.generate_ids(
            prompt_ids, lengths, n_chars, temperature, tf.constant(self.vocab_size), seed
        )
        new_text = tf.strings.reduce_join(tf.gather(self.vocabulary, new_ids - 1), axis=-1)
        return tf.strings.join([prompts, new_text])

    def _encode(self, prompts):
        """Right-padded ids of the prompts, their lengths, and how many known characters each has."""
        text = tf.strings.lower(prompts, encoding="utf-8") if self.lower else prompts
        chars = tf.strings.unicode_split(text, "UTF-8")
        ids = tf.ragged.map_flat_values(self.char_ids.lookup, chars)
        known = tf.cast(tf.reduce_sum(tf.cast(ids > 0, tf.int64), axis=1), tf.int32)
        if self.unknown_id:
            ids = tf.ragged.map_flat_values(lambda flat: tf.where(flat > 0, flat, self.unknown_id), ids)
        else:
            ids = tf.ragged.boolean_mask(ids, ids > 0)
        return ids.to_tensor(0), tf.cast(ids.row_lengths(), tf.int32), known


def is_run_folder(folder: Path) -> bool:
    """True for a charrnn run folder: its config.json names a run (or cannot be read: assume it does)."""
    config = folder / RUN_CONFIG
    if not config.is_file():
        return False
    try:
        record = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True
    return not isinstance(record, dict) or "run_name" in record


def check_destination(path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """`path` if an export may be written there; otherwise a clear error, and nothing touched.

    Refused: a run folder, a folder inside one, and an existing `path` unless
    `overwrite` and it is an earlier export (has the marker) holding no run folder.
    """
    path = Path(path)
    resolved = path.resolve()  # a symbolic link to a run folder is that run folder
    for folder in (resolved, *resolved.parents):
        if is_run_folder(folder):
            where = "is" if folder == resolved else "lies inside"
            raise ValueError(
                f"{path} {where} the run folder {folder}: an export there could replace the run's files. "
                "Export to a folder outside every run, e.g. outputs/export/<run>."
            )
    existing = next(folder for folder in (path.absolute(), *path.absolute().parents) if folder.exists())
    if existing != path.absolute() and not existing.is_dir():
        raise ValueError(f"{path} cannot be created: {existing} is a file, not a folder. "
                         "Choose another --out.")
    if not os.access(existing if existing != path.absolute() else existing.parent, os.W_OK):
        raise ValueError(f"{path} cannot be written: {existing} is read-only. Choose another --out.")
    if not path.exists() and not path.is_symlink():
        return path
    if not overwrite:
        raise FileExistsError(
            f"{path} already exists: choose another folder, or replace an earlier export with "
            "overwrite=True (--overwrite)."
        )
    if not (path.is_dir() and (path / EXPORT_MARKER).is_file()):
        raise ValueError(
            f"{path} exists and is not an export written by charrnn (no {EXPORT_MARKER}): overwrite only "
            "replaces an earlier export. Choose another folder, or delete this one yourself."
        )
    for config in path.rglob(RUN_CONFIG):
        if is_run_folder(config.parent):
            raise ValueError(
                f"{path} contains the run folder {config.parent}: overwriting it would delete the run. "
                "Move the run out first, or choose another folder."
            )
    return path


def export_generator(
    model: keras.Model, tokenizer: CharTokenizer, path: str | os.PathLike, *, overwrite: bool = False
) -> Path:
    """Save the generator for `model` as a SavedModel folder at `path` (see the module docstring).

    Written into a temporary folder beside `path`, then renamed, so `path` is
    never a half-written export. An existing `path` is replaced only with
    `overwrite=True`, and only when it is an earlier export (`check_destination`).
    """
    path = check_destination(path, overwrite=overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        module = ExportedGenerator(model, tokenizer)
        tf.saved_model.save(
            module, str(tmp), signatures={"serving_default": module.generate.get_concrete_function()}
        )
        write_json(tmp / EXPORT_MARKER, {"written_by": "charrnn.export", "vocab_size": tokenizer.vocab_size})
        if path.exists():  # a folder cannot be renamed over a non-empty one: move the old aside first
            os.replace(path, old)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return path


def export_run(
    run_dir: str | os.PathLike, out_dir: str | os.PathLike, *, checkpoint: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Export the generator of a run folder (the CLI's `export`)."""
    check_destination(out_dir, overwrite=overwrite)  # before the slow load
    run = load_run(run_dir, checkpoint or MODEL_FILE)
    return export_generator(run.model, run.tokenizer, out_dir, overwrite=overwrite)
