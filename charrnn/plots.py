"""The figures the notebooks show and save (PNG, written atomically)."""

from __future__ import annotations

import math
import os

import matplotlib.pyplot as plt
import numpy as np

from charrnn.atomic import atomic_path
from charrnn.runs import CHARS_COLUMN, TIME_COLUMN
from charrnn.tokenizer import CharTokenizer


def _save(fig, path: str | os.PathLike | None):
    if path is not None:
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight")
    return fig


def char_frequency(tokenizer: CharTokenizer, ids: np.ndarray, path=None):
    """Bar chart of how often each character occurs, most frequent first."""
    counts = np.bincount(ids, minlength=tokenizer.vocab_size + 1)[1:]
    order = np.argsort(counts)[::-1]
    labels = [{" ": "␣", "\n": "\\n"}.get(tokenizer.chars[i], tokenizer.chars[i]) for i in order]
    fig, ax = plt.subplots(figsize=(max(6, 0.28 * len(labels)), 3.2))
    ax.bar(range(len(order)), counts[order] / counts.sum())
    ax.set_xticks(range(len(order)), labels, fontsize=8)
    ax.set_ylabel("share of characters")
    ax.set_title(f"Character frequencies ({len(ids):,} characters, vocabulary {tokenizer.vocab_size})")
    return _save(fig, path)


def loss_curves(history: dict, path=None, title: str = ""):
    """Training and validation loss (left, in bits per character) and accuracy (right) per epoch."""
    epochs = np.asarray(history["epoch"]) + 1
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.5))
    for key, label in (("loss", "train"), ("val_loss", "validation")):
        if key in history:
            ax_loss.plot(epochs, np.asarray(history[key]) / math.log(2), marker="o", label=label)
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
    for label, history in histories.items():
        bits = np.asarray(history["val_loss"]) / math.log(2)
        ax_time.plot(np.asarray(history[TIME_COLUMN]) / 60, bits, marker="o", markersize=3, label=label)
        ax_chars.plot(history[CHARS_COLUMN], bits, marker="o", markersize=3, label=label)
    ax_time.set(xlabel="training minutes", ylabel="validation bits per character",
                title="Validation loss against time")
    ax_chars.set(xlabel="training characters seen", title="Validation loss against characters seen")
    for ax in (ax_time, ax_chars):
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, path)
