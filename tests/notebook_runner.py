"""Running a notebook through papermill for the tests (shared by the English and Chinese sequences).

Every run is checked for start-up noise a newcomer would take for an error: TensorFlow's,
absl's, CUDA's, XLA's and the kernel's log lines in the notebook's outputs, and papermill's
warnings in its log.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from pathlib import Path

import papermill

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
TIMEOUT_PER_CELL = 600  # seconds: a stuck kernel fails instead of hanging CI

NOISE = [re.compile(pattern) for pattern in (
    r"All log messages before absl::InitializeLog\(\) is called",
    r"^[IWEF]\d{4} [\d:.]+\s+\d+ [\w.]+:\d+\]",  # any C++ log line (absl/TensorFlow format)
    r"oneDNN custom operations are on",
    r"Could not find cuda drivers",
    r"failed call to cuInit",
    r"cpu_feature_guard",
    r"This TensorFlow binary is optimized",
    r"XLA service|StreamExecutor device|service\.cc:\d+",
    r"^INFO:tensorflow:",
    r"\[IPKernelApp\]",
    r"Passed unknown parameter|Unable to parse line|does not contain a cell with tag 'parameters'",
)]


def execute(name, params, outputs, corpus=None):
    """Run notebook `name` with `params` ("{outputs}", "{corpus}" filled in); the executed copy.

    Fails, listing the lines, when the run printed any of NOISE.
    """
    params = {
        key: value.replace("{outputs}", str(outputs)).replace("{corpus}", str(corpus))
        if isinstance(value, str) else value
        for key, value in params.items()
    }
    executed = outputs / "executed" / name
    executed.parent.mkdir(exist_ok=True)
    with papermill_log() as log:
        # Raises PapermillExecutionError carrying the failing cell's traceback.
        papermill.execute_notebook(
            str(NOTEBOOK_DIR / name), str(executed), parameters=params, cwd=str(NOTEBOOK_DIR),
            kernel_name="python3", execution_timeout=TIMEOUT_PER_CELL, log_output=True, progress_bar=False,
        )
    assert executed.is_file()
    check_no_noise(executed, log)
    return executed


@contextlib.contextmanager
def papermill_log():
    """papermill's warnings while the block runs, as a list of messages."""
    messages = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = logging.getLogger("papermill")
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)


def check_no_noise(executed: Path, log=()) -> None:
    """Fail, quoting them, if the executed notebook's outputs or papermill's `log` hold a NOISE line."""
    lines = [line for text in (printed(executed), *log) for line in text.splitlines()]
    # dict.fromkeys: papermill logs a cell's stderr as a warning too; each line is quoted once.
    noisy = list(dict.fromkeys(line for line in lines if any(pattern.search(line) for pattern in NOISE)))
    assert not noisy, f"{executed.name} printed start-up noise (see tests/notebook_runner.py NOISE):\n" + \
        "\n".join(noisy)


def printed(executed: Path) -> str:
    """Everything the executed notebook printed (stdout and stderr streams)."""
    cells = json.loads(executed.read_text(encoding="utf-8"))["cells"]
    return "".join("".join(output.get("text", "")) for cell in cells for output in cell.get("outputs", []))
