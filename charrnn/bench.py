"""Benchmarks against Géron's own approach (`charrnn.reference`), measured in one run: `make bench`.

Prints a table, writes outputs/bench/bench.json (figures, ratios, environment) and docs/benchmarks.md.
Rows:
  pipeline    batches/s of `shuffled_windows` vs Géron's window/flat_map/shuffle(10000)/batch/one-hot chain
  training    training characters/s, Géron's hyperparameters, this package (keras.layers.GRU, and FusedGRU)
              vs Géron's Keras construction
  generation  characters/s of the state-carrying Generator (1 and 16 streams) vs Géron's complete_text
              (200 characters from one prompt)
  corpora     a large alphabet (--chinese-corpus, e.g. shijing.txt, 2,798 characters) vs tiny Shakespeare
              (39), the same 2xGRU(128) with embedding_dim="auto": stateful training and generation chars/s;
              and generation chars/s of the compiled step loop (backend="cpp") vs the XLA loop for both
  output      stateful training chars/s of the fast recipe at 1,000 / 3,000 / 7,354 classes (Zipf random
              ids), full and sampled softmax, vs tiny Shakespeare's 39
  loop        stateful training chars/s of the training loop (charrnn.loop, every strategy's) vs `model.fit`,
              same model and data: tiny Shakespeare (one-hot) and 2,798 classes (embedding_dim="auto")
  distribute  training chars/s of the mirrored loop on 2 logical CPU devices vs 1 (each in a fresh process),
              the gradient bytes all-reduced per step, and the on-paper speed-up of R real replicas

`compare_speed` is the generation timing notebook 04 prints.
"""

# ruff: noqa: E402
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

from charrnn.quiet import start_tensorflow

start_tensorflow()  # before the imports below (E402): `make bench` without TensorFlow's start-up logs
import keras
import tensorflow as tf

from charrnn.atomic import write_json
from charrnn.bench_docs import DOCS_DIR, benchmarks_page, write_page
from charrnn.bench_training import bench_distribute, bench_loop, bench_output_layer, replica_rate
from charrnn.corpus import OUTPUTS_DIR, load_corpus
from charrnn.data import split_ids
from charrnn.extras import cpp_loop
from charrnn.generate import Generator, check_count
from charrnn.model import build_model, compile_model, resolve_embedding_dim
from charrnn.pipelines import shuffled_windows, stateful_streams
from charrnn.reference import BATCH_SIZE, N_STEPS, complete_text, geron_model, geron_windows
from charrnn.runs import environment_record
from charrnn.tokenizer import CharTokenizer


def batches_per_second(dataset: tf.data.Dataset, n_batches: int, warmup: int = 5) -> float:
    iterator = iter(dataset)
    for _ in range(warmup):  # the first batches include filling shuffle buffers
        next(iterator)
    start = time.perf_counter()
    for _ in range(n_batches):
        next(iterator)
    return n_batches / (time.perf_counter() - start)


class _StepTimer(keras.callbacks.Callback):
    """Seconds from the end of the first batch to the end of the epoch.

    Leaving out the first batch leaves out tracing and Géron's shuffle-buffer
    fill, which a real epoch of ~31,000 batches pays only once.
    """

    def on_train_batch_end(self, batch, logs=None):
        if batch == 0:
            self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds = time.perf_counter() - self.start


def best_training_rates(contenders: dict, steps: int, rounds: int = 3) -> dict:
    """Training chars/s of each (model, dataset), best of `rounds`, measured in turns.

    Taking turns and keeping each one's best round evens out warm-up and
    background noise, which otherwise favour whichever is measured last.
    """
    best = dict.fromkeys(contenders, 0.0)
    for round_index in range(rounds + 1):
        for name, (model, dataset) in contenders.items():
            timer = _StepTimer()
            n_steps = 3 if round_index == 0 else steps  # round 0 traces and warms up
            model.fit(dataset.repeat(), steps_per_epoch=n_steps, epochs=1, verbose=0, callbacks=[timer])
            if round_index:
                best[name] = max(best[name], (n_steps - 1) * BATCH_SIZE * N_STEPS / timer.seconds)
    return best


@dataclasses.dataclass
class SpeedComparison:
    n_chars: int
    fast_chars_per_second: float
    reference_chars_per_second: float
    backend: str = "xla"  # the Generator's step loop: "cpp" (compiled for the CPU) or "xla"

    @property
    def ratio(self) -> float:
        return self.fast_chars_per_second / self.reference_chars_per_second

    def __str__(self) -> str:
        return (
            f"{self.n_chars} characters: Generator ({self.backend} step loop) "
            f"{self.fast_chars_per_second:,.0f} chars/s, "
            f"complete_text {self.reference_chars_per_second:,.1f} chars/s, "
            f"{self.ratio:,.0f}x faster"
        )


def compare_speed(
    generator: Generator, prompt: str, n_chars: int = 200, temperature: float = 1.0, repeats: int = 3
) -> SpeedComparison:
    """Characters per second of `generator` and of `complete_text`: best of `repeats` after a warm-up."""
    n_chars = check_count(n_chars, "n_chars", minimum=1)
    repeats = check_count(repeats, "repeats", minimum=1)

    def best_rate(run):
        seconds = []
        for seed in range(repeats):
            start = time.perf_counter()
            run(seed)
            seconds.append(time.perf_counter() - start)
        return n_chars / min(seconds)

    generator.generate(prompt, n_chars, temperature, seed=0)  # compiles
    fast = best_rate(lambda seed: generator.generate(prompt, n_chars, temperature, seed=seed))
    complete_text(generator.model, generator.tokenizer, prompt, 1, temperature)  # traces
    reference = best_rate(
        lambda seed: complete_text(generator.model, generator.tokenizer, prompt, n_chars, temperature))
    return SpeedComparison(n_chars, fast, reference, generator.backend)


def bench_pipeline(train_ids, vocab_size, quick):
    ours = shuffled_windows(train_ids, N_STEPS, 1, BATCH_SIZE, vocab_size=vocab_size, seed=0)
    geron = geron_windows(train_ids - 1, vocab_size)
    ours_rate = batches_per_second(ours, 300 if quick else 3000)
    geron_rate = batches_per_second(geron, 30 if quick else 200)
    return {"name": "pipeline", "unit": "batches/s", "ours": ours_rate, "reference": geron_rate}


def bench_training(train_ids, vocab_size, quick):
    """Géron's model and hyperparameters: keras.layers.GRU and FusedGRU against his construction."""
    windows = lambda: shuffled_windows(  # noqa: E731
        train_ids, N_STEPS, 1, BATCH_SIZE, vocab_size=vocab_size, seed=0)
    rates = best_training_rates({
        "keras": (compile_model(build_model(vocab_size)), windows()),
        "fused": (compile_model(build_model(vocab_size, gru_kernel="fused")), windows()),
        "geron": (geron_model(vocab_size), geron_windows(train_ids - 1, vocab_size)),
    }, steps=10 if quick else 60, rounds=1 if quick else 3)
    return [{"name": f"training (2xGRU128, one-hot, batch 32x100), gru_kernel={kernel!r}", "unit": "chars/s",
             "ours": rates[kernel], "reference": rates["geron"]} for kernel in ("keras", "fused")]


def bench_generation(tokenizer, quick):
    model = build_model(tokenizer.vocab_size)  # speed does not depend on the weights
    generator = Generator(model, tokenizer)
    # Géron's complete_text and the Generator, both for 200 characters from one prompt.
    short = compare_speed(generator, "the ", 50 if quick else 200)
    rows = [{"name": f"generation, 1 stream, {short.n_chars} chars (both)", "unit": "chars/s",
             "ours": short.fast_chars_per_second, "reference": short.reference_chars_per_second}]
    n_chars = 500 if quick else 5000
    for streams in (1, 16):
        prompts = ["the "] * streams
        generator.generate(prompts, 10, seed=0)  # compile for this batch size
        start = time.perf_counter()
        generator.generate(prompts, n_chars, seed=0)
        rate = streams * n_chars / (time.perf_counter() - start)
        rows.append({"name": f"generation, {streams} stream{'s' if streams > 1 else ''} x {n_chars} chars "
                             f"vs complete_text {short.n_chars}",
                     "unit": "chars/s", "ours": rate, "reference": short.reference_chars_per_second})
    return rows


def stateful_training_rate(train_ids, vocab_size, quick) -> float:
    """Stateful training chars/s of 2xGRU(128), embedding_dim="auto", 32 streams x 100 (best of rounds)."""
    embedding_dim = resolve_embedding_dim("auto", vocab_size)
    model = compile_model(build_model(vocab_size, embedding_dim=embedding_dim, stateful=True,
                                      batch_size=BATCH_SIZE))
    dataset = stateful_streams(train_ids, N_STEPS, BATCH_SIZE, vocab_size=vocab_size)
    rates = best_training_rates({"model": (model, dataset)}, steps=10 if quick else 40,
                                rounds=1 if quick else 3)
    return rates["model"]


def generation_rate(tokenizer, prompt, quick, backend: str = "cpp") -> float:
    """One stream's chars/s of the Generator (`backend`) for an untrained 2xGRU(128), embedding_dim="auto"."""
    generator = Generator(build_model(tokenizer.vocab_size, embedding_dim="auto"), tokenizer, backend=backend)
    n_chars = 500 if quick else 5000
    generator.generate(prompt, 10, seed=0)  # compiles
    seconds = []
    for seed in range(1 if quick else 3):
        start = time.perf_counter()
        generator.generate(prompt, n_chars, seed=seed)
        seconds.append(time.perf_counter() - start)
    return n_chars / min(seconds)


def bench_corpora(chinese_path, english_ids, english_tokenizer, quick):
    """A large alphabet against tiny Shakespeare, same GRU: 'ours' = large, 'reference' = tiny Shakespeare."""
    text = load_corpus(chinese_path)
    tokenizer = CharTokenizer.fit(text)
    train_ids, _ = split_ids(tokenizer.encode(text))
    label = f"{Path(chinese_path).stem} ({tokenizer.vocab_size:,} chars) vs tiny Shakespeare (39)"
    return [
        {"name": f"stateful training 2xGRU128 auto inputs, {label}", "unit": "chars/s",
         "ours": stateful_training_rate(train_ids, tokenizer.vocab_size, quick),
         "reference": stateful_training_rate(english_ids, english_tokenizer.vocab_size, quick)},
        {"name": f"generation, 1 stream, {label}", "unit": "chars/s",
         "ours": generation_rate(tokenizer, text[:2], quick),
         "reference": generation_rate(english_tokenizer, "the ", quick)},
        *({"name": f"generation, 1 stream, {name}: compiled step loop vs XLA loop", "unit": "chars/s",
           "ours": generation_rate(alphabet, prompt, quick, backend="cpp"),
           "reference": generation_rate(alphabet, prompt, quick, backend="xla")}
          for name, alphabet, prompt in [(f"{Path(chinese_path).stem} ({tokenizer.vocab_size:,})", tokenizer,
                                          text[:2]), ("tiny Shakespeare (39)", english_tokenizer, "the ")]
          if cpp_loop.library() is not None),
    ]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["pipeline", "training", "generation", "corpora", "output",
                                           "loop", "distribute"],
                        action="append",
                        help="run only these rows (repeatable); default: all")
    parser.add_argument("--quick", action="store_true",
                        help="fewer repetitions (a smoke test, noisier figures)")
    parser.add_argument("--out", type=Path, default=OUTPUTS_DIR / "bench" / "bench.json")
    parser.add_argument("--docs", type=Path, default=DOCS_DIR, help="where benchmarks.md goes (docs/)")
    parser.add_argument("--chinese-corpus", type=Path,
                        help="a large-alphabet corpus for the 'corpora' rows (e.g. shijing.txt)")
    parser.add_argument("--replica-rate", type=int, help=argparse.SUPPRESS)  # the distribute row's child
    args = parser.parse_args(argv)
    if args.replica_rate:
        print(json.dumps(replica_rate(args.replica_rate, args.quick)))
        return {}
    only = set(args.only or ["pipeline", "training", "generation", "corpora", "output", "loop", "distribute"])

    text = load_corpus()
    tokenizer = CharTokenizer.fit(text)
    train_ids, _ = split_ids(tokenizer.encode(text))
    rows = []
    if "pipeline" in only:
        rows.append(bench_pipeline(train_ids, tokenizer.vocab_size, args.quick))
    if "training" in only:
        rows.extend(bench_training(train_ids, tokenizer.vocab_size, args.quick))
    if "generation" in only:
        rows.extend(bench_generation(tokenizer, args.quick))
    if "corpora" in only:
        if args.chinese_corpus and args.chinese_corpus.is_file():
            rows.extend(bench_corpora(args.chinese_corpus, train_ids, tokenizer, args.quick))
        else:
            print(f"corpora rows skipped: no --chinese-corpus file ({args.chinese_corpus})")
    if "output" in only:
        rows.extend(bench_output_layer(train_ids, args.quick))
    if "loop" in only:
        rows.extend(bench_loop(train_ids, tokenizer, args.chinese_corpus, args.quick))
    if "distribute" in only:
        rows.append(bench_distribute(args.quick))
    for row in rows:
        row["ratio"] = row["ours"] / row["reference"]

    print(f"{'benchmark':<58} {'unit':>10} {'charrnn':>12} {'reference':>12} {'ratio':>9}")
    print("(reference: Géron's construction; for the corpora and output rows, tiny Shakespeare / 39 classes)")
    for row in rows:
        print(f"{row['name']:<58} {row['unit']:>10} {row['ours']:>12,.1f} {row['reference']:>12,.1f} "
              f"{row['ratio']:>8.2f}x")
    result = {"rows": rows, "quick": args.quick, "environment": {**environment_record(None),
                                                                  "cpus": os.cpu_count()}}
    write_json(args.out, result)
    page = write_page("benchmarks.md", benchmarks_page(result), args.docs)
    print(f"written: {args.out}, {page}")
    return result


if __name__ == "__main__":
    main()
