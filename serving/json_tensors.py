"""Predict over REST: JSON <-> numpy tensors, as TF Serving's util/json_tensor.cc.

Requests: the row format (`"instances"`: one element per batch item, objects for
several named inputs) or the columnar one (`"inputs"`), dtypes taken from the
signature, `{"b64": ...}` for binary DT_STRING values. Responses:
`"predictions"` (row) or `"outputs"` (columnar), a single output without its
name, DT_STRING outputs whose name ends in `_bytes` as `{"b64": ...}`. The
error messages are TF Serving's, so clients that match on them keep working.

Where TF Serving would write invalid JSON (a DT_STRING output that is not UTF-8
and not named `*_bytes`) this writes `{"b64": ...}` instead.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import meta_graph_pb2

from serving import json_values
from serving.errors import InvalidArgumentError, UnimplementedError

ROW, COLUMNAR = "row", "columnar"
INSTANCES_KEY, INPUTS_KEY = "instances", "inputs"
BYTES_SUFFIX = "_bytes"

_INT_RANGES: dict[int, tuple[int, int]] = {
    types_pb2.DT_INT8: (-(2**7), 2**7 - 1),
    types_pb2.DT_UINT8: (0, 2**8 - 1),
    types_pb2.DT_INT16: (-(2**15), 2**15 - 1),
    types_pb2.DT_INT32: (-(2**31), 2**31 - 1),
    types_pb2.DT_INT64: (-(2**63), 2**63 - 1),
    types_pb2.DT_UINT32: (0, 2**32 - 1),
    types_pb2.DT_UINT64: (0, 2**64 - 1),
}
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_NUMPY_DTYPES: dict[int, Any] = {
    types_pb2.DT_FLOAT: np.float32,
    types_pb2.DT_DOUBLE: np.float64,
    types_pb2.DT_INT8: np.int8,
    types_pb2.DT_UINT8: np.uint8,
    types_pb2.DT_INT16: np.int16,
    types_pb2.DT_INT32: np.int32,
    types_pb2.DT_INT64: np.int64,
    types_pb2.DT_UINT32: np.uint32,
    types_pb2.DT_UINT64: np.uint64,
    types_pb2.DT_BOOL: np.bool_,
    types_pb2.DT_STRING: object,
}


# -- parsing ---------------------------------------------------------------------------


def request_format(doc: Mapping[str, Any]) -> str:
    """ROW for "instances", COLUMNAR for "inputs" (checked by predict_inputs)."""
    return ROW if INSTANCES_KEY in doc else COLUMNAR


def predict_inputs(
    doc: Mapping[str, Any], signature: meta_graph_pb2.SignatureDef
) -> dict[str, np.ndarray]:
    """The input tensors of a :predict request, typed by `signature`'s inputs."""
    infos = dict(signature.inputs)
    if not infos:
        name = doc.get(json_values.SIGNATURE_KEY) or "DEFAULT"
        raise InvalidArgumentError(f"Failed to get input map for signature: {name}")
    if INSTANCES_KEY in doc:
        if INPUTS_KEY in doc:
            raise json_values.format_error(
                doc,
                "Not formatted correctly expecting only one of 'inputs' or 'instances' "
                "keys to exist ",
            )
        instances = doc[INSTANCES_KEY]
        if not isinstance(instances, list):
            raise json_values.format_error(doc, "Excepting 'instances' to be an list/array")
        if not instances:
            raise json_values.format_error(doc, "No values in 'instances' array")
        return _from_instances(instances, infos)
    if INPUTS_KEY in doc:
        return _from_inputs(doc[INPUTS_KEY], infos)
    raise InvalidArgumentError("Missing 'inputs' or 'instances' key")


def _from_instances(
    instances: list[Any], infos: Mapping[str, meta_graph_pb2.TensorInfo]
) -> dict[str, np.ndarray]:
    if not isinstance(instances[0], dict) and len(infos) > 1:
        raise InvalidArgumentError(
            "instances is a plain list, but expecting list of objects as multiple input "
            "tensors required as per tensorinfo_map"
        )
    named = _is_named(instances[0])
    values: dict[str, list[Any]] = {}
    shapes: dict[str, list[int]] = {}
    for index, item in enumerate(instances):
        if named:
            if not _is_named(item):
                raise InvalidArgumentError(
                    f"Expecting object but got list at item {index} of input list"
                )
            for name, value in item.items():
                try:
                    _add_instance(value, name, infos, values, shapes)
                except InvalidArgumentError as err:
                    raise InvalidArgumentError(
                        f"Failed to process element: {index} key: {name} of 'instances' "
                        f"list. Error: {err}"
                    ) from err
            if set(item) != set(infos):
                raise InvalidArgumentError(
                    f"Failed to process element: {index} of 'instances' list. JSON object: "
                    f"{json_values.show(item)} keys must be equal to: {','.join(sorted(infos))}"
                )
        else:
            if _is_named(item):
                raise InvalidArgumentError(
                    f"Expecting value/list but got object at item {index} of input list"
                )
            name = next(iter(infos))
            try:
                _add_instance(item, name, infos, values, shapes)
            except InvalidArgumentError as err:
                raise InvalidArgumentError(
                    f"Failed to process element: {index} of 'instances' list. Error: {err}"
                ) from err
    return {
        name: _array(flat, infos[name].dtype, [len(instances), *shapes[name]])
        for name, flat in values.items()
    }


def _add_instance(
    value: Any,
    name: str,
    infos: Mapping[str, meta_graph_pb2.TensorInfo],
    values: dict[str, list[Any]],
    shapes: dict[str, list[int]],
) -> None:
    if name not in infos:
        raise InvalidArgumentError(f"JSON object: does not have named input: {name}")
    shape = _dense_shape(value)
    flat = _leaves(value, shape, infos[name].dtype)
    if name not in shapes:
        shapes[name] = shape
    elif math.prod(shapes[name]) != len(flat):
        raise InvalidArgumentError(
            f"Expecting tensor size: {math.prod(shapes[name])} but got: {len(flat)}"
        )
    elif shapes[name] != shape:
        raise InvalidArgumentError(
            f"Expecting shape {_shape(shapes[name])} but got: {_shape(shape)}"
        )
    values.setdefault(name, []).extend(flat)


def _from_inputs(
    value: Any, infos: Mapping[str, meta_graph_pb2.TensorInfo]
) -> dict[str, np.ndarray]:
    if not _is_named(value):
        if len(infos) > 1:
            raise InvalidArgumentError(
                "inputs is a plain value/list, but expecting an object as multiple input "
                "tensors required as per tensorinfo_map"
            )
        name = next(iter(infos))
        return {name: _tensor(value, infos[name].dtype)}
    arrays = {}
    for name, info in infos.items():
        if name not in value:
            raise InvalidArgumentError(f"Missing named input: {name} in 'inputs' object.")
        arrays[name] = _tensor(value[name], info.dtype)
    return arrays


def _tensor(value: Any, dtype: int) -> np.ndarray:
    shape = _dense_shape(value)
    return _array(_leaves(value, shape, dtype), dtype, shape)


def _leaves(value: Any, shape: Sequence[int], dtype: int) -> list[Any]:
    """The elements of `value`, checked to be dense with `shape` and convertible to `dtype`:
    numbers in bulk (`_numeric_leaves`), anything else or any doubt value by value (`_fill`,
    which also words the error)."""
    flat = _numeric_leaves(value, shape, dtype)
    if flat is None:
        flat = []
        _fill(value, 0, shape, dtype, flat)
    return flat


def _numeric_leaves(value: Any, shape: Sequence[int], dtype: int) -> list[Any] | None:
    """The leaves of a dense, well-typed numeric tensor, checked with C-level builtins and
    numpy instead of a Python call per element; None when that cannot vouch for it."""
    if dtype not in _INT_RANGES and dtype not in (types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE):
        return None
    level = [value]
    for size in shape:
        if set(map(type, level)) != {list} or set(map(len, level)) != {size}:
            return None
        level = list(itertools.chain.from_iterable(level))
    kinds = set(map(type, level))
    if not level or not kinds <= ({int} if dtype in _INT_RANGES else {int, float}):
        return None  # bools (an int subclass) and strings go the checking way
    try:
        values = np.array(level, dtype=np.int64 if dtype in _INT_RANGES else np.float64)
    except OverflowError:
        return None
    if dtype in _INT_RANGES:
        low, high = _INT_RANGES[dtype]
        return level if low <= values.min() and values.max() <= high else None
    magnitude = np.abs(values[np.isfinite(values)])
    if int in kinds:  # integers must fit the mantissa; anything that large: check each
        exact = 2**24 - 1 if dtype == types_pb2.DT_FLOAT else 2**53 - 1
        if magnitude.size and magnitude.max() > exact:
            return None
    if dtype == types_pb2.DT_FLOAT and magnitude.size and magnitude.max() > _FLOAT32_MAX:
        return None
    return level


def _dense_shape(value: Any) -> list[int]:
    """The shape implied by the first element at every level (GetDenseTensorShape)."""
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _fill(value: Any, level: int, shape: Sequence[int], dtype: int, out: list[Any]) -> None:
    """Append the leaves of `value` to `out`, checking it is dense with `shape`."""
    rank = len(shape)
    if not isinstance(value, list):
        if level != rank:
            raise json_values.format_error(
                value,
                f"found at incorrect level: {level + 1} in the JSON DOM. Expected at level: {rank}",
            )
        out.append(_scalar(value, dtype))
        return
    if level >= rank:
        raise InvalidArgumentError(
            f"Encountered list at unexpected level: {level} expected < {rank}"
        )
    if len(value) != shape[level]:
        raise InvalidArgumentError(
            f"Encountered list at unexpected size: {len(value)} at level: {level} "
            f"expected size: {shape[level]}"
        )
    for item in value:
        _fill(item, level + 1, shape, dtype, out)


def _scalar(value: Any, dtype: int) -> Any:
    """One JSON value as an element of `dtype` (AddValueToTensor)."""
    if isinstance(value, dict):
        if dtype == types_pb2.DT_STRING:
            return json_values.decode_b64(value)
        raise _type_error(value, dtype)
    if dtype in (types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE):
        if not json_values.is_number(value):
            raise _type_error(value, dtype)
        target = "float" if dtype == types_pb2.DT_FLOAT else "double"
        if not json_values.is_lossless(value, target):
            raise json_values.lossy_error(value, target)
        return value
    if dtype in _INT_RANGES:
        low, high = _INT_RANGES[dtype]
        if not (json_values.is_int(value) and low <= value <= high):
            raise _type_error(value, dtype)
        return value
    if dtype == types_pb2.DT_BOOL:
        if not isinstance(value, bool):
            raise _type_error(value, dtype)
        return value
    if dtype == types_pb2.DT_STRING:
        if not isinstance(value, str):
            raise _type_error(value, dtype)
        return value.encode()
    raise UnimplementedError(
        f"Conversion of JSON Value: {json_values.show(value)} to type: {_dtype_string(dtype)}"
    )


def _array(flat: list[Any], dtype: int, shape: Sequence[int]) -> np.ndarray:
    if dtype == types_pb2.DT_STRING:
        array = np.empty(len(flat), dtype=object)
        array[:] = flat
        return array.reshape(shape)
    if dtype not in _NUMPY_DTYPES:  # reached with no value to convert: an empty list
        raise UnimplementedError(f"Conversion of JSON Value: [] to type: {_dtype_string(dtype)}")
    return np.array(flat, dtype=_NUMPY_DTYPES[dtype]).reshape(shape)


# -- responses ---------------------------------------------------------------------------


def predict_response(outputs: Mapping[str, np.ndarray], request_format: str) -> bytes:
    """{"predictions": ...} for ROW requests, {"outputs": ...} for COLUMNAR ones."""
    if not outputs:
        raise InvalidArgumentError("Cannot convert empty tensor map to JSON")
    arrays = {name: np.asarray(array) for name, array in outputs.items()}
    if request_format == COLUMNAR:
        if len(arrays) == 1:
            ((name, array),) = arrays.items()
            body = _tensor_json(array, name)
        else:
            body = _object({name: _tensor_json(a, name) for name, a in arrays.items()})
        return f'{{"outputs":{body}}}'.encode()
    batch_size = -1
    for name, array in arrays.items():
        if array.ndim == 0:
            raise InvalidArgumentError(f"Tensor name: {name} has no shape information ")
        if batch_size >= 0 and array.shape[0] != batch_size:
            raise InvalidArgumentError(
                f"Tensor name: {name} has inconsistent batch size: {array.shape[0]} "
                f"expecting: {batch_size}"
            )
        batch_size = array.shape[0]
    items = {name: _rows(array, name) for name, array in arrays.items()}
    if len(items) == 1:
        (rows,) = items.values()
    else:
        rows = [_object({name: items[name][i] for name in items}) for i in range(batch_size)]
    return f'{{"predictions":[{",".join(rows)}]}}'.encode()


def _tensor_json(array: np.ndarray, name: str) -> str:
    """A tensor as nested JSON lists (a bare value for a scalar)."""
    return _nest(_tokens(array, name), array.shape)


def _rows(array: np.ndarray, name: str) -> list[str]:
    """Each batch item of a tensor as JSON."""
    tokens = _tokens(array, name)
    size = len(tokens) // array.shape[0] if array.shape[0] else 0
    return [
        _nest(tokens[i * size : (i + 1) * size], array.shape[1:]) for i in range(array.shape[0])
    ]


def _tokens(array: np.ndarray, name: str) -> list[str]:
    flat = array.ravel()
    kind = array.dtype.kind
    if kind in "OSU":
        as_bytes = name.endswith(BYTES_SUFFIX)
        return [_string(value, as_bytes) for value in flat.tolist()]
    if kind == "b":
        return ["true" if value else "false" for value in flat.tolist()]
    if kind in "iu":
        return list(map(str, flat.tolist()))
    if kind == "f" or array.dtype.name == "bfloat16":
        return json_values.decimals(flat)
    raise InvalidArgumentError(f"Failed to write JSON value for tensor type: {array.dtype.name}")


def _nest(tokens: list[str], shape: Sequence[int]) -> str:
    if not shape:
        return tokens[0]
    if len(shape) == 1:
        return f"[{','.join(tokens)}]"
    step = len(tokens) // shape[0] if shape[0] else 0
    parts = (_nest(tokens[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0]))
    return f"[{','.join(parts)}]"


def _string(value: bytes | str, as_bytes: bool) -> str:
    raw = value if isinstance(value, bytes) else value.encode()
    if not as_bytes:
        try:
            return json.dumps(raw.decode("utf-8"))
        except UnicodeDecodeError:
            pass  # not representable as a JSON string: send it as b64 (see module doc)
    return f'{{"b64":"{base64.b64encode(raw).decode()}"}}'


def _object(members: Mapping[str, str]) -> str:
    return "{" + ",".join(f"{json.dumps(name)}:{value}" for name, value in members.items()) + "}"


# -- helpers -----------------------------------------------------------------------------


def _is_named(value: Any) -> bool:
    """An object of named tensors (not a b64 value)."""
    return isinstance(value, dict) and not json_values.is_b64(value)


def _dtype_string(dtype: int) -> str:
    """tensorflow::DataTypeString: DT_FLOAT -> "float"."""
    try:
        return types_pb2.DataType.Name(dtype).removeprefix("DT_").lower()
    except ValueError:
        return f"unknown dtype enum ({dtype})"


def _type_error(value: Any, dtype: int) -> InvalidArgumentError:
    shown, kind = json_values.show(value), json_values.json_type(value)
    return InvalidArgumentError(
        f"JSON Value: {shown} Type: {kind} is not of expected type: {_dtype_string(dtype)}"
    )


def _shape(shape: Sequence[int]) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"
