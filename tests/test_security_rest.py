"""REST hardening: no path traversal through names, CORS off by default, body and JSON depth
limits; model names in the config that could escape a directory are refused."""

from __future__ import annotations

import http.client
import json

import grpc
import pytest
from serving_helpers import (
    REQUEST_LIMIT_BYTES,
    rpc_error,
    running_server,
    save_model,
    write_models_config,
)
from tensorflow_serving.apis import model_management_pb2

from serving import config as model_config
from serving.errors import InvalidArgumentError
from serving.server import STARTUP_FAILURE_EXIT_CODE, main

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("rest-security")
    save_model(root / "tiny", 1, w=2.0)
    (root / "secret").mkdir()  # what a traversal would be after
    with running_server(
        model_name="tiny",
        model_base_path=str(root / "tiny"),
        rest_api_port=-1,
        max_request_bytes=REQUEST_LIMIT_BYTES,
        rest_api_max_json_depth=5,
    ) as (server, stubs):
        yield server, stubs


def rest(port: int, method: str, path: str, body: bytes = b"", headers: dict | None = None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body=body or None, headers=headers or {})
        response = connection.getresponse()
        body = response.read()
        return response.status, json.loads(body) if body else {}, dict(response.getheaders())
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/v1/models/..%2Fsecret:predict", 400, "Invalid model name '../secret'"),
        ("/v1/models/%2E%2E:predict", 400, "Invalid model name '..'"),
        ("/v1/models/tiny%2F..%2F..%2Fsecret/versions/1:predict", 400, "path separator"),
        ("/v1/models/tiny%00:predict", 400, "control character"),
        ("/v1/models/tiny/labels/..%2F1:predict", 400, "Invalid version label"),
        ("/v1/models/tiny/versions/..%2F1:predict", 400, "Malformed request"),
        ("/v1/models/tiny/versions/-1:predict", 400, "Malformed request"),
        ("/v1/models/secret:predict", 404, "Servable not found"),  # names are not paths
        ("/v1/models/../secret:predict", 400, "Malformed request"),
    ],
)
def test_names_and_versions_cannot_walk_the_file_system(served, path, status, message):
    code, payload, _ = rest(served[0].rest_port, "POST", path, b'{"instances": [[1.0]]}')

    assert code == status
    assert message in payload["error"]


def test_status_and_metadata_refuse_traversal_too(served):
    for path in ("/v1/models/..%2Fsecret", "/v1/models/..%2Fsecret/metadata"):
        code, payload, _ = rest(served[0].rest_port, "GET", path)
        assert (code, payload["error"]) == (
            400,
            "Invalid model name '../secret': it contains a path separator",
        )


def test_cors_is_off_by_default(served):
    port = served[0].rest_port
    origin = {"Origin": "https://evil.example"}

    _, _, headers = rest(port, "POST", "/v1/models/tiny:predict", b'{"inputs": [[1.0]]}', origin)
    preflight, _, preflight_headers = rest(port, "OPTIONS", "/v1/models/tiny:predict", b"", origin)

    assert not any(name.startswith("Access-Control") for name in headers)
    assert preflight == 400
    assert not any(name.startswith("Access-Control") for name in preflight_headers)


def test_cors_when_asked_for(tmp_path):
    save_model(tmp_path, 1, w=2.0)
    with running_server(
        model_name="tiny",
        model_base_path=str(tmp_path),
        rest_api_port=-1,
        rest_api_enable_cors_support=True,
    ) as (server, _):
        status, _, headers = rest(server.rest_port, "OPTIONS", "/v1/models/tiny:predict")
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == "*"


def test_json_depth_is_limited_as_configured(served):
    port = served[0].rest_port
    rows = b'{"instances": [[1.0], [2.0]]}'  # 3 deep
    five = b'{"instances": [{"x": [[1.0]]}]}'  # object, list, object, list, list
    six = b'{"instances": [{"x": [[[1.0]]]}]}'

    assert rest(port, "POST", "/v1/models/tiny:predict", rows)[0] == 200
    assert rest(port, "POST", "/v1/models/tiny:predict", five)[0] == 400  # a shape error
    status, payload, _ = rest(port, "POST", "/v1/models/tiny:predict", six)
    assert status == 400
    assert "more than 5 levels deep" in payload["error"]


def test_body_size_is_limited_as_configured(served):
    port = served[0].rest_port
    just_fits = b'{"inputs": [[1.0]]}'.ljust(REQUEST_LIMIT_BYTES)
    too_big = just_fits + b" "

    assert rest(port, "POST", "/v1/models/tiny:predict", just_fits)[0] == 200
    status, payload, _ = rest(port, "POST", "/v1/models/tiny:predict", too_big)
    assert status == 413
    assert f"larger than {REQUEST_LIMIT_BYTES} bytes" in payload["error"]


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "../etc", "a\\b", "tab\tname"])
def test_config_names_that_could_escape_are_refused(tmp_path, capsys, name):
    config = write_models_config(tmp_path / "models.config", {name: tmp_path})

    with pytest.raises(InvalidArgumentError, match="Invalid model name"):
        model_config.read_config_file(config)
    assert main([f"--model_config_file={config}"]) == STARTUP_FAILURE_EXIT_CODE
    assert f"Invalid model config file '{config}'" in capsys.readouterr().err


def test_an_absolute_base_path_is_what_tf_serving_allows(tmp_path):
    """Base paths are the operator's: any absolute path (even with ..) is allowed, as in
    TF Serving; only numbered children of it are ever loaded."""
    config = write_models_config(tmp_path / "models.config", {"m": tmp_path / "x" / ".." / "m"})

    assert model_config.read_config_file(config).model_config_list.config[0].name == "m"


def test_reload_refuses_an_escaping_name(served):
    stubs = served[1]
    request = model_management_pb2.ReloadConfigRequest()
    request.config.model_config_list.config.add(
        name="../tiny", base_path="/models/tiny", model_platform="tensorflow"
    )

    err = rpc_error(lambda: stubs.models.HandleReloadConfigRequest(request, timeout=10))

    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Invalid model name '../tiny'" in err.details()
