"""An interactive sampler for Jupyter: prompt, temperature, top-k and length controls; the text
appears as it is generated.

`show_sampler` first prints one sample, so a headless run (papermill, `make`) records text and
needs no widget front-end; in Jupyter the controls below it generate more.
"""

from __future__ import annotations

import html

import ipywidgets as widgets
from IPython.display import display

from charrnn.generate import Generator

PIECE_CHARS = 20  # characters generated between two updates of the text on screen


def stream_text(generator: Generator, prompt: str, n_chars: int, temperature: float, top_k: int | None,
                seed: int | None):
    """The growing text, one piece of PIECE_CHARS characters at a time (each piece re-reads the text so far,
    which costs little next to showing it; the last text is what one `generate` call of n_chars gives
    only at temperature 0)."""
    text = prompt
    for start in range(0, n_chars, PIECE_CHARS):
        piece_seed = None if seed is None else seed + start
        text = generator.generate(text, min(PIECE_CHARS, n_chars - start), temperature, top_k=top_k,
                                  seed=piece_seed)[0]
        yield text


def show_sampler(generator: Generator, prompt: str, n_chars: int = 300, temperature: float = 0.8,
                 top_k: int | None = None, seed: int | None = 0) -> widgets.Widget:
    """Print one sample for `prompt`, then display controls that generate more (returned)."""
    print(generator.generate(prompt, n_chars, temperature, top_k=top_k, seed=seed)[0])
    vocab = generator.vocab_size
    labels = {"style": {"description_width": "8em"}}  # the default width cuts "temperature" short
    controls = {
        "prompt": widgets.Textarea(value=prompt, description="prompt", rows=2, **labels),
        "temperature": widgets.FloatSlider(value=temperature, min=0.0, max=2.0, step=0.05,
                                           description="temperature", **labels),
        "top_k": widgets.IntSlider(value=top_k or 0, min=0, max=vocab, description="top-k (0: all)",
                                   **labels),
        "n_chars": widgets.IntSlider(value=n_chars, min=PIECE_CHARS, max=3000, step=PIECE_CHARS,
                                     description="characters", **labels),
    }
    button = widgets.Button(description="Generate", button_style="primary")
    output = widgets.HTML()

    def on_click(_):
        values = {name: control.value for name, control in controls.items()}
        if not values["prompt"]:
            output.value = "<i>Type a prompt first.</i>"
            return
        try:
            for text in stream_text(generator, values["prompt"], values["n_chars"], values["temperature"],
                                    values["top_k"] or None, seed=None):
                output.value = f"<pre style='white-space: pre-wrap'>{html.escape(text)}</pre>"
        except ValueError as err:  # a prompt outside the vocabulary, say: show it, do not raise in a callback
            output.value = f"<b>{html.escape(str(err))}</b>"

    button.on_click(on_click)
    box = widgets.VBox([*controls.values(), button, output])
    display(box)
    return box
