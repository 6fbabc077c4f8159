"""What the load generator drives: a `Target` (one protocol endpoint of one model) and a
`ServerUnderTest` (a running server process that serves every workload of a run).

The load generator runs several worker processes: it pickles a Target into each and calls
`open()` there, so a Target holds only addresses and names until it is opened, and opens
its channels or sessions (and encodes the request payload once) in `open()`.
`infer()` sends one request and raises on any failure, including a wrong output shape; a
`RequestError` names its kind ("HTTP 503", "wrong output shape"), other exceptions are
counted by their type or gRPC status code.
"""

from __future__ import annotations

import abc

import grpc

from benchmarks.workloads import Workload


class RequestError(Exception):
    """A failed request whose kind (the key it is counted under) the Target knows."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind


class Target(abc.ABC):
    """A server endpoint the load generator calls. Must be picklable: the load generator
    runs in several processes and calls open() in each of them."""

    label: str  # e.g. "tfstack grpc", "mlserver grpc (adaptive batching)"

    @abc.abstractmethod
    async def open(self, workload: Workload) -> None:
        """Open channels/sessions and encode the payload once."""

    @abc.abstractmethod
    async def infer(self) -> None:
        """One request; raise on any error or wrong output shape."""

    async def close(self) -> None:  # noqa: B027  (optional: nothing to close by default)
        """Close what open() opened."""


class ServerUnderTest(abc.ABC):
    """A running server process (context manager) that serves every Workload of a run."""

    label: str

    @abc.abstractmethod
    def __enter__(self) -> ServerUnderTest:
        """Start the server; return once every workload's model is loaded and served."""

    @abc.abstractmethod
    def __exit__(self, *exc: object) -> None:
        """Stop the process (and its children)."""

    @abc.abstractmethod
    def pids(self) -> list[int]:
        """For RSS/CPU accounting and the connection check (children are found from these)."""

    @abc.abstractmethod
    def targets(self, workload: Workload) -> list[Target]:
        """One per protocol it speaks."""


def check_shape(actual: tuple[int, ...], workload: Workload) -> None:
    """Raise RequestError("wrong output shape") unless `actual` is the expected shape."""
    if tuple(actual) != workload.expected_output_shape:
        raise RequestError(
            "wrong output shape", f"{tuple(actual)} != {workload.expected_output_shape}"
        )


_MAX_MESSAGE_BYTES = 2**31 - 1


def grpc_channel(address: str) -> grpc.aio.Channel:
    """An insecure grpc.aio channel without gRPC's 4 MB message cap (superres replies)."""
    return grpc.aio.insecure_channel(
        address,
        options=[
            ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
        ],
    )
