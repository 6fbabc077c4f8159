"""KServe 0.21's Python ModelServer serving the workloads over gRPC v2 and REST v2.

Settings (KServe's defaults unless said): one process (`--workers 1`: uvicorn workers
would each load every model; on 2 cores TensorFlow already uses both inside one call),
REST and gRPC served from that process's event loop, a synchronous predict() as KServe's
own model servers write it, no per-request latency log line (`--enable_latency_logging
False`: a log write per request is not serving work). Bound to 127.0.0.1 by the adapter
(adapters/kserve_server.py): KServe binds every interface and has no flag for it.
KServe has no usage tracking. Inputs go raw (raw_input_contents over gRPC, the binary
tensor extension over REST), the fastest encoding KServe documents; outputs come back raw.
"""

from __future__ import annotations

import json

from benchmarks.peers.oip import OipGrpcTarget, OipRestTarget
from benchmarks.peers.process import ADAPTERS_DIR, HOST, PeerServer, free_port, http_ok
from benchmarks.peers.venvs import venv_bin
from benchmarks.target import Target
from benchmarks.workloads import Workload


class KServePeer(PeerServer):
    venv = "kserve"
    label = "kserve"

    def command(self, workdir) -> list[str]:
        self.http_port, self.grpc_port = free_port(), free_port()
        return [
            str(venv_bin(self.root, self.venv, "python")),
            str(ADAPTERS_DIR / "kserve_server.py"),
            f"--http_port={self.http_port}",
            f"--grpc_port={self.grpc_port}",
            "--workers=1",
            "--enable_latency_logging=False",
        ]

    def environment(self) -> dict[str, str]:
        models = {name: str(w.saved_model_dir) for name, w in self.workloads.items()}
        return {"PEER_MODELS": json.dumps(models)}

    def is_serving(self) -> bool:
        base = f"http://{HOST}:{self.http_port}/v2/models"
        return all(http_ok(f"{base}/{name}/ready") for name in self.workloads)

    def targets(self, workload: Workload) -> list[Target]:
        return [
            OipGrpcTarget(f"{HOST}:{self.grpc_port}", f"{self.label} grpc"),
            OipRestTarget(f"http://{HOST}:{self.http_port}", f"{self.label} rest"),
        ]
