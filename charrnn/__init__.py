"""charrnn: character-level GRU language models in TensorFlow 2 / Keras 3.

Modules, one job each: `data` (corpus, split, prepared folder), `tokenizer`,
`pipelines` (tf.data), `model`, `train`, `runs` (run folders), `generate`,
`plots`, `bench` (`python -m charrnn.bench`) and the CLI (`python -m charrnn`).
"""

from charrnn.data import PreparedData, load_corpus, load_prepared, prepare_data, split_ids
from charrnn.model import build_model, reset_states, to_stateless
from charrnn.pipelines import shuffled_windows, stateful_streams
from charrnn.runs import load_run, read_history
from charrnn.tokenizer import CharTokenizer
from charrnn.train import TrainConfig, train

__all__ = [
    "CharTokenizer",
    "PreparedData",
    "TrainConfig",
    "build_model",
    "load_corpus",
    "load_prepared",
    "load_run",
    "prepare_data",
    "read_history",
    "reset_states",
    "shuffled_windows",
    "split_ids",
    "stateful_streams",
    "to_stateless",
    "train",
]
