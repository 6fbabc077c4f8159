"""TensorProto <-> numpy, with malformed requests rejected as INVALID_ARGUMENT.

`tf.make_ndarray` trusts its input: a short `tensor_content` fails deep in numpy,
a negative or huge dimension allocates nonsense. Requests come from the network,
so every proto is checked first and failures name the input alias, starting with
TensorFlow Serving's own wording ("tensor parsing error: <alias>").

Responses are written the way TensorFlow Serving writes them by default
(`Tensor::AsProtoField`: typed repeated fields such as `float_val`), because
clients written for it read those fields directly; `as_tensor_content=True`
gives the compact form (`--enable_serialization_as_tensor_content`).
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

from serving.errors import InvalidArgumentError

# The default limit of a gRPC message (TensorFlow Serving allows INT_MAX bytes): a
# tensor cannot legitimately expand beyond what could have been sent, but a short typed
# field ("repeat the last value") lets a few bytes declare gigabytes. Servers pass their
# --max_request_bytes instead.
MAX_TENSOR_BYTES = 2**31 - 1
# What one DT_STRING element costs once decoded, at least: a pointer in numpy's object
# array (the bytes objects come on top), so a huge string shape is refused up front too.
_STRING_ELEMENT_BYTES = np.dtype(object).itemsize

# dtype -> (repeated field holding its values, proto values per element)
_VALUE_FIELDS: dict[int, tuple[str, int]] = {
    types_pb2.DT_FLOAT: ("float_val", 1),
    types_pb2.DT_DOUBLE: ("double_val", 1),
    types_pb2.DT_INT32: ("int_val", 1),
    types_pb2.DT_UINT8: ("int_val", 1),
    types_pb2.DT_INT16: ("int_val", 1),
    types_pb2.DT_INT8: ("int_val", 1),
    types_pb2.DT_UINT16: ("int_val", 1),
    types_pb2.DT_INT64: ("int64_val", 1),
    types_pb2.DT_UINT32: ("uint32_val", 1),
    types_pb2.DT_UINT64: ("uint64_val", 1),
    types_pb2.DT_BOOL: ("bool_val", 1),
    types_pb2.DT_STRING: ("string_val", 1),
    types_pb2.DT_HALF: ("half_val", 1),
    types_pb2.DT_BFLOAT16: ("half_val", 1),
    types_pb2.DT_COMPLEX64: ("scomplex_val", 2),
    types_pb2.DT_COMPLEX128: ("dcomplex_val", 2),
}


def dtype_name(dtype: int) -> str:
    """`DT_FLOAT` for 1; readable even for numbers the enum does not know."""
    try:
        return types_pb2.DataType.Name(dtype)
    except ValueError:
        return f"DataType({dtype})"


def to_ndarray(
    proto: tensor_pb2.TensorProto, alias: str, max_bytes: int = MAX_TENSOR_BYTES
) -> np.ndarray:
    """Decode a request tensor; raises InvalidArgumentError naming `alias` if malformed or
    if its decoded size would exceed `max_bytes`."""

    def invalid(detail: str) -> InvalidArgumentError:
        return InvalidArgumentError(f"tensor parsing error: {alias} ({detail})")

    if proto.dtype not in _VALUE_FIELDS:
        raise invalid(f"unsupported dtype {dtype_name(proto.dtype)}")
    if proto.tensor_shape.unknown_rank:
        raise invalid("tensor_shape has unknown rank")
    dims = [dim.size for dim in proto.tensor_shape.dim]
    if any(size < 0 for size in dims):
        raise invalid(f"negative dimension in shape {dims}")
    num_elements = math.prod(dims)
    is_string = proto.dtype == types_pb2.DT_STRING
    itemsize = _STRING_ELEMENT_BYTES if is_string else tf.as_dtype(proto.dtype).size
    if num_elements * itemsize > max_bytes:
        raise invalid(
            f"shape {dims} is too large: {num_elements * itemsize} bytes decoded, "
            f"more than the limit of {max_bytes}"
        )

    if proto.tensor_content:
        if is_string:
            raise invalid("DT_STRING values must be in string_val, not tensor_content")
        expected = num_elements * itemsize
        if len(proto.tensor_content) != expected:
            raise invalid(
                f"tensor_content has {len(proto.tensor_content)} bytes, expected {expected} "
                f"for {dtype_name(proto.dtype)} of shape {dims}"
            )
    else:
        field, per_element = _VALUE_FIELDS[proto.dtype]
        count = len(getattr(proto, field))
        if count % per_element or count // per_element > num_elements:
            raise invalid(
                f"{field} has {count // per_element} values, more than the "
                f"{num_elements} elements of shape {dims}"
            )
    try:
        return tf.make_ndarray(proto)
    except (TypeError, ValueError, OverflowError) as err:  # e.g. 300 in a DT_UINT8's int_val
        raise invalid(str(err)) from err


def to_tensor_proto(
    array: np.ndarray, *, as_tensor_content: bool = False
) -> tensor_pb2.TensorProto:
    """Encode a response tensor (typed fields by default, like TensorFlow Serving)."""
    array = np.asarray(array)
    if array.dtype.kind in "OSU":
        return tf.make_tensor_proto(array, dtype=tf.string)
    dtype = tf.as_dtype(array.dtype).as_datatype_enum
    if as_tensor_content or dtype not in _VALUE_FIELDS:
        return tf.make_tensor_proto(array)

    proto = tensor_pb2.TensorProto(
        dtype=dtype,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=size) for size in array.shape]
        ),
    )
    flat = array.ravel()
    if dtype in (types_pb2.DT_HALF, types_pb2.DT_BFLOAT16):
        flat = flat.view(np.uint16)  # half_val holds the 16-bit patterns
    elif dtype in (types_pb2.DT_COMPLEX64, types_pb2.DT_COMPLEX128):
        flat = np.stack([flat.real, flat.imag], axis=-1).ravel()
    field, _ = _VALUE_FIELDS[dtype]
    getattr(proto, field).extend(flat.tolist())
    return proto
