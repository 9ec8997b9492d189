"""Building Char-RNN models (stateless and stateful from one config), the step model, moving weights.

The models output logits over `vocab_size` classes (class = token id - 1); the
loss uses `from_logits=True` and sampling divides logits by the temperature.
"""

from __future__ import annotations

import warnings

import keras

from charrnn.fused_gru import FusedGRU

# embedding_dim="auto": one-hot inputs (the seed's) up to this many characters, an Embedding above.
ONE_HOT_MAX_VOCAB = 100
AUTO_EMBEDDING_DIM = 64  # the size the 6,045-character trial used; cheap next to the GRUs
# "keras": keras.layers.GRU (the seed's; cuDNN on a GPU). "fused": FusedGRU, same weights, faster on CPU.
GRU_KERNELS = {"keras": keras.layers.GRU, "fused": FusedGRU}


def resolve_embedding_dim(embedding_dim: int | str | None, vocab_size: int, warn: bool = True) -> int | None:
    """The input layer for `vocab_size` characters: None for one-hot, else the embedding size.

    "auto" keeps the seed's one-hot inputs for small alphabets (tiny Shakespeare has 39)
    and uses an Embedding of AUTO_EMBEDDING_DIM above ONE_HOT_MAX_VOCAB characters,
    where one-hot vectors get as wide as the vocabulary. An explicit None (one-hot)
    for a large vocabulary is honoured, with a warning.
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


def build_model(
    vocab_size: int,
    units: int = 128,
    n_layers: int = 2,
    dropout: float = 0.2,
    embedding_dim: int | str | None = None,
    stateful: bool = False,
    batch_size: int | None = None,
    gru_kernel: str = "keras",
) -> keras.Model:
    """A stack of GRUs over one-hot characters (the seed) or an Embedding.

    `embedding_dim`: None for one-hot inputs, an int for an Embedding of that
    size, "auto" to choose by the vocabulary size (see `resolve_embedding_dim`).

    Stateful models need a fixed `batch_size`: row i of each batch continues
    row i of the previous one. The GRUs keep cuDNN's constraints (no
    recurrent_dropout, reset_after=True) so GPUs use the fast kernel.
    `gru_kernel`: "keras" (keras.layers.GRU) or "fused" (`FusedGRU`: the same layer and
    weights with a faster CPU training loop; histories differ only by float rounding).
    """
    if vocab_size < 1 or units < 1 or n_layers < 1:
        raise ValueError(
            f"vocab_size, units and n_layers must be positive, got {vocab_size}, {units}, {n_layers}."
        )
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
    embedding_dim = resolve_embedding_dim(embedding_dim, vocab_size, warn=False)
    check_gru_kernel(gru_kernel)
    if stateful and (batch_size is None or batch_size < 1):
        raise ValueError(
            f"A stateful model needs batch_size (the number of parallel streams), got {batch_size}."
        )
    feature_shape = (None,) if embedding_dim else (None, vocab_size)
    if stateful:
        inputs = keras.Input(batch_shape=(batch_size, *feature_shape), name="chars")
    else:
        inputs = keras.Input(shape=feature_shape, name="chars")
    x = inputs
    if embedding_dim:
        x = keras.layers.Embedding(vocab_size + 1, embedding_dim, name="embedding")(x)
    for i in range(n_layers):
        x = GRU_KERNELS[gru_kernel](
            units, return_sequences=True, stateful=stateful, dropout=dropout, name=f"gru_{i + 1}"
        )(x)
    # A Dense on a 3-D tensor applies per time step: no TimeDistributed needed in Keras 3.
    logits = keras.layers.Dense(vocab_size, name="logits")(x)
    return keras.Model(inputs, logits, name="stateful_char_rnn" if stateful else "char_rnn")


def check_gru_kernel(gru_kernel) -> None:
    if gru_kernel not in GRU_KERNELS:
        raise ValueError(f"gru_kernel must be one of {sorted(GRU_KERNELS)}, got {gru_kernel!r}.")


def compile_model(model: keras.Model, learning_rate: float = 1e-3, ema_momentum: float | None = None,
                  weight_decay: float | None = None):
    """Adam on the cross-entropy of the logits, with accuracy as metric.

    Training runs `charrnn.loop`, which computes its loss, accuracy and gradient clipping
    itself; the compiled loss and metric serve `model.evaluate` (and `fit`, for comparisons).

    `ema_momentum`: Adam also keeps an exponential moving average of the weights (Keras's
    `use_ema`); `keras.callbacks.SwapEMAWeights` evaluates with it, and
    `optimizer.finalize_variable_values` puts it into the model at the end.

    `weight_decay`: each step shrinks the kernels and embeddings by learning rate × weight_decay
    of themselves, apart from the gradient (AdamW's decoupled decay); biases are left alone.

    Bits per character are the loss / ln 2: the loop derives them from the epoch's losses;
    as a metric they would compute the softmax cross-entropy a second time every batch.
    """
    optimizer = keras.optimizers.Adam(
        learning_rate=learning_rate, weight_decay=weight_decay,
        use_ema=ema_momentum is not None, ema_momentum=ema_momentum or 0.99)
    if weight_decay is not None:
        optimizer.exclude_from_weight_decay(var_names=["bias"])
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        jit_compile=False,  # XLA measured ~25% slower for these GRUs on CPU
    )
    return model


def model_config(model: keras.Model) -> dict:
    """The `build_model` arguments that rebuild `model` (stateful-ness aside)."""
    grus = gru_layers(model)
    embedding = [layer for layer in model.layers if isinstance(layer, keras.layers.Embedding)]
    return {
        "vocab_size": model.layers[-1].units,
        "units": grus[0].units,
        "n_layers": len(grus),
        "dropout": grus[0].dropout,
        "embedding_dim": embedding[0].output_dim if embedding else None,
        "gru_kernel": "fused" if isinstance(grus[0], FusedGRU) else "keras",
    }


def gru_layers(model: keras.Model) -> list[keras.layers.GRU]:
    return [layer for layer in model.layers if isinstance(layer, keras.layers.GRU)]


def build_step_model(model: keras.Model) -> keras.Model:
    """One time step of a `build_model` model, with its GRU states as inputs and outputs.

    Inputs: `[char_ids, state_1, ..., state_n]`: one character id per stream,
    shape (batch,), and one state per GRU, shape (batch, units). Outputs:
    `[logits, new_state_1, ..., new_state_n]`: the next character's logits,
    shape (batch, vocab_size), and the states after reading the character.
    The layers are `model`'s own (shared, not copied): training `model` changes
    the step model too. The GRUs' dropout is off (inference), and any batch size
    works, also for a stateful `model` (the states come in as inputs).
    """
    check_step_architecture(model)
    config = model_config(model)
    embeddings = [layer for layer in model.layers if isinstance(layer, keras.layers.Embedding)]
    grus = gru_layers(model)
    char_ids = keras.Input(shape=(), dtype="int32", name="char_ids")
    states = [keras.Input(shape=(gru.units,), name=f"{gru.name}_state") for gru in grus]
    # What build_model's first layer reads: the id itself, or the one-hot vector of class id - 1.
    x = embeddings[0](char_ids) if embeddings else keras.ops.one_hot(char_ids - 1, config["vocab_size"])
    new_states = []
    for gru, state in zip(grus, states):
        x = CellStep(gru.cell, name=f"{gru.name}_step")(x, state)  # a GRU cell's output is its new state
        new_states.append(x)
    logits = model.layers[-1](x)
    return keras.Model([char_ids, *states], [logits, *new_states], name=f"{model.name}_step")


class CellStep(keras.layers.Layer):
    """One step of a GRU's cell, as a layer of its own: (input, state) → new state, dropout off.

    The cell is the GRU's (shared). It needs this wrapper because Keras names
    every GRU's cell "gru_cell", and a functional model's layers need distinct names.
    """

    def __init__(self, cell: keras.layers.GRUCell, **kwargs):
        super().__init__(**kwargs)
        self.cell = cell

    def call(self, inputs, state):
        output, _ = self.cell(inputs, [state], training=False)
        return output


def check_step_architecture(model: keras.Model) -> None:
    """The step model re-runs the layers one step at a time: they must be build_model's."""
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    kinds = ["GRU" if isinstance(layer, keras.layers.GRU) else type(layer).__name__ for layer in layers]
    if kinds and kinds[0] == "Embedding":
        kinds = kinds[1:]
    n_grus = len(kinds) - 1
    linear_output = bool(layers) and layers[-1].get_config().get("activation") == "linear"
    if n_grus < 1 or kinds != ["GRU"] * n_grus + ["Dense"] or not linear_output:
        raise ValueError(
            f"Generation needs a build_model() model: [Embedding,] GRU..., Dense without activation; "
            f"got layers {[type(layer).__name__ for layer in layers]}."
        )


def reset_states(model: keras.Model) -> None:
    """Zero every stateful layer's state (Keras 3 has no `Model.reset_states()`)."""
    for layer in model.layers:
        if getattr(layer, "stateful", False):
            layer.reset_state()


def to_stateless(model: keras.Model) -> keras.Model:
    """A stateless copy with the same weights, usable with any batch size.

    The seed's `set_weights` route: both models have the same layers in the
    same order, so the weight lists line up one to one.
    """
    stateless = build_model(**model_config(model))
    stateless.set_weights(model.get_weights())
    return stateless


class ResetStatesCallback(keras.callbacks.Callback):
    """Start every epoch, and every validation pass, from a zero state."""

    def on_epoch_begin(self, epoch, logs=None):
        reset_states(self.model)

    def on_test_begin(self, logs=None):
        reset_states(self.model)

    def on_test_end(self, logs=None):
        reset_states(self.model)
