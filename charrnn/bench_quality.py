"""What each preset reaches in a given time: `make bench-quality` (python -m charrnn.bench_quality).

Trains each preset (with each `--cells` type: the equal-time cell comparison) from
scratch as a stateful run (notebook 03's model) on tiny Shakespeare, once per time
budget, and records the validation loss and bits/char of the final epoch and of the
best one, with the minutes and characters it took.
Data preparation is not timed. `--cased` adds each preset on the case-kept text
(65 characters, the usual benchmark setting); `--corpus` trains on another text (rows
labelled by its name, e.g. tangshi-lower); each row has its unigram baseline. Writes
outputs/bench/quality.json (with the machine description) and prints a table. A benchmark, not a test: the
default budgets of 10 and 20 minutes per preset take an hour or more.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
from pathlib import Path

from charrnn.atomic import write_json
from charrnn.baselines import unigram_bits_per_char
from charrnn.bench_docs import DOCS_DIR, quality_page, quality_table, replace_block, write_page
from charrnn.config import TrainConfig
from charrnn.corpus import OUTPUTS_DIR, find_corpus, read_text
from charrnn.data import corpus_prompts, prepare_data

FIGURE = "quality-vs-minutes.png"  # in docs/, beside quality.md; the README shows it


def summarise(history: dict, upto: int, **row) -> dict:
    """The row for a run's history cut after epoch index `upto` (the budget's last epoch)."""
    best = min(range(upto + 1), key=history["val_loss"].__getitem__)
    return {
        **row, "minutes": history["train_seconds"][upto] / 60, "train_chars": history["train_chars"][upto],
        "epochs": upto + 1,
        "val_loss": history["val_loss"][upto], "val_bpc": history["val_loss"][upto] / math.log(2),
        "best_val_loss": history["val_loss"][best], "best_minutes": history["train_seconds"][best] / 60,
    }


def quality_runs(
    preset: str, budgets: list[float], data, runs_dir: Path, text: str, prompt: str, cell: str = "gru"
) -> list[dict]:
    """Train one preset for each budget (a run folder per budget) and summarise the histories.

    A preset whose learning rate does not depend on the budget (constant schedule) trains once,
    for the largest budget; a smaller budget's row is that run's last epoch ending within it,
    marked `read_from` — the same model would have stopped there.
    """
    from charrnn.generate import Generator
    from charrnn.train import train

    shared = TrainConfig.from_preset(preset, stateful=True, cell=cell).lr_schedule == "constant"
    trained = [max(budgets)] if shared else sorted(budgets)
    rows = []
    for minutes in trained:
        print(f"training {preset} ({cell}) on the {text} text ({data.tokenizer.vocab_size} characters) "
              f"for {minutes:g} minutes ...", flush=True)
        name = f"{preset}-{text}-{minutes:g}min" + ("" if cell == "gru" else f"-{cell}")
        config = TrainConfig.from_preset(preset, stateful=True, cell=cell, run_name=name, max_minutes=minutes,
                                         epochs=100_000)  # the budget ends the run
        model, history = train(config, data, runs_dir, verbose=0)
        run = str(runs_dir / name)
        # What the final model writes: a fixed seed and a moderate temperature, for the README's table.
        sample = Generator(model, data.tokenizer).generate(prompt, 120, temperature=0.5, seed=0)[0]
        for budget in (budgets if shared else [minutes]):
            within = [i for i, s in enumerate(history["train_seconds"]) if s <= budget * 60 + 1e-9]
            if budget < minutes and not within:
                print(f"no epoch of {run} ended within {budget:g} minutes: no row for that budget")
                continue
            upto = within[-1] if budget < minutes else len(history["epoch"]) - 1
            row = {"preset": preset, "cell": cell, "data": text, "budget_minutes": budget, "run": run}
            if budget < minutes:
                row["read_from"] = f"{minutes:g}-minute run, last epoch ending within {budget:g} minutes"
            else:
                row["sample"] = sample
            rows.append(summarise(history, upto, **row))
    return sorted(rows, key=lambda row: row["budget_minutes"])


def merge_rows(old: list[dict], new: list[dict]) -> list[dict]:
    """Earlier results stay unless this run measured the same preset, cell, text and budget again."""
    key = lambda row: (row["preset"], row.get("cell", "gru"), row["data"], row["budget_minutes"])  # noqa: E731
    fresh = {key(row) for row in new}
    return [row for row in old if key(row) not in fresh] + new


def draw_curves(rows: list[dict], path: Path) -> None:
    """Validation bits/char against minutes and characters, one curve per trained run."""
    from charrnn import plots
    from charrnn.runs import read_histories

    histories = {}
    for run in sorted({Path(row["run"]) for row in rows}):  # a run read at several budgets is one curve
        histories.update(read_histories(run.parent, run.name))
    plots.validation_curves(histories, path=path)


def machine() -> dict:
    from charrnn.runs import environment_record

    return {**environment_record(None), "cpus": os.cpu_count(), "node": platform.node()}


def main(argv=None) -> dict:
    from charrnn.quiet import start_tensorflow

    start_tensorflow()  # before charrnn.data and charrnn.train import it: no start-up logs
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["geron", "fast"],
                        help="configs/<name>.yaml (geron fast)")
    parser.add_argument("--budgets", nargs="+", type=float, default=[10.0, 20.0], help="minutes (10 20)")
    parser.add_argument("--cells", nargs="+", default=["gru"], choices=["gru", "lstm", "rnn"],
                        help="train each preset with each cell type (gru)")
    parser.add_argument("--cased", action="store_true", help="also train each preset on the case-kept text")
    parser.add_argument("--corpus", help="corpus file (default: tiny Shakespeare, found as everywhere)")
    parser.add_argument("--prompt", default="ROMEO:",
                        help="what each final model continues (ROMEO:, else a line of the text)")
    parser.add_argument("--max-chars", type=int, help="use only the first characters (plumbing tests)")
    parser.add_argument("--out", type=Path, default=OUTPUTS_DIR / "bench" / "quality.json")
    parser.add_argument("--docs", type=Path, default=DOCS_DIR,
                        help="where quality.md and its figure go (docs/); the README's table follows")
    args = parser.parse_args(argv)
    for minutes in args.budgets:
        if not minutes > 0:
            raise SystemExit(f"--budgets must be positive minutes, got {minutes}.")
    for name in args.presets:
        try:
            TrainConfig.from_preset(name, stateful=True)  # a typo fails now, not after an hour of training
        except ValueError as err:
            raise SystemExit(f"--presets: {err}") from None

    path = find_corpus(args.corpus)
    text = read_text(path)[: args.max_chars]
    work = args.out.parent / "quality"
    # Tiny Shakespeare's rows are labelled by case; another corpus's by its name.
    name = "" if args.corpus is None else path.stem + "-"
    variants = [(name + "lower", True)] + ([(name + "cased", False)] if args.cased else [])
    rows = []
    for label, lower in variants:
        data = prepare_data(text, work / "data" / label, lower=lower)
        unigram = unigram_bits_per_char(data.train_ids, data.val_ids, data.tokenizer.vocab_size)
        prompt = corpus_prompts(data, [args.prompt])[0]  # a corpus without "ROMEO:" gets one of its lines
        for preset in args.presets:
            for cell in args.cells:
                rows += [{**row, "unigram_bpc": unigram} for row in
                         quality_runs(preset, args.budgets, data, work / "runs", label, prompt, cell)]

    print(f"\n{'preset':<8} {'cell':<5} {'text':<6} {'budget':>7} {'minutes':>8} {'epochs':>6} {'chars':>12} "
          f"{'val loss':>9} {'bits/char':>9} {'best':>7} {'at min':>7}")
    for row in rows:
        print(f"{row['preset']:<8} {row['cell']:<5} {row['data']:<6} {row['budget_minutes']:>7g} "
              f"{row['minutes']:>8.1f} "
              f"{row['epochs']:>6} {row['train_chars']:>12,} {row['val_loss']:>9.4f} {row['val_bpc']:>9.4f} "
              f"{row['best_val_loss']:>7.4f} {row['best_minutes']:>7.1f}")
    earlier = json.loads(args.out.read_text())["rows"] if args.out.is_file() else []
    result = {"rows": merge_rows(earlier, rows), "machine": machine()}
    write_json(args.out, result)
    figure = args.docs / FIGURE
    draw_curves(result["rows"], figure)
    page = write_page("quality.md", quality_page(result, FIGURE), args.docs)
    readme = args.docs.parent / "README.md"
    if readme.is_file():
        replace_block(readme, "quality", quality_table(result))
    print(f"written: {args.out}, {page}, {figure}, the table in {readme.name}")
    return result


if __name__ == "__main__":
    main()
