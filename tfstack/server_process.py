"""Run tfstack-model-server as a child process on 127.0.0.1, the way a user would.

The demo, the end-to-end tests and benchmarks start the real entry point rather
than an in-process server, so flags, start-up, readiness and the SIGTERM drain
are exercised exactly as they are in a container. The server binds `--port=0`
and the bound port is read from its "Running gRPC ModelServer at" log line,
which it prints only once the models are loaded: no port race, no polling.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

STARTUP_SECONDS = 120.0


class ServerProcess:
    """`with ServerProcess([...model flags...]) as server:` starts it; leaving drains it."""

    def __init__(
        self,
        flags: Sequence[str],
        log_path: Path | str | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        """`flags`: the model flags (`--model_config_file=...`, or `--model_name=...`
        `--model_base_path=...`) and any others; the port and bind address are ours."""
        self.flags = list(flags)
        self.host = host
        self._own_log = log_path is None
        self.log_path = (
            Path(tempfile.mkstemp(prefix="tfstack-server-", suffix=".log")[1])
            if log_path is None
            else Path(log_path)
        )
        self.port: int | None = None
        self.returncode: int | None = None
        self._process: subprocess.Popen | None = None

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs (benchmarks account its CPU and memory)."""
        return self._process.pid if self._process is not None else None

    def start(self, timeout: float = STARTUP_SECONDS) -> str:
        """Start the server; returns HOST:PORT once its models are loaded and it listens."""
        command = [
            sys.executable,
            "-m",
            "serving",
            "--port=0",
            f"--grpc_bind_address={self.host}",
            *self.flags,
        ]
        with self.log_path.open("ab") as log:
            # The log may hold earlier runs (it is appended to): read only what this one writes.
            start_offset = log.tell()
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        listening = re.compile(rf"Running gRPC ModelServer at {re.escape(self.host)}:(\d+)")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._process.poll() is None:
            if match := listening.search(self._log_since(start_offset)):
                self.port = int(match.group(1))
                return self.target
            time.sleep(0.1)
        exited = self._process.poll()
        tail = self.log_tail()  # before stop(), which removes a log of our own
        self.stop(grace=5.0)
        why = f"exited with code {exited}" if exited is not None else f"not up in {timeout:.0f}s"
        raise RuntimeError(f"tfstack-model-server {why} during start-up:\n{tail}")

    def stop(self, grace: float = 30.0) -> int:
        """SIGTERM (as Kubernetes sends), wait for the drain, then return the exit code."""
        if self._process is not None:
            if self._process.poll() is None:
                self._process.send_signal(signal.SIGTERM)
                try:
                    self._process.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait(timeout=10)
            self.returncode = self._process.returncode
            self._process = None
        if self._own_log:
            self.log_path.unlink(missing_ok=True)
        return self.returncode if self.returncode is not None else 0

    def _log_since(self, offset: int) -> str:
        with self.log_path.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")

    def log_tail(self, lines: int = 15) -> str:
        if not self.log_path.exists():
            return ""
        return "".join(self.log_path.read_text(errors="replace").splitlines(keepends=True)[-lines:])

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()
