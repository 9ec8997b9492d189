"""The training-loop and scale-out rows of `make bench` (`charrnn.bench` prints and records them).

  output      stateful training chars/s of the fast recipe at 1,000 / 3,000 / 7,354 classes (Zipf random
              ids), full and sampled softmax, vs tiny Shakespeare's 39
  loop        stateful training chars/s of the training loop (charrnn.loop, every strategy's) vs `model.fit`
  distribute  training chars/s of the mirrored loop on 2 logical CPU devices vs 1 (each in a fresh process),
              the gradient bytes all-reduced per step, and the on-paper speed-up of R real replicas
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from charrnn.corpus import load_corpus
from charrnn.data import split_ids
from charrnn.model import build_model, compile_model, resolve_embedding_dim
from charrnn.pipelines import shuffled_windows, stateful_streams
from charrnn.reference import BATCH_SIZE, N_STEPS
from charrnn.tokenizer import CharTokenizer


def loop_and_fit_rates(train_ids, vocab_size, quick) -> tuple[float, float]:
    """Stateful 2xGRU(128) training chars/s of `TrainingLoop.train_epoch` and of `model.fit`, taking turns.

    One model and dataset for both; each is timed from its first batch's end to its last's (best round).
    """
    from charrnn.checkpoint import TrainingState
    from charrnn.loop import TrainingLoop
    from charrnn.train import TrainConfig

    embedding_dim = resolve_embedding_dim("auto", vocab_size)
    model = compile_model(build_model(vocab_size, embedding_dim=embedding_dim, stateful=True,
                                      batch_size=BATCH_SIZE))
    dataset = stateful_streams(train_ids, N_STEPS, BATCH_SIZE, vocab_size=vocab_size).repeat()
    steps, rounds = (10, 1) if quick else (40, 3)
    marks = []
    marker = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: marks.append(time.perf_counter()))
    config = TrainConfig(stateful=True, batch_size=BATCH_SIZE, n_steps=N_STEPS)
    loop = TrainingLoop(config, model, TrainingState(), steps, run_dir=None, callbacks=[marker])  # no records
    iterator = iter(dataset)
    runs = {"loop": lambda: loop.train_epoch(iterator),
            "fit": lambda: model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[marker])}
    best = dict.fromkeys(runs, 0.0)
    for round_index in range(rounds + 1):  # round 0 traces and warms up
        for name, run in runs.items():
            marks.clear()
            run()
            if round_index:
                rate = (len(marks) - 1) * BATCH_SIZE * N_STEPS / (marks[-1] - marks[0])
                best[name] = max(best[name], rate)
    return best["loop"], best["fit"]


def recipe_training_rate(ids, vocab_size: int, sampled: int | None, quick: bool) -> float:
    """Stateful training chars/s of the `fast` recipe's model and optimiser through `TrainingLoop`.

    `sampled`: its sampled_softmax (None: the full softmax). Best round after a warm-up one.
    """
    from charrnn.averaging import WeightAverage
    from charrnn.checkpoint import TrainingState
    from charrnn.config import TrainConfig
    from charrnn.loop import TrainingLoop
    from charrnn.train import sampling_proposal

    config = TrainConfig.from_preset("fast", stateful=True, sampled_softmax=sampled)
    model = compile_model(build_model(
        vocab_size, config.units, config.n_layers, config.dropout, resolve_embedding_dim(
            config.embedding_dim, vocab_size), stateful=True, batch_size=config.batch_size,
        gru_kernel=config.gru_kernel), config.learning_rate, config.weight_decay)
    log_q = sampling_proposal(config, ids, vocab_size)
    steps, rounds = (5, 1) if quick else (15, 2)
    average = WeightAverage(model, config.ema_momentum) if config.ema_momentum else None
    loop = TrainingLoop(config, model, TrainingState(), steps, run_dir=None, log_q=log_q, average=average)
    iterator = iter(stateful_streams(ids, config.n_steps, config.batch_size, vocab_size=vocab_size).repeat())
    loop.train_epoch(iterator)  # traces and warms up
    seconds = []
    for _ in range(rounds):
        start = time.perf_counter()
        loop.train_epoch(iterator)
        seconds.append(time.perf_counter() - start)
    return steps * config.batch_size * config.n_steps / min(seconds)


def bench_output_layer(english_ids, quick, sampled: int = 1024):
    """The output layer's share of a step: the fast recipe at 39..7,354 classes, full and sampled softmax.

    The large alphabets read Zipf-distributed random ids (a character's frequency ~ 1/rank, as in text).
    """
    rng = np.random.default_rng(0)
    english = recipe_training_rate(english_ids, int(english_ids.max()), None, quick)
    rows = []
    for vocab_size in (1000, 3000, 7354):
        weights = 1.0 / np.arange(1, vocab_size + 1)
        ids = rng.choice(np.arange(1, vocab_size + 1), size=300_000, p=weights / weights.sum())
        ids = ids.astype(np.int32)
        full = recipe_training_rate(ids, vocab_size, None, quick)
        fewer = recipe_training_rate(ids, vocab_size, sampled, quick)
        print(f"output layer, {vocab_size:,} classes: full {full:,.0f}, sampled {fewer:,.0f} chars/s; "
              f"39 classes {english:,.0f}")
        label = f"training, fast recipe, {vocab_size:,} classes"
        rows += [{"name": f"{label}, full softmax vs 39 classes", "unit": "chars/s",
                  "ours": full, "reference": english},
                 {"name": f"{label}, sampled softmax ({sampled:,}) vs 39 classes", "unit": "chars/s",
                  "ours": fewer, "reference": english}]
    return rows


def bench_loop(english_ids, english_tokenizer, chinese_path, quick):
    """The training loop against `model.fit`: tiny Shakespeare, and 2,798 classes (corpus or random ids)."""
    if chinese_path and chinese_path.is_file():
        text = load_corpus(chinese_path)
        tokenizer = CharTokenizer.fit(text)
        large = (f"{chinese_path.stem} ({tokenizer.vocab_size:,})", split_ids(tokenizer.encode(text))[0],
                 tokenizer.vocab_size)
    else:
        ids = np.random.default_rng(0).integers(1, 2799, size=200_000).astype(np.int32)
        large = ("2,798 random classes", ids, 2798)
    rows = []
    small = ("tiny Shakespeare (39)", english_ids, english_tokenizer.vocab_size)
    for label, ids, vocab_size in [small, large]:
        loop_rate, fit_rate = loop_and_fit_rates(ids, vocab_size, quick)
        print(f"loop vs fit, {label}: {loop_rate:,.0f} vs {fit_rate:,.0f} chars/s "
              f"({loop_rate / fit_rate:.3f}x)")
        rows.append({"name": f"training loop vs model.fit, stateful 2xGRU128, {label}", "unit": "chars/s",
                     "ours": loop_rate, "reference": fit_rate})
    return rows


LINK_LATENCY = 50e-6  # seconds per ring hop on a data-centre TCP network (a typical figure, not measured)


def replica_rate(replicas: int, quick: bool) -> dict:
    """Run in a fresh process: chars/s of the mirrored loop on `replicas` logical CPU devices."""
    from charrnn.extras.distribute import distribute_datasets, make_strategy
    from charrnn.loop import make_steps

    strategy = make_strategy("mirrored", replicas, BATCH_SIZE)  # before anything starts TensorFlow
    text = load_corpus()
    tokenizer = CharTokenizer.fit(text)
    train_ids, _ = split_ids(tokenizer.encode(text))
    with strategy.scope():
        model = compile_model(build_model(tokenizer.vocab_size))  # Géron's 2xGRU(128), one-hot
    train_ds, _ = distribute_datasets(strategy, lambda part: [shuffled_windows(
        train_ids, N_STEPS, 1, BATCH_SIZE, vocab_size=tokenizer.vocab_size, seed=0, repeat=True,
        part=part)] * 2)
    train_step, _, key_dropout = make_steps(strategy, model, None)
    key_dropout(tf.constant(0, tf.int64))
    iterator = iter(train_ds)
    steps, best = (10, 1) if quick else (40, 3)
    for _ in range(3):  # tracing and warm-up
        train_step(iterator)
    seconds = []
    for _ in range(best):
        start = time.perf_counter()
        for _ in range(steps):
            sums = train_step(iterator)
        sums.numpy()
        seconds.append((time.perf_counter() - start) / steps)
    return {"step_seconds": min(seconds), "chars_per_second": BATCH_SIZE * N_STEPS / min(seconds),
            "gradient_bytes": 4 * sum(int(np.prod(v.shape)) for v in model.trainable_variables)}


def on_paper_speedup(step_seconds: float, gradient_bytes: int, replicas: int, gbit_per_s: float) -> float:
    """R·T / (T + ring all-reduce time): T the step at a fixed per-replica batch, 2(R-1)/R·G bytes sent."""
    transfer = 2 * (replicas - 1) / replicas * gradient_bytes / (gbit_per_s * 1e9 / 8)
    return replicas * step_seconds / (step_seconds + transfer + 2 * (replicas - 1) * LINK_LATENCY)


def bench_distribute(quick):
    measured = {}
    for replicas in (1, 2):  # each in a fresh process: logical devices are made before TensorFlow starts
        command = [sys.executable, "-m", "charrnn.bench", "--replica-rate", str(replicas)]
        result = subprocess.run(command + (["--quick"] if quick else []), capture_output=True, text=True,
                                timeout=1200, check=True)
        measured[replicas] = json.loads(result.stdout.strip().splitlines()[-1])
    one = measured[1]
    print(f"distribute: 1 replica {one['step_seconds'] * 1e3:.0f} ms/step (batch {BATCH_SIZE}x{N_STEPS}), "
          f"{one['gradient_bytes'] / 1e6:.2f} MB of gradients all-reduced per step. On paper, with real "
          f"devices at this per-replica step time (speed-up at 10 / 100 Gbit/s, {LINK_LATENCY * 1e6:.0f} µs "
          "per ring hop):")
    for replicas in (2, 4, 8, 64):
        print(f"  {replicas:>2} replicas: " + " / ".join(
            f"{on_paper_speedup(one['step_seconds'], one['gradient_bytes'], replicas, bw):.1f}x"
            for bw in (10, 100)))
    return {"name": "training, mirrored: 2 logical CPUs (same cores) vs 1", "unit": "chars/s",
            "ours": measured[2]["chars_per_second"], "reference": one["chars_per_second"],
            "step_seconds": {str(k): v["step_seconds"] for k, v in measured.items()},
            "gradient_bytes": one["gradient_bytes"]}
