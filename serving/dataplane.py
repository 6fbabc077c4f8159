"""The protocol-independent operations behind every front end (gRPC and REST).

A front end turns its wire format into these calls and their results back;
the order of checks (model, signature, input names, tensors) and so the error
a client sees for a bad request are decided here, once, following TensorFlow
Serving's predict_util.cc and get_model_metadata_impl.cc. Requests are
counted and timed here too (`observed`), so both front ends report the same
metrics; `for_entrypoint` gives each its label.
"""

from __future__ import annotations

import copy
import functools
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from tensorflow_serving.apis import inference_pb2, input_pb2, model_pb2

from serving import inference
from serving.errors import InvalidArgumentError, as_serving_error
from serving.manager import ModelManager, VersionStatus
from serving.metrics import GRPC, ServingMetrics
from serving.servable import DEFAULT_SIGNATURE, SignatureDef

SIGNATURE_DEF_FIELD = "signature_def"
# Requests for models the server never knew: how many names get series of their own.
MAX_UNKNOWN_MODEL_LABELS = 100
OTHER_MODEL_LABEL = "<other>"

WireTensor = TypeVar("WireTensor")
Method = TypeVar("Method", bound=Callable[..., Any])

# Data-plane calls running on this thread; a call made by another one is not a request.
_active = threading.local()


@dataclass(frozen=True)
class ModelRef:
    """What a request names: a model and optionally a version or a version label."""

    name: str
    version: int | None = None
    label: str | None = None

    @classmethod
    def from_spec(cls, spec: model_pb2.ModelSpec) -> ModelRef:
        """The model, version or label a `ModelSpec` names."""
        choice = spec.WhichOneof("version_choice")
        return cls(
            name=spec.name,
            version=spec.version.value if choice == "version" else None,
            label=spec.version_label if choice == "version_label" else None,
        )


@dataclass(frozen=True)
class PredictResult:
    model_name: str
    version: int
    signature_name: str
    outputs: dict[str, np.ndarray]


@dataclass(frozen=True)
class MetadataResult:
    model_name: str
    version: int
    signature_defs: dict[str, SignatureDef]


def observed(api: str) -> Callable[[Method], Method]:
    """Count and time a data-plane call (`api` as TF Serving names it): every front end's
    requests are measured here, once, labelled with the data plane's entry point."""

    def decorate(method: Method) -> Method:
        @functools.wraps(method)
        def call(self: DataPlane, model: ModelRef, *args: Any, **kwargs: Any) -> Any:
            if getattr(_active, "depth", 0):
                return method(self, model, *args, **kwargs)
            started = time.perf_counter()
            status, version = "OK", model.version
            _active.depth = 1
            try:
                result = method(self, model, *args, **kwargs)
                version = getattr(result, "version", version)
                return result
            except Exception as err:
                status = as_serving_error(err).code.name
                raise
            finally:
                _active.depth = 0
                name, version = self.metric_labels(model.name, version, status)
                self.metrics.observe_request(
                    name, version, api, status, time.perf_counter() - started, self.entrypoint
                )

        return call  # type: ignore[return-value]

    return decorate


class DataPlane:
    """Predict, metadata and status over a ModelManager."""

    def __init__(
        self,
        manager: ModelManager,
        metrics: ServingMetrics | None = None,
        entrypoint: str = GRPC,
        check_signature_method_name: bool = False,
    ) -> None:
        self.manager = manager
        self.metrics = metrics or ServingMetrics()
        self.entrypoint = entrypoint
        self._unknown_model_labels: set[str] = set()  # shared by for_entrypoint's views
        self._labels_lock = threading.Lock()
        # --enable_signature_method_name_check (see serving.inference)
        self.check_signature_method_name = check_signature_method_name

    def metric_labels(self, name: str, version: int | None, status: str) -> tuple[str, int | None]:
        """The (model, version) a request is counted under. Names and versions come from
        clients, and every new pair would be a new series kept forever: a model the server
        never knew is labelled as named only for the first MAX_UNKNOWN_MODEL_LABELS such
        names (then OTHER_MODEL_LABEL), and a failed request's version only if it is known."""
        if status == "OK":
            return name, version
        known = self.manager.known_versions(name)
        if version is not None and version not in (known or ()):
            version = None
        if known is None:
            with self._labels_lock:
                if name not in self._unknown_model_labels:
                    if len(self._unknown_model_labels) >= MAX_UNKNOWN_MODEL_LABELS:
                        return OTHER_MODEL_LABEL, version
                    self._unknown_model_labels.add(name)
        return name, version

    def for_entrypoint(self, entrypoint: str) -> DataPlane:
        """The same data plane, its requests labelled as coming from `entrypoint`."""
        view = copy.copy(self)
        view.entrypoint = entrypoint
        return view

    @observed("Predict")
    def predict(
        self,
        model: ModelRef,
        signature_name: str,
        inputs: Mapping[str, WireTensor],
        output_filter: Sequence[str] = (),
        decode: Callable[[str, WireTensor], np.ndarray] | None = None,
    ) -> PredictResult:
        """Run a signature. `decode(alias, wire_tensor)` turns wire tensors into arrays,
        after the model, signature and input names were checked."""
        servable = self.manager.get_servable(model.name, model.version, model.label)
        signature_name = signature_name or DEFAULT_SIGNATURE
        signature = servable.signature_def(signature_name)
        if self.check_signature_method_name:
            inference.check_predict_method(signature)
        servable.check_input_names(signature_name, inputs.keys())
        arrays = {
            alias: decode(alias, value) if decode else np.asarray(value)
            for alias, value in inputs.items()
        }
        outputs = servable.run(signature_name, arrays, output_filter)
        return PredictResult(model.name, servable.id.version, signature_name, outputs)

    @observed("Predict")
    def predict_decoded(
        self,
        model: ModelRef,
        signature_name: str,
        decode_request: Callable[[SignatureDef], Mapping[str, np.ndarray]],
        output_filter: Sequence[str] = (),
    ) -> PredictResult:
        """Predict for wire formats that need the SignatureDef to decode a request (REST's
        JSON: input dtypes, the name of a single unnamed input), as TF Serving's REST
        handler looks it up before predicting."""
        servable = self.manager.get_servable(model.name, model.version, model.label)
        key = signature_name or DEFAULT_SIGNATURE
        signature = servable.signature_defs.get(key)
        if signature is None:
            raise InvalidArgumentError(
                f'Serving signature name: "{key}" not found in signature def'
            )
        return self.predict(model, signature_name, decode_request(signature), output_filter)

    @observed("GetModelMetadata")
    def model_metadata(self, model: ModelRef, metadata_fields: Sequence[str]) -> MetadataResult:
        """The SignatureDefs of the version a request names (the only field TF Serving has)."""
        if not metadata_fields:
            raise InvalidArgumentError(
                "GetModelMetadataRequest must specify at least one metadata_field"
            )
        for metadata_field in metadata_fields:
            if metadata_field != SIGNATURE_DEF_FIELD:
                raise InvalidArgumentError(f"Metadata field {metadata_field} is not supported")
        servable = self.manager.get_servable(model.name, model.version, model.label)
        return MetadataResult(servable.id.name, servable.id.version, servable.signature_defs)

    @observed("GetModelStatus")
    def model_status(self, model: ModelRef) -> list[VersionStatus]:
        """Status of one version, or of every version the server has seen (labels ignored,
        as in TF Serving's GetModelStatus)."""
        return self.manager.model_status(model.name, model.version)

    @observed("Classify")
    def classify(
        self, model: ModelRef, signature_name: str, examples: input_pb2.Input
    ) -> inference.ExamplesResult:
        """Classify tf.Examples with a classification signature ("" means serving_default)."""
        servable = self.manager.get_servable(model.name, model.version, model.label)
        result = inference.classify(
            servable, signature_name, examples, self.check_signature_method_name
        )
        self.metrics.observe_examples(model.name, _example_count(examples))
        return inference.ExamplesResult(
            model.name, servable.id.version, signature_name or DEFAULT_SIGNATURE, result
        )

    @observed("Regress")
    def regress(
        self, model: ModelRef, signature_name: str, examples: input_pb2.Input
    ) -> inference.ExamplesResult:
        """Regress tf.Examples with a regression signature ("" means serving_default)."""
        servable = self.manager.get_servable(model.name, model.version, model.label)
        result = inference.regress(
            servable, signature_name, examples, self.check_signature_method_name
        )
        self.metrics.observe_examples(model.name, _example_count(examples))
        return inference.ExamplesResult(
            model.name, servable.id.version, signature_name or DEFAULT_SIGNATURE, result
        )

    def multi_inference(
        self, request: inference_pb2.MultiInferenceRequest
    ) -> inference_pb2.MultiInferenceResponse:
        """Classify/regress tasks over one Input, on the version the first task names."""
        spec = request.tasks[0].model_spec if request.tasks else model_pb2.ModelSpec()
        return self._multi_inference(ModelRef.from_spec(spec), request)

    @observed("MultiInference")
    def _multi_inference(
        self, model: ModelRef, request: inference_pb2.MultiInferenceRequest
    ) -> inference_pb2.MultiInferenceResponse:
        servable = self.manager.get_servable(model.name, model.version, model.label)
        response = inference.multi_inference(servable, request, self.check_signature_method_name)
        self.metrics.observe_examples(model.name, _example_count(request.input))
        return response


def _example_count(examples: input_pb2.Input) -> int:
    """tf.Examples in an Input (TF Serving's request_example_counts)."""
    if examples.HasField("example_list_with_context"):
        return len(examples.example_list_with_context.examples)
    return len(examples.example_list.examples)
