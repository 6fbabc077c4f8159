"""The serving peers: each starts from its own venv, answers every workload over every
protocol it speaks with the numbers in-process TensorFlow gives, and makes no connection
beyond 127.0.0.1 while serving. The netcheck test runs by default; the others need the
peers' venvs (`-m bench`; the fixture builds them if missing, minutes the first time).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import psutil
import pytest

from benchmarks.netcheck import foreign_connections

_SOCKETS = textwrap.dedent(
    """
    import socket, subprocess, sys, time
    if sys.argv[1] == "child":
        listener = socket.socket()
        listener.bind((sys.argv[2], 0))
        listener.listen()
        client = socket.create_connection(("127.0.0.1", listener.getsockname()[1]))
        print(listener.getsockname()[1], flush=True)
        time.sleep(60)
    else:  # a parent whose child holds the sockets, as servers with workers do
        child = subprocess.Popen([sys.executable, __file__, "child", sys.argv[2]])
        child.wait()
    """
)


@pytest.fixture
def socket_holder(tmp_path):
    """Start a parent process whose child listens on HOST and connects to itself."""
    script = tmp_path / "sockets.py"
    script.write_text(_SOCKETS)
    started = []

    def start(host: str) -> tuple[int, int]:
        parent = subprocess.Popen(
            [sys.executable, str(script), "parent", host], stdout=subprocess.PIPE, text=True
        )
        started.append(parent)
        port = int(parent.stdout.readline())
        return parent.pid, port

    yield start
    for parent in started:
        for child in psutil.Process(parent.pid).children(recursive=True):
            child.kill()
        parent.kill()
        parent.wait()


def test_netcheck_loopback_is_clean_and_all_interfaces_reported(socket_holder):
    clean_pid, _ = socket_holder("127.0.0.1")
    assert foreign_connections([clean_pid]) == []

    open_pid, port = socket_holder("0.0.0.0")
    found = foreign_connections([open_pid])
    assert len(found) == 1, found
    assert f"listening on 0.0.0.0:{port}" in found[0]


# --- the peers (opt-in: -m bench) ---------------------------------------------------------


@pytest.fixture(scope="session")
def peer_venvs():
    """Build the peers' venvs, or reuse them when their stamps match."""
    from benchmarks.peers import setup_peers

    setup_peers()


@pytest.fixture(scope="session")
def peer_workloads(peer_venvs, tmp_path_factory):
    from benchmarks.workloads import build_workloads

    return build_workloads(tmp_path_factory.mktemp("bench-models"))


@pytest.fixture(scope="session")
def in_process_outputs(peer_workloads):
    """Each workload's output from its SavedModel called in this process (no RPC)."""
    import tfstack  # noqa: F401

    # isort: split
    import tensorflow as tf

    outputs = {}
    for name, workload in peer_workloads.items():
        signature = tf.saved_model.load(str(workload.saved_model_dir)).signatures["serving_default"]
        result = signature(**{workload.input_name: tf.constant(workload.batch)})
        outputs[name] = result[workload.output_name].numpy()
    return outputs


async def _answers_while_checked(target, workload, server, concurrency: int = 8):
    """Open the target, send `concurrency` requests at once, check the connections of the
    server while they are in flight; returns the outputs and what netcheck found."""
    await target.open(workload)
    try:
        requests = [asyncio.ensure_future(target.output()) for _ in range(concurrency)]
        await asyncio.sleep(0)
        found = await asyncio.to_thread(foreign_connections, server.pids())
        return await asyncio.gather(*requests), found
    finally:
        await target.close()


@pytest.mark.bench
@pytest.mark.parametrize("name", ["mlserver", "mlserver-batching", "kserve", "bentoml"])
def test_peer_serves_every_workload_like_tensorflow_in_process(
    name, peer_workloads, in_process_outputs
):
    import numpy as np

    from benchmarks.peers import peer

    with peer(name, peer_workloads) as server:
        checked = []
        for workload in peer_workloads.values():
            targets = server.targets(workload)
            assert targets, f"{name} offers no target"
            for target in targets:
                outputs, found = asyncio.run(_answers_while_checked(target, workload, server))
                assert found == [], f"{target.label} {workload.name}: {found}"
                for output in outputs:
                    assert output.shape == workload.expected_output_shape
                    np.testing.assert_allclose(
                        output, in_process_outputs[workload.name], atol=1e-4, rtol=0
                    )
                checked.append(workload.name)
        # The server's own processes (workers included) listen on loopback only.
        assert server.pids()
        assert foreign_connections(server.pids()) == []
    assert set(checked) == set(peer_workloads)


@pytest.mark.bench
@pytest.mark.parametrize(
    ("venv", "module"),
    [
        ("mlserver", "mlserver.grpc.dataplane_pb2"),
        ("kserve", "kserve.protocol.grpc.grpc_predict_v2_pb2"),
    ],
)
def test_open_inference_proto_matches_the_peers_own(venv, module, peer_venvs):
    """Our open_inference.proto (the client's) has the field numbers and types of the
    protocol as each peer compiled it: a message the peer would misread fails here."""
    from benchmarks.peers.oip import oip_pb2
    from benchmarks.peers.venvs import DEFAULT_ROOT, venv_bin

    theirs = subprocess.run(
        [str(venv_bin(DEFAULT_ROOT, venv, "python")), "-c", _DUMP_FIELDS, module],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    ours = _fields(oip_pb2.DESCRIPTOR)
    their_fields = dict(line.split(" ", 1) for line in theirs.splitlines())
    assert ours, "no fields read from open_inference.proto"
    assert {key: their_fields.get(key) for key in ours} == ours


def _fields(file_descriptor) -> dict[str, str]:
    fields = {}

    def walk(messages, prefix):
        for message in messages:
            for field in message.fields:
                kind = field.message_type.name if field.message_type else field.type
                fields[f"{prefix}{message.name}.{field.name}"] = (
                    f"{field.number} {kind} {field.is_repeated}"
                )
            walk(message.nested_types, f"{prefix}{message.name}.")

    walk(file_descriptor.message_types_by_name.values(), "")
    return fields


_DUMP_FIELDS = textwrap.dedent(
    """
    import importlib, sys

    def walk(messages, prefix):
        for message in messages:
            for field in message.fields:
                kind = field.message_type.name if field.message_type else field.type
                key = f"{prefix}{message.name}.{field.name}"
                print(key, field.number, kind, field.is_repeated)
            walk(message.nested_types, f"{prefix}{message.name}.")

    walk(importlib.import_module(sys.argv[1]).DESCRIPTOR.message_types_by_name.values(), "")
    """
)
