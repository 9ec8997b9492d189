"""Drawing notebook 05's views: coloured text (HTML for the notebook, PNG for the run folder) and charts.

Text is laid out by display columns (`charrnn.layout`: a Chinese character takes two) and drawn
with the CJK font `charrnn.plots` finds; a character no installed font has is drawn as '?'.
"""

from __future__ import annotations

import html
import math
import os

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import colormaps, colors
from matplotlib.patches import Rectangle

from charrnn.atomic import write_text
from charrnn.layout import char_width
from charrnn.plots import _covered, _save, label_fonts

SHOWN = {" ": "␣", "\n": "⏎", "\t": "⇥"}
SURPRISAL_COLORS, UNIT_COLORS = "Reds", "coolwarm"  # white = expected; blue/red = negative/positive
FONT_STACK = "'DejaVu Sans Mono', 'Noto Sans Mono CJK SC', 'Noto Sans CJK SC', monospace"
GRID_COLUMNS = 64  # display columns per row of a PNG passage


def shown(char: str) -> str:
    """A visible stand-in for whitespace; other invisible characters by code point."""
    if char in SHOWN:
        return SHOWN[char]
    return char if char.isprintable() else f"U+{ord(char):04X}"


def _hex(cmap: str, norm, value: float) -> str:
    return "#ffffff" if value is None or math.isnan(value) else colors.to_hex(colormaps[cmap](norm(value)))


def _cells(chars, colours, titles, below=None) -> str:
    """Characters as inline blocks with a background colour and hover title; a newline ends a row."""
    parts = []
    for i, (char, colour, title) in enumerate(zip(chars, colours, titles)):
        face = html.escape(shown(char) if char in SHOWN and char != " " else char) or "&nbsp;"
        face = "&nbsp;" if char == " " else face
        extra = below[i] if below else ""
        ink = "#fff" if _luminance(colour) < 0.45 else "#000"  # readable on dark cells
        parts.append(f'<span class="c" title="{html.escape(title)}"><span class="f" '
                     f'style="background:{colour};color:{ink}">{face}</span>{extra}</span>')
        if char == "\n":
            parts.append('<span class="br"></span>')
    style = (f"<style>.cr{{display:flex;flex-wrap:wrap;font-family:{FONT_STACK};line-height:1.15}}"
             ".cr .c{display:inline-flex;flex-direction:column;align-items:center;margin:0 0 6px 0}"
             ".cr .f{min-width:0.6em;text-align:center;white-space:pre}"
             ".cr .g{font-size:58%;color:#555;white-space:pre}.cr .br{flex-basis:100%;height:0}</style>")
    return f'{style}<div class="cr">{"".join(parts)}</div>'


def surprisal_html(chars, bits, top_chars, top_probs, max_bits: float) -> str:
    """The passage coloured by surprisal (white 0 bits, red `max_bits`), the top guesses under each."""
    norm = colors.Normalize(0, max_bits)
    titles, below = [], []
    for b, guesses, probs in zip(bits, top_chars, top_probs):
        listed = [f"{shown(g)} {p:.1%}" for g, p in zip(guesses, probs) if not math.isnan(p)]
        titles.append(f"{b:.2f} bits; model's guesses: " + ", ".join(listed) if listed else "first character")
        below.append("".join(f'<span class="g" style="opacity:{0.35 + 0.65 * p:.2f}">{html.escape(shown(g))}'
                             "</span>" for g, p in zip(guesses, probs) if not math.isnan(p)))
    legend = (f"<p>Surprisal: white 0 bits to red {max_bits:.1f} bits (a uniform guess); under each "
              "character the model's likeliest guesses for it (darker: likelier). Hover for the figures.</p>")
    return legend + _cells(chars, [_hex(SURPRISAL_COLORS, norm, b) for b in bits], titles, below)


def activation_html(chars, values, title: str) -> str:
    """The passage coloured by one unit's activation (blue negative, red positive)."""
    scale = float(np.nanmax(np.abs(values))) or 1.0
    norm = colors.Normalize(-scale, scale)
    cells = _cells(chars, [_hex(UNIT_COLORS, norm, v) for v in values], [f"{v:+.3f}" for v in values])
    return f"<p><b>{html.escape(title)}</b> (blue −{scale:.2f} … red +{scale:.2f})</p>{cells}"


def save_html(path: str | os.PathLike, title: str, body: str) -> None:
    """A standalone UTF-8 page of `body`, written atomically."""
    write_text(path, f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
                     f"</head><body>\n<h2>{html.escape(title)}</h2>\n{body}\n</body></html>\n")


def _grid_positions(chars, columns: int) -> tuple[list[tuple[int, int, int]], int]:
    """(row, column, width) of each character in rows of `columns` display columns; rows used."""
    places, row, col = [], 0, 0
    for char in chars:
        width = max(char_width(char), 1)
        if col + width > columns:
            row, col = row + 1, 0
        places.append((row, col, width))
        col += width
        if char == "\n":
            row, col = row + 1, 0
    return places, (row + 1 if col else max(row, 1))


def draw_text_grid(ax, chars, face_colours, columns: int = GRID_COLUMNS) -> None:
    """Characters on a grid of cells, each cell filled with its colour."""
    fonts = label_fonts()
    covered = frozenset().union(*(_covered(family) for family in fonts))
    places, rows = _grid_positions(chars, columns)
    for char, (row, col, width), colour in zip(chars, places, face_colours):
        ax.add_patch(Rectangle((col, row), width, 1, facecolor=colour, edgecolor="none"))
        face = shown(char) if char in SHOWN and char != " " else char
        if char != " " and not all(ord(c) in covered for c in face):
            face = "?"
        ink = "white" if _luminance(colour) < 0.45 else "black"  # readable on dark cells
        ax.text(col + width / 2, row + 0.55, face, ha="center", va="center", fontsize=8, fontfamily=fonts,
                color=ink)
    ax.set_xlim(0, columns)
    ax.set_ylim(rows, 0)
    ax.set_axis_off()


def _luminance(colour: str) -> float:
    red, green, blue = colors.to_rgb(colour)
    return 0.299 * red + 0.587 * green + 0.114 * blue


def _rows_needed(chars, columns: int = GRID_COLUMNS) -> int:
    return _grid_positions(chars, columns)[1]


def surprisal_png(chars, bits, max_bits: float, path=None, title: str = ""):
    """The passage coloured by surprisal on a grid, with a colour bar; saved to `path`."""
    norm = colors.Normalize(0, max_bits)
    rows = _rows_needed(chars)
    fig, ax = plt.subplots(figsize=(11, 0.28 * rows + 0.9))
    draw_text_grid(ax, chars, [_hex(SURPRISAL_COLORS, norm, b) for b in bits])
    fig.colorbar(plt.cm.ScalarMappable(norm, SURPRISAL_COLORS), ax=ax, fraction=0.02, pad=0.01,
                 label="surprisal (bits)")
    ax.set_title(title)
    return _save(fig, path)


def units_png(chars, panels: list[tuple[str, np.ndarray]], path=None):
    """One panel per (title, activations): the passage coloured by that unit (blue −, red +)."""
    rows = _rows_needed(chars)
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, (0.28 * rows + 0.6) * len(panels)), squeeze=False)
    for ax, (title, values) in zip(axes[:, 0], panels):
        scale = float(np.nanmax(np.abs(values))) or 1.0
        norm = colors.Normalize(-scale, scale)
        draw_text_grid(ax, chars, [_hex(UNIT_COLORS, norm, v) for v in values])
        ax.set_title(title, fontsize=9, loc="left")
    return _save(fig, path)


def gates_png(saturation: dict, path=None):
    """The 2015 paper's scatter: per layer, each gate unit at (fraction < 0.1, fraction > 0.9)."""
    layers = {layer: gates for layer, gates in saturation.items() if gates}
    if not layers:
        return None
    fig, axes = plt.subplots(1, len(layers), figsize=(4 * len(layers), 4), squeeze=False)
    for ax, (layer, gates) in zip(axes[0], layers.items()):
        for name, fractions in gates.items():
            ax.scatter(fractions["left"], fractions["right"], s=12, alpha=0.7, label=name)
        ax.plot([0, 1], [1, 0], color="gray", linewidth=0.8, linestyle="--")  # left + right <= 1
        ax.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.02), xlabel="fraction left-saturated (< 0.1)",
               ylabel="fraction right-saturated (> 0.9)", title=layer)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    return _save(fig, path)


def ngram_png(comparison: dict, run_bits: float | None, path=None):
    """Left: validation bits/char of the n-gram models by order, the run's as a line. Right: the RNN
    and the best n-gram model by position in the line, on the traced text."""
    fig, (ax_curve, ax_position) = plt.subplots(1, 2, figsize=(11, 3.8))
    orders, bits = zip(*sorted(comparison["curve"].items()))
    ax_curve.plot(orders, bits, marker="o", label="Kneser–Ney n-gram")
    if run_bits is not None:
        ax_curve.axhline(run_bits, color="C3", linestyle="--", label=f"this run {run_bits:.2f}")
    ax_curve.set(xlabel="n (characters of context + 1)", ylabel="validation bits per character",
                 title="n-gram baselines", xticks=list(orders))
    rows = comparison["by_position"]
    x = np.arange(len(rows))
    ax_position.bar(x - 0.2, [row["rnn"] for row in rows], 0.4, label="RNN")
    ax_position.bar(x + 0.2, [row["ngram"] for row in rows], 0.4, label=f"{comparison['best_order']}-gram")
    ax_position.set_xticks(x, [row["bucket"] for row in rows])
    ax_position.set(xlabel="position in the line", ylabel="bits per character",
                    title="Where the RNN gains (traced text)")
    for ax in (ax_curve, ax_position):
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, path)


def surprisal_view(tokenizer, traced, passage: slice, folder) -> str:
    """The surprisal view of `traced[passage]`: saved as surprisal.html and .png in `folder`; the HTML."""
    chars = list(tokenizer.decode(traced.ids[passage]))
    guesses = [[tokenizer.chars[i - 1] if i else "" for i in row] for row in traced.top_ids[passage]]
    bits, max_bits = traced.bits[passage], math.log2(max(tokenizer.vocab_size, 2))
    body = surprisal_html(chars, bits, guesses, traced.top_probs[passage], max_bits)
    save_html(os.path.join(folder, "surprisal.html"), "Surprisal per character", body)
    title = f"Surprisal per character: {np.nanmean(bits):.2f} bits/char over {len(chars)} characters"
    plt.close(surprisal_png(chars, bits, max_bits, os.path.join(folder, "surprisal.png"), title))
    return body


def units_view(tokenizer, traced, passage: slice, best: list[dict], folder) -> str:
    """The best unit of each feature over `traced[passage]`: saved as units.html and .png; the HTML."""
    chars = list(tokenizer.decode(traced.ids[passage]))
    panels = [(f"{row['feature']}: {row['state']} unit {row['unit']} (r = {row['r']:+.2f})",
               traced.states[row["state"]][passage, row["unit"]]) for row in best]
    body = "".join(activation_html(chars, values, title) for title, values in panels)
    save_html(os.path.join(folder, "units.html"), "Units that track text features", body)
    if panels:
        plt.close(units_png(chars, panels, os.path.join(folder, "units.png")))
    return body


def format_best_units(best: list[dict]) -> str:
    """The unit table: for each feature, the unit with the largest |r|."""
    lines = [f"{'feature':<18} {'state':<14} {'unit':>5} {'r':>7}"]
    lines += [f"{row['feature']:<18} {row['state']:<14} {row['unit']:>5} {row['r']:>+7.3f}" for row in best]
    return "\n".join(lines)


def format_saturation(fractions: dict) -> str:
    """Per layer and gate, the mean share of positions left- and right-saturated over its units."""
    lines = [f"{'layer':<10} {'gate':<10} {'< 0.1':>7} {'> 0.9':>7}  (mean over units)"]
    for layer, gates in fractions.items():
        if not gates:
            lines.append(f"{layer:<10} no gates (a simple RNN cell): nothing to saturate")
        for name, values in gates.items():
            left, right = np.mean(values["left"]), np.mean(values["right"])
            lines.append(f"{layer:<10} {name:<10} {left:>7.1%} {right:>7.1%}")
    return "\n".join(lines)


def format_ngram(comparison: dict, run_bits: float | None) -> str:
    """The n-gram curve, the run's figure, and the RNN against the best order by position in line."""
    lines = ["validation bits/char: " + ", ".join(f"n={n}: {b:.3f}" for n, b in comparison["curve"].items())]
    recorded = "not recorded" if run_bits is None else f"{run_bits:.3f}"
    lines.append(f"this run (history.csv, last epoch): {recorded}; best n-gram: n={comparison['best_order']}")
    traced, best = comparison["trace_bits"], comparison["best_order"]
    lines.append(f"traced text: RNN {traced['rnn']:.3f}, {best}-gram {traced['ngram']:.3f} bits/char")
    lines.append(f"{'position':>9} {'chars':>6} {'RNN':>6} {'n-gram':>7}")
    lines += [f"{row['bucket']:>9} {row['count']:>6} {row['rnn']:>6.2f} {row['ngram']:>7.2f}"
              for row in comparison["by_position"]]
    return "\n".join(lines)
