"""The server's fast paths give exactly what the generic paths they replace give.

Requests are decoded from `tensor_content` with np.frombuffer instead of tf.make_ndarray;
responses are encoded as `tensor_content` with tobytes() instead of tf.make_tensor_proto,
and typed float/double fields from the values' packed bytes instead of a Python float per
value. A client must not be able to tell: the bytes on the wire and the arrays decoded
are compared with TensorFlow's own conversions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from serving_helpers import ChildServer, save_model, x_input
from tensorflow.core.framework import tensor_pb2

from serving import tensors
from serving.client import ServingClient

NUMERIC_DTYPES = [
    np.float16,
    np.float32,
    np.float64,
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.uint8,
    np.uint16,
    np.uint32,
    np.uint64,
    np.bool_,
    np.complex64,
    np.complex128,
]
SHAPES = [(), (1,), (0,), (2, 3), (1, 0, 2), (2, 1, 4, 3)]
TYPED_FIELDS = {
    np.float32: "float_val",
    np.float64: "double_val",
    np.complex64: "scomplex_val",
    np.complex128: "dcomplex_val",
}


def sample(dtype: type, shape: tuple[int, ...]) -> np.ndarray:
    values = np.arange(int(np.prod(shape)), dtype=np.int64) % 7 - 3
    array = values.astype(dtype)
    if np.issubdtype(dtype, np.complexfloating):
        array = array + 1j * values[::-1]  # distinct real and imaginary parts
    return array.astype(dtype).reshape(shape)


def typed_fields_slowly(array: np.ndarray) -> tensor_pb2.TensorProto:
    """What to_tensor_proto wrote before its fast path: extend() with Python numbers."""
    proto = tf.make_tensor_proto(np.zeros((0,), array.dtype))
    proto.tensor_shape.CopyFrom(tf.TensorShape(array.shape).as_proto())
    flat = array.ravel()
    if np.iscomplexobj(flat):
        flat = np.stack([flat.real, flat.imag], axis=-1).ravel()
    getattr(proto, TYPED_FIELDS[array.dtype.type]).extend(flat.tolist())
    return proto


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", NUMERIC_DTYPES)
def test_tensor_content_response_is_byte_identical_to_make_tensor_proto(dtype, shape):
    array = sample(dtype, shape)

    fast = tensors.to_tensor_proto(array, as_tensor_content=True)

    assert fast.SerializeToString() == tf.make_tensor_proto(array).SerializeToString()


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", list(TYPED_FIELDS))
def test_packed_float_fields_are_byte_identical_to_extending_them(dtype, shape):
    array = sample(dtype, shape)

    fast = tensors.to_tensor_proto(array)

    assert fast.SerializeToString() == typed_fields_slowly(array).SerializeToString()


def test_packed_float_fields_keep_special_values_and_ignore_memory_layout():
    array = np.array([[np.nan, -0.0, np.inf], [-np.inf, 1e-45, 3.4e38]], np.float32).T

    fast = tensors.to_tensor_proto(array)

    assert not array.flags.c_contiguous
    assert fast.SerializeToString() == typed_fields_slowly(array).SerializeToString()
    np.testing.assert_array_equal(tf.make_ndarray(fast), array)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", NUMERIC_DTYPES)
def test_request_decodes_like_make_ndarray(dtype, shape):
    proto = tf.make_tensor_proto(sample(dtype, shape))

    decoded = tensors.to_ndarray(proto, "x")
    expected = tf.make_ndarray(proto)

    assert decoded.dtype == expected.dtype
    assert decoded.shape == expected.shape
    np.testing.assert_array_equal(decoded, expected)


def test_tensor_content_of_the_wrong_length_is_still_refused():
    proto = tf.make_tensor_proto(np.ones((2, 3), np.float32))
    proto.tensor_content = proto.tensor_content[:-1]

    with pytest.raises(tensors.InvalidArgumentError, match="tensor parsing error: x"):
        tensors.to_ndarray(proto, "x")


def test_plain_savedmodels_leave_tensorflow_text_and_litert_unloaded(tmp_path):
    """tensorflow_text (~120 MB resident) is loaded only for SavedModels that use its ops
    (tests/test_serving_text_ops.py) and LiteRT only with --prefer_tflite_model."""
    save_model(tmp_path / "m", 1, w=2.0)
    flags = ["--model_name=m", f"--model_base_path={tmp_path / 'm'}"]
    with ChildServer(flags, tmp_path / "server.log") as server:
        server.start()
        with ServingClient(server.target, timeout=30) as client:
            assert client.predict("m", x_input(1.0))
        libraries = Path(f"/proc/{server.pid}/maps").read_text()
    assert "tensorflow_text" not in libraries
    assert "ai_edge_litert" not in libraries
