"""The REST API against a real server: TF Serving's paths, JSON formats, statuses and errors."""

from __future__ import annotations

import base64
import json
import math
import socket
import threading

import numpy as np
import pytest
from google.protobuf import json_format
from serving_helpers import (
    WAIT_SECONDS,
    held_request,
    http,
    http_json,
    running_server,
    save_half_plus_two,
    save_model,
    wait_until,
)
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import get_model_metadata_pb2

from serving import json_tensors, json_values
from serving.errors import InvalidArgumentError, UnavailableError
from serving.rest_api import RestApi
from serving.server import ModelServer, ServerOptions

pytestmark = pytest.mark.timeout(120)

CONFIG = """
model_config_list {
  config {
    name: "tiny"
    base_path: "%s"
    model_platform: "tensorflow"
    model_version_policy { all {} }
    version_labels { key: "stable" value: 1 }
  }
  config { name: "half" base_path: "%s" model_platform: "tensorflow" }
}
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """ "tiny": version 1 (y = 2x + 1) and 2 (y = 3x + 1), "stable" -> 1;
    "half": TF Serving's half_plus_two (predict x -> y, classify and regress signatures)."""
    root = tmp_path_factory.mktemp("repo")
    tiny, half = root / "tiny", root / "half"
    tiny.mkdir()
    half.mkdir()
    save_model(tiny, 1, w=2.0)
    save_model(tiny, 2, w=3.0)
    save_half_plus_two(half, 1)
    config = root / "models.config"
    config.write_text(CONFIG % (tiny, half))
    with running_server(model_config_file=str(config), rest_api_port=-1) as (server, stubs):
        yield server, stubs


@pytest.fixture
def port(served):
    return served[0].rest_port


def post(port: int, path: str, body: object) -> tuple[int, object]:
    return http_json(port, "POST", path, body)


def get(port: int, path: str) -> tuple[int, object]:
    return http_json(port, "GET", path)


# -- model status and metadata --------------------------------------------------------------


def test_status_lists_every_version_like_tf_serving(port):
    assert get(port, "/v1/models/tiny") == (
        200,
        {
            "model_version_status": [
                {
                    "version": str(version),
                    "state": "AVAILABLE",
                    "status": {"error_code": "OK", "error_message": ""},
                }
                for version in (2, 1)
            ]
        },
    )


def test_status_of_a_version_and_a_label(port):
    status, body = get(port, "/v1/models/tiny/versions/1")
    assert status == 200
    assert [s["version"] for s in body["model_version_status"]] == ["1"]
    # TF Serving's GetModelStatus ignores labels: every version.
    status, body = get(port, "/v1/models/tiny/labels/stable")
    assert status == 200
    assert [s["version"] for s in body["model_version_status"]] == ["2", "1"]


def test_status_errors(port):
    assert get(port, "/v1/models/nope") == (
        404,
        {"error": "Could not find any versions of model nope"},
    )
    assert get(port, "/v1/models/tiny/versions/7") == (
        404,
        {"error": "Could not find version 7 of model tiny"},
    )
    assert get(port, "/v1/models") == (400, {"error": "Missing model name in request."})


def test_metadata_is_the_grpc_answer_printed_as_tf_serving_does(served, port):
    stubs = served[1]
    status, body = get(port, "/v1/models/tiny/labels/stable/metadata")

    assert status == 200
    assert body["model_spec"] == {"name": "tiny", "signature_name": "", "version": "1"}
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "tiny"
    request.model_spec.version_label = "stable"
    response = stubs.predictions.GetModelMetadata(request, timeout=WAIT_SECONDS)
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signature_map)
    expected = json_format.MessageToDict(
        signature_map,
        always_print_fields_with_no_presence=True,
        preserving_proto_field_name=True,
    )
    assert body["metadata"] == {"signature_def": expected}
    x = body["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]["x"]
    assert x["dtype"] == "DT_FLOAT"
    assert x["tensor_shape"]["dim"] == [{"size": "-1", "name": ""}, {"size": "1", "name": ""}]


# -- predict -------------------------------------------------------------------------------


def test_predict_row_format_uses_latest_version(port):
    assert post(port, "/v1/models/tiny:predict", {"instances": [[1.0], [2.0]]}) == (
        200,
        {"predictions": [{"doubled": [2.0], "y": [4.0]}, {"doubled": [4.0], "y": [7.0]}]},
    )


def test_predict_on_a_version_and_a_label(port):
    for path in ("/v1/models/tiny/versions/1:predict", "/v1/models/tiny/labels/stable:predict"):
        status, body = post(port, path, {"instances": [{"x": [1.0]}]})
        assert status == 200
        assert body == {"predictions": [{"doubled": [2.0], "y": [3.0]}]}


def test_predict_columnar_format(port):
    expected = (200, {"outputs": {"doubled": [[2.0]], "y": [[4.0]]}})
    assert post(port, "/v1/models/tiny:predict", {"inputs": {"x": [[1.0]]}}) == expected
    assert post(port, "/v1/models/tiny:predict", {"inputs": [[1.0]]}) == expected


def test_a_single_output_is_written_without_its_name(port):
    path = "/v1/models/half:predict"
    assert post(port, path, {"instances": [[1.0], [3.0]]}) == (200, {"predictions": [[2.5], [3.5]]})
    assert post(port, path, {"inputs": [[1.0]]}) == (200, {"outputs": [[2.5]]})


def test_strings_b64_and_signature_name(port):
    body = {"signature_name": "shout", "instances": ["héllo", {"b64": "/w=="}]}
    status, payload = post(port, "/v1/models/tiny:predict", body)

    assert status == 200
    # "\xff" is not UTF-8: tfstack sends it as b64 where TF Serving would write invalid JSON.
    assert payload == {
        "predictions": [{"length": 6, "upper": "HéLLO"}, {"length": 1, "upper": {"b64": "/w=="}}]
    }


def test_floats_are_written_like_tf_serving(port):
    status, raw, headers = http(
        port, "POST", "/v1/models/half:predict", '{"inputs": [[0.2], [Infinity], [NaN], [2.0]]}'
    )

    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert raw == b'{"outputs":[[2.1],[Infinity],[NaN],[3.0]]}'


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("", "JSON Parse error: The document is empty"),
        ("instances = [1, 2]", "JSON Parse error: "),
        ("[1]", "Is not object"),
        ({"instances": [["x"]]}, 'JSON Value: "x" Type: String is not of expected type: float'),
        ({"instances": [[2**25]]}, "to float without loss of precision"),
        ({"instances": [[1.0], [1.0, 2.0]]}, "Expecting tensor size: 1 but got: 2"),
        ({"instances": [[[1.0], 2.0]]}, "found at incorrect level"),
        ({"instances": []}, "No values in 'instances' array"),
        ({"instances": [[1.0]], "inputs": [[1.0]]}, "expecting only one of 'inputs' or"),
        ({"instances": [{"z": [1.0]}]}, "does not have named input: z"),
        ({"signature_name": 100, "instances": [[1.0]]}, "'signature_name' key must be a string"),
        ({"signature_name": "nope", "instances": [[1.0]]}, 'name: "nope" not found'),
        ({"instances": [[-1.0]]}, "x must be >= 0"),  # the graph's own check
        ({"rows": [[1.0]]}, "Missing 'inputs' or 'instances' key"),
        ({"inputs": {"y": [[1.0]]}}, "Missing named input: x in 'inputs' object."),
    ],
)
def test_bad_predict_requests_are_400_with_tf_serving_messages(port, body, message):
    if not isinstance(body, str):
        body = json.dumps(body)
    status, payload, headers = http(port, "POST", "/v1/models/tiny:predict", body)

    assert status == 400
    assert headers["Content-Type"] == "application/json"
    assert message in json.loads(payload)["error"]


def test_unknown_model_version_and_label(port):
    body = {"instances": [[1.0]]}
    assert post(port, "/v1/models/nope:predict", body) == (
        404,
        {"error": "Servable not found for request: Latest(nope)"},
    )
    assert post(port, "/v1/models/tiny/versions/9:predict", body)[0] == 404
    assert post(port, "/v1/models/tiny/labels/nope:predict", body) == (
        400,
        {"error": "Unrecognized servable version label: nope"},
    )


@pytest.mark.parametrize(
    ("method", "path", "status", "message"),
    [
        ("GET", "/v1/foo", 400, "Malformed request: GET /v1/foo"),
        ("POST", "/v1/foo", 400, "Malformed request: POST /v1/foo"),
        ("GET", "/v1/models/tiny:predict", 400, "Malformed request"),
        ("POST", "/v1/models/tiny/metadata", 400, "Malformed request"),
        ("POST", "/v1/models/tiny/version/1:predict", 400, "Malformed request"),
        ("DELETE", "/v1/models/tiny", 400, "Malformed request"),
        ("POST", f"/v1/models/tiny/versions/{2**64}:predict", 400, "Failed to convert version"),
        ("GET", "/index.html", 404, "Not found"),
    ],
)
def test_paths_tf_serving_does_not_serve(port, method, path, status, message):
    code, payload, _ = http(port, method, path, b"{}" if method == "POST" else None)

    assert code == status
    assert message in json.loads(payload)["error"]


def test_a_deeply_nested_document_is_a_bad_request(port):
    status, payload = post(port, "/v1/models/tiny:predict", "[" * 100_000 + "]" * 100_000)

    assert status == 400
    assert payload["error"].startswith("JSON Parse error")


def test_a_rest_port_in_use_is_a_startup_error(tmp_path):
    save_model(tmp_path, 1, w=2.0)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = ModelServer(
            ServerOptions(
                port=0,
                grpc_bind_address="127.0.0.1",
                model_name="m",
                model_base_path=str(tmp_path),
                rest_api_port=taken.getsockname()[1],
            )
        )
        try:
            with pytest.raises(UnavailableError, match="Failed to start HTTP Server"):
                server.start()
        finally:
            server.stop(grace=0)


def test_paths_are_case_insensitive_and_names_percent_decoded(port):
    status, body = get(port, "/V1/MODELS/%74iny/VERSIONS/1")
    assert status == 200
    assert body["model_version_status"][0]["version"] == "1"


# -- classify and regress ----------------------------------------------------------------------


def test_regress_as_tf_serving(port):
    body = {"signature_name": "regress_x_to_y", "examples": [{"x": 80.0}, {"x": 2.0}]}
    assert post(port, "/v1/models/half:regress", body) == (200, {"results": [42.0, 3.0]})
    # The context is merged into every example.
    body = {"signature_name": "regress_x_to_y", "context": {"x": 80.0}, "examples": [{}]}
    assert post(port, "/v1/models/half/versions/1:regress", body) == (200, {"results": [42.0]})


def test_classify_as_tf_serving(port):
    body = {"signature_name": "classify_x_to_y", "examples": [{"x": 20.0}]}
    assert post(port, "/v1/models/half:classify", body) == (200, {"results": [[["", 12.0]]]})
    body = {"signature_name": "classify_x_and_y", "examples": [{"x": [20.0]}, {"x": 2.0}]}
    assert post(port, "/v1/models/half:classify", body) == (
        200,
        {"results": [[["x", 20.0], ["y", 12.0]], [["x", 2.0], ["y", 3.0]]]},
    )


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"signature_name": "regress_x_to_y"}, 400, "key 'examples' is expected"),
        ({"signature_name": "regress_x_to_y", "examples": []}, 400, "is an empty array"),
        ({"examples": [[1.0]]}, 400, "Example must be JSON object but got JSON Array"),
        ({"examples": [{"x": [1.0, "a"]}]}, 400, "Unexpected element type in feature: x"),
        ({"examples": [{"x": None}]}, 400, "has element with unexpected JSON type: Null"),
        ({"signature_name": "nope", "examples": [{"x": 1.0}]}, 400, "nope"),
    ],
)
def test_bad_regress_requests(port, body, status, message):
    code, payload = post(port, "/v1/models/half:regress", body)

    assert code == status
    assert message in payload["error"]


# -- timeout, CORS, health --------------------------------------------------------------------


def test_a_request_slower_than_the_timeout_gets_504(tmp_path):
    save_model(tmp_path, 1, w=2.0)
    with running_server(
        model_name="m",
        model_base_path=str(tmp_path),
        rest_api_port=-1,
        rest_api_timeout_in_ms=300,
        rest_api_enable_cors_support=True,
    ) as (server, _):
        _, started, release = held_request("m", tmp_path)
        body = {
            "signature_name": "hold",
            "inputs": {"started": str(started), "release": str(release)},
        }
        try:
            status, payload, headers = http(
                server.rest_port, "POST", "/v1/models/m:predict", json.dumps(body)
            )
            assert status == 504
            assert "--rest_api_timeout_in_ms" in json.loads(payload)["error"]
            assert headers["Access-Control-Allow-Origin"] == "*"
            assert started.exists()
        finally:
            release.touch()
        # Fast requests still answer on the same port.
        assert (
            http_json(server.rest_port, "POST", "/v1/models/m:predict", {"inputs": [[1.0]]})[0]
            == 200
        )


def test_ready_names_models_without_a_version_until_one_arrives(tmp_path):
    """The readiness probe answers 503 while a configured model has nothing to serve."""
    server = ModelServer(
        ServerOptions(
            port=0,
            grpc_bind_address="127.0.0.1",
            model_name="late",
            model_base_path=str(tmp_path),
            file_system_poll_wait_seconds=0.2,
            rest_api_port=-1,
        )
    )
    starting = threading.Thread(target=server.start, daemon=True)
    starting.start()
    try:
        api = RestApi(server.dataplane, lambda: False)
        _, body = wait_until(
            lambda: (answer := api.handle("GET", "/v1/health/ready", b""))[0] == 503 and answer,
            what="the configured model to be known and not ready",
        )
        assert json.loads(body)["not_ready"] == ["late"]
        save_model(tmp_path, 1, w=2.0)
        starting.join(WAIT_SECONDS)
        assert get(server.rest_port, "/v1/health/ready") == (
            200,
            {"status": "ready", "not_ready": []},
        )
        assert get(server.rest_port, "/v1/health/live") == (200, {"status": "live"})
        server.request_stop()  # SIGTERM: no longer ready, still live
        assert get(server.rest_port, "/v1/health/ready")[0] == 503
        assert get(server.rest_port, "/v1/health/live")[0] == 200
    finally:
        server.stop(grace=1.0)


def test_stop_drains_an_in_flight_rest_request(tmp_path):
    save_model(tmp_path, 1, w=2.0)
    with running_server(model_name="m", model_base_path=str(tmp_path), rest_api_port=-1) as (
        server,
        _,
    ):
        _, started, release = held_request("m", tmp_path)
        body = json.dumps(
            {"signature_name": "hold", "inputs": {"started": str(started), "release": str(release)}}
        )
        answers = []
        client = threading.Thread(
            target=lambda: answers.append(
                http(server.rest_port, "POST", "/v1/models/m:predict", body)
            )
        )
        client.start()
        wait_until(started.exists, what="the held request to start")
        stopper = threading.Thread(target=server.stop, kwargs={"grace": WAIT_SECONDS})
        stopper.start()
        release.touch()
        client.join(WAIT_SECONDS)
        stopper.join(WAIT_SECONDS)
    assert answers and answers[0][0] == 200
    assert json.loads(answers[0][1])["outputs"] > 0


# -- JSON formatting details ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "dtype", "text"),
    [
        (1.0, np.float32, "1.0"),
        (0.1, np.float32, "0.1"),
        (1 / 3, np.float32, "0.333333343"),
        (1 / 3, np.float64, "0.33333333333333331"),
        (100000.0, np.float32, "100000.0"),
        (1e6, np.float32, "1e+06"),
        (3e-5, np.float64, "3e-05"),
        (float("-inf"), np.float32, "-Infinity"),
    ],
)
def test_decimals_follow_write_decimal(value, dtype, text):
    array = np.array([value], dtype=dtype)
    assert json_tensors.predict_response({"v": array}, json_tensors.COLUMNAR) == (
        f'{{"outputs":[{text}]}}'.encode()
    )


def _write_decimal(value: float, real: type[np.floating]) -> str:
    """WriteDecimal spelled out one value at a time: the reference the vectorised writer
    must match character for character."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
    text = f"{value:.6g}"
    if real(text) != real(value):
        text = f"{value:.{17 if real is np.float64 else 9}g}"
    return text if "." in text or "e" in text else text + ".0"


@pytest.mark.parametrize("real", [np.float32, np.float64])
def test_vectorised_decimals_match_write_decimal_value_by_value(real):
    rng = np.random.default_rng(7)
    powers = 10.0 ** np.arange(-45, 39)
    values = np.concatenate(
        [
            rng.random(3000) * 255,  # image-like
            rng.standard_normal(3000) * 10.0 ** rng.integers(-44, 38, 3000),  # every exponent
            np.rint(rng.random(3000) * 1e6) / 10.0 ** rng.integers(0, 7, 3000),  # short decimals
            rng.integers(-(2**30), 2**30, 3000),  # whole numbers, some past six digits
            powers,  # around powers of ten, where the exponent is easy to get wrong
            np.nextafter(powers.astype(real), real(0)),
            np.nextafter(powers.astype(real), real(np.inf)),
            [0.0, -0.0, np.nan, np.inf, -np.inf, 99999.95, 999999.5, 1 / 3, 3.4e38, 1e-45],
        ]
    )
    with np.errstate(over="ignore"):
        array = values.astype(real)
    expected = [_write_decimal(v, real) for v in array.astype(np.float64).tolist()]
    assert json_values.decimals(array) == expected


def test_numeric_requests_decode_in_bulk_like_value_by_value():
    signature = meta_graph_pb2.SignatureDef()
    signature.inputs["x"].dtype = types_pb2.DT_FLOAT
    signature.inputs["n"].dtype = types_pb2.DT_INT32
    rng = np.random.default_rng(3)
    x = rng.random((2, 5, 4, 3), dtype=np.float32)
    doc = {
        "inputs": {
            "x": [[[[0, *row[1:]] for row in col] for col in item] for item in x.tolist()],
            "n": [[1, -2], [3, 2**31 - 1]],
        }
    }
    arrays = json_tensors.predict_inputs(doc, signature)
    x[:, :, :, 0] = 0
    np.testing.assert_array_equal(arrays["x"], x)
    np.testing.assert_array_equal(arrays["n"], np.array([[1, -2], [3, 2**31 - 1]], np.int32))
    for bad, message in [
        ([[1.0, 2.0], [3.0]], "Encountered list at unexpected size"),
        ([[1.0, True]], "Type: True is not of expected type: float"),
        ([[1.0, 2**24]], "to float without loss of precision"),
        ([[1.0, 1e39]], "to float without loss of precision"),
    ]:
        with pytest.raises(InvalidArgumentError, match=message):
            json_tensors.predict_inputs({"inputs": {"x": bad, "n": [1]}}, signature)
    with pytest.raises(InvalidArgumentError, match="is not of expected type: int32"):
        json_tensors.predict_inputs({"inputs": {"x": [1.0], "n": [2**31]}}, signature)


def test_bytes_outputs_are_b64_and_other_types_plain():
    outputs = {
        "image_bytes": np.array([b"\x89PNG"], dtype=object),
        "flag": np.array([True]),
        "count": np.array([7], dtype=np.int64),
    }
    body = json.loads(json_tensors.predict_response(outputs, json_tensors.ROW))
    assert body == {
        "predictions": [
            {
                "image_bytes": {"b64": base64.b64encode(b"\x89PNG").decode()},
                "flag": True,
                "count": 7,
            }
        ]
    }
