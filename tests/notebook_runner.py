"""Running a notebook through papermill for the tests (shared by the English and Chinese sequences)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import papermill

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
TIMEOUT_PER_CELL = 600  # seconds: a stuck kernel fails instead of hanging CI
# Start-up and framework logs a reader takes for errors: none may reach an executed notebook.
NOISE = re.compile("|".join([
    r"absl::InitializeLog", r"oneDNN custom operations", r"Could not find cuda drivers",
    r"failed call to cuInit", r"cpu_feature_guard", r"^[IWE]\d{4} .*\.cc:\d+\]", r"INFO:tensorflow:",
    r"IPKernelApp",
]), re.MULTILINE)


def execute(name, params, outputs, corpus=None):
    """Run notebook `name` with `params` ("{outputs}", "{corpus}" filled in); the executed copy."""
    params = {
        key: value.replace("{outputs}", str(outputs)).replace("{corpus}", str(corpus))
        if isinstance(value, str) else value
        for key, value in params.items()
    }
    executed = outputs / "executed" / name
    executed.parent.mkdir(exist_ok=True)
    # Raises PapermillExecutionError carrying the failing cell's traceback.
    papermill.execute_notebook(
        str(NOTEBOOK_DIR / name), str(executed), parameters=params, cwd=str(NOTEBOOK_DIR),
        kernel_name="python3", execution_timeout=TIMEOUT_PER_CELL, log_output=True, progress_bar=False,
    )
    assert executed.is_file()
    check_quiet(executed)
    return executed


def check_quiet(executed: Path) -> None:
    """Fail naming every noise line (see NOISE) the executed notebook printed."""
    noise = [line for line in printed(executed).splitlines() if NOISE.search(line)]
    assert not noise, f"{executed.name} printed start-up/log noise:\n" + "\n".join(noise[:10])


def printed(executed: Path) -> str:
    """Everything the executed notebook printed (stdout and stderr streams)."""
    cells = json.loads(executed.read_text(encoding="utf-8"))["cells"]
    return "".join("".join(output.get("text", "")) for cell in cells for output in cell.get("outputs", []))
