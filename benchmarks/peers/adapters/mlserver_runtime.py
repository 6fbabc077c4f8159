"""MLServer custom runtime serving one SavedModel's serving_default (runs in MLServer's venv).

MLServer's documented way to serve a model it has no runtime for: an MLModel subclass with
load() and predict(), named by `implementation` in model-settings.json; the SavedModel's
directory is the model's `parameters.uri`. Codecs are MLServer's own (NumpyCodec), which
also write raw_output_contents when the request came with raw_input_contents.
"""

import tensorflow as tf
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class SavedModelRuntime(MLModel):
    async def load(self) -> bool:
        self._signature = tf.saved_model.load(self.settings.parameters.uri).signatures[
            "serving_default"
        ]
        (self._input_name,) = self._signature.structured_input_signature[1]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        batch = NumpyCodec.decode_input(payload.inputs[0])
        outputs = self._signature(**{self._input_name: tf.constant(batch, tf.float32)})
        return InferenceResponse(
            model_name=self.name,
            outputs=[
                NumpyCodec.encode_output(name, tensor.numpy()) for name, tensor in outputs.items()
            ],
        )
