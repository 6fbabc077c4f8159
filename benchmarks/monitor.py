"""What a server and the load generator use while a run goes on: CPU seconds of each side,
the server's peak RSS (its processes and their children), and every connection the server
makes beyond 127.0.0.1 (benchmarks.netcheck), sampled from a background thread."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import psutil

SAMPLE_SECONDS = 0.25
NETCHECK_EVERY = 4  # samples between connection checks


def process_tree(pids: list[int]) -> list[psutil.Process]:
    """These processes and all their children that are alive now."""
    found = {}
    for pid in pids:
        try:
            root = psutil.Process(pid)
            for process in [root, *root.children(recursive=True)]:
                found[process.pid] = process
        except psutil.NoSuchProcess:
            continue
    return list(found.values())


def rss_bytes(pids: list[int]) -> int:
    """Resident memory of these processes and their children, summed."""
    total = 0
    for process in process_tree(pids):
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """user + system CPU seconds per live process of the tree (children included)."""
    seconds = {}
    for process in process_tree(pids):
        try:
            times = process.cpu_times()
            seconds[process.pid] = times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return seconds


@dataclass
class Usage:
    server_cpu_seconds: float = 0.0
    client_cpu_seconds: float = 0.0
    server_peak_rss_bytes: int = 0
    wall_seconds: float = 0.0  # the whole run: warm-up, measured window, opening and closing
    foreign_connections: list[str] = field(default_factory=list)


class RunMonitor:
    """`with RunMonitor(server_pids, client_pids) as monitor: ...; monitor.usage`."""

    def __init__(self, server_pids: list[int], client_pids: list[int]) -> None:
        self.server_pids = server_pids
        self.client_pids = client_pids
        self.usage = Usage()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> RunMonitor:
        self._started = time.monotonic()
        self._server_start = cpu_seconds(self.server_pids)
        self._client_start = cpu_seconds(self.client_pids)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.usage.wall_seconds = time.monotonic() - self._started
        self.usage.server_cpu_seconds = _spent(self._server_start, cpu_seconds(self.server_pids))
        self.usage.client_cpu_seconds = _spent(self._client_start, cpu_seconds(self.client_pids))

    def _sample(self) -> None:
        from benchmarks.netcheck import foreign_connections

        samples = 0
        while True:
            usage = self.usage
            usage.server_peak_rss_bytes = max(
                usage.server_peak_rss_bytes, rss_bytes(self.server_pids)
            )
            if samples % NETCHECK_EVERY == 0:
                for line in foreign_connections(self.server_pids):
                    if line not in usage.foreign_connections:
                        usage.foreign_connections.append(line)
            samples += 1
            if self._stop.wait(SAMPLE_SECONDS):
                return


def _spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between the two readings (processes born meanwhile count whole)."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())
