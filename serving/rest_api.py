"""The REST API: TensorFlow Serving's HttpRestApiHandler over the data plane.

Routing, path parsing and errors follow model_servers/http_rest_api_handler.cc
and http_rest_api_util.cc: a `/v1/...` request that matches no API is
INVALID_ARGUMENT "Malformed request" (HTTP 400, not 404), paths are matched
case-insensitively, model names and labels are percent-decoded. Every failure
is `{"error": "<message>"}` with the HTTP status of its canonical code
(`serving.errors.to_http_status`). This module is synchronous and blocking;
serving.http_server runs it on worker threads.

Endpoints (TF Serving's):
  GET  /v1/models/{m}[/versions/{v}|/labels/{l}]            model status
  GET  /v1/models/{m}[/versions/{v}|/labels/{l}]/metadata   signature defs
  POST /v1/models/{m}[/versions/{v}|/labels/{l}]:predict    row or columnar
  POST /v1/models/{m}[/versions/{v}|/labels/{l}]:classify   tf.Examples as JSON
  POST /v1/models/{m}[/versions/{v}|/labels/{l}]:regress
tfstack's model-independent probes:
  GET  /v1/health/live    200 while the process serves HTTP
  GET  /v1/health/ready   200 when every configured model has an AVAILABLE
                          version, else 503 naming the models that have none
"""

from __future__ import annotations

import json
import logging
import re
import urllib.parse
from collections.abc import Callable
from typing import Any

from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2, model_pb2

from serving import config as model_config
from serving import json_examples, json_tensors, json_values
from serving.dataplane import SIGNATURE_DEF_FIELD, DataPlane, ModelRef
from serving.errors import InvalidArgumentError, ServingError, to_http_status
from serving.manager import VersionStatus

log = logging.getLogger(__name__)

JSON_CONTENT_TYPE = "application/json"
MAX_VERSION = 2**63 - 1

# http_rest_api_util.cc's kPredictionApiGegex and kModelStatusApiRegex, matched in full.
_PREDICTION_PATH = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?"
    r":(classify|regress|predict)",
    re.IGNORECASE,
)
_STATUS_PATH = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?",
    re.IGNORECASE,
)
API_PATH = re.compile(r"/v1/.*", re.IGNORECASE | re.DOTALL)  # HttpRestApiHandler::kPathRegex
LIVE_PATH, READY_PATH = "/v1/health/live", "/v1/health/ready"

Response = tuple[int, bytes]


class RestApi:
    """One request in, (HTTP status, JSON body) out."""

    def __init__(
        self,
        dataplane: DataPlane,
        is_draining: Callable[[], bool],
        max_json_depth: int = json_values.MAX_DEPTH,
    ) -> None:
        self._dataplane = dataplane
        self._is_draining = is_draining
        self._max_json_depth = max_json_depth

    def handle(self, method: str, path: str, body: bytes) -> Response:
        """Answer `method` on the raw (still percent-encoded) `path`."""
        try:
            if method == "GET" and path in (LIVE_PATH, READY_PATH):
                return self._live() if path == LIVE_PATH else self._ready()
            return 200, self._dispatch(method, path, body)
        except Exception as err:
            status, message = to_http_status(err)
            if status >= 500:
                unexpected = not isinstance(err, ServingError)
                log.error("REST %s %s failed: %s", method, path, message, exc_info=unexpected)
            return status, json_values.error_body(message)

    def _dispatch(self, method: str, path: str, body: bytes) -> bytes:
        if method == "POST" and (match := _PREDICTION_PATH.fullmatch(path)):
            name, version, label, verb = match.groups()
            model = _model_ref(name, version, label)
            if verb == "predict":
                return self._predict(model, body)
            if verb == "classify":
                return self._classify(model, body)
            if verb == "regress":
                return self._regress(model, body)
        elif method == "GET" and (match := _STATUS_PATH.fullmatch(path)):
            name, version, label, subresource = match.groups()
            model = _model_ref(name or "", version, label)
            if not model.name:
                raise InvalidArgumentError("Missing model name in request.")
            if subresource == "metadata":
                return self._metadata(model)
            return self._status(model)
        raise InvalidArgumentError(f"Malformed request: {method} {path}")

    def _predict(self, model: ModelRef, body: bytes) -> bytes:
        doc = json_values.parse_json(body, self._max_json_depth)
        result = self._dataplane.predict_decoded(
            model,
            json_values.signature_name(doc),
            lambda signature: json_tensors.predict_inputs(doc, signature),
        )
        return json_tensors.predict_response(result.outputs, json_tensors.request_format(doc))

    def _classify(self, model: ModelRef, body: bytes) -> bytes:
        doc = json_values.parse_json(body, self._max_json_depth)
        signature = json_values.signature_name(doc)
        result = self._dataplane.classify(model, signature, json_examples.examples_input(doc))
        return json_examples.classify_response(result.result)

    def _regress(self, model: ModelRef, body: bytes) -> bytes:
        doc = json_values.parse_json(body, self._max_json_depth)
        signature = json_values.signature_name(doc)
        result = self._dataplane.regress(model, signature, json_examples.examples_input(doc))
        return json_examples.regress_response(result.result)

    def _status(self, model: ModelRef) -> bytes:
        statuses = self._dataplane.model_status(model)
        return _dumps({"model_version_status": [_version_status(s) for s in statuses]})

    def _metadata(self, model: ModelRef) -> bytes:
        """GetModelMetadata as TF Serving prints it: proto field names, defaults included,
        the SignatureDefMap under metadata.signature_def."""
        result = self._dataplane.model_metadata(model, [SIGNATURE_DEF_FIELD])
        spec = model_pb2.ModelSpec(name=result.model_name)
        spec.version.value = result.version
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, signature in result.signature_defs.items():
            signature_map.signature_def[key].CopyFrom(signature)
        return _dumps(
            {
                "model_spec": _message_dict(spec),
                "metadata": {SIGNATURE_DEF_FIELD: _message_dict(signature_map)},
            }
        )

    def _live(self) -> Response:
        return 200, _dumps({"status": "live"})

    def _ready(self) -> Response:
        if self._is_draining():
            return 503, _dumps({"error": "Server is shutting down", "not_ready": []})
        manager = self._dataplane.manager
        not_ready = [name for name in manager.model_names() if not manager.serving_versions(name)]
        if not_ready:
            message = f"Models without an AVAILABLE version: {', '.join(not_ready)}"
            return 503, _dumps({"error": message, "not_ready": not_ready})
        return 200, _dumps({"status": "ready", "not_ready": []})


def _model_ref(name: str, version: str | None, label: str | None) -> ModelRef:
    """ParseModelInfo: percent-decoded name and label, a numeric version. A decoded name or
    label that no config may hold (`..`, a `/`, a control character) is refused outright."""
    number = None
    if version is not None:
        number = int(version)
        if number > MAX_VERSION:
            raise InvalidArgumentError(f"Failed to convert version: {version} to numeric.")
    ref = ModelRef(
        name=urllib.parse.unquote(name),
        version=number,
        label=urllib.parse.unquote(label) if label is not None else None,
    )
    for what, value in (("model name", ref.name), ("version label", ref.label)):
        if value and (problem := model_config.name_problem(value)):
            raise InvalidArgumentError(f"Invalid {what} {value!r}: {problem}")
    return ref


def _version_status(status: VersionStatus) -> dict[str, Any]:
    """A ModelVersionStatus as MessageToJson prints it (int64 as a string, enum names)."""
    error = status.error
    return {
        "version": str(status.version),
        "state": status.state.name,
        "status": {
            "error_code": error.code.name if error else "OK",
            "error_message": error.message if error else "",
        },
    }


def _message_dict(message: Any) -> dict[str, Any]:
    return json_format.MessageToDict(
        message, always_print_fields_with_no_presence=True, preserving_proto_field_name=True
    )


def _dumps(value: Any) -> bytes:
    return json.dumps(value).encode()
