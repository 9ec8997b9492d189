"""The Generator's step loop compiled for this CPU (`backend="cpp"`): `csrc/step_loop.cc`, via ctypes.

Why: under XLA on CPU one stream's step is dominated by per-op overhead and, for large
alphabets, by the output layer; the compiled loop packs its weights in blocks of output
columns and splits the output layer over two cores (`make bench` has the figures). It
implements stacked GRUs with Keras's GRU cell and `charrnn.sampling`'s draws on the same
uniform numbers. Only `Generator` uses it; the exported SavedModel keeps the XLA loop, so it
still loads in a process that imports only TensorFlow.

The library is built on first use with the system C++ compiler (`$CXX`, else c++/g++/clang++)
into a cache folder (`$CHARRNN_CPP_CACHE`, else ~/.cache/charrnn/cpp), under a name
keyed on the source, the compiler, the flags and the CPU, so an edit or another machine gets
its own build. Without a compiler `library()` returns None and
the Generator falls back to the XLA loop.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import warnings
from pathlib import Path

import keras
import numpy as np

from charrnn.model import CharRNN

SOURCE = Path(__file__).with_name("csrc") / "step_loop.cc"
BLOCK = 64  # output columns per packed block (kBlock in the source)
ALIGNMENT = 64  # bytes: the source reads packed blocks and biases as 64-byte vectors
_X86 = platform.machine().lower() in ("x86_64", "amd64")
FLAGS = ["-O3", "-std=c++17", "-shared", "-fPIC", "-pthread", "-fno-math-errno",
         *(["-march=native", "-mprefer-vector-width=512"] if _X86 else ["-mcpu=native"])]

_FLOAT_P = ctypes.POINTER(ctypes.c_float)
_INT_P = ctypes.POINTER(ctypes.c_int32)


class _Net(ctypes.Structure):
    """struct Net of the source, field for field."""

    _fields_ = [
        ("vocab_size", ctypes.c_int32),
        ("embedding_dim", ctypes.c_int32),
        ("n_layers", ctypes.c_int32),
        ("units", _INT_P),
        ("embedding", _FLOAT_P),
        ("one_hot_kernel", _FLOAT_P),
        ("kernels", ctypes.POINTER(_FLOAT_P)),
        ("recurrent_kernels", ctypes.POINTER(_FLOAT_P)),
        ("input_biases", ctypes.POINTER(_FLOAT_P)),
        ("recurrent_biases", ctypes.POINTER(_FLOAT_P)),
        ("output_kernel", _FLOAT_P),
        ("output_bias", _FLOAT_P),
    ]


# ----------------------------------------------------------------------------
# Building and loading the library
# ----------------------------------------------------------------------------

_library: ctypes.CDLL | None = None
_library_error: str | None = None
_library_lock = threading.Lock()  # one build per process, even when threads ask at once


def compiler() -> str | None:
    """The C++ compiler to build with: $CXX, else the first of c++, g++, clang++ on PATH."""
    if os.environ.get("CXX"):
        return shutil.which(os.environ["CXX"])
    return next((path for name in ("c++", "g++", "clang++") if (path := shutil.which(name))), None)


def _cpu_signature() -> str:
    """What -march=native depends on: the CPU's model and feature flags."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        wanted = ("model name", "flags", "Features")
        return "\n".join(sorted({line for line in lines if line.startswith(wanted)}))
    except OSError:
        return platform.processor() or platform.machine()


def library_path(cxx: str) -> Path:
    """Where the build of SOURCE with `cxx` for this CPU goes (cache folder / key)."""
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=60).stdout
    key = hashlib.sha256("\0".join([SOURCE.read_text(), version, " ".join(FLAGS), _cpu_signature()])
                         .encode()).hexdigest()[:16]
    cache = Path(os.environ.get("CHARRNN_CPP_CACHE") or Path.home() / ".cache" / "charrnn" / "cpp")
    return cache / f"step_loop-{key}.so"


def build(cxx: str) -> Path:
    """Compile SOURCE unless this key's library exists; written under a temporary name, then renamed."""
    path = library_path(cxx)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        command = [cxx, *FLAGS, str(SOURCE), "-o", temporary]
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr.strip()}")
        os.replace(temporary, path)  # atomic: concurrent builds (pytest -n) all end with one whole file
    finally:
        Path(temporary).unlink(missing_ok=True)
    return path


def library() -> ctypes.CDLL | None:
    """The loaded library, built if needed; None (with one warning) when it cannot be built."""
    global _library, _library_error
    with _library_lock:
        if _library is not None or _library_error is not None:
            return _library
        cxx = compiler()
        try:
            if cxx is None:
                raise RuntimeError("no C++ compiler (set CXX, or install g++: apt-get install g++)")
            _library = _declare(ctypes.CDLL(str(build(cxx))))
        except (OSError, RuntimeError, subprocess.SubprocessError) as error:
            _library_error = str(error)
            warnings.warn(f"charrnn.extras.cpp_loop: the compiled step loop is unavailable, generation "
                          f"uses the XLA loop. {_library_error}", stacklevel=2)
        return _library


def unavailable_reason() -> str | None:
    """Why library() returned None (after a call), else None."""
    return _library_error


def _declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    net, int_, float_ = ctypes.POINTER(_Net), ctypes.c_int, ctypes.c_float
    lib.charrnn_step.argtypes = [net, int_, _INT_P, _FLOAT_P, _FLOAT_P]
    lib.charrnn_step.restype = int_
    lib.charrnn_sample.argtypes = [_FLOAT_P, int_, int_, _FLOAT_P, float_, int_, _INT_P]
    lib.charrnn_sample.restype = int_
    lib.charrnn_generate.argtypes = [net, int_, int_, _INT_P, _INT_P, _FLOAT_P, float_, int_, _INT_P]
    lib.charrnn_generate.restype = int_
    return lib


# ----------------------------------------------------------------------------
# The model's weights, packed
# ----------------------------------------------------------------------------


def aligned_zeros(shape) -> np.ndarray:
    """float32 zeros whose data starts on an ALIGNMENT-byte boundary."""
    size = int(np.prod(shape))
    raw = np.zeros(size + ALIGNMENT // 4, np.float32)
    start = (-raw.ctypes.data % ALIGNMENT) // 4
    return raw[start : start + size].reshape(shape)


def padded(n: int) -> int:
    return -(-n // BLOCK) * BLOCK


def pack(kernel: np.ndarray) -> np.ndarray:
    """A Keras kernel [m, n] as the source reads it: [padded(n) / BLOCK, m, BLOCK], zero-padded."""
    m, n = kernel.shape
    blocks = aligned_zeros((padded(n) // BLOCK, m, BLOCK))
    full = n // BLOCK
    blocks[:full] = kernel[:, : full * BLOCK].reshape(m, full, BLOCK).transpose(1, 0, 2)
    blocks[full:, :, : n - full * BLOCK] = kernel[:, full * BLOCK :]
    return blocks


def pad(bias: np.ndarray) -> np.ndarray:
    out = aligned_zeros((padded(len(bias)),))
    out[: len(bias)] = bias
    return out


def unsupported_reason(model: CharRNN) -> str | None:
    """Why the compiled loop cannot run `model` (it implements stacked float32 GRUs), else None."""
    for layer in model.body:
        config = layer.get_config()
        if not isinstance(layer, keras.layers.GRU):
            return (f"its body has a {type(layer).__name__} layer ({layer.name}); "
                    "the compiled loop runs GRUs only")
        if not (config.get("reset_after") and config.get("use_bias") and config.get("activation") == "tanh"
                and config.get("recurrent_activation") == "sigmoid"):
            return f"{layer.name} is not a GRU with reset_after, biases, tanh and sigmoid"
    if any(weight.dtype != "float32" for weight in model.weights):
        return "the model's weights are not all float32"
    if model.embedding is not None and model.embedding.input_dim < model.vocab_size + 1:
        return f"its Embedding has {model.embedding.input_dim} rows, fewer than the ids 0..{model.vocab_size}"
    return None


class NativeNet:
    """The current weights of `model` (one `unsupported_reason` accepts), packed for the library.

    Built again for each generation, which costs a few milliseconds: Keras variables say
    nothing when training changes them, so a cached copy could be stale.
    """

    def __init__(self, model: CharRNN):
        grus, dense, embedding = model.body, model.logits, model.embedding
        self.vocab_size = dense.units
        self.state_sizes = [gru.units for gru in grus]
        self.units = np.array(self.state_sizes, np.int32)
        biases = [gru.cell.bias.numpy() for gru in grus]  # [2, 3 units]: input, recurrent
        first_kernel = grus[0].cell.kernel.numpy()
        self.embedding = np.ascontiguousarray(embedding.embeddings.numpy()) if embedding else None
        self.one_hot_kernel = None if embedding else np.ascontiguousarray(first_kernel)
        self.kernels = [pack(first_kernel) if embedding else None,
                        *(pack(gru.cell.kernel.numpy()) for gru in grus[1:])]
        self.recurrent_kernels = [pack(gru.cell.recurrent_kernel.numpy()) for gru in grus]
        self.input_biases = [pad(bias[0]) for bias in biases]
        self.recurrent_biases = [pad(bias[1]) for bias in biases]
        self.output_kernel = pack(dense.kernel.numpy())
        self.output_bias = pad(dense.bias.numpy())
        pointers = lambda arrays: (_FLOAT_P * len(arrays))(*(_pointer(a) for a in arrays))  # noqa: E731
        self._arrays = (pointers(self.kernels), pointers(self.recurrent_kernels), pointers(self.input_biases),
                        pointers(self.recurrent_biases))  # the struct points into them: keep them alive
        self.struct = _Net(
            self.vocab_size, embedding.output_dim if embedding else 0, len(grus),
            self.units.ctypes.data_as(_INT_P), _pointer(self.embedding), _pointer(self.one_hot_kernel),
            *self._arrays, _pointer(self.output_kernel), _pointer(self.output_bias),
        )


def _pointer(array: np.ndarray | None):
    return None if array is None else array.ctypes.data_as(_FLOAT_P)


# ----------------------------------------------------------------------------
# Calls
# ----------------------------------------------------------------------------


def _require() -> ctypes.CDLL:
    lib = library()
    if lib is None:
        raise RuntimeError(f"The compiled step loop is unavailable: {unavailable_reason()}.")
    return lib


def _int32(array) -> np.ndarray:
    return np.ascontiguousarray(array, np.int32)


def _float32(array) -> np.ndarray:
    return np.ascontiguousarray(array, np.float32)


def _check(status: int, vocab_size: int) -> None:
    if status == -1:
        raise ValueError(f"ids must be in 1..{vocab_size}.")
    if status != 0:
        raise MemoryError("The compiled step loop ran out of memory: generate fewer streams at once.")


def _check_sampling(temperature: float, top_k: int, vocab_size: int) -> None:
    if not (temperature >= 0 and 1 <= top_k <= vocab_size):
        raise ValueError(f"temperature must be >= 0 and top_k in 1..{vocab_size}, "
                         f"got {temperature} and {top_k}.")


def step(net: NativeNet, ids, states: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """One step (the step model's): ids (batch,) and one state per GRU in; logits and new states out."""
    ids = _int32(ids).reshape(-1)
    batch = len(ids)
    shapes, expected = [np.shape(state) for state in states], [(batch, size) for size in net.state_sizes]
    if shapes != expected:
        raise ValueError(f"states must have shapes {expected}, got {shapes}.")
    flat = _float32(np.concatenate([np.reshape(state, -1) for state in states]))
    logits = np.empty((batch, net.vocab_size), np.float32)
    _check(_require().charrnn_step(ctypes.byref(net.struct), batch, ids.ctypes.data_as(_INT_P),
                                   flat.ctypes.data_as(_FLOAT_P), logits.ctypes.data_as(_FLOAT_P)),
           net.vocab_size)
    bounds = np.cumsum([0, *(batch * size for size in net.state_sizes)])
    return logits, [flat[a:b].reshape(batch, -1) for a, b in zip(bounds[:-1], bounds[1:])]


def sample(logits, uniforms, temperature: float, top_k: int) -> np.ndarray:
    """Ids (class + 1) drawn as `charrnn.sampling.pick_next_ids` draws them: a row of logits and a
    uniform number per stream."""
    logits, uniforms = _float32(logits), _float32(uniforms)
    if logits.ndim != 2 or uniforms.shape != (len(logits),):
        raise ValueError(f"logits must be (batch, classes) and uniforms (batch,), got {logits.shape} and "
                         f"{uniforms.shape}.")
    _check_sampling(temperature, top_k, logits.shape[1])
    ids = np.empty(len(logits), np.int32)
    _check(_require().charrnn_sample(logits.ctypes.data_as(_FLOAT_P), len(logits), logits.shape[1],
                                     uniforms.ctypes.data_as(_FLOAT_P), temperature, top_k,
                                     ids.ctypes.data_as(_INT_P)), logits.shape[1])
    return ids


def generate(net: NativeNet, prompt_by_time, lengths, uniforms, temperature: float, top_k: int) -> np.ndarray:
    """Characters 1..steps of every stream, time-major (steps, batch); see charrnn_generate."""
    prompt_by_time, lengths, uniforms = _int32(prompt_by_time), _int32(lengths), _float32(uniforms)
    steps, batch = uniforms.shape
    if prompt_by_time.shape != (steps + 1, batch) or lengths.shape != (batch,):
        raise ValueError(f"prompt_by_time must be ({steps + 1}, {batch}) and lengths ({batch},), "
                         f"got {prompt_by_time.shape} and {lengths.shape}.")
    _check_sampling(temperature, top_k, net.vocab_size)
    produced = np.zeros((steps, batch), np.int32)
    _check(_require().charrnn_generate(
        ctypes.byref(net.struct), batch, steps, prompt_by_time.ctypes.data_as(_INT_P),
        lengths.ctypes.data_as(_INT_P), uniforms.ctypes.data_as(_FLOAT_P), temperature, top_k,
        produced.ctypes.data_as(_INT_P)), net.vocab_size)
    return produced


if __name__ == "__main__":  # `make native`: build now (else on first use) and say where, or why not
    if library() is None:
        raise SystemExit(f"charrnn.extras.cpp_loop: no compiled step loop ({unavailable_reason()}); "
                         "generation uses the XLA loop.")
    print(f"charrnn.extras.cpp_loop: {library_path(compiler())}")
