"""charrnn beside the same recipe written plainly in PyTorch, on one time budget: `make bench-peer`.

A benchmark, not a dependency: without `torch` it says so and stops. Both train a stateful
2-layer GRU of the preset's sizes over embedded characters (64 streams of 100-character
windows, states carried between batches and zeroed at each pass), validated on the whole
held-out split (charrnn after each epoch, the port just before each compared minute), with
validation counted in the budget. The PyTorch side is what one would write by hand:
`nn.Embedding` (PyTorch's N(0, 1) init), dropout, `nn.GRU`, `nn.Linear`, AdamW on every
parameter, gradient clipping by norm, a cosine decay to 5% over the budget, the full softmax,
no weight average. Each side runs in a fresh process, one after the other. Writes
outputs/bench/peer.json and docs/peer.md.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from charrnn.atomic import write_json
from charrnn.bench_docs import DOCS_DIR, machine_line, markdown_table, write_page
from charrnn.corpus import OUTPUTS_DIR, read_text


def stream_windows(ids: np.ndarray, batch: int, steps: int, offset: int = 0) -> np.ndarray:
    """(batches, batch, steps + 1) windows of `batch` parallel streams, as charrnn cuts them."""
    parts = np.array_split(ids[offset:], batch)
    count = (min(len(p) for p in parts) - 1) // steps
    index = np.arange(count)[:, None] * steps + np.arange(steps + 1)[None, :]
    return np.stack([p[index] for p in parts], axis=1).astype(np.int64)


def port_model(config: dict, vocab: int):
    """The PyTorch port: Embedding, dropout, a multi-layer nn.GRU, Linear; returns (logits, state)."""
    from torch import nn

    class Port(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(vocab + 1, config["embedding_dim"])
            self.dropout = nn.Dropout(config["dropout"])
            self.gru = nn.GRU(config["embedding_dim"], config["units"], config["n_layers"], batch_first=True,
                              dropout=config["dropout"])
            self.logits = nn.Linear(config["units"], vocab)

        def forward(self, ids, state):
            out, state = self.gru(self.dropout(self.embedding(ids)), state)
            return self.logits(out), state

    return Port()


def torch_curve(data_dir: Path, config: dict, minutes: float, marks=()) -> dict:
    """Run in a fresh process: the PyTorch port's validation curve, [(seconds, characters, bits/char)]."""
    import torch
    from torch import nn

    from charrnn.config import cosine_rate
    from charrnn.data import load_prepared

    torch.manual_seed(config["seed"])
    data = load_prepared(data_dir)
    vocab, batch, steps = data.tokenizer.vocab_size, config["batch_size"], config["n_steps"]

    def streams(ids, offset=0):
        return torch.from_numpy(stream_windows(ids, batch, steps, offset))

    model = port_model(config, vocab)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config["learning_rate"],
                                  weight_decay=config["weight_decay"] or 0.0)
    budget, rng = 60.0 * minutes, np.random.default_rng(config["seed"])
    val = streams(data.val_ids)
    loss_fn = nn.CrossEntropyLoss()

    def validate():
        model.eval()
        total, state = 0.0, None
        with torch.no_grad():
            for window in val:
                logits, state = model(window[:, :-1], state)
                total += loss_fn(logits.reshape(-1, vocab), window[:, 1:].reshape(-1) - 1).item()
        model.train()
        return total / len(val) / math.log(2)

    # Validated only just before each mark and at the end (its validations still take their time
    # from the budget): the port gets every batch charrnn's epochs would spend validating.
    curve, seconds, chars, start, step = [], 0.0, 0, time.perf_counter(), 0.0
    marks = sorted(60.0 * m for m in marks if m < minutes)
    while seconds < budget:
        state = None
        for window in streams(data.train_ids, int(rng.integers(steps))):
            if marks and seconds + step >= marks[0]:  # the next batch would end past the mark
                curve.append((seconds, chars, validate()))
                marks.pop(0)
            began = time.perf_counter()
            for group in optimizer.param_groups:
                group["lr"] = cosine_rate(config["learning_rate"], (began - start) / budget)
            logits, state = model(window[:, :-1], state)
            state = state.detach()
            loss = loss_fn(logits.reshape(-1, vocab), window[:, 1:].reshape(-1) - 1)
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), config["clipnorm"] or math.inf)
            optimizer.step()
            chars += batch * steps
            seconds, step = time.perf_counter() - start, time.perf_counter() - began
            if seconds >= budget:
                break
    curve.append((seconds, chars, validate()))
    return {"curve": curve, "torch": torch.__version__, "threads": torch.get_num_threads()}


def charrnn_curve(data_dir: Path, preset: str, minutes: float, runs_dir: Path) -> dict:
    """Run in a fresh process: charrnn's `preset` as a stateful run, its validation curve."""
    from charrnn.quiet import start_tensorflow

    start_tensorflow()
    from charrnn.config import TrainConfig
    from charrnn.data import load_prepared
    from charrnn.train import train

    config = TrainConfig.from_preset(preset, stateful=True, run_name=f"peer-{preset}-{minutes:g}min",
                                     max_minutes=minutes, epochs=100_000)
    _, history = train(config, load_prepared(data_dir), runs_dir, verbose=0)
    return {"curve": [(s, c, loss / math.log(2)) for s, c, loss in zip(
        history["train_seconds"], history["train_chars"], history["val_loss"])]}


def at_minute(curve: list, minute: float, budget: float = math.inf) -> tuple | None:
    """The last validation at or before `minute` minutes, or None; at the budget, the final one
    (it follows the batch under way when the budget ends, a second or so past it)."""
    if minute >= budget:
        return curve[-1] if curve else None
    within = [point for point in curve if point[0] <= 60.0 * minute + 1e-6]
    return within[-1] if within else None


def compare(sides: dict, marks, budget: float) -> list[dict]:
    """Each side's validation at each mark, printed as it goes."""
    rows = []
    for minute in marks:
        ours, theirs = (at_minute(sides[side]["curve"], minute, budget) for side in ("charrnn", "torch"))
        rows.append({"minutes": minute, "charrnn": ours, "torch": theirs})
        print(f"{minute:>5g} min  charrnn " + (f"{ours[1]:>10,} chars {ours[2]:.3f} bpc" if ours else "—")
              + "   torch " + (f"{theirs[1]:>10,} chars {theirs[2]:.3f} bpc" if theirs else "—"))
    return rows


def main(argv=None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, required=True, help="the text (make: PEER_CORPUS)")
    parser.add_argument("--preset", default="fast", help="charrnn's recipe, and the sizes of the port (fast)")
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget of each side (10)")
    parser.add_argument("--marks", type=float, nargs="+", default=[1, 2, 5, 10], help="minutes to compare at")
    parser.add_argument("--out", type=Path, default=OUTPUTS_DIR / "bench" / "peer.json")
    parser.add_argument("--docs", type=Path, default=DOCS_DIR, help="where peer.md goes (docs/)")
    parser.add_argument("--side", choices=["torch", "charrnn"], help=argparse.SUPPRESS)  # a child process
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    from charrnn.config import TrainConfig

    config = TrainConfig.from_preset(args.preset, stateful=True)
    work = args.out.parent / "peer"
    if args.side == "torch":
        embedding = config.embedding_dim if isinstance(config.embedding_dim, int) else 64
        recipe = {**vars(config), "embedding_dim": embedding}
        print(json.dumps(torch_curve(args.data_dir, recipe, args.minutes, args.marks)))
        return None
    if args.side == "charrnn":
        print(json.dumps(charrnn_curve(args.data_dir, args.preset, args.minutes, work / "runs")))
        return None
    try:
        import torch  # noqa: F401
    except ImportError:
        print("bench-peer skipped: PyTorch is not installed (pip install torch==2.13.0, a CPU build).")
        return None

    from charrnn.quiet import start_tensorflow

    start_tensorflow()  # the machine record below imports it
    from charrnn.baselines import unigram_bits_per_char
    from charrnn.data import prepare_data

    data_dir = work / "data" / args.corpus.stem
    data = prepare_data(read_text(args.corpus), data_dir)
    unigram = unigram_bits_per_char(data.train_ids, data.val_ids, data.tokenizer.vocab_size)
    sides = {}
    for side in ("charrnn", "torch"):  # one at a time, each in its own process
        print(f"training the {side} side for {args.minutes:g} minutes ...", flush=True)
        command = [sys.executable, "-m", "charrnn.bench_peer", "--side", side, "--data-dir", str(data_dir),
                   "--preset", args.preset, "--minutes", str(args.minutes), "--out", str(args.out),
                   "--marks", *map(str, args.marks), "--corpus", str(args.corpus)]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        sides[side] = json.loads(done.stdout.strip().splitlines()[-1])
    rows = compare(sides, args.marks, args.minutes)
    from charrnn.bench_quality import machine

    result = {"corpus": args.corpus.name, "vocab_size": data.tokenizer.vocab_size, "unigram_bpc": unigram,
              "preset": args.preset, "minutes": args.minutes, "rows": rows, "sides": sides,
              "machine": machine()}
    write_json(args.out, result)
    page = write_page("peer.md", peer_page(result), args.docs)
    print(f"written: {args.out}, {page}")
    return result


def peer_page(result: dict) -> str:
    """docs/peer.md from `python -m charrnn.bench_peer`'s JSON."""
    def cell(point):
        return "—" if point is None else f"{point[1]:,} chars, **{point[2]:.3f}**"

    rows = [[f"{row['minutes']:g}", cell(row["charrnn"]), cell(row["torch"])] for row in result["rows"]]
    return "\n\n".join([
        "# charrnn beside a plain PyTorch port",
        f"Written by `make bench-peer` (`python -m charrnn.bench_peer`); do not edit by hand. The "
        f"`{result['preset']}` recipe on {result['corpus']} ({result['vocab_size']:,} characters, last 10% "
        f"held out; unigram baseline {result['unigram_bpc']:.3f} bits/char), each side trained for "
        f"{result['minutes']:g} minutes, one at a time, from scratch. Each cell is the last validation "
        "(whole held-out split, bits/char) at or before that minute, at the budget the final one, with "
            "the characters read; the "
        "PyTorch side is the same model and schedule written plainly (charrnn/bench_peer.py).",
        machine_line(result.get("machine", {})),
        markdown_table(["minutes", "charrnn", "PyTorch port"], rows),
    ]) + "\n"


if __name__ == "__main__":
    main()
