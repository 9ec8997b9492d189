"""tf.distribute: mirrored replicas and multiworker processes train as one device does.

Mirrored runs need logical CPU devices, which only a fresh process can make: they run in
tests/distributed_runs.py. Multiworker runs are two `python -m charrnn train` workers on free
ports of 127.0.0.1. Every wait is bounded and every process is killed when a test ends.

Tolerance: per-epoch losses of 2 replicas (or 2 workers) against one device, same global batch,
no dropout, within 1e-5 (relative and absolute). Float re-association gives ~3e-7 on these
~16-step runs; a replica reading another replica's streams gives ~1e-3 (FINDINGS of issue 10).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from charrnn.checkpoint import CHECKPOINT_DIR
from charrnn.data import prepare_data
from charrnn.extras.distribute import make_strategy
from charrnn.runs import TIME_COLUMN, load_run, read_history
from charrnn.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}
TINY = {"units": 16, "n_layers": 1, "dropout": 0.0, "n_steps": 20, "batch_size": 8, "epochs": 2,
        "steps_per_epoch": 8, "validation_steps": 3, "learning_rate": 3e-3}


def assert_same_losses(history, reference):
    assert history["epoch"] == reference["epoch"]
    for column in ("loss", "val_loss"):
        gap = np.max(np.abs(np.subtract(history[column], reference[column])))
        print(f"{column}: max |difference| from one device {gap:.1e}")  # shown by pytest -s
        np.testing.assert_allclose(history[column], reference[column], **TOLERANCE, err_msg=column)


def without_time(history):
    return {key: values for key, values in history.items() if key != TIME_COLUMN}


# ---- the layout is checked before anything starts ------------------------------------------------


@pytest.mark.parametrize("settings, message", [
    ({"strategy": "horovod"}, "strategy must be one of"),
    ({"replicas": 2}, "replicas applies to strategy='mirrored' only"),
    ({"strategy": "multiworker", "replicas": 2}, "replicas applies"),
    ({"strategy": "mirrored", "replicas": 3, "batch_size": 8}, "split evenly over 3 replicas"),
    ({"strategy": "mirrored", "replicas": 0}, "replicas must be an integer"),
])
def test_a_bad_layout_is_a_clear_error(settings, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**settings)


def test_multiworker_without_tf_config_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="needs TF_CONFIG"):
        make_strategy("multiworker", None, 8)


def test_mirrored_after_tensorflow_started_with_fewer_devices_is_a_clear_error():
    import tensorflow as tf

    tf.constant(1.0)  # this process's TensorFlow is running, with one CPU device
    with pytest.raises(ValueError, match="already initialised with 1 .*fresh process"):
        make_strategy("mirrored", 2, 8)


# ---- mirrored: 2 logical CPU devices, in a fresh process -------------------------------------------


@pytest.mark.distributed
def test_mirrored_matches_one_device_and_checkpoints_move_between_replica_counts(tiny_text, tmp_path):
    def job(name, stop=None, **settings):
        return {"config": {**TINY, "run_name": name, **settings}, "interrupt_after": stop}

    m2, m1 = {"strategy": "mirrored", "replicas": 2}, {"strategy": "mirrored", "replicas": 1}
    dropout = {**m2, "dropout": 0.2}
    fast = {"stateful": True, "gru_kernel": "fused", "random_offsets": True, "ema_momentum": 0.9,
            "weight_decay": 0.5, "unigram_init": True, "sampled_softmax": 8}
    jobs = [  # the first mirrored job makes the 2 logical devices
        job("m2-stateless", **m2), job("m2-stateful", stateful=True, **m2),
        job("1to2", stop=0, **m1), job("1to2", **m2),  # stateless, resumed on 2 replicas
        job("2to1", stop=0, stateful=True, **m2), job("2to1", stateful=True, **m1),
        job("dropout", **dropout),
        job("dropout-resumed", stop=0, **dropout), job("dropout-resumed", **dropout),
        job("m2-fused", stateful=True, gru_kernel="fused", **m2),
        job("m2-fast", **fast, **m2),  # fast's options: windows cut anew, averaged and decayed weights
    ]
    data_dir = tmp_path / "data"
    data = prepare_data(tiny_text, data_dir)
    runs_dir = tmp_path / "runs"
    result = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "distributed_runs.py"), str(data_dir), str(runs_dir),
         json.dumps(jobs)], capture_output=True, text=True, timeout=360)
    assert result.returncode == 0, result.stderr[-3000:]
    histories = json.loads(result.stdout.split("RESULT ", 1)[1])

    one_device = {}
    for stateful in (False, True):
        config = TrainConfig(**{**TINY, "run_name": f"one-{stateful}", "stateful": stateful})
        one_device[stateful] = train(config, data, tmp_path / "one", verbose=0)[1]
    fused = TrainConfig(**{**TINY, "run_name": "one-fused", "stateful": True, "gru_kernel": "fused"})
    assert_same_losses(histories["m2-fused"], train(fused, data, tmp_path / "one", verbose=0)[1])
    fast_one = TrainConfig(**{**TINY, "run_name": "one-fast", **fast})
    assert_same_losses(histories["m2-fast"], train(fast_one, data, tmp_path / "one", verbose=0)[1])
    assert_same_losses(histories["m2-stateless"], one_device[False])
    assert_same_losses(histories["m2-stateful"], one_device[True])
    assert_same_losses(histories["1to2"], one_device[False])  # epoch 0 on 1 replica, epoch 1 on 2
    assert_same_losses(histories["2to1"], one_device[True])
    # Same layout, dropout on: a resumed run draws the same masks (keyed by seed, replica, epoch).
    assert without_time(histories["dropout-resumed"]) == without_time(histories["dropout"])

    run = load_run(runs_dir / "m2-stateful")  # a mirrored run folder loads like any other
    assert run.config["strategy"] == "mirrored" and run.config["replicas"] == 2
    assert run.environment["distribution"] == {"strategy": "mirrored", "replicas_in_sync": 2, "workers": 1}
    assert all(int(state.shape[0]) == 4 for layer in run.model.body for state in layer.states)  # per replica


# ---- multiworker: 2 processes on 127.0.0.1 -------------------------------------------------------


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _die_with_the_test():
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    os.setsid()


class Cluster:
    """n `python -m charrnn train` workers; every one is SIGKILLed (group and all) when the block ends."""

    def __init__(self, folder: Path, outputs: Path, argv: list[str], n: int = 2):
        ports = free_ports(n)
        cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
        self.logs = [folder / f"worker{i}.log" for i in range(n)]
        self.processes = []
        for i in range(n):
            env = dict(os.environ, CHARRNN_OUTPUTS=str(outputs), TMPDIR=str(folder), CUDA_VISIBLE_DEVICES="",
                       TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}),
                       PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
            with open(self.logs[i], "w") as log:
                self.processes.append(subprocess.Popen(
                    [sys.executable, "-m", "charrnn", "train", *argv], cwd=ROOT, env=env, stdout=log,
                    stderr=subprocess.STDOUT, preexec_fn=_die_with_the_test))

    def output(self) -> str:
        return "\n".join(f"--- worker {i} ---\n{log.read_text()[-2500:]}" for i, log in enumerate(self.logs))

    def wait(self, seconds: float, grace: float = 30) -> list[int]:
        """Every exit code; once one worker has failed, the others get `grace` seconds to fail too.

        A survivor learns of a dead peer from a reset connection or from the coordination
        service's missed heartbeats (about 10 s by default).
        """
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            codes = [p.poll() for p in self.processes]
            if all(code is not None for code in codes):
                return codes
            if any(code not in (None, 0) for code in codes):
                deadline = min(deadline, time.monotonic() + grace)
            time.sleep(0.1)
        self.kill()
        pytest.fail(f"the cluster was still running after {seconds} s (or {grace} s after a worker "
                    f"failed); every worker was killed:\n{self.output()}")

    def kill(self):
        for p in self.processes:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()


@pytest.fixture
def cluster_outputs(tiny_text, tmp_path):
    outputs = tmp_path / "outputs"
    prepare_data(tiny_text, outputs / "data" / "tiny")
    return outputs


def cli_args(run: str, settings: dict) -> list[str]:
    argv = ["--preset", "geron", "--dataset", "tiny", "--run", run]
    for key, value in settings.items():
        argv += ["--set", f"{key}={json.dumps(value)}"]
    return argv


def one_device_history(settings, cluster_outputs, tmp_path):
    # What the workers' `python -m charrnn train --preset geron --set ...` builds, on one device.
    config = TrainConfig.from_preset("geron", **{**settings, "run_name": "reference", "strategy": "none"})
    from charrnn.data import load_prepared

    return train(config, load_prepared(cluster_outputs / "data" / "tiny"), tmp_path / "one", verbose=0)[1]


@pytest.mark.distributed
def test_multiworker_stateless_matches_one_device_and_only_the_chief_writes(cluster_outputs, tmp_path):
    settings = {**TINY, "strategy": "multiworker"}
    with Cluster(tmp_path, cluster_outputs, cli_args("mw", settings)) as cluster:
        codes = cluster.wait(120)
    assert codes == [0, 0], cluster.output()
    run_dir = cluster_outputs / "runs" / "mw"
    assert_same_losses(read_history(run_dir), one_device_history(settings, cluster_outputs, tmp_path))
    assert not list(tmp_path.glob("charrnn-worker*")), "a worker left its temporary folder"
    assert sorted(p.name for p in (cluster_outputs / "runs").iterdir()) == ["mw"]
    assert load_run(run_dir).environment["distribution"]["workers"] == 2


@pytest.mark.distributed
def test_multiworker_stateful_fails_fast_when_a_worker_dies_then_resumes(cluster_outputs, tmp_path):
    settings = {**TINY, "stateful": True, "epochs": 4, "steps_per_epoch": 30, "strategy": "multiworker"}
    marker = cluster_outputs / "runs" / "mwsf" / CHECKPOINT_DIR / "epoch-00001.json"
    with Cluster(tmp_path, cluster_outputs, cli_args("mwsf", settings)) as cluster:
        deadline = time.monotonic() + 120
        while not marker.exists() and time.monotonic() < deadline and cluster.processes[0].poll() is None:
            time.sleep(0.05)
        assert marker.exists(), cluster.output()
        cluster.processes[1].kill()  # worker 1 dies mid-run (epoch 2 of 4)
        killed = time.monotonic()
        codes = cluster.wait(60)
        assert codes[0] != 0, "the chief finished although a worker died:\n" + cluster.output()
        noticed = time.monotonic() - killed
        print(f"the chief exited {noticed:.1f} s after worker 1 was killed")
        assert noticed < 30, "the chief took more than 30 s to notice"
    with Cluster(tmp_path, cluster_outputs, cli_args("mwsf", settings)) as cluster:  # the cluster restarts
        codes = cluster.wait(120)
    assert codes == [0, 0], cluster.output()
    assert "Resuming" in cluster.logs[0].read_text()
    history = read_history(cluster_outputs / "runs" / "mwsf")
    assert history["epoch"] == [0, 1, 2, 3]
    assert_same_losses(history, one_device_history(settings, cluster_outputs, tmp_path))
