"""BentoML 1.4 serving the workloads over HTTP with adaptive batching, and its Target.

Settings (BENCH_BENTOML_WORKERS / BENCH_BENTOML_MAX_LATENCY_MS override the two for
experiments):
- `@bentoml.api(batchable=True, max_batch_size=32)`: BentoML's dispatcher merges concurrent
  requests into one call and learns how long to wait for a batch from the measured cost of
  calls;
- `max_latency_ms=5000`: not a batching window but a deadline: a request that would finish
  later is answered 503 (shed, not slow), and the dispatcher's initial cost guesses scale
  with it (min(2 s, deadline/15)) until it has measured real calls, i.e. during warm-up. A
  lower value did not shorten waits on this machine (200 / 1000 / 10000 ms: 66 / 46 / 61
  req/s on cnn at c=8, within noise), it only shed requests: at c=32 the 2-core machine
  under load saw p99 of 3.5 s and 503s with 2000 ms. 5000 ms sheds none there;
- `workers="cpu_count"` (2 here), as BentoML recommends for CPU-bound services: each worker
  is a process with its own event loop, so JSON decoding (most of a request's cost, py-spy:
  pydantic's JSON validation of the array) runs on both cores; measured on cnn at c=8:
  105 req/s (p99 586 ms) with 2 workers against 29 req/s (p99 1.7 s) with 1;
- bound to 127.0.0.1 (`bentoml serve --host`), usage tracking off (BENTOML_DO_NOT_TRACK).
JSON is the only encoding BentoML accepts for an np.ndarray parameter from clients (its
pickle encoding is refused by a client-facing service), so the body is encoded once in open().
"""

from __future__ import annotations

import json
import os

import aiohttp
import numpy as np

from benchmarks.peers.process import ADAPTERS_DIR, HOST, PeerServer, free_port, http_ok
from benchmarks.peers.venvs import venv_bin
from benchmarks.target import RequestError, Target, check_shape
from benchmarks.workloads import Workload

REQUEST_TIMEOUT_SECONDS = 30.0
WORKERS = os.environ.get("BENCH_BENTOML_WORKERS", "cpu_count")
MAX_BATCH_SIZE = 32
MAX_LATENCY_MS = int(os.environ.get("BENCH_BENTOML_MAX_LATENCY_MS", "5000"))


class BentoMLPeer(PeerServer):
    venv = "bentoml"
    label = "bentoml"

    def command(self, workdir) -> list[str]:
        self.port = free_port()
        return [
            str(venv_bin(self.root, self.venv, "bentoml")),
            "serve",
            "bentoml_service:SavedModels",
            f"--working-dir={ADAPTERS_DIR}",
            f"--host={HOST}",
            f"--port={self.port}",
        ]

    def environment(self) -> dict[str, str]:
        models = {name: str(w.saved_model_dir) for name, w in self.workloads.items()}
        return {
            "PEER_MODELS": json.dumps(models),
            "PEER_WORKERS": WORKERS,
            "PEER_MAX_BATCH_SIZE": str(MAX_BATCH_SIZE),
            "PEER_MAX_LATENCY_MS": str(MAX_LATENCY_MS),
        }

    def is_serving(self) -> bool:
        return http_ok(f"http://{HOST}:{self.port}/readyz")

    def targets(self, workload: Workload) -> list[Target]:
        return [BentoHttpTarget(f"http://{HOST}:{self.port}", f"{self.label} http")]


class BentoHttpTarget(Target):
    """POST BASE_URL/<model name> with {"x": batch} as JSON, over aiohttp."""

    def __init__(self, base_url: str, label: str) -> None:
        self.base_url = base_url
        self.label = label

    async def open(self, workload: Workload) -> None:
        self._workload = workload
        self._url = f"{self.base_url}/{workload.name}"
        self._body = json.dumps({"x": workload.batch.tolist()}).encode()
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS),
            headers={"Content-Type": "application/json"},
        )

    async def output(self) -> np.ndarray:
        """One request; the decoded output."""
        async with self._session.post(self._url, data=self._body) as reply:
            body = await reply.read()
            if reply.status != 200:
                raise RequestError(f"HTTP {reply.status}", body[:200].decode(errors="replace"))
        array = np.asarray(json.loads(body), dtype=np.float32)
        check_shape(array.shape, self._workload)
        return array

    async def infer(self) -> None:
        await self.output()

    async def close(self) -> None:
        await self._session.close()
