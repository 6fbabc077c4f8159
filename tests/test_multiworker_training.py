"""Multi-worker training through TF_CONFIG: two `tfstack train` processes on 127.0.0.1, as
the Indexed Job in k8s/jobs/train-multiworker runs them, train one model together."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from models.superres import train
from tfstack import distribute

STEPS = 30
TIMEOUT_SECONDS = 120


def free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 now (all held open together, so they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def tf_config(workers: list[str], index: int) -> str:
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    """Both workers' (exit code, output, workdir) after training `tiny` for STEPS steps."""
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    runs = []
    for index in range(2):
        workdir = tmp_path_factory.mktemp(f"worker{index}")
        command = [sys.executable, "-m", "tfstack", "train", "superres", "--preset", "tiny"]
        command += ["--steps", str(STEPS), "--no-progress", "--workdir", str(workdir)]
        env = {**os.environ, distribute.TF_CONFIG: tf_config(workers, index)}
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        runs.append((process, workdir))
    results = []
    try:
        for process, workdir in runs:
            output, _ = process.communicate(timeout=TIMEOUT_SECONDS)
            results.append((process.returncode, output, workdir))
    finally:
        for process, _ in runs:
            if process.poll() is None:
                process.kill()
                process.wait()
    return results


def test_both_workers_finish(two_workers):
    for index, (returncode, output, _) in enumerate(two_workers):
        assert returncode == 0, f"worker {index} failed:\n{output[-3000:]}"


def test_training_ran_on_two_replicas_in_sync(two_workers):
    _, _, chief_workdir = two_workers[0]
    history = json.loads((train.checkpoint_dir(chief_workdir) / train.HISTORY_FILE).read_text())
    assert history["replicas"] == 2
    assert history["chunks"][-1]["step"] == STEPS


def test_chief_checkpoint_loads_and_predicts(two_workers):
    import numpy as np

    _, _, chief_workdir = two_workers[0]
    model, config = train.load_trained(chief_workdir)
    assert config.steps == STEPS
    upscaled = model(np.random.default_rng(0).random((1, 16, 20, 3), np.float32))
    assert upscaled.shape == (1, 32, 40, 3)
    assert np.isfinite(upscaled).all()


def test_only_the_chief_writes_into_its_workdir(two_workers):
    _, _, worker_workdir = two_workers[1]
    assert not train.checkpoint_dir(worker_workdir).exists()


@pytest.mark.parametrize(
    "value", [None, "", tf_config(["127.0.0.1:2222"], 0)], ids=["unset", "empty", "one-worker"]
)
def test_no_strategy_without_a_cluster(monkeypatch, value):
    if value is None:
        monkeypatch.delenv(distribute.TF_CONFIG, raising=False)
    else:
        monkeypatch.setenv(distribute.TF_CONFIG, value)
    assert distribute.strategy_from_tf_config() is None
    assert distribute.is_chief(None)
