"""The Char-RNN model: character ids in, logits of the next character out, and its step function.

`CharRNN` reads integer ids (0 pads, 1..V are characters), turns them into one-hot
vectors or embeddings, runs its `body` (recurrent layers, and any per-time-step layer
such as a `LayerNormalization`) and ends in a linear `logits` layer over V classes
(class = id - 1). Its `step(ids, states) -> (logits, states)` reads one character per
stream with the recurrent states carried: the one definition of a time step that the
generator, the export and the analysis views use, whatever the body holds.
"""

from __future__ import annotations

import warnings

import keras

from charrnn.extras.fused_gru import FusedGRU

# embedding_dim="auto": one-hot inputs (Géron's) up to this many characters, an Embedding above.
ONE_HOT_MAX_VOCAB = 100
AUTO_EMBEDDING_DIM = 64
CELLS = {"gru": keras.layers.GRU, "lstm": keras.layers.LSTM, "rnn": keras.layers.SimpleRNN}
GRU_KERNELS = ("keras", "fused")  # "fused": FusedGRU, the same GRU and weights, faster on CPU


def resolve_embedding_dim(embedding_dim: int | str | None, vocab_size: int, warn: bool = True) -> int | None:
    """The input layer for `vocab_size` characters: None for one-hot, else the embedding size.

    "auto" keeps one-hot inputs for small alphabets (tiny Shakespeare has 39) and
    uses an Embedding of AUTO_EMBEDDING_DIM above ONE_HOT_MAX_VOCAB characters, where
    one-hot vectors get as wide as the vocabulary. An explicit None (one-hot) for a
    large vocabulary is honoured, with a warning.
    """
    if embedding_dim == "auto":
        return None if vocab_size <= ONE_HOT_MAX_VOCAB else AUTO_EMBEDDING_DIM
    if embedding_dim is None:
        if warn and vocab_size > ONE_HOT_MAX_VOCAB:
            warnings.warn(
                f"One-hot inputs {vocab_size} wide (embedding_dim=None): each input character costs a "
                f"{vocab_size}-wide matrix product. embedding_dim='auto' or an int uses an Embedding.",
                stacklevel=2,
            )
        return None
    if isinstance(embedding_dim, bool) or not isinstance(embedding_dim, int) or embedding_dim < 1:
        raise ValueError(
            f"embedding_dim must be 'auto', None (one-hot) or a positive integer; got {embedding_dim!r}."
        )
    return embedding_dim


@keras.saving.register_keras_serializable(package="charrnn")
class CharRNN(keras.Model):
    """Ids (batch, time) → logits (batch, time, vocab_size); `step` carries the recurrent states.

    `body`: the layers between the inputs and the logits, applied in order. Recurrent
    layers (any `keras.layers.RNN`: GRU, LSTM, SimpleRNN) must return sequences; their
    cells define the step. Other layers apply per time step (they must also accept
    one step, shape (batch, features)).
    """

    def __init__(self, vocab_size: int, body: list, embedding_dim: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        # Rows drawn from N(0, 1), as PyTorch does, not Keras's ±0.05: measured to learn faster per
        # character on 39 and on 7,354 characters (docs/recipes.md, "Embeddings").
        self.embedding = (keras.layers.Embedding(
            vocab_size + 1, embedding_dim, embeddings_initializer=keras.initializers.RandomNormal(stddev=1.0),
            name="embedding") if embedding_dim else None)
        self.body = [keras.layers.deserialize(layer) if isinstance(layer, dict) else layer for layer in body]
        self.logits = keras.layers.Dense(vocab_size, name="logits")

    def build(self, input_shape):
        # Building = one call: it creates every layer's weights (and a stateful layer's states
        # for the batch size of `input_shape`), also when a saved model is loaded.
        self.call(keras.ops.zeros((input_shape[0] or 1, 1), "int32"))

    def _inputs(self, ids):
        """What the body reads: an embedding, or the one-hot vector of class id - 1 (id 0: zeros)."""
        if self.embedding is not None:
            return self.embedding(ids)
        return keras.ops.one_hot(keras.ops.cast(ids, "int32") - 1, self.vocab_size)

    def features(self, ids, training=False):
        """What the logits layer reads: the body's output at every time step (batch, time, units)."""
        x = self._inputs(ids)
        for layer in self.body:
            x = layer(x, training=training)
        return x

    def call(self, ids, training=False):
        return self.logits(self.features(ids, training=training))

    def step(self, ids, states):
        """One character per stream: ids (batch,) and the states → logits (batch, V) and new states.

        Dropout is off (inference). `states` is a flat tuple, in `state_sizes` order.
        """
        x, states, new_states = self._inputs(ids), list(states), []
        for layer in self.body:
            if isinstance(layer, keras.layers.RNN):
                count = len(cell_state_sizes(layer.cell))
                x, carried = layer.cell(x, states[:count], training=False)
                states = states[count:]
                new_states += list(carried)
            else:
                x = layer(x, training=False)
        return self.logits(x), tuple(new_states)

    @property
    def state_sizes(self) -> list[int]:
        """The size of each recurrent state `step` carries (an LSTM carries two per layer)."""
        recurrent = [layer for layer in self.body if isinstance(layer, keras.layers.RNN)]
        return [size for layer in recurrent for size in cell_state_sizes(layer.cell)]

    def initial_states(self, batch_size) -> tuple:
        return tuple(keras.ops.zeros((batch_size, size)) for size in self.state_sizes)

    @property
    def stateful(self) -> bool:
        return any(getattr(layer, "stateful", False) for layer in self.body)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "embedding_dim": self.embedding_dim,
                "body": [keras.layers.serialize(layer) for layer in self.body]}


def cell_state_sizes(cell) -> list[int]:
    size = cell.state_size
    return list(size) if isinstance(size, (list, tuple)) else [size]


def build_model(
    vocab_size: int,
    units: int = 128,
    n_layers: int = 2,
    dropout: float = 0.2,
    embedding_dim: int | str | None = None,
    stateful: bool = False,
    batch_size: int | None = None,
    gru_kernel: str = "keras",
    cell: str = "gru",
) -> CharRNN:
    """`n_layers` recurrent layers of `units` (`cell`: gru, lstm or rnn) over one-hot ids or an Embedding.

    Stateful models need a fixed `batch_size`: row i of each batch continues row i of
    the previous one. The recurrent layers keep cuDNN's constraints (no recurrent
    dropout; GRUs reset_after=True) so GPUs use the fast kernel. `gru_kernel="fused"`:
    `FusedGRU`, the same GRU with a faster CPU training loop (GRU only).
    """
    if vocab_size < 1 or units < 1 or n_layers < 1:
        raise ValueError(
            f"vocab_size, units and n_layers must be positive, got {vocab_size}, {units}, {n_layers}."
        )
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {sorted(CELLS)}, got {cell!r}.")
    if gru_kernel not in GRU_KERNELS:
        raise ValueError(f"gru_kernel must be one of {list(GRU_KERNELS)}, got {gru_kernel!r}.")
    if stateful and (batch_size is None or batch_size < 1):
        raise ValueError(
            f"A stateful model needs batch_size (the number of parallel streams), got {batch_size}."
        )
    layer_class = CELLS[cell]
    if gru_kernel == "fused":
        if cell == "gru":
            layer_class = FusedGRU
        else:
            warnings.warn(f"gru_kernel='fused' is for GRUs only: cell={cell!r} uses Keras's own layer.",
                          stacklevel=2)
    body = [layer_class(units, return_sequences=True, stateful=stateful, dropout=dropout,
                        name=f"{cell}_{i + 1}") for i in range(n_layers)]
    model = CharRNN(vocab_size, body, resolve_embedding_dim(embedding_dim, vocab_size, warn=False),
                    name="stateful_char_rnn" if stateful else "char_rnn")
    model(keras.ops.zeros((batch_size if stateful else 1, 1), "int32"))  # creates the weights
    return model


def model_config(model: CharRNN) -> dict:
    """Describes `model` for records and messages: what `build_model` built, layer by layer."""
    return {"vocab_size": model.vocab_size, "embedding_dim": model.embedding_dim,
            "body": [type(layer).__name__ for layer in model.body]}


def reset_states(model: keras.Model) -> None:
    """Zero every stateful layer's state (Keras 3 has no `Model.reset_states()`)."""
    for layer in model.body:
        if getattr(layer, "stateful", False):
            layer.reset_state()


def to_stateless(model: CharRNN) -> CharRNN:
    """A stateless copy with the same weights, usable with any batch size (the step needs no copy).

    The same layers rebuilt from their configs with stateful=False, so the weight lists
    line up one to one (Géron's `set_weights` route).
    """
    body = [type(layer).from_config({**layer.get_config(), "stateful": False})
            if getattr(layer, "stateful", False) else type(layer).from_config(layer.get_config())
            for layer in model.body]
    stateless = CharRNN(model.vocab_size, body, model.embedding_dim, name="char_rnn")
    stateless(keras.ops.zeros((1, 1), "int32"))
    stateless.set_weights(model.get_weights())
    return stateless


def compile_model(model: keras.Model, learning_rate: float = 1e-3, weight_decay: float | None = None):
    """Adam on the cross-entropy of the logits, with accuracy as metric.

    Training runs `charrnn.loop`, which computes its loss, accuracy and gradient clipping
    itself (and keeps the weight average, `charrnn.averaging`); the compiled loss and metric
    serve `model.evaluate` (and `fit`, for comparisons).

    `weight_decay`: each step shrinks the kernels and embeddings by learning rate × weight_decay
    of themselves, apart from the gradient (AdamW's decoupled decay); biases are left alone.

    Bits per character are the loss / ln 2: the loop derives them from the epoch's losses;
    as a metric they would compute the softmax cross-entropy a second time every batch.
    """
    optimizer = keras.optimizers.Adam(learning_rate=learning_rate, weight_decay=weight_decay)
    if weight_decay is not None:
        optimizer.exclude_from_weight_decay(var_names=["bias"])
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        jit_compile=False,  # XLA is slower for these GRUs on CPU (docs/recipes.md)
    )
    return model
