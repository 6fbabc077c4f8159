"""A peer server as a child process: its venv's interpreter, a log, readiness, a clean stop.

Each peer runs in its own process group with the adapters directory on PYTHONPATH, so
that its workers (MLServer's inference pool, BentoML's HTTP workers) stop with it. Ports
are picked free on 127.0.0.1 just before start-up: none of these servers can bind port 0
and report the port back.
"""

from __future__ import annotations

import abc
import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from benchmarks.peers.venvs import DEFAULT_ROOT, is_ready
from benchmarks.target import ServerUnderTest
from benchmarks.workloads import Workload

HOST = "127.0.0.1"
STARTUP_SECONDS = 180.0
ADAPTERS_DIR = Path(__file__).parent / "adapters"
# No usage tracking (only BentoML has any), no TensorFlow start-up chatter, logs as written.
QUIET_ENV = {
    "BENTOML_DO_NOT_TRACK": "True",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "PYTHONUNBUFFERED": "1",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2.0) as reply:
            return reply.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


class PeerServer(ServerUnderTest):
    """Start in __enter__ (returns once every workload is served), stop in __exit__."""

    venv: str  # the venv under the peers root that runs it

    def __init__(self, workloads: dict[str, Workload], root: Path = DEFAULT_ROOT) -> None:
        self.workloads = workloads
        self.root = Path(root).absolute()
        self._process: subprocess.Popen | None = None
        self._workdir: tempfile.TemporaryDirectory | None = None

    @abc.abstractmethod
    def command(self, workdir: Path) -> list[str]:
        """The server's command line; may write its config files into `workdir`."""

    @abc.abstractmethod
    def is_serving(self) -> bool:
        """Whether every workload's model answers readiness probes."""

    def environment(self) -> dict[str, str]:
        return {}

    def __enter__(self) -> PeerServer:
        if not is_ready(self.root, self.venv):
            raise RuntimeError(
                f"the {self.venv} venv is missing or stale in {self.root}: run setup_peers()"
            )
        self._workdir = tempfile.TemporaryDirectory(prefix=f"peer-{self.venv}-")
        workdir = Path(self._workdir.name)
        self.log_path = workdir / "server.log"
        env = {
            **os.environ,
            **QUIET_ENV,
            "PYTHONPATH": str(ADAPTERS_DIR),
            "VIRTUAL_ENV": str(self.root / self.venv),
            "PATH": f"{self.root / self.venv / 'bin'}:{os.environ.get('PATH', '')}",
            **self.environment(),
        }
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                self.command(workdir),
                cwd=workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_until_serving()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_until_serving(self) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"{self.label} exited with {self._process.returncode}:\n{self.log_tail()}"
                )
            if self.is_serving():
                return
            time.sleep(0.5)
        raise RuntimeError(
            f"{self.label} not serving in {STARTUP_SECONDS:.0f}s:\n{self.log_tail()}"
        )

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self._process.wait(timeout=10)
            # Workers left behind by a parent that exited first.
            self._signal(signal.SIGKILL)
            self._process = None
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    def _signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signum)  # the group this Popen started

    def pids(self) -> list[int]:
        return [] if self._process is None else [self._process.pid]

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "".join(text.splitlines(keepends=True)[-lines:])
