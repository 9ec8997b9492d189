"""The generated benchmark pages in docs/: Markdown tables written from the benchmarks' JSON.

`make bench` writes docs/benchmarks.md and `make bench-quality` docs/quality.md; nobody
copies a figure by hand, so the pages say what the last run on the machine measured.
"""

from __future__ import annotations

from pathlib import Path

from charrnn.atomic import write_text
from charrnn.corpus import PROJECT_ROOT

DOCS_DIR = PROJECT_ROOT / "docs"


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def machine_line(environment: dict) -> str:
    keys = ("platform", "python", "tensorflow", "keras", "numpy", "cpus")
    return "Machine: " + ", ".join(f"{key} {environment[key]}" for key in keys if key in environment) + "."


def benchmarks_page(result: dict) -> str:
    """docs/benchmarks.md from `python -m charrnn.bench`'s JSON."""
    rows = [[row["name"], row["unit"], f"{row['ours']:,.1f}", f"{row['reference']:,.1f}",
             f"{row['ratio']:.2f}x"] for row in result["rows"]]
    quick = " (`--quick`: fewer repetitions, noisier)" if result.get("quick") else ""
    return "\n\n".join([
        "# Benchmarks",
        f"Written by `make bench` (`python -m charrnn.bench`){quick}; do not edit by hand. Each row is "
        "measured in one run against its reference: Géron's construction for the pipeline, training and "
        "generation rows; tiny Shakespeare (39 characters) for the large-alphabet rows; one device for "
        "the distributed row. The ratio is charrnn / reference.",
        machine_line(result.get("environment", {})),
        markdown_table(["benchmark", "unit", "charrnn", "reference", "ratio"], rows),
    ]) + "\n"


def quality_table(result: dict) -> str:
    """The short table of the README: bits/char per preset, cell, text and budget."""
    rows = [[f"`{row['preset']}`", row.get("cell", "gru"), row["data"], f"{row['budget_minutes']:g}",
             f"{row['train_chars']:,}", f"{row['val_loss']:.4f}", f"{row['val_bpc']:.3f}", _unigram(row)]
            for row in result["rows"]]
    header = ["preset", "cell", "text", "minutes", "characters read", "val loss (nats)", "bits/char",
              "unigram bits/char"]
    return markdown_table(header, rows)


def quality_page(result: dict, figure: str | None = None) -> str:
    """docs/quality.md from `python -m charrnn.bench_quality`'s JSON: loss per preset and time budget."""
    rows = [[row["preset"], row.get("cell", "gru"), row["data"], f"{row['budget_minutes']:g}",
             f"{row['minutes']:.1f}", row["epochs"], f"{row['train_chars']:,}", f"{row['val_loss']:.4f}",
             f"{row['val_bpc']:.4f}", f"{row['best_val_loss']:.4f}", _unigram(row)] for row in result["rows"]]
    parts = [
        "# Validation loss per preset and training time",
        "Written by `make bench-quality`; do not edit by hand. Each preset trains from scratch as a "
        "stateful run on tiny Shakespeare (text: lower, cased) or the named corpus (last 10% held out), "
        "one run at a time; the loss is the final epoch's validation cross-entropy in nats, "
        "bits/char = loss / ln 2; the unigram baseline predicts each character by its training frequency.",
        machine_line(result.get("machine", {})),
        markdown_table(["preset", "cell", "text", "budget (min)", "minutes", "epochs", "characters",
                        "val loss", "bits/char", "best val loss", "unigram bits/char"], rows),
    ]
    if figure:
        parts.append(f"![validation bits per character against training time]({figure})")
    return "\n\n".join(parts) + "\n"


def _unigram(row: dict) -> str:
    return f"{row['unigram_bpc']:.3f}" if "unigram_bpc" in row else "—"


def replace_block(path: Path, name: str, text: str) -> None:
    """Rewrite what lies between `<!-- name: begin -->` and `<!-- name: end -->` in `path`."""
    begin, end = f"<!-- {name}: begin", f"<!-- {name}: end -->"
    page = path.read_text(encoding="utf-8")
    start, stop = page.find(begin), page.find(end)
    if start < 0 or stop < start:
        raise ValueError(f"{path} has no '{begin} ... -->' / '{end}' pair: add them where the table goes.")
    start = page.index("-->", start) + len("-->")
    write_text(path, page[:start] + "\n" + text + "\n" + page[stop:])


def write_page(name: str, text: str, docs_dir: Path = DOCS_DIR) -> Path:
    path = docs_dir / name
    write_text(path, text)
    return path
