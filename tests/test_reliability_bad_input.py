"""Bad input over gRPC and REST: every malformed request gets a clear status, and the server
neither crashes nor hangs (property-based with hypothesis, plus a corpus of known cases)."""

from __future__ import annotations

import contextlib
import gzip
import http.client
import json
import re
import urllib.parse

import grpc
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serving_helpers import (
    REQUEST_LIMIT_BYTES,
    bad_grpc_requests,
    bad_rest_requests,
    png_bytes,
    predict_request,
    running_server,
    save_half_plus_two,
    save_image_model,
    save_model,
    write_models_config,
    x_input,
)
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import predict_pb2

from serving import json_examples, json_tensors, json_values, tensors
from serving.dataplane import MAX_UNKNOWN_MODEL_LABELS, OTHER_MODEL_LABEL
from serving.errors import InvalidArgumentError, ServingError

pytestmark = pytest.mark.timeout(300)

HANG_SECONDS = 10.0  # no bad request may take longer than this to be answered
# Statuses that say what is wrong with a request. INTERNAL/UNKNOWN would be our bug,
# DEADLINE_EXCEEDED a hang, UNAVAILABLE a crash.
CLEAR_CODES = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
CLEAR_HTTP = {200, 400, 404, 413}
FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- strategies ---------------------------------------------------------------------------

DTYPES = [*types_pb2.DataType.values(), 1000]
MODELS = ["tiny", "image", "half", "nope", ""]
SIGNATURES = ["", "serving_default", "shout", "classify_x_to_y", "regress_x_to_y", "nope"]
# Never "hold": its inputs are file paths the model writes to.
ALIASES = ["x", "text", "image_bytes", "inputs", "y"]


@st.composite
def tensor_protos(draw) -> tensor_pb2.TensorProto:
    """Any TensorProto: any dtype number, any dims, values in any field or tensor_content."""
    proto = tensor_pb2.TensorProto(dtype=draw(st.sampled_from(DTYPES)))
    if draw(st.booleans()):
        proto.tensor_shape.unknown_rank = draw(st.booleans())
    for size in draw(st.lists(st.integers(-3, 2**62), max_size=4)):
        proto.tensor_shape.dim.add(size=size)
    field = draw(
        st.sampled_from(
            [
                *("tensor_content", "float_val", "int_val", "int64_val", "string_val"),
                *("half_val", "bool_val", "dcomplex_val", "uint64_val", "none"),
            ]
        )
    )
    if field == "tensor_content":
        proto.tensor_content = draw(st.binary(max_size=64))
    elif field == "float_val":
        proto.float_val.extend(draw(st.lists(st.floats(width=32), max_size=8)))
    elif field in ("int_val", "half_val"):
        getattr(proto, field).extend(draw(st.lists(st.integers(-(2**31), 2**31 - 1), max_size=8)))
    elif field == "int64_val":
        proto.int64_val.extend(draw(st.lists(st.integers(-(2**63), 2**63 - 1), max_size=8)))
    elif field == "uint64_val":
        proto.uint64_val.extend(draw(st.lists(st.integers(0, 2**64 - 1), max_size=8)))
    elif field == "string_val":
        proto.string_val.extend(draw(st.lists(st.binary(max_size=16), max_size=8)))
    elif field == "bool_val":
        proto.bool_val.extend(draw(st.lists(st.booleans(), max_size=8)))
    elif field == "dcomplex_val":
        proto.dcomplex_val.extend(draw(st.lists(st.floats(), max_size=8)))
    return proto


@st.composite
def plausible_tensors(draw) -> tensor_pb2.TensorProto:
    """Well-formed tensors of the wrong or right dtype, rank and content: images, strings."""
    kind = draw(st.sampled_from(["floats", "ints", "strings", "images"]))
    rows = draw(st.integers(0, 3))
    if kind == "floats":
        shape = [rows, *draw(st.lists(st.integers(0, 3), max_size=2))]
        values = draw(st.lists(st.floats(width=32), min_size=int(np.prod(shape)), max_size=64))
        array = np.array(values[: int(np.prod(shape))], np.float32).reshape(shape)
        return tf.make_tensor_proto(array)
    if kind == "ints":
        return tf.make_tensor_proto(np.arange(rows, dtype=np.int32))
    if kind == "strings":
        return tf.make_tensor_proto(draw(st.lists(st.binary(max_size=32), max_size=3)), tf.string)
    png = png_bytes(draw(st.integers(1, 12)), draw(st.integers(1, 12)), seed=rows)
    cut = draw(st.integers(0, len(png)))
    items = [png, png[:cut], draw(st.binary(max_size=24))][: rows + 1]
    return tf.make_tensor_proto(items, tf.string)


@st.composite
def predict_requests(draw) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = draw(st.sampled_from(MODELS) | st.text(max_size=8))
    request.model_spec.signature_name = draw(st.sampled_from(SIGNATURES))
    if draw(st.booleans()):
        request.model_spec.version.value = draw(st.integers(-(2**63), 2**63 - 1))
    aliases = draw(st.lists(st.sampled_from(ALIASES) | st.text(max_size=4), max_size=3))
    for alias in aliases:
        proto = draw(tensor_protos() | plausible_tensors())
        request.inputs[alias].CopyFrom(proto)
    request.output_filter.extend(draw(st.lists(st.sampled_from(["y", "upper", "zz"]), max_size=2)))
    return request


JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=6)
    | st.fixed_dictionaries({"b64": st.text(max_size=12)})
)
JSON_KEYS = st.sampled_from(["instances", "inputs", "x", "b64", "examples", "signature_name"])
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(JSON_KEYS, children),
    max_leaves=24,
)


@st.composite
def rest_requests(draw) -> tuple[str, str, bytes, dict[str, str]]:
    """(method, path, body, headers): API paths with any model name, bodies that are JSON
    of the right or wrong shape, or random bytes; any content type."""
    name = draw(st.sampled_from(MODELS) | st.text(min_size=1, max_size=8))
    model = urllib.parse.quote(name, safe="")
    version = draw(st.sampled_from(["", "/versions/1", "/versions/0", "/labels/x", "/labels/.."]))
    verb = draw(st.sampled_from([":predict", ":classify", ":regress", "", "/metadata"]))
    method = "GET" if verb in ("", "/metadata") else "POST"
    if draw(st.booleans()):
        body = json.dumps(draw(st.dictionaries(JSON_KEYS, JSON_VALUES, max_size=3))).encode()
    else:
        body = draw(st.binary(max_size=64))
    content_type = draw(
        st.sampled_from(["application/json", "text/plain", "application/octet-stream", ""])
    )
    headers = {"Content-Type": content_type} if content_type else {}
    return method, f"/v1/models/{model}{version}{verb}", body, headers


# -- decoders alone (fast, many examples) -------------------------------------------------


@settings(FUZZ, max_examples=600)
@given(tensor_protos())
def test_any_tensor_proto_decodes_to_its_shape_or_is_invalid_argument(proto):
    try:
        array = tensors.to_ndarray(proto, "x", max_bytes=REQUEST_LIMIT_BYTES)
    except InvalidArgumentError as err:
        assert err.message.startswith("tensor parsing error: x (")
        return
    assert list(array.shape) == [dim.size for dim in proto.tensor_shape.dim]
    assert array.nbytes <= REQUEST_LIMIT_BYTES


def signature_with(inputs: dict[str, int]) -> meta_graph_pb2.SignatureDef:
    signature = meta_graph_pb2.SignatureDef()
    for name, dtype in inputs.items():
        signature.inputs[name].name = f"{name}:0"
        signature.inputs[name].dtype = dtype
    return signature


JSON_DTYPES = [
    types_pb2.DT_FLOAT,
    types_pb2.DT_DOUBLE,
    types_pb2.DT_INT8,
    types_pb2.DT_UINT8,
    types_pb2.DT_INT64,
    types_pb2.DT_UINT64,
    types_pb2.DT_BOOL,
    types_pb2.DT_STRING,
    types_pb2.DT_HALF,
]


@settings(FUZZ, max_examples=400)
@given(
    st.dictionaries(JSON_KEYS, JSON_VALUES, max_size=3),
    st.dictionaries(st.sampled_from(["x", "y", "b64"]), st.sampled_from(JSON_DTYPES), max_size=2),
)
def test_any_json_document_decodes_or_is_a_serving_error(doc, inputs):
    """No JSON value makes a decoder raise anything but a client-visible ServingError."""
    body = json.dumps(doc).encode()
    try:
        parsed = json_values.parse_json(body)
        json_tensors.predict_inputs(parsed, signature_with(inputs))
    except ServingError:
        pass
    with contextlib.suppress(ServingError):
        json_examples.examples_input(doc)


@pytest.mark.parametrize("value", [-(2**63) - 1, 2**64])
def test_integers_beyond_the_int64_and_uint64_ranges_become_float_features(value):
    """Found by the fuzz test above: a JSON parser keeps these as doubles, not int64."""
    (example,) = json_examples.examples_input({"examples": [{"x": value}]}).example_list.examples
    assert example.features.feature["x"].float_list.value == [pytest.approx(float(value))]


def test_an_integer_above_int64_max_is_refused_as_uint64():
    with pytest.raises(InvalidArgumentError, match="has uint64 element"):
        json_examples.examples_input({"examples": [{"x": 2**63}]})


# -- against a real server ----------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """tiny (TinyModel), image (ImageModel), half (half_plus_two); REST on; 1 MiB limit."""
    root = tmp_path_factory.mktemp("repo")
    bases = {name: root / name for name in ("tiny", "image", "half")}
    for base in bases.values():
        base.mkdir()
    save_model(bases["tiny"], 1, w=2.0)
    save_image_model(bases["image"], 1)
    save_half_plus_two(bases["half"], 1)
    config = write_models_config(root / "models.config", bases)
    with running_server(
        model_config_file=str(config), rest_api_port=-1, max_request_bytes=REQUEST_LIMIT_BYTES
    ) as (server, stubs):
        yield server, stubs


def still_serves(stubs) -> None:
    response = stubs.predictions.Predict(predict_request("tiny", x_input(1.0)), timeout=10)
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["y"]), [[3.0]])


def grpc_code(stubs, request: predict_pb2.PredictRequest) -> tuple[grpc.StatusCode, str]:
    try:
        stubs.predictions.Predict(request, timeout=HANG_SECONDS)
    except grpc.RpcError as err:
        return err.code(), err.details() or ""
    return grpc.StatusCode.OK, ""


def rest_call(
    port: int, method: str, path: str, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=HANG_SECONDS)
    try:
        connection.request(method, path, body=body or None, headers=headers or {})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


@pytest.mark.parametrize("case", bad_grpc_requests(), ids=lambda case: case.name)
def test_known_bad_grpc_requests_get_a_clear_status(served, case):
    code, details = grpc_code(served[1], case.request)

    assert code == case.code, details
    assert case.fragment in details


@pytest.mark.parametrize("case", bad_rest_requests(), ids=lambda case: case.name)
def test_known_bad_rest_requests_get_a_clear_status(served, case):
    status, payload = rest_call(
        served[0].rest_port, "POST", case.path, case.body, dict(case.headers)
    )

    assert status == case.status, payload
    assert case.fragment in payload["error"]


@FUZZ
@given(request=predict_requests())
def test_random_predict_requests_get_a_clear_status(served, request):
    code, details = grpc_code(served[1], request)

    assert code in CLEAR_CODES, f"{code}: {details}"


@FUZZ
@given(call=rest_requests())
def test_random_rest_requests_get_a_clear_status(served, call):
    method, path, body, headers = call
    status, payload = rest_call(served[0].rest_port, method, path, body, headers)

    assert status in CLEAR_HTTP, payload
    assert status == 200 or payload["error"]


@settings(FUZZ, max_examples=60)
@given(data=st.binary(max_size=200))
def test_undecodable_protobuf_bytes_are_refused_by_grpc(served, data):
    """Bytes that are no PredictRequest end at gRPC's own parser (INTERNAL "Exception
    deserializing request", as gRPC C++ in TF Serving); bytes that happen to parse are
    answered like any request."""
    call = served[1].channel.unary_unary("/tensorflow.serving.PredictionService/Predict")
    try:
        call(data, timeout=HANG_SECONDS)
    except grpc.RpcError as err:
        if err.code() == grpc.StatusCode.INTERNAL:
            assert err.details() == "Exception deserializing request!"
        else:
            assert err.code() in CLEAR_CODES, err.details()


def test_the_server_still_answers_after_the_fuzzing(served):
    still_serves(served[1])


def test_json_sent_with_curls_default_content_type_is_served(served):
    """`curl -d` sends application/x-www-form-urlencoded; TF Serving ignores the type."""
    status, payload = rest_call(
        served[0].rest_port,
        "POST",
        "/v1/models/tiny:predict",
        b'{"instances": [[1.0]]}',
        {"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert (status, payload) == (200, {"predictions": [{"doubled": [2.0], "y": [3.0]}]})


def test_a_compressed_body_is_limited_once_decompressed(served):
    """A gzip bomb: 1 KiB on the wire, 4 MiB once inflated (limit: 1 MiB)."""
    bomb = gzip.compress(b'{"instances": [' + b" " * (4 * REQUEST_LIMIT_BYTES) + b"]}")
    gzipped = {"Content-Encoding": "gzip"}

    assert len(bomb) < REQUEST_LIMIT_BYTES // 100
    status, payload = rest_call(
        served[0].rest_port, "POST", "/v1/models/tiny:predict", bomb, gzipped
    )
    assert status == 413, payload
    small = gzip.compress(b'{"instances": [[1.0]]}')
    assert (
        rest_call(served[0].rest_port, "POST", "/v1/models/tiny:predict", small, gzipped)[0] == 200
    )


def test_a_chunked_body_over_the_limit_is_413(served):
    """No Content-Length to refuse up front: the limit applies while reading."""
    connection = http.client.HTTPConnection("127.0.0.1", served[0].rest_port, timeout=HANG_SECONDS)
    chunks = (b"[" + b"1.0," * 65536 for _ in range(8))  # 2 MiB in 8 chunks
    try:
        connection.request("POST", "/v1/models/tiny:predict", body=chunks, encode_chunked=True)
        response = connection.getresponse()
        assert response.status == 413
        assert "--max_request_bytes" in json.loads(response.read())["error"]
    finally:
        connection.close()


def test_empty_batches_follow_tf_serving(served):
    """An empty batch is valid for TF Serving's Predict (it runs the graph on 0 rows); models
    that cannot answer one say so themselves (the image model: INVALID_ARGUMENT)."""
    response = served[1].predict(predict_request("tiny", {"x": np.zeros((0, 1), np.float32)}))

    assert tf.make_ndarray(response.outputs["y"]).shape == (0, 1)
    code, details = grpc_code(served[1], predict_request("image", {"image_bytes": []}))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "empty batch" in details


def test_batching_survives_empty_and_malformed_batches(tmp_path):
    """With --enable_batching, bad requests reach the batch queues; they must fail alone."""
    save_model(tmp_path, 1, w=2.0)
    with running_server(model_name="tiny", model_base_path=str(tmp_path), enable_batching=True) as (
        _,
        stubs,
    ):
        empty = predict_request("tiny", {"x": np.zeros((0, 1), np.float32)})
        assert tf.make_ndarray(stubs.predict(empty).outputs["y"]).shape == (0, 1)
        for case in bad_grpc_requests():
            if case.request.model_spec.name == "tiny":
                assert grpc_code(stubs, case.request)[0] == case.code, case.name
        assert grpc_code(stubs, predict_request("tiny", x_input(-1.0)))[0] == (
            grpc.StatusCode.INVALID_ARGUMENT
        )
        still_serves(stubs)


def test_client_chosen_names_and_versions_cannot_grow_the_metrics(served):
    """Each new label value is a series kept forever: unknown names are capped, unknown
    versions are not labels at all."""
    server, stubs = served
    for i in range(MAX_UNKNOWN_MODEL_LABELS + 20):
        grpc_code(stubs, predict_request(f"no-such-model-{i}", x_input(1.0), version=9000 + i))
        grpc_code(stubs, predict_request("tiny", x_input(1.0), version=9000 + i))
    page = server.metrics.render()[0].decode()

    models = set(re.findall(r'tfstack_requests_total\{[^}]*model="([^"]*)"', page))
    versions = set(re.findall(r'tfstack_requests_total\{[^}]*version="([^"]*)"', page))
    assert OTHER_MODEL_LABEL in models
    assert len(models - {"tiny", "image", "half"}) <= MAX_UNKNOWN_MODEL_LABELS + 1
    assert versions <= {"", "1"}
