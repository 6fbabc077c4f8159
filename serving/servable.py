"""One loaded SavedModel version: its signatures, request validation and execution.

Metadata comes from the exact SignatureDef protos in `saved_model.pb` (what
TensorFlow Serving returns from GetModelMetadata); execution goes through the
signature functions of `tf.saved_model.load`. Requests are validated against
the SignatureDef before TensorFlow sees them: a signature function does not
check ranks itself, and a clear INVALID_ARGUMENT beats an error from deep
inside the graph. Calls are thread-safe (concurrent concrete-function calls
are), and nothing here is mutated after loading.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from google.protobuf import message, text_format
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2
from tensorflow.python.framework import op_def_registry

from serving.errors import (
    DataLossError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    as_serving_error,
)
from serving.tensors import dtype_name

DEFAULT_SIGNATURE = "serving_default"
SignatureDef = meta_graph_pb2.SignatureDef


def read_meta_graph(path: Path, tags: Collection[str]) -> meta_graph_pb2.MetaGraphDef:
    """The MetaGraphDef tagged exactly `tags` in the SavedModel at `path`."""
    binary, text = path / "saved_model.pb", path / "saved_model.pbtxt"
    saved_model = saved_model_pb2.SavedModel()
    source = binary if binary.is_file() else text
    try:
        if source is binary:
            saved_model.ParseFromString(binary.read_bytes())
        else:
            text_format.Parse(text.read_text(), saved_model)
    except PermissionError as err:  # e.g. copied in with another owner's mode 0600
        raise PermissionDeniedError(f"Could not read SavedModel {source}: {err}") from err
    except FileNotFoundError as err:  # the version was deleted while it was being loaded
        raise NotFoundError(f"Could not read SavedModel {source}: {err}") from err
    except (message.DecodeError, text_format.ParseError, OSError) as err:
        raise DataLossError(f"Could not parse SavedModel {source}: {err}") from err
    for meta_graph in saved_model.meta_graphs:
        if set(meta_graph.meta_info_def.tags) == set(tags):
            return meta_graph
    raise NotFoundError(
        f"Could not find meta graph def matching supplied tags: {{ {' '.join(sorted(tags))} }}. "
        "To inspect available tag-sets in the SavedModel, please use the SavedModel CLI: "
        "`saved_model_cli`"
    )


def register_custom_ops(meta_graph: meta_graph_pb2.MetaGraphDef) -> None:
    """Register the custom ops the graph uses that TensorFlow lacks. TF Serving links
    TensorFlow Text's ops in; here `tensorflow_text` (~120 MB resident) is imported only
    for a SavedModel that names an op TensorFlow does not know, e.g. TFText>...
    (loading then fails with TensorFlow's own error if the op is not TensorFlow Text's)."""
    graph = meta_graph.graph_def
    functions = graph.library.function
    nodes = [*graph.node, *(node for function in functions for node in function.node_def)]
    ops = {node.op for node in nodes} - {function.signature.name for function in functions}
    if any(op_def_registry.get(op) is None for op in ops):
        import tensorflow_text  # noqa: F401  (registers its ops)


@dataclass(frozen=True)
class ServableId:
    """A model version, printed the way TF Serving logs it: {name: m version: 3}."""

    name: str
    version: int

    def __str__(self) -> str:
        return f"{{name: {self.name} version: {self.version}}}"


# Runs one signature call on checked inputs: TensorFlow directly, or a batcher.
SignatureRunner = Callable[[str, Mapping[str, Any]], Mapping[str, Any]]


class Servable:
    """A loaded version of a model. Immutable once it serves."""

    def __init__(
        self,
        servable_id: ServableId,
        path: Path,
        signature_defs: Mapping[str, SignatureDef],
        functions: Mapping[str, Callable[..., Mapping[str, tf.Tensor]]],
        owner: Any = None,
    ) -> None:
        self.id = servable_id
        self.path = path
        self._signature_defs = dict(signature_defs)
        self._functions = dict(functions)
        self._input_specs = {
            key: {alias: _InputSpec.of(info) for alias, info in signature.inputs.items()}
            for key, signature in self._signature_defs.items()
        }
        # TensorFlow's signature functions convert numpy arguments far more slowly than
        # tf.convert_to_tensor; other runners (TFLite) take numpy as it is.
        self._takes_tensors = {
            key
            for key, function in self._functions.items()
            if isinstance(function, tf.types.experimental.ConcreteFunction)
        }
        # Tie the loaded object's variables and resources to our lifetime; signature
        # functions held only weak references to them in earlier TensorFlow releases.
        self._owner = owner
        self._runner: SignatureRunner = self.call_signature
        self._on_close: Callable[[], None] = lambda: None

    @classmethod
    def load(
        cls, servable_id: ServableId, path: Path, tags: Collection[str] = ("serve",)
    ) -> Servable:
        """Load the SavedModel at `path`; errors propagate for the manager to record."""
        meta_graph = read_meta_graph(path, tags)
        register_custom_ops(meta_graph)
        loaded = tf.saved_model.load(str(path), tags=list(tags))
        return cls(servable_id, path, meta_graph.signature_def, dict(loaded.signatures), loaded)

    @property
    def signature_defs(self) -> dict[str, SignatureDef]:
        """Every SignatureDef in the meta graph, as stored on disk."""
        return dict(self._signature_defs)

    def signature_def(self, signature_name: str) -> SignatureDef:
        """The runnable signature `signature_name` ("" means serving_default)."""
        key = signature_name or DEFAULT_SIGNATURE
        if key not in self._signature_defs or key not in self._functions:
            raise FailedPreconditionError(f'Serving signature key "{key}" not found.')
        return self._signature_defs[key]

    def check_input_names(self, signature_name: str, names: Collection[str]) -> None:
        """Request aliases vs the signature, with TensorFlow Serving's messages."""
        signature = self.signature_def(signature_name)
        given, wanted = set(names), set(signature.inputs)
        if len(given) > len(wanted) or (len(given) < len(wanted) and not signature.defaults):
            raise InvalidArgumentError(
                f"input size does not match signature: {len(given)}!={len(wanted)} "
                f"len({_set(given)}) != len({_set(wanted)}). Sent extra: {_set(given - wanted)}. "
                f"Missing but required: {_set(wanted - given)}."
            )
        for alias in sorted(wanted - given):
            if alias not in signature.defaults:
                raise InvalidArgumentError(
                    f"Signature input alias: {alias}(feed name: {signature.inputs[alias].name}) "
                    "not found in request and no default value provided. Inputs expected to be "
                    f"in the request {_set(given)}, or default input alias set: "
                    f"{','.join(sorted(signature.defaults))}"
                )
        if given - wanted:
            raise InvalidArgumentError(
                f"Inputs contains invalid name. Used request inputs: "
                f"{','.join(sorted(given & wanted))}, request input: {','.join(sorted(given))}"
            )

    def output_aliases(self, signature_name: str, output_filter: Sequence[str]) -> list[str]:
        """The outputs to return: `output_filter`, checked, or all of them."""
        signature = self.signature_def(signature_name)
        seen: set[str] = set()
        for alias in output_filter:
            if alias not in signature.outputs:
                raise InvalidArgumentError(
                    f"output tensor alias not found in signature: {alias} "
                    f"Outputs expected to be in the set {_set(signature.outputs)}."
                )
            if alias in seen:
                raise InvalidArgumentError(f"duplicate output tensor alias: {alias}")
            seen.add(alias)
        return list(output_filter) or sorted(signature.outputs)

    def run(
        self,
        signature_name: str,
        inputs: Mapping[str, np.ndarray | tf.Tensor],
        output_filter: Sequence[str] = (),
    ) -> dict[str, np.ndarray]:
        """Run a signature on validated inputs; returns the selected outputs as numpy."""
        key = signature_name or DEFAULT_SIGNATURE
        signature = self.signature_def(key)
        self.check_input_names(key, inputs.keys())
        aliases = self.output_aliases(key, output_filter)
        feed = {}
        for alias, spec in self._input_specs[key].items():
            value = inputs[alias] if alias in inputs else tf.make_ndarray(signature.defaults[alias])
            feed[alias] = _checked_input(key, alias, value, spec)
        results = self._runner(key, feed)
        return {alias: np.asarray(results[alias]) for alias in aliases}

    def call_signature(self, key: str, feed: Mapping[str, Any]) -> Mapping[str, Any]:
        """One TensorFlow call of signature `key` on checked inputs (a batch, or a request)."""
        if key in self._takes_tensors:
            feed = {alias: tf.convert_to_tensor(value) for alias, value in feed.items()}
        try:
            return self._functions[key](**feed)
        except (TypeError, ValueError) as err:
            raise InvalidArgumentError(str(err)) from err
        except Exception as err:
            raise as_serving_error(err) from err

    def route_calls(self, runner: SignatureRunner, on_close: Callable[[], None]) -> None:
        """Send signature calls through `runner` (dynamic batching); only before serving."""
        self._runner, self._on_close = runner, on_close

    def close(self) -> None:
        """Called once unloaded: finish what `runner` queued (TF Serving drains its batch
        queues before a version goes away)."""
        self._on_close()


@dataclass(frozen=True)
class _InputSpec:
    """A signature input's dtype and shape, resolved once rather than per request."""

    dtype: int
    numpy_dtype: np.dtype | None  # None: no numpy dtype stands for it (DT_STRING)
    shape: tf.TensorShape
    dims: tuple[int | None, ...] | None  # the shape as a tuple; None: unknown rank

    @classmethod
    def of(cls, info: meta_graph_pb2.TensorInfo) -> _InputSpec:
        dtype = tf.as_dtype(info.dtype)
        numpy_dtype = None if dtype == tf.string else np.dtype(dtype.as_numpy_dtype)
        shape = tf.TensorShape(info.tensor_shape)
        dims = None if shape.rank is None else tuple(shape.as_list())
        return cls(info.dtype, numpy_dtype, shape, dims)

    def accepts(self, shape: tuple[int, ...]) -> bool:
        """Whether a concrete shape fits (tf.TensorShape.is_compatible_with, in tuples)."""
        dims = self.dims
        return dims is None or (
            len(dims) == len(shape)
            and all(dim is None or dim == size for dim, size in zip(dims, shape, strict=True))
        )


def _checked_input(
    signature_name: str, alias: str, value: np.ndarray | tf.Tensor, spec: _InputSpec
) -> np.ndarray | tf.Tensor:
    """`value` if it has the input's dtype and shape, else INVALID_ARGUMENT. A numpy array
    of the right dtype stays one (a batch concatenates it; call_signature converts it)."""
    where = f"input '{alias}' of signature '{signature_name}'"
    if isinstance(value, np.ndarray) and value.dtype == spec.numpy_dtype:
        tensor, shape = value, value.shape
    else:
        try:
            tensor = tf.convert_to_tensor(value)
        except (TypeError, ValueError) as err:
            raise InvalidArgumentError(f"{where}: {err}") from err
        if tensor.dtype.as_datatype_enum != spec.dtype:
            raise InvalidArgumentError(
                f"{where} must be {dtype_name(spec.dtype)}, got "
                f"{dtype_name(tensor.dtype.as_datatype_enum)}"
            )
        shape = tuple(tensor.shape.as_list())
    if not spec.accepts(shape):
        raise InvalidArgumentError(
            f"{where} must have shape {_shape(spec.shape)}, got {_shape(tf.TensorShape(shape))}"
        )
    return tensor


def _shape(shape: tf.TensorShape) -> str:
    if shape.rank is None:
        return "<unknown rank>"
    return "[" + ",".join("?" if dim is None else str(dim) for dim in shape.as_list()) + "]"


def _set(names: Collection[str]) -> str:
    return "{" + ",".join(sorted(names)) + "}"
