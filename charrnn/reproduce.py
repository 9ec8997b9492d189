"""Re-run a finished run from its records and say how close the copy comes: `make reproduce RUN=name`.

    python -m charrnn.reproduce --run stateful

Finds the run's notebook (02 stateless, 03 stateful) and its prepared data (the
folder under outputs/data/ whose meta matches the data the run recorded),
executes the notebook through papermill with the recorded options (its `overrides`) into
`outputs/runs/<name>-reproduced/`, and compares the two history.csv files:
identical in every column but the wall time (same machine), or the largest
absolute difference in each column. A time-budgeted run stops where the clock
says, so it reproduces only up to where the shorter of the two stopped.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from charrnn.corpus import OUTPUTS_DIR, PROJECT_ROOT
from charrnn.quiet import start_tensorflow

start_tensorflow()  # charrnn.runs imports TensorFlow: without its start-up logs in `make reproduce`
from charrnn.runs import HISTORY_FILE, TIME_COLUMN, read_config, read_history  # noqa: E402

NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
NOTEBOOKS = {False: "02_train_stateless.ipynb", True: "03_train_stateful.ipynb"}


def find_prepared_data(outputs: Path, data_identity: dict) -> Path:
    """The prepared-data folder whose meta.json matches a run's recorded data."""
    for meta_path in sorted((outputs / "data").glob("*/meta.json")):
        meta = json.loads(meta_path.read_text())
        if all(meta.get(key) == value for key, value in data_identity.items()):
            return meta_path.parent
    raise FileNotFoundError(
        f"No prepared data under {outputs / 'data'} matches the run's data {data_identity}. "
        "Prepare the same corpus first (make data CORPUS=... DATASET=...)."
    )


def compare_histories(original: dict, copy: dict) -> dict[str, float]:
    """Largest absolute difference per column over the epochs both have (wall time left out)."""
    n = min(len(original.get("epoch", [])), len(copy.get("epoch", [])))
    return {
        column: max((abs(a - b) for a, b in zip(original[column][:n], copy[column][:n])), default=0.0)
        for column in original
        if column not in ("epoch", TIME_COLUMN) and column in copy
    }


def history_rows_without_time(run_dir: Path) -> list[list[str]]:
    lines = [line.split(",") for line in (run_dir / HISTORY_FILE).read_text().splitlines()]
    keep = [i for i, name in enumerate(lines[0]) if name != TIME_COLUMN]
    return [[fields[i] for i in keep] for fields in lines]


def reproduction_parameters(record: dict, run_name: str, dataset_name: str, outputs: Path) -> dict:
    """The training notebook's parameters for a recorded run: its preset, and every recorded option on top."""
    chosen = ("data", "run_name", "preset", "stateful")  # not options: the data, names and the notebook
    return {"preset": record.get("preset"), "run_name": run_name, "dataset_name": dataset_name,
            "outputs_dir": str(outputs.resolve()),
            "overrides": {key: value for key, value in record.items() if key not in chosen}}


def reproduce(run_name: str, outputs: Path = OUTPUTS_DIR, execution_timeout: int = -1) -> dict:
    import papermill  # here: importing this module for its helpers should not need papermill

    run_dir = outputs / "runs" / run_name
    record = read_config(run_dir)
    if not (run_dir / HISTORY_FILE).is_file():
        raise FileNotFoundError(f"Run {run_dir} has no {HISTORY_FILE}: train it before reproducing it.")
    copy_name = f"{run_name}-reproduced"
    copy_dir = outputs / "runs" / copy_name
    if copy_dir.exists():
        raise FileExistsError(f"{copy_dir} already exists: look at it, or move it away to reproduce again.")
    data_dir = find_prepared_data(outputs, record["data"])
    notebook = NOTEBOOKS[bool(record["stateful"])]
    parameters = reproduction_parameters(record, copy_name, data_dir.name, outputs)
    copy_dir.mkdir(parents=True)
    print(f"Re-executing {notebook} for {run_dir} into {copy_dir} ...")
    papermill.execute_notebook(
        str(NOTEBOOK_DIR / notebook), str(copy_dir / notebook), parameters=parameters,
        cwd=str(NOTEBOOK_DIR), kernel_name="python3", execution_timeout=execution_timeout,
        log_output=False, progress_bar=False,
    )
    identical = history_rows_without_time(run_dir) == history_rows_without_time(copy_dir)
    differences = compare_histories(read_history(run_dir), read_history(copy_dir))
    return {"run": str(run_dir), "copy": str(copy_dir), "identical": identical,
            "max_abs_difference": differences}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="run name under outputs/runs/")
    parser.add_argument("--outputs", type=Path, default=OUTPUTS_DIR, help=f"outputs folder ({OUTPUTS_DIR})")
    args = parser.parse_args(argv)
    try:
        result = reproduce(args.run, args.outputs)
    except (FileNotFoundError, FileExistsError, ValueError) as err:
        print(f"reproduce: {err}", file=sys.stderr)
        return 2
    if result["identical"]:
        print(f"{result['copy']}: history.csv identical to {result['run']} in every column but "
              f"{TIME_COLUMN} (the wall time).")
    else:
        print(f"{result['copy']}: history.csv differs from {result['run']}; largest absolute difference "
              "per column:")
        for column, difference in result["max_abs_difference"].items():
            print(f"  {column:<14} {difference:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
