"""tfstack-model-server as a server under test: one process serving every workload over
gRPC and REST on 127.0.0.1, with the settings the benchmark documents as its best.

Best settings (chosen for a 2-core machine, measured in benchmarks/results/README.md):
- dynamic batching with BATCHING_PARAMETERS: batches close at 32 rows or after 1 ms, one
  batch thread (TensorFlow already uses every core inside one call), a queue deep enough
  for 32 clients in flight;
- --enable_serialization_as_tensor_content: outputs as one byte string, no per-element
  protobuf fields;
- --grpc_max_threads=16: enough sync gRPC threads for requests to wait in a batch.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from benchmarks.target import ServerUnderTest, Target
from benchmarks.tfserving_targets import GrpcPredictTarget, RestPredictTarget
from benchmarks.workloads import Workload
from tfstack.server_process import ServerProcess

BATCHING_PARAMETERS = """\
max_batch_size { value: 32 }
batch_timeout_micros { value: 1000 }
num_batch_threads { value: 1 }
max_enqueued_batches { value: 64 }
"""
# --grpc_max_threads=16: each waiting request holds a sync gRPC thread, so the default (4 x
# cores = 8) caps a batch at 8 rows; of 8/16/32/64 (cnn, tiny at c=8/32, interleaved, 2 runs)
# 16 was best overall: cnn c=32 ~590 vs ~440 req/s at 8, tiny no slower; 64 was worst.
BEST_FLAGS = (
    "--enable_batching",
    "--enable_serialization_as_tensor_content",
    "--grpc_max_threads=16",
)
_REST_LINE = re.compile(r"Exporting HTTP/REST API at:([\w.\-]+):(\d+)")


class TfstackServer(ServerUnderTest):
    """`python -m serving` with a model config listing every workload."""

    def __init__(
        self,
        workloads: dict[str, Workload],
        workdir: Path,
        flags: Sequence[str] = BEST_FLAGS,
        label: str = "tfstack",
    ) -> None:
        """`flags`: server flags besides models and ports; `--enable_batching` uses
        BATCHING_PARAMETERS unless a --batching_parameters_file is among them."""
        self.workloads = workloads
        self.workdir = Path(workdir)
        self.flags = list(flags)
        self.label = label
        self._server: ServerProcess | None = None
        self._rest_port: int | None = None

    def __enter__(self) -> TfstackServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "models.config"
        config.write_text(
            "model_config_list {\n"
            + "".join(
                f'  config {{ name: "{w.name}" base_path: "{w.model_base_path}" '
                'model_platform: "tensorflow" }\n'
                for w in self.workloads.values()
            )
            + "}\n"
        )
        flags = [f"--model_config_file={config}", "--rest_api_port=-1", *self.flags]
        if "--enable_batching" in flags and not any(
            flag.startswith("--batching_parameters_file") for flag in flags
        ):
            params = self.workdir / "batching.pbtxt"
            params.write_text(BATCHING_PARAMETERS)
            flags.append(f"--batching_parameters_file={params}")
        self._server = ServerProcess(flags, log_path=self.workdir / "server.log")
        self._server.start()
        # The log is appended to across runs: the last REST line is this run's.
        ports = _REST_LINE.findall(self._server.log_path.read_text(errors="replace"))
        if not ports:
            self._server.stop()
            raise RuntimeError(f"{self.label}: no REST port in {self._server.log_path}")
        self._rest_port = int(ports[-1][1])
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    @property
    def grpc_address(self) -> str:
        assert self._server is not None, "not started"
        return self._server.target

    def pids(self) -> list[int]:
        assert self._server is not None and self._server.pid is not None, "not started"
        return [self._server.pid]

    def targets(self, workload: Workload) -> list[Target]:
        return [
            GrpcPredictTarget(self.grpc_address, f"{self.label} grpc"),
            RestPredictTarget(f"http://127.0.0.1:{self._rest_port}", f"{self.label} rest"),
        ]
