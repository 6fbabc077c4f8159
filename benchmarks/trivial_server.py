"""A gRPC PredictionService that does no work: the load generator's own ceiling.

One port per model, each answering every Predict with a canned response of that model's
output shape (zeros), serialised once by the parent: the child neither parses requests
nor imports TensorFlow. Whatever req/s the load generator reaches against it is the most
it can measure on this machine: a server measured near that figure is limited by the
client, not by itself.

    python -m benchmarks.trivial_server --answer tiny=tiny.pb --answer cnn=cnn.pb
prints "Serving MODEL at 127.0.0.1:PORT" per model, then "Ready".
"""

from __future__ import annotations

import argparse
import asyncio
import re
import selectors
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import grpc
import numpy as np

from benchmarks.target import ServerUnderTest, Target
from benchmarks.workloads import Workload

_SERVING = re.compile(r"Serving (\S+) at ([\d.]+:\d+)")
_STARTUP_SECONDS = 60.0


async def serve(host: str, answers: dict[str, bytes]) -> None:
    """One gRPC server per model, each answering Predict with its bytes, until SIGTERM."""
    servers = []
    for model, answer in answers.items():

        async def predict(request: bytes, context: object, answer: bytes = answer) -> bytes:
            return answer

        handler = grpc.method_handlers_generic_handler(
            "tensorflow.serving.PredictionService",
            {"Predict": grpc.unary_unary_rpc_method_handler(predict)},  # bytes in, bytes out
        )
        server = grpc.aio.server(options=[("grpc.max_receive_message_length", 2**31 - 1)])
        server.add_generic_rpc_handlers([handler])
        port = server.add_insecure_port(f"{host}:0")
        await server.start()
        servers.append(server)
        print(f"Serving {model} at {host}:{port}", flush=True)
    print("Ready", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await asyncio.gather(*(server.stop(grace=1.0) for server in servers))


class TrivialServer(ServerUnderTest):
    """The trivial server as a child process answering every workload."""

    label = "trivial (no work)"

    def __init__(self, workloads: dict[str, Workload]) -> None:
        self.workloads = workloads
        self._process: subprocess.Popen | None = None
        self._addresses: dict[str, str] = {}

    def __enter__(self) -> TrivialServer:
        from benchmarks.tfserving_targets import predict_response  # TensorFlow: parent only

        with tempfile.TemporaryDirectory(prefix="trivial-server-") as answers:
            arguments = []
            for w in self.workloads.values():
                path = Path(answers) / f"{w.name}.pb"
                zeros = np.zeros(w.expected_output_shape, np.float32)
                path.write_bytes(predict_response(w.name, {w.output_name: zeros}))
                arguments.append(f"--answer={w.name}={path}")
            self._process = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.trivial_server", *arguments],
                stdout=subprocess.PIPE,
                text=True,
            )
            lines = _lines_until_ready(self._process, _STARTUP_SECONDS)
        self._addresses = dict(m.groups() for line in lines if (m := _SERVING.search(line)))
        if set(self._addresses) != set(self.workloads):
            self.__exit__()
            raise RuntimeError(f"trivial server did not start: {lines!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process.stdout.close()
            self._process = None

    def pids(self) -> list[int]:
        assert self._process is not None, "not started"
        return [self._process.pid]

    def targets(self, workload: Workload) -> list[Target]:
        from benchmarks.tfserving_targets import GrpcPredictTarget

        return [GrpcPredictTarget(self._addresses[workload.name], f"{self.label} grpc")]


def _lines_until_ready(process: subprocess.Popen, timeout: float) -> list[str]:
    """The child's stdout lines up to "Ready" (fewer if it exits or stalls for `timeout`)."""
    lines: list[str] = []
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while selector.select(timeout) and (line := process.stdout.readline()):
            if line.strip() == "Ready":
                break
            lines.append(line)
    return lines


def _answer(text: str) -> tuple[str, bytes]:
    model, path = text.split("=", 1)
    return model, Path(path).read_bytes()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--answer",
        type=_answer,
        action="append",
        required=True,
        help="MODEL=FILE: serve MODEL on a port of its own, answering FILE's bytes",
    )
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, dict(args.answer)))


if __name__ == "__main__":
    main()
