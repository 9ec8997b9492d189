"""The figures the notebooks show and save (PNG, written atomically)."""

from __future__ import annotations

import functools
import math
import os
import unicodedata
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import font_manager, ft2font

from charrnn.atomic import atomic_path
from charrnn.runs import CHARS_COLUMN, TIME_COLUMN
from charrnn.tokenizer import CharTokenizer


def _save(fig, path: str | os.PathLike | None):
    if path is not None:
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight")
    return fig


# Fonts with Chinese (and Japanese, Korean) glyphs, best first; fonts-noto-cjk provides the first.
CJK_FAMILIES = ("Noto Sans CJK SC", "Noto Serif CJK SC", "Source Han Sans SC", "WenQuanYi Zen Hei",
                "WenQuanYi Micro Hei", "Droid Sans Fallback", "PingFang SC", "Heiti SC", "Microsoft YaHei",
                "SimHei")
CJK_FILE_MARKERS = ("NotoSansCJK", "NotoSerifCJK", "SourceHanSans", "wqy-zenhei", "wqy-microhei",
                    "DroidSansFallback")
ALL_CHARS_UP_TO = 80  # a vocabulary this small is charted whole; larger ones show their top characters
TOP_CHARS = 60
SHOWN_AS = {" ": "␣", "\n": "\\n", "\t": "\\t"}


@functools.cache
def cjk_font_family() -> str | None:
    """An installed font family with CJK glyphs, or None (labels then fall back to code points).

    Matplotlib's font cache does not see fonts installed after it was built (such as
    fonts-noto-cjk added by the project's set-up), so matching system font files are added first.
    """
    def known():
        return {font.name for font in font_manager.fontManager.ttflist}

    if not known() & set(CJK_FAMILIES):
        for path in font_manager.findSystemFonts():
            if any(marker in Path(path).name for marker in CJK_FILE_MARKERS):
                try:
                    font_manager.fontManager.addfont(path)
                except (OSError, RuntimeError, ValueError):  # an unreadable font file: skip it
                    pass
    names = known()
    return next((family for family in CJK_FAMILIES if family in names), None)


@functools.cache
def _covered(family: str) -> frozenset[int]:
    """Code points the font `family` has glyphs for."""
    path = font_manager.findfont(font_manager.FontProperties(family=family), fallback_to_default=False)
    return frozenset(ft2font.FT2Font(path).get_charmap())


def label_fonts() -> list[str]:
    """Font families for character labels: matplotlib's default, then a CJK font when installed."""
    default = font_manager.FontProperties(family=plt.rcParams["font.family"]).get_name()
    cjk = cjk_font_family()
    return [default, cjk] if cjk else [default]


def char_label(char: str, covered: set[int] | frozenset[int]) -> str:
    """How a character is shown: itself when a font has its glyph, else its code point (U+XXXX).

    Space and newline get visible stand-ins; other spaces and control characters,
    which would draw as nothing, are shown by code point.
    """
    shown = SHOWN_AS.get(char, char)
    if char not in SHOWN_AS and unicodedata.category(char)[0] in "ZC":
        return f"U+{ord(char):04X}"
    if all(ord(c) in covered for c in shown):
        return shown
    return f"U+{ord(char):04X}"


def char_frequency(tokenizer: CharTokenizer, ids: np.ndarray, path=None, top: int | None = None):
    """Bar chart of the character shares, most frequent first.

    `top`: how many characters to show; None shows all of a small vocabulary (up to
    ALL_CHARS_UP_TO) and the TOP_CHARS most frequent of a larger one. Characters are
    drawn with a CJK-capable font when one is installed; any character no font
    can draw is labelled by its code point instead of an empty box.
    """
    counts = np.bincount(ids, minlength=tokenizer.vocab_size + 1)[1:]
    if top is None:
        top = tokenizer.vocab_size if tokenizer.vocab_size <= ALL_CHARS_UP_TO else TOP_CHARS
    order = np.argsort(counts, kind="stable")[::-1][:top]
    fonts = label_fonts()
    covered = frozenset().union(*(_covered(family) for family in fonts))
    labels = [char_label(tokenizer.chars[i], covered) for i in order]
    wide = any(label.startswith("U+") for label in labels)
    fig, ax = plt.subplots(figsize=(max(6, (0.36 if wide else 0.28) * len(labels)), 3.2))
    ax.bar(range(len(order)), counts[order] / counts.sum())
    ax.set_xticks(range(len(order)), labels, fontsize=8, fontfamily=fonts,
                  rotation=90 if wide else 0)
    ax.set_ylabel("share of characters")
    shown = "" if len(order) == tokenizer.vocab_size else f", top {len(order)} shown"
    ax.set_title(f"Character frequencies ({len(ids):,} characters, vocabulary "
                 f"{tokenizer.vocab_size:,}{shown})")
    return _save(fig, path)


def loss_curves(history: dict, path=None, title: str = "", baselines: dict[str, float] | None = None):
    """Training and validation loss (left, in bits per character) and accuracy (right) per epoch.

    `baselines` (name → bits/char, e.g. from `charrnn.baselines.baselines`) are drawn
    as dashed lines on the loss panel.
    """
    epochs = np.asarray(history["epoch"]) + 1
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.5))
    for key, label in (("loss", "train"), ("val_loss", "validation")):
        if key in history:
            ax_loss.plot(epochs, np.asarray(history[key]) / math.log(2), marker="o", label=label)
    for (name, bits), color in zip((baselines or {}).items(), ("gray", "black")):
        ax_loss.axhline(bits, linestyle="--", linewidth=1, color=color, label=f"{name} baseline {bits:.2f}")
    for key, label in (("accuracy", "train"), ("val_accuracy", "validation")):
        if key in history:
            ax_acc.plot(epochs, history[key], marker="o", label=label)
    ax_loss.set(xlabel="epoch", ylabel="bits per character", title=f"{title} loss".strip())
    ax_acc.set(xlabel="epoch", ylabel="next-character accuracy", title=f"{title} accuracy".strip())
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, path)


def validation_curves(histories: dict[str, dict], path=None):
    """Validation bits/char of several runs against training minutes (left) and characters seen (right).

    `histories` maps a label to a run's history (`runs.read_history`); time is the
    axis a user has, characters the one that compares recipes at equal data.
    """
    fig, (ax_time, ax_chars) = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    # Curves that coincide (the same recipe read at two budgets) stay visible: each its own marker and dash.
    styles = [(marker, dash) for dash in ("-", "--", ":", "-.") for marker in "o^sDv"]
    for (label, history), (marker, dash) in zip(histories.items(), styles * len(histories)):
        bits = np.asarray(history["val_loss"]) / math.log(2)
        style = {"marker": marker, "linestyle": dash, "markersize": 4, "markerfacecolor": "none",
                 "label": label}
        ax_time.plot(np.asarray(history[TIME_COLUMN]) / 60, bits, **style)
        ax_chars.plot(history[CHARS_COLUMN], bits, **style)
    ax_time.set(xlabel="training minutes", ylabel="validation bits per character",
                title="Validation loss against time")
    ax_chars.set(xlabel="training characters seen", title="Validation loss against characters seen")
    for ax in (ax_time, ax_chars):
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, path)
