"""KServe 0.21 Python ModelServer serving SavedModels over gRPC v2 and REST (KServe's venv).

One kserve.Model per workload (KServe's documented custom-model pattern: load() then a
predict() taking and returning the v2 InferRequest/InferResponse), started with
`ModelServer().start(models)`; ports and flags come from KServe's own command line
(--http_port, --grpc_port, --enable_latency_logging...). The models are named in the
PEER_MODELS environment variable as JSON {name: SavedModel dir}.

KServe 0.21 hard-codes its bind addresses (uvicorn host "0.0.0.0", gRPC "[::]:PORT") with no
flag to change them; this process rebinds both to 127.0.0.1 before the servers start.
"""

import json
import os

import grpc
import tensorflow as tf
import uvicorn
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer
from kserve.protocol.grpc import server as grpc_server

HOST = "127.0.0.1"


class LoopbackConfig(uvicorn.Config):
    """uvicorn's Config with the host forced to loopback."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **{**kwargs, "host": HOST})


class LoopbackGrpc:
    """Stands in for `grpc.aio` in KServe's gRPC module: its server listens on loopback."""

    @staticmethod
    def server(*args, **kwargs):
        server = grpc.aio.server(*args, **kwargs)
        add_port = server.add_insecure_port
        server.add_insecure_port = lambda address: add_port(f"{HOST}:{address.rsplit(':', 1)[1]}")
        return server


uvicorn.Config = LoopbackConfig
grpc_server.aio = LoopbackGrpc


class SavedModel(Model):
    def __init__(self, name: str, saved_model_dir: str):
        super().__init__(name)
        self.saved_model_dir = saved_model_dir
        self.load()

    def load(self) -> bool:
        self._signature = tf.saved_model.load(self.saved_model_dir).signatures["serving_default"]
        (self._input_name,) = self._signature.structured_input_signature[1]
        self.ready = True
        return self.ready

    def predict(self, payload: InferRequest, headers=None) -> InferResponse:
        batch = payload.inputs[0].as_numpy()
        outputs = self._signature(**{self._input_name: tf.constant(batch, tf.float32)})
        return InferResponse(
            response_id=payload.id,
            model_name=self.name,
            infer_outputs=[_raw_output(name, tensor.numpy()) for name, tensor in outputs.items()],
            use_binary_outputs=payload.use_binary_outputs,
        )


def _raw_output(name: str, array) -> InferOutput:
    # set_data_from_numpy(binary_data=True), not data=array: KServe 0.21's to_grpc tests
    # `infer_output.data` for truth, which raises on an array of more than one element.
    output = InferOutput(name, list(array.shape), "FP32")
    output.set_data_from_numpy(array, binary_data=True)
    return output


if __name__ == "__main__":
    models = json.loads(os.environ["PEER_MODELS"])
    ModelServer().start([SavedModel(name, path) for name, path in models.items()])
