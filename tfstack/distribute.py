"""Multi-worker training, configured the way tf.distribute expects: through TF_CONFIG.

A cluster sets TF_CONFIG in every worker process, e.g. the Kubernetes Indexed Job in
k8s/jobs/train-multiworker:

    {"cluster": {"worker": ["w0:2222", "w1:2222"]}, "task": {"type": "worker", "index": 1}}

With two or more tasks, training runs under MultiWorkerMirroredStrategy: every worker
holds the whole model and gradients are all-reduced each step. Without TF_CONFIG (or with
a cluster of one) there is no strategy and training runs exactly as on a laptop.

The chief (task `chief`, else worker 0) writes the checkpoint. The others save too, since
saving may take part in collective ops, but into a temporary directory that is removed
afterwards, as TensorFlow's multi-worker guide prescribes.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import tensorflow as tf

TF_CONFIG = "TF_CONFIG"


def strategy_from_tf_config() -> tf.distribute.MultiWorkerMirroredStrategy | None:
    """The strategy TF_CONFIG asks for, or None for single-process training. Call it before
    any other TensorFlow op runs: collective ops can only be configured at start-up."""
    if not os.environ.get(TF_CONFIG):
        return None
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    tasks = sum(len(addresses) for addresses in resolver.cluster_spec().as_dict().values())
    if tasks < 2:
        return None
    try:
        return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
    except RuntimeError as err:
        raise RuntimeError(
            f"{TF_CONFIG} asks for multi-worker training, but TensorFlow ran an op before the "
            "strategy could be created (a module that runs TensorFlow at import time?)"
        ) from err


def scope(strategy: tf.distribute.Strategy | None) -> contextlib.AbstractContextManager:
    """Where the model and optimizer must be built: the strategy's scope, if any."""
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def worker_index(strategy: tf.distribute.Strategy | None) -> int:
    """This process's position in the cluster (0 for the chief and for single-process runs),
    e.g. to give each worker its own stream of random training patches."""
    if strategy is None:
        return 0
    resolver = strategy.cluster_resolver
    if resolver.task_type == "chief":
        return 0
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_id + (1 if has_chief else 0)


def is_chief(strategy: tf.distribute.Strategy | None) -> bool:
    return worker_index(strategy) == 0


@contextlib.contextmanager
def checkpoint_workdir(workdir: Path, strategy: tf.distribute.Strategy | None) -> Iterator[Path]:
    """`workdir` for the chief; a temporary directory, removed on exit, for other workers."""
    if is_chief(strategy):
        yield Path(workdir)
        return
    with tempfile.TemporaryDirectory(prefix=f"tfstack-worker{worker_index(strategy)}-") as temp:
        yield Path(temp)
