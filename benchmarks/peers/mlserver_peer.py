"""Seldon MLServer 1.7 serving the workloads through a custom runtime, over gRPC v2.

Settings (MLServer's documented production knobs; written to settings.json and one
model-settings.json per model):
- `parallel_workers: 1`: one inference worker process beside the front end (MLServer's
  default is one per core; the benchmark machine has 2 cores and TensorFlow already uses
  both inside one call, so a second worker would only contend for them);
- adaptive batching on ("mlserver-batching": `max_batch_size` 32, `max_batch_time` 2 ms,
  i.e. a batch closes when 32 requests wait or 2 ms after the first) or off ("mlserver");
- `host: 127.0.0.1`: MLServer binds its HTTP, gRPC and metrics servers to this one host;
- no tracing (`tracing_server` unset), no Kafka; MLServer has no usage tracking.
The client sends raw_input_contents (see oip.py): MLServer answers with raw outputs.
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.peers.oip import OipGrpcTarget
from benchmarks.peers.process import HOST, PeerServer, free_port, http_ok
from benchmarks.peers.venvs import venv_bin
from benchmarks.target import Target
from benchmarks.workloads import Workload

MAX_BATCH_SIZE = 32
MAX_BATCH_TIME_SECONDS = 0.002


class MLServerPeer(PeerServer):
    """MLServer without adaptive batching: each request is one call of the model."""

    venv = "mlserver"
    label = "mlserver"
    adaptive_batching = False

    def command(self, workdir: Path) -> list[str]:
        self.http_port, self.grpc_port, metrics_port = free_port(), free_port(), free_port()
        settings = {
            "host": HOST,
            "http_port": self.http_port,
            "grpc_port": self.grpc_port,
            "metrics_port": metrics_port,
            "metrics_dir": str(workdir / "metrics"),
            "parallel_workers": 1,
            "debug": False,
        }
        (workdir / "settings.json").write_text(json.dumps(settings, indent=2))
        for workload in self.workloads.values():
            model_dir = workdir / "models" / workload.name
            model_dir.mkdir(parents=True)
            model_settings = {
                "name": workload.name,
                "implementation": "mlserver_runtime.SavedModelRuntime",
                "parameters": {"uri": str(workload.saved_model_dir)},
            }
            if self.adaptive_batching:
                model_settings["max_batch_size"] = MAX_BATCH_SIZE
                model_settings["max_batch_time"] = MAX_BATCH_TIME_SECONDS
            (model_dir / "model-settings.json").write_text(json.dumps(model_settings, indent=2))
        # settings.json is read from the folder given; models are found below it.
        return [str(venv_bin(self.root, self.venv, "mlserver")), "start", str(workdir)]

    def is_serving(self) -> bool:
        base = f"http://{HOST}:{self.http_port}/v2/models"
        return all(http_ok(f"{base}/{name}/ready") for name in self.workloads)

    def targets(self, workload: Workload) -> list[Target]:
        return [OipGrpcTarget(f"{HOST}:{self.grpc_port}", f"{self.label} grpc")]


class MLServerBatchingPeer(MLServerPeer):
    """MLServer with adaptive batching: concurrent requests are merged into one call."""

    label = "mlserver-batching"
    adaptive_batching = True
