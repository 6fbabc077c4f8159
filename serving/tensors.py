"""TensorProto <-> numpy, with malformed requests rejected as INVALID_ARGUMENT.

`tf.make_ndarray` trusts its input: a short `tensor_content` fails deep in numpy,
a negative or huge dimension allocates nonsense. Requests come from the network,
so every proto is checked first and failures name the input alias, starting with
TensorFlow Serving's own wording ("tensor parsing error: <alias>").

Responses are written the way TensorFlow Serving writes them by default
(`Tensor::AsProtoField`: typed repeated fields such as `float_val`), because
clients written for it read those fields directly; `as_tensor_content=True`
gives the compact form (`--enable_serialization_as_tensor_content`).

Both directions take byte-level fast paths on the hot path (np.frombuffer, tobytes, a
packed float field merged as bytes) that give exactly what tf.make_ndarray and
tf.make_tensor_proto give (tests/test_serving_perf.py), at a fraction of their cost.
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

# Fixed-size dtypes whose tensor_content numpy reads as it is, and that tf.make_tensor_proto
# writes as tensor_content (its _TENSOR_CONTENT_TYPES less the quantized and float8 ones).
_CONTENT_DTYPES: dict[int, np.dtype] = {
    enum: tf.as_dtype(enum).as_numpy_dtype().dtype
    for enum in (
        types_pb2.DT_HALF,
        types_pb2.DT_FLOAT,
        types_pb2.DT_DOUBLE,
        types_pb2.DT_INT8,
        types_pb2.DT_INT16,
        types_pb2.DT_INT32,
        types_pb2.DT_INT64,
        types_pb2.DT_UINT8,
        types_pb2.DT_UINT32,
        types_pb2.DT_UINT64,
    )
}

# Repeated fields of fixed-width values: field number and wire dtype of their packed form.
_FIXED_WIDTH_FIELDS: dict[str, tuple[int, str]] = {
    "float_val": (tensor_pb2.TensorProto.FLOAT_VAL_FIELD_NUMBER, "<f4"),
    "double_val": (tensor_pb2.TensorProto.DOUBLE_VAL_FIELD_NUMBER, "<f8"),
    "scomplex_val": (tensor_pb2.TensorProto.SCOMPLEX_VAL_FIELD_NUMBER, "<f4"),
    "dcomplex_val": (tensor_pb2.TensorProto.DCOMPLEX_VAL_FIELD_NUMBER, "<f8"),
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

    content = proto.tensor_content  # a copy of the bytes on every access: read it once
    if content:
        if is_string:
            raise invalid("DT_STRING values must be in string_val, not tensor_content")
        expected = num_elements * itemsize
        if len(content) != expected:
            raise invalid(
                f"tensor_content has {len(content)} bytes, expected {expected} "
                f"for {dtype_name(proto.dtype)} of shape {dims}"
            )
        if proto.dtype in _CONTENT_DTYPES:
            # tf.make_ndarray's result, without its per-call overhead (read-only: no copy).
            return np.frombuffer(content, _CONTENT_DTYPES[proto.dtype]).reshape(dims)
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
    if as_tensor_content:
        if dtype in _CONTENT_DTYPES and array.size > 1:
            # tf.make_tensor_proto's own choice for these arrays, byte for byte, but one
            # memcpy instead of its generic conversion.
            return tensor_pb2.TensorProto(
                dtype=dtype, tensor_shape=_shape_proto(array.shape), tensor_content=array.tobytes()
            )
        return tf.make_tensor_proto(array)
    if dtype not in _VALUE_FIELDS:
        return tf.make_tensor_proto(array)

    proto = tensor_pb2.TensorProto(dtype=dtype, tensor_shape=_shape_proto(array.shape))
    flat = array.ravel()
    if dtype in (types_pb2.DT_HALF, types_pb2.DT_BFLOAT16):
        flat = flat.view(np.uint16)  # half_val holds the 16-bit patterns
    elif dtype in (types_pb2.DT_COMPLEX64, types_pb2.DT_COMPLEX128):
        flat = np.stack([flat.real, flat.imag], axis=-1).ravel()
    field, _ = _VALUE_FIELDS[dtype]
    if field in _FIXED_WIDTH_FIELDS and flat.size:
        # A packed repeated float/double is its values' little-endian bytes: merging that
        # encoding gives the proto that extend() builds, without a Python float per value.
        number, wire_dtype = _FIXED_WIDTH_FIELDS[field]
        values = flat.astype(wire_dtype, copy=False).tobytes()
        proto.MergeFromString(_varint(number << 3 | 2) + _varint(len(values)) + values)
    else:
        getattr(proto, field).extend(flat.tolist())
    return proto


def _varint(value: int) -> bytes:
    """Protobuf's base-128 varint encoding of a non-negative integer."""
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _shape_proto(shape: tuple[int, ...]) -> tensor_shape_pb2.TensorShapeProto:
    return tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=size) for size in shape]
    )
