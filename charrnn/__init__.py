"""charrnn: character-level GRU language models in TensorFlow 2 / Keras 3.

The core, one job a module: `corpus` (finding and reading text), `data` (split,
prepared folder), `tokenizer`, `pipelines` (tf.data), `model` (CharRNN and its step),
`config` (TrainConfig), `train`, `loop` (the training loop), `averaging` (the weight
average), `checkpoint`, `runs` (run folders), `atomic` (safe writes), `sampling`, `generate`
(the Generator), `reference` (Géron's functions), `export`, `baselines`, `ngram`, `layout`,
`plots` and the CLI (`python -m charrnn`); notebook 05's `inspect`, `gates`, `features`,
`inspect_views`; notebook 04's `sampler`. `extras/`: FusedGRU, the compiled step loop and
tf.distribute. `bench*` are `make bench`, `make bench-quality` and `make bench-peer`.

The names below are imported lazily, so `import charrnn` (and the CLI's `--help`)
does not pay for starting TensorFlow, except in a Jupyter kernel (Jupyter, papermill): there
it starts now, quietly (`quiet`), since what TensorFlow prints from C++ as it starts would
land in a cell's output and the notebook is about to use it.
"""

import importlib
import sys

if "ipykernel" in sys.modules:
    from charrnn.quiet import start_tensorflow

    start_tensorflow()

_EXPORTS = {
    "CharTokenizer": "tokenizer",
    "PreparedData": "data",
    "load_corpus": "data",
    "load_prepared": "data",
    "prepare_data": "data",
    "split_ids": "data",
    "build_model": "model",
    "reset_states": "model",
    "to_stateless": "model",
    "shuffled_windows": "pipelines",
    "stateful_streams": "pipelines",
    "load_run": "runs",
    "read_history": "runs",
    "TrainConfig": "config",
    "train": "train",
    "Generator": "generate",
    "complete_text": "reference",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'charrnn' has no attribute {name!r}")
    return getattr(importlib.import_module(f"charrnn.{_EXPORTS[name]}"), name)
