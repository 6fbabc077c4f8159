"""The gRPC front end: TensorFlow Serving's PredictionService and ModelService, plus health.

Servicers translate protos to data-plane calls and back; every failure becomes
a status through `serving.errors.to_grpc_status`, nowhere else.
"""

from __future__ import annotations

import logging
from typing import Any, NoReturn

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)
from tensorflow_serving.apis import status_pb2 as serving_status_pb2

from serving import tensors
from serving.dataplane import SIGNATURE_DEF_FIELD, DataPlane, ModelRef
from serving.errors import InvalidArgumentError, to_grpc_status
from serving.manager import ModelManager

log = logging.getLogger(__name__)

PREDICTION_SERVICE = "tensorflow.serving.PredictionService"
MODEL_SERVICE = "tensorflow.serving.ModelService"


def model_ref(request: Any) -> ModelRef:
    """The model a request's `model_spec` names; INVALID_ARGUMENT if it has none."""
    if not request.HasField("model_spec"):
        raise InvalidArgumentError("Missing ModelSpec")
    return ModelRef.from_spec(request.model_spec)


def abort(context: grpc.ServicerContext, err: BaseException) -> NoReturn:
    """End the RPC with the status `err` maps to."""
    code, message = to_grpc_status(err)
    if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN):
        log.error("request failed: %s: %s", code.name, message, exc_info=err)
    else:
        log.debug("request failed: %s: %s", code.name, message)
    context.abort(code, message)


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """tensorflow.serving.PredictionService."""

    def __init__(
        self,
        dataplane: DataPlane,
        as_tensor_content: bool = False,
        max_tensor_bytes: int = tensors.MAX_TENSOR_BYTES,
    ) -> None:
        self._dataplane = dataplane
        self._as_tensor_content = as_tensor_content
        self._max_tensor_bytes = max_tensor_bytes

    def Predict(
        self, request: predict_pb2.PredictRequest, context: grpc.ServicerContext
    ) -> predict_pb2.PredictResponse:
        try:
            result = self._dataplane.predict(
                model_ref(request),
                request.model_spec.signature_name,
                request.inputs,
                list(request.output_filter),
                decode=lambda alias, proto: tensors.to_ndarray(
                    proto, alias, self._max_tensor_bytes
                ),
            )
            response = predict_pb2.PredictResponse()
            response.model_spec.name = result.model_name
            response.model_spec.version.value = result.version
            response.model_spec.signature_name = result.signature_name
            for alias, array in result.outputs.items():
                response.outputs[alias].CopyFrom(
                    tensors.to_tensor_proto(array, as_tensor_content=self._as_tensor_content)
                )
            return response
        except Exception as err:
            abort(context, err)

    def GetModelMetadata(
        self, request: get_model_metadata_pb2.GetModelMetadataRequest, context: grpc.ServicerContext
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        try:
            result = self._dataplane.model_metadata(
                model_ref(request), list(request.metadata_field)
            )
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            response.model_spec.name = result.model_name
            response.model_spec.version.value = result.version
            signature_map = get_model_metadata_pb2.SignatureDefMap()
            for key, signature in result.signature_defs.items():
                signature_map.signature_def[key].CopyFrom(signature)
            response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_map)
            return response
        except Exception as err:
            abort(context, err)

    def Classify(
        self, request: classification_pb2.ClassificationRequest, context: grpc.ServicerContext
    ) -> classification_pb2.ClassificationResponse:
        try:
            answer = self._dataplane.classify(
                model_ref(request), request.model_spec.signature_name, request.input
            )
            return classification_pb2.ClassificationResponse(
                model_spec=answer.model_spec(), result=answer.result
            )
        except Exception as err:
            abort(context, err)

    def Regress(
        self, request: regression_pb2.RegressionRequest, context: grpc.ServicerContext
    ) -> regression_pb2.RegressionResponse:
        try:
            answer = self._dataplane.regress(
                model_ref(request), request.model_spec.signature_name, request.input
            )
            return regression_pb2.RegressionResponse(
                model_spec=answer.model_spec(), result=answer.result
            )
        except Exception as err:
            abort(context, err)

    def MultiInference(
        self, request: inference_pb2.MultiInferenceRequest, context: grpc.ServicerContext
    ) -> inference_pb2.MultiInferenceResponse:
        try:
            return self._dataplane.multi_inference(request)
        except Exception as err:
            abort(context, err)


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """tensorflow.serving.ModelService."""

    def __init__(self, dataplane: DataPlane) -> None:
        self._dataplane = dataplane

    def GetModelStatus(
        self, request: get_model_status_pb2.GetModelStatusRequest, context: grpc.ServicerContext
    ) -> get_model_status_pb2.GetModelStatusResponse:
        try:
            statuses = self._dataplane.model_status(model_ref(request))
            response = get_model_status_pb2.GetModelStatusResponse()
            for status in statuses:
                entry = response.model_version_status.add()
                entry.version = status.version
                entry.state = int(status.state)
                entry.status.SetInParent()  # present even when OK, as in TF Serving
                if status.error is not None:
                    entry.status.error_code = status.error.code.value[0]
                    entry.status.error_message = status.error.message
            return response
        except Exception as err:
            abort(context, err)

    def HandleReloadConfigRequest(
        self, request: model_management_pb2.ReloadConfigRequest, context: grpc.ServicerContext
    ) -> model_management_pb2.ReloadConfigResponse:
        """Replace the whole model config; answers once new models are available."""
        try:
            if request.config.WhichOneof("config") != "model_config_list":
                raise InvalidArgumentError(
                    "ServerModelConfig type not supported by HandleReloadConfigRequest. "
                    "Only ModelConfigList is currently supported"
                )
            self._dataplane.manager.load_config(request.config, timeout=context.time_remaining())
        except Exception as err:
            abort(context, err)
        return model_management_pb2.ReloadConfigResponse(
            status=serving_status_pb2.StatusProto(error_code=0)
        )


class HealthReporter:
    """grpc.health.v1.Health: "" is SERVING while the server serves; each model name is
    SERVING while it has an AVAILABLE version."""

    def __init__(self, manager: ModelManager) -> None:
        self.servicer = health.HealthServicer()
        self._manager = manager
        manager.add_listener(self.update)

    def update(self, model_name: str) -> None:
        serving = bool(self._manager.serving_versions(model_name))
        self.servicer.set(
            model_name,
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING,
        )

    def serving(self) -> None:
        """Mark the server and every model as they are now (called once startup is done)."""
        for name in self._manager.model_names():
            self.update(name)
        self.servicer.set("", health_pb2.HealthCheckResponse.SERVING)

    def shutting_down(self) -> None:
        self.servicer.enter_graceful_shutdown()


def add_services(
    server: grpc.Server,
    dataplane: DataPlane,
    health_reporter: HealthReporter,
    as_tensor_content: bool = False,
    max_tensor_bytes: int = tensors.MAX_TENSOR_BYTES,
) -> list[str]:
    """Register every service on `server`; returns their full names (for reflection)."""
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(dataplane, as_tensor_content, max_tensor_bytes), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(dataplane), server)
    health_pb2_grpc.add_HealthServicer_to_server(health_reporter.servicer, server)
    return [PREDICTION_SERVICE, MODEL_SERVICE, health.SERVICE_NAME]
