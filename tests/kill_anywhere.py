"""Kill a training notebook anywhere, N times, and check the finished run is the uninterrupted one.

    python tests/kill_anywhere.py --mode stateful --kills 20      (what `make kill-test` runs)

One tiny run is trained straight through as the reference. The same run under
another name is then started through papermill, SIGKILLed with its whole
process tree (papermill and the Jupyter kernel, which lives in a session of its
own) at N moments drawn from `--seed`, and restarted after each kill. Every
third kill is not a moment in time but a point inside a write (a checkpoint's
data or marker, a rename of any file, the final model): the kernel kills itself
there through `CHARRNN_CRASH_AT`. Finally the run is let finish, and its
history (all but the wall-time column), `best.keras` and `model.keras`
(every weight array, byte for byte) must equal the reference's.

A restart that fails, rather than resumes, ends the test with its error.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import h5py
import yaml

from charrnn.jobs import alive, descendants

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = {"stateless": "02_train_stateless.ipynb", "stateful": "03_train_stateful.ipynb"}
CRASH_POINTS = ["checkpoint-data", "checkpoint-marker", "before-rename", "after-final-model"]
TIME_COLUMN = "train_seconds"


def tiny_parameters(mode: str, outputs: Path, epochs: int) -> dict:
    params = yaml.safe_load((ROOT / "tests" / "notebooks.yaml").read_text())[NOTEBOOKS[mode]]
    params = {key: value.replace("{outputs}", str(outputs)) if isinstance(value, str) else value
              for key, value in params.items()}
    params.update(epochs=epochs, sample_chars=10)
    params.pop("compare_with", None)
    return params


def papermill_command(mode: str, params: dict, executed: Path) -> list[str]:
    command = [sys.executable, "-m", "papermill", str(ROOT / "notebooks" / NOTEBOOKS[mode]), str(executed),
               "--cwd", str(ROOT / "notebooks"), "-k", "python3", "--execution-timeout", "600"]
    for key, value in params.items():
        command += ["-y", yaml.safe_dump({key: value})]
    return command


def kill_tree(process: subprocess.Popen) -> None:
    for pid in [*descendants(process.pid), process.pid]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait(timeout=60)
    deadline = time.monotonic() + 60
    while any(alive(pid) for pid in descendants(process.pid)):
        if time.monotonic() > deadline:
            raise RuntimeError("processes survived SIGKILL")
        time.sleep(0.05)


def run_notebook(command: list[str], log: Path, env: dict, kill_after: float | None) -> str:
    """'finished', 'killed' (by us or by a crash point); raises if the notebook failed on its own."""
    with open(log, "ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env,
                                   start_new_session=True)
        try:
            returncode = process.wait(timeout=kill_after if kill_after is not None else 900)
        except subprocess.TimeoutExpired:
            if kill_after is None:
                kill_tree(process)
                raise RuntimeError(f"the notebook did not finish in 900 s; see {log}") from None
            kill_tree(process)
            return "killed"
    if returncode == 0:
        return "finished"
    text = log.read_text(errors="replace")
    if env.get("CHARRNN_CRASH_AT") and "DeadKernelError" in text[-5000:]:
        kill_tree(process)
        return "killed"
    raise RuntimeError(f"a restart failed instead of resuming (exit {returncode}):\n{text[-4000:]}")


def weights(path: Path) -> dict[str, bytes]:
    """Every weight array of a .keras file, byte for byte, by its name in the file.

    Read straight from the archive's weights file: the archive as a whole also holds
    its save time, which differs between two saves of the same weights.
    """
    with zipfile.ZipFile(path) as archive, archive.open("model.weights.h5") as raw:
        with h5py.File(io.BytesIO(raw.read()), "r") as h5:
            arrays = {}
            h5.visititems(lambda name, item: arrays.__setitem__(name, item[()].tobytes())
                          if isinstance(item, h5py.Dataset) else None)
    return arrays


def history_column(path: Path, name: str) -> list[str]:
    lines = path.read_text().splitlines()
    column = lines[0].split(",").index(name)
    return [line.split(",")[column] for line in lines[1:]]


def history_without_time(path: Path) -> list[str]:
    lines = path.read_text().splitlines()
    column = lines[0].split(",").index(TIME_COLUMN)
    return [",".join(f for i, f in enumerate(line.split(",")) if i != column) for line in lines]


def epochs_done(run_dir: Path) -> int:
    """Rows in history.csv so far (the epochs the next restart keeps, or one more)."""
    path = run_dir / "history.csv"
    return max(len(path.read_text().splitlines()) - 1, 0) if path.exists() else 0


def kill_anywhere(mode: str, kills: int, seed: int, workdir: Path) -> dict:
    from charrnn.corpus import find_corpus, read_text
    from charrnn.data import prepare_data

    outputs = workdir / "outputs"
    prepare_data(read_text(find_corpus())[:40_000], outputs / "data" / "tiny")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("CHARRNN_CRASH_AT", None)
    # Twice as many epochs as kills: a restart advances one or two epochs before the next kill.
    params = tiny_parameters(mode, outputs, epochs=max(6, 2 * kills + 4))
    log = workdir / "papermill.log"

    start, start_wall = time.monotonic(), time.time()
    reference = {**params, "run_name": "reference"}
    run_notebook(papermill_command(mode, reference, workdir / "reference.ipynb"), log, env, None)
    duration = time.monotonic() - start
    reference_dir = outputs / "runs" / "reference"
    training = float(history_column(reference_dir / "history.csv", TIME_COLUMN)[-1])
    # Start-up: kernel, imports, data and model, until the run's records are written just before fit.
    startup = max((reference_dir / "config.json").stat().st_mtime - start_wall, 1.0)
    first_epoch = float(history_column(reference_dir / "history.csv", TIME_COLUMN)[0])  # with tracing
    epoch_seconds = (training - first_epoch) / max(params["epochs"] - 1, 1)
    print(f"{mode}: uninterrupted run {duration:.1f} s: {startup:.1f} s start-up, {training:.1f} s training")

    rng = random.Random(seed)
    killed = {**params, "run_name": "killed"}
    run_dir = outputs / "runs" / "killed"
    events = []
    for index in range(kills):
        attempt_env = dict(env)
        last = index == kills - 1
        if index % 3 == 2 or last:  # inside a write; the last kill right after the final model is saved
            point = "after-final-model:1" if last else f"{rng.choice(CRASH_POINTS[:-1])}:{rng.randint(1, 3)}"
            attempt_env["CHARRNN_CRASH_AT"] = point
            moment, kill_after = point, duration * 2
        elif index % 4 == 3:  # during start-up: kernel, imports, data, model
            kill_after = rng.uniform(0.2, 0.8) * startup
            moment = f"{kill_after:.1f} s (start-up)"
        else:  # during training: from the middle of its first epoch to two epochs after
            kill_after = startup + first_epoch + rng.uniform(-0.5 * first_epoch, 2 * epoch_seconds)
            moment = f"{kill_after:.1f} s"
        outcome = run_notebook(papermill_command(mode, killed, workdir / "killed.ipynb"), log, attempt_env,
                               kill_after)
        complete = (run_dir / "model.keras").exists() and not (run_dir / "checkpoints").exists()
        events.append({"at": moment, "outcome": outcome, "epochs_in_history": epochs_done(run_dir),
                       "complete": complete})
        print(f"  kill {index + 1:2d} at {moment:<26} {outcome:<9} epochs in history: "
              f"{events[-1]['epochs_in_history']:2d}{'  (run complete)' if complete else ''}")
    landed = sum(event["outcome"] == "killed" for event in events)
    print(f"  {landed} of {kills} kills landed before the run finished; restarting to the end")
    run_notebook(papermill_command(mode, killed, workdir / "killed.ipynb"), log, env, None)

    result = {
        "history": history_without_time(run_dir / "history.csv")
        == history_without_time(reference_dir / "history.csv"),
        "model.keras": weights(run_dir / "model.keras") == weights(reference_dir / "model.keras"),
        "best.keras": weights(run_dir / "best.keras") == weights(reference_dir / "best.keras"),
    }
    verdict = "identical" if all(result.values()) else "DIFFERENT"
    print(f"{mode}: {landed} kills, every restart resumed; history, model.keras, best.keras vs the "
          f"uninterrupted run: {verdict} {result}")
    return {"events": events, "identical": result, "landed": landed}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=sorted(NOTEBOOKS), action="append",
                        help="stateless and/or stateful (default: both)")
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, help="default: a temporary folder, removed at the end")
    args = parser.parse_args(argv)
    ok = True
    for mode in args.mode or sorted(NOTEBOOKS):
        if args.workdir:
            result = kill_anywhere(mode, args.kills, args.seed, args.workdir / mode)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                result = kill_anywhere(mode, args.kills, args.seed, Path(tmp))
        ok &= all(result["identical"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
