"""Choosing and building the `tf.distribute` strategy; per-replica data; who writes the run folder.

strategy="none"         one device: TensorFlow's default strategy (`make_strategy` returns None)
strategy="mirrored"     one host: every local GPU (or the first `replicas`); without GPUs,
                        `replicas` logical CPU devices (for tests and figures, not for speed)
strategy="multiworker"  several processes/hosts from TF_CONFIG: RING collectives on CPU, NCCL on GPU

The batch in the config is the global batch: replica r of R reads rows
[r·B/R, (r+1)·B/R) of every global batch, so stateful replica r always carries
the same streams. Only the chief writes the run folder; the other workers write
into a temporary folder of their own, removed when they finish.
"""

from __future__ import annotations

import contextlib
import faulthandler
import shutil
import tempfile
from pathlib import Path

import tensorflow as tf

STRATEGIES = ("none", "mirrored", "multiworker")
CONNECT_SECONDS = 600  # multiworker start-up: a worker whose peers never come exits after this (stack dumped)
COLLECTIVE_SECONDS = 600  # one collective (all-reduce) that waits longer than this fails the step


def check_layout(strategy: str, replicas: int | None, batch_size: int) -> None:
    """Refuse a strategy/replicas/batch combination before anything starts."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}.")
    if replicas is not None:
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
            raise ValueError(f"replicas must be an integer >= 1 or None, got {replicas!r}.")
        if strategy != "mirrored":
            raise ValueError(f"replicas applies to strategy='mirrored' only (got strategy={strategy!r}): "
                             "'none' is one device and 'multiworker' takes its workers from TF_CONFIG.")
    if replicas is not None:
        check_global_batch(batch_size, replicas)


def check_global_batch(batch_size: int, replicas: int) -> None:
    if batch_size % replicas:
        raise ValueError(
            f"batch_size={batch_size} is the global batch (streams, for a stateful run) and must split "
            f"evenly over {replicas} replicas: use a multiple of {replicas}.")


def _logical_cpus(replicas: int) -> list[str]:
    """`replicas` logical CPU devices; they can only be made before TensorFlow initialises."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(replicas)])
    except RuntimeError:  # already initialised: usable if it already has enough devices
        pass
    devices = tf.config.list_logical_devices("CPU")
    if len(devices) < replicas:
        raise ValueError(
            f"strategy='mirrored' with replicas={replicas} needs {replicas} logical CPU devices, but "
            f"TensorFlow is already initialised with {len(devices)} in this process. Train in a fresh "
            "process (restart the kernel) before anything else uses TensorFlow.")
    return [device.name for device in devices[:replicas]]


def make_strategy(strategy: str, replicas: int | None, batch_size: int):
    """The tf.distribute strategy for a TrainConfig's layout; None for strategy='none'.

    Call it before anything else touches TensorFlow: mirrored on CPU splits the CPU into
    logical devices, which is only possible before TensorFlow initialises.
    """
    check_layout(strategy, replicas, batch_size)
    if strategy == "none":
        return None
    gpus = tf.config.list_physical_devices("GPU")
    if strategy == "mirrored":
        if gpus:
            if replicas is not None and replicas > len(gpus):
                raise ValueError(f"replicas={replicas} but this host has {len(gpus)} GPUs.")
            devices = [f"/gpu:{i}" for i in range(replicas or len(gpus))]
        elif replicas is None:
            raise ValueError("strategy='mirrored' on a host without GPUs needs replicas=N "
                             "(N logical CPU devices share the same cores: for tests, not for speed).")
        else:
            devices = _logical_cpus(replicas)
        built = tf.distribute.MirroredStrategy(devices)
    else:
        implementation = tf.distribute.experimental.CommunicationImplementation
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=implementation.NCCL if gpus else implementation.RING,
            timeout_seconds=COLLECTIVE_SECONDS)
        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
        if not resolver.cluster_spec().as_dict():
            raise ValueError("strategy='multiworker' needs TF_CONFIG (the cluster and this worker's task) "
                             "in the environment; see the README's Scale-out section.")
        # Creating the strategy waits for every worker, with no timeout of its own, holding the GIL:
        # only faulthandler's C watchdog can end a wait for a worker that never starts.
        faulthandler.dump_traceback_later(CONNECT_SECONDS, exit=True)
        try:
            built = tf.distribute.MultiWorkerMirroredStrategy(
                cluster_resolver=resolver, communication_options=options)
        finally:
            faulthandler.cancel_dump_traceback_later()
    check_global_batch(batch_size, built.num_replicas_in_sync)
    return built


def layout_record(strategy) -> dict:
    """What the run records of its layout (environment.json)."""
    if strategy is None:
        return {"strategy": "none", "replicas_in_sync": 1, "workers": 1}
    workers = 1
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        workers = len(strategy.cluster_resolver.cluster_spec().as_dict().get("worker", []))
        workers += len(strategy.cluster_resolver.cluster_spec().as_dict().get("chief", []))
    kind = "mirrored" if workers == 1 else "multiworker"
    return {"strategy": kind, "replicas_in_sync": strategy.num_replicas_in_sync, "workers": workers}


def is_chief(strategy) -> bool:
    """True in the one process that writes the run folder (always, without several workers)."""
    return strategy is None or strategy.extended.should_checkpoint


@contextlib.contextmanager
def worker_folder(run_dir: Path, strategy):
    """The folder this process writes: the run folder on the chief, else a temporary one, removed after."""
    if is_chief(strategy):
        yield Path(run_dir)
        return
    task = strategy.cluster_resolver.task_id
    folder = Path(tempfile.mkdtemp(prefix=f"charrnn-worker{task}-"))
    try:
        yield folder / Path(run_dir).name
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def chief_decision(strategy):
    """flag -> the chief's flag, on every worker (a collective: all workers call it together); or None.

    Only multiworker needs it: each worker's clock differs, and a worker that stopped
    alone would leave the others waiting in their next all-reduce.
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return None
    chief = is_chief(strategy)

    @tf.function
    def chiefs(value):
        return strategy.reduce("SUM", strategy.run(lambda: value), axis=None)

    return lambda flag: bool(chiefs(tf.constant(1.0 if flag and chief else 0.0)) > 0)


def replica_part(context: tf.distribute.InputContext) -> tuple[int, int]:
    """(index, count): this input pipeline's share of every global batch."""
    if context.num_input_pipelines != context.num_replicas_in_sync:
        raise ValueError(
            f"One input pipeline per replica is supported, got {context.num_input_pipelines} pipelines "
            f"for {context.num_replicas_in_sync} replicas (several GPUs per worker under 'multiworker').")
    return context.input_pipeline_id, context.num_input_pipelines


def distribute_datasets(strategy, make_datasets):
    """Distributed (train, validation) datasets; `make_datasets(part)` builds one replica's pair."""
    options = None
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        # Mirrored: one pipeline per replica (multiworker has one per worker, one replica each).
        options = tf.distribute.InputOptions(
            experimental_replication_mode=tf.distribute.InputReplicationMode.PER_REPLICA)

    def one(index):
        def dataset_fn(context):
            return make_datasets(replica_part(context))[index]
        return strategy.distribute_datasets_from_function(dataset_fn, options)

    return one(0), one(1)
