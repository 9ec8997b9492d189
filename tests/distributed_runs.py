"""Tiny training runs in a fresh process, for tests/test_distribute.py (logical devices need one).

    python tests/distributed_runs.py DATA_DIR RUNS_DIR JOBS_JSON

JOBS_JSON is a list of {"config": {TrainConfig fields}, "interrupt_after": epoch or null}, run in
order; a job with "interrupt_after" stops there (as a crash would), the next job with the same
run_name resumes it. The first mirrored job sets the process's logical CPU devices. Prints one
line "RESULT <json>": {run_name: history} for each finished run.
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from interrupts import Interrupt, StopAfterEpoch  # noqa: E402

from charrnn.data import load_prepared  # noqa: E402
from charrnn.runs import read_history  # noqa: E402
from charrnn.train import TrainConfig, train  # noqa: E402


def main(data_dir, runs_dir, jobs):
    data = load_prepared(data_dir)
    histories = {}
    for job in jobs:
        config = TrainConfig(**job["config"])
        stop = job.get("interrupt_after")
        try:
            train(config, data, runs_dir, extra_callbacks=() if stop is None else (StopAfterEpoch(stop),),
                  verbose=0)
        except Interrupt:
            continue
        histories[config.run_name] = read_history(Path(runs_dir) / config.run_name)
    print("RESULT " + json.dumps(histories), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]))
