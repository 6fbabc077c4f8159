"""BentoML 1.4 service serving SavedModels over HTTP with adaptive batching (BentoML's venv).

One API per model, `POST /<model name>`, JSON {"x": [...]} in and a JSON array out (BentoML's
encoding for an np.ndarray parameter; its binary pickle encoding is refused by a service
that faces clients). `@bentoml.api(batchable=True)`: BentoML's CorkDispatcher merges
concurrent requests along axis 0 into one call of the model and learns how long to wait
for a batch from the measured cost of a call; `max_latency_ms` is the deadline past which
a request is answered 503, and also scales the dispatcher's initial cost guesses (see
bentoml_peer.py). The models are named in the PEER_MODELS environment variable as JSON
{name: SavedModel dir}; the settings come in PEER_* variables from bentoml_peer.py.
"""

import json
import os
from typing import Annotated

import bentoml
import numpy as np
import tensorflow as tf
from bentoml.validators import DType

MODELS = json.loads(os.environ["PEER_MODELS"])
# Set by benchmarks/peers/bentoml_peer.py, which documents them.
MAX_BATCH_SIZE = int(os.environ["PEER_MAX_BATCH_SIZE"])
MAX_LATENCY_MS = int(os.environ["PEER_MAX_LATENCY_MS"])
WORKERS = os.environ["PEER_WORKERS"]  # a count, or "cpu_count"


def _api(name: str):
    # The dtype annotation, as BentoML's docs write tensors: JSON numbers become float32 in one
    # np.array call.
    def infer(self, x: Annotated[np.ndarray, DType("float32")]) -> np.ndarray:
        signature = self.signatures[name]
        (input_name,) = signature.structured_input_signature[1]
        (output,) = signature(**{input_name: tf.constant(x, tf.float32)}).values()
        return output.numpy()

    infer.__name__ = name
    return bentoml.api(
        infer, batchable=True, max_batch_size=MAX_BATCH_SIZE, max_latency_ms=MAX_LATENCY_MS
    )


def _init(self):
    self.signatures = {
        name: tf.saved_model.load(path).signatures["serving_default"]
        for name, path in MODELS.items()
    }


# A class built at import time: its API methods are the models named in PEER_MODELS.
_METHODS = {"__init__": _init, **{name: _api(name) for name in MODELS}}
SavedModels = bentoml.service(workers=int(WORKERS) if WORKERS.isdigit() else WORKERS)(
    type("SavedModels", (), _METHODS)
)
