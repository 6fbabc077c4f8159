"""The load generator: closed loop at a fixed concurrency or open loop at a fixed rate.

Several worker processes (spawned once, reused run after run), each running one asyncio
loop, share the load so the generator is not the bottleneck; each calls its own copy of
the Target. The parent hands every worker the same start time: requests sent during the
warm-up are not counted, the measured window runs until `seconds` after it or until
`max_requests` measured requests were sent, whichever comes first.

- closed loop: `concurrency` clients, each sending its next request when the last returns.
- open loop: requests scheduled at `rate` per second whatever the server does; a request's
  latency runs from its scheduled send time, so a slow server (or a late client) is not
  hidden by sending less (no coordinated omission). The lag of actual behind scheduled
  sends is reported too: a large one means the generator itself fell behind.
"""

from __future__ import annotations

import tfstack  # noqa: F401  (configures TensorFlow before the stubs import it)

# isort: split
import asyncio
import contextlib
import math
import multiprocessing
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection

import grpc
import numpy as np

from benchmarks.target import Target
from benchmarks.workloads import Workload

# Time the parent gives every worker between the start signal and the first request.
_START_DELAY_SECONDS = 0.2
_OPEN_TIMEOUT_SECONDS = 120.0


@dataclass(frozen=True)
class LoadSpec:
    """One run: closed loop (`concurrency`) unless `rate` (requests/s) makes it open loop."""

    seconds: float = 10.0
    warmup_seconds: float = 2.0
    concurrency: int = 8
    rate: float | None = None
    max_requests: int | None = None

    @property
    def mode(self) -> str:
        return "closed" if self.rate is None else "open"

    def __post_init__(self) -> None:
        if self.seconds <= 0 or self.warmup_seconds < 0:
            raise ValueError(
                f"seconds must be > 0 and warmup_seconds >= 0. Received: seconds={self.seconds}"
                f", warmup_seconds={self.warmup_seconds}"
            )
        if self.concurrency < 1 or (self.rate is not None and self.rate <= 0):
            raise ValueError(
                f"concurrency must be >= 1 and rate > 0. Received: concurrency="
                f"{self.concurrency}, rate={self.rate}"
            )
        if self.max_requests is not None and self.max_requests < 1:
            raise ValueError(f"max_requests must be >= 1. Received: {self.max_requests}")


@dataclass
class LoadResult:
    """A run's merged figures. `requests`: measured requests that succeeded (the latencies,
    in ms, are theirs); `errors`: measured failures by kind; `seconds`: from the end of the
    warm-up to the last measured request's end."""

    label: str
    workload: str
    mode: str
    concurrency: int | None
    rate: float | None
    processes: int
    requests: int
    errors: dict[str, int]
    seconds: float
    throughput: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    send_lag_p99_ms: float | None = None
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def to_json(self) -> dict[str, object]:
        """As plain data; percentiles of a run without one success are null."""
        return {
            key: None if isinstance(value, float) and math.isnan(value) else value
            for key, value in asdict(self).items()
        }


@dataclass
class _Share:
    """What one worker does in a run."""

    spec: LoadSpec
    index: int  # this worker's number
    workers: int
    concurrency: int  # closed loop: clients in this worker
    max_requests: int | None  # closed loop: measured requests this worker may send


@dataclass
class _WorkerResult:
    latencies: list[float]
    errors: Counter
    last_done: float
    send_lags: list[float]


def error_kind(err: BaseException) -> str:
    """The key a failed request is counted under."""
    if kind := getattr(err, "kind", None):
        return str(kind)
    if isinstance(err, grpc.aio.AioRpcError):
        return f"grpc {err.code().name}"
    if isinstance(err, asyncio.TimeoutError | TimeoutError):
        return "timeout"
    return type(err).__name__


class LoadGenerator:
    """`with LoadGenerator(processes=2) as load: load.run(target, workload, LoadSpec(...))`."""

    def __init__(self, processes: int = 2) -> None:
        if processes < 1:
            raise ValueError(f"processes must be >= 1. Received: processes={processes}")
        self.processes = processes
        self._workers: list[tuple[multiprocessing.Process, Connection]] = []

    def __enter__(self) -> LoadGenerator:
        context = multiprocessing.get_context("spawn")  # no fork after gRPC/TF threads start
        for _ in range(self.processes):
            parent_end, child_end = context.Pipe()
            process = context.Process(target=_worker_main, args=(child_end,), daemon=True)
            process.start()
            child_end.close()
            self._workers.append((process, parent_end))
        return self

    def __exit__(self, *exc: object) -> None:
        for process, connection in self._workers:
            with contextlib.suppress(OSError):  # a worker that already died
                connection.send(None)
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join()
            connection.close()
        self._workers = []

    def pids(self) -> list[int]:
        """The worker processes (CPU accounting of the client side)."""
        return [process.pid for process, _ in self._workers if process.pid is not None]

    def run(self, target: Target, workload: Workload, spec: LoadSpec) -> LoadResult:
        """One run against `target`; failed requests are counted by kind, never raised."""
        if not self._workers:
            raise RuntimeError("LoadGenerator is not started: use it as a context manager")
        workers = self._workers
        if spec.rate is None:  # no idle workers in closed loop
            workers = workers[: min(len(workers), spec.concurrency)]
        shares = _shares(spec, len(workers))
        for (_, connection), share in zip(workers, shares, strict=True):
            connection.send((target, workload, share))
        failures = [
            reply[1]
            for reply in (_receive(c, _OPEN_TIMEOUT_SECONDS) for _, c in workers)
            if reply[0] != "ready"
        ]
        start = None if failures else time.monotonic() + _START_DELAY_SECONDS
        for _, connection in workers:
            connection.send(start)
        if start is None:
            raise RuntimeError(f"{target.label}: load generator workers failed: {failures}")
        limit = spec.warmup_seconds + spec.seconds + 60.0
        replies = [_receive(connection, limit) for _, connection in workers]
        failures = [reply[1] for reply in replies if reply[0] == "failed"]
        if failures:
            raise RuntimeError(f"{target.label}: load generator workers failed: {failures}")
        return _merge(target.label, workload.name, spec, start, [r[1] for r in replies])


def _shares(spec: LoadSpec, workers: int) -> list[_Share]:
    """Clients and request quotas split as evenly as possible across workers."""
    shares = []
    for index in range(workers):
        concurrency = spec.concurrency // workers + (index < spec.concurrency % workers)
        quota = None
        if spec.max_requests is not None:
            quota = spec.max_requests // workers + (index < spec.max_requests % workers)
        shares.append(_Share(spec, index, workers, concurrency, quota))
    return shares


def _receive(connection: Connection, timeout: float) -> tuple:
    try:
        if not connection.poll(timeout):
            raise TimeoutError(f"a load generator worker gave no answer in {timeout:.0f}s")
        return connection.recv()
    except (EOFError, ConnectionError) as err:
        raise RuntimeError("a load generator worker died (see its output above)") from err


def _merge(
    label: str, workload: str, spec: LoadSpec, start: float, results: list[_WorkerResult]
) -> LoadResult:
    latencies = np.concatenate([np.asarray(r.latencies, dtype=np.float64) for r in results])
    errors = sum((r.errors for r in results), Counter())
    measured_from = start + spec.warmup_seconds
    # Until the last measured request ended; the planned window if none did.
    seconds = max(r.last_done for r in results) - measured_from or spec.seconds
    if latencies.size:
        p50, p90, p99 = np.quantile(latencies, [0.5, 0.9, 0.99]) * 1e3
        longest, mean = latencies.max() * 1e3, latencies.mean() * 1e3
    else:
        p50 = p90 = p99 = longest = mean = math.nan
    lags = np.concatenate([np.asarray(r.send_lags, dtype=np.float64) for r in results])
    return LoadResult(
        label=label,
        workload=workload,
        mode=spec.mode,
        concurrency=spec.concurrency if spec.rate is None else None,
        rate=spec.rate,
        processes=len(results),
        requests=int(latencies.size),
        errors=dict(errors),
        seconds=seconds,
        throughput=latencies.size / seconds,
        p50_ms=float(p50),
        p90_ms=float(p90),
        p99_ms=float(p99),
        max_ms=float(longest),
        mean_ms=float(mean),
        send_lag_p99_ms=float(np.quantile(lags, 0.99) * 1e3) if lags.size else None,
    )


# -- worker side ----------------------------------------------------------------------


def _worker_main(connection: Connection) -> None:
    """A worker's life: one job after another until the parent sends None."""
    while (job := connection.recv()) is not None:
        target, workload, share = job
        try:
            reply = asyncio.run(_job(connection, target, workload, share))
        except Exception as err:
            reply = ("failed", f"{type(err).__name__}: {err}")
        if reply is not None:
            connection.send(reply)


async def _job(connection: Connection, target: Target, workload: Workload, share: _Share):
    """Open, report ready, wait for the start time, run, close. None: the run was called
    off (another worker failed to open)."""
    try:
        await target.open(workload)
    except Exception as err:
        connection.send(("failed", f"open: {type(err).__name__}: {err}"))
        connection.recv()  # the (cancelled) start
        return None
    try:
        connection.send(("ready",))
        start = connection.recv()
        if start is None:
            return None
        await asyncio.sleep(max(0.0, start - time.monotonic()))
        run = _open_loop if share.spec.rate is not None else _closed_loop
        return ("done", await run(target, share, start))
    finally:
        await target.close()


async def _closed_loop(target: Target, share: _Share, start: float) -> _WorkerResult:
    spec = share.spec
    measured_from = start + spec.warmup_seconds
    end = measured_from + spec.seconds
    result = _WorkerResult([], Counter(), measured_from, [])
    quota = [share.max_requests if share.max_requests is not None else math.inf]

    async def client() -> None:
        while (sent := time.monotonic()) < end:
            measured = sent >= measured_from
            if measured:
                if quota[0] <= 0:
                    return
                quota[0] -= 1
            await _timed_request(target, result, sent, measured)

    await asyncio.gather(*(client() for _ in range(share.concurrency)))
    return result


async def _timed_request(
    target: Target, result: _WorkerResult, sent: float, measured: bool
) -> None:
    """One request; when `measured`, its latency from `sent` (the send time, or the
    scheduled one in the open loop) or its error kind goes into `result`."""
    try:
        await target.infer()
    except Exception as err:
        if measured:
            result.errors[error_kind(err)] += 1
            result.last_done = max(result.last_done, time.monotonic())
    else:
        done = time.monotonic()
        if measured:
            result.latencies.append(done - sent)
            result.last_done = max(result.last_done, done)


async def _open_loop(target: Target, share: _Share, start: float) -> _WorkerResult:
    """Sends k = index, index + workers, ... of the global schedule start + k / rate."""
    spec = share.spec
    assert spec.rate is not None
    measured_from = start + spec.warmup_seconds
    end = measured_from + spec.seconds
    last_k = math.inf
    if spec.max_requests is not None:
        last_k = math.ceil(spec.warmup_seconds * spec.rate) + spec.max_requests
    result = _WorkerResult([], Counter(), measured_from, [])
    in_flight: set[asyncio.Task] = set()

    async def send(scheduled: float) -> None:
        measured = scheduled >= measured_from
        if measured:
            result.send_lags.append(time.monotonic() - scheduled)
        await _timed_request(target, result, scheduled, measured)

    k = share.index
    while k < last_k and (scheduled := start + k / spec.rate) < end:
        if (wait := scheduled - time.monotonic()) > 0:
            await asyncio.sleep(wait)
        task = asyncio.create_task(send(scheduled))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
        k += share.workers
    if in_flight:
        await asyncio.gather(*in_flight)
    return result
