"""--auth_token_file: bearer tokens on gRPC and REST, health checks open, off by default."""

from __future__ import annotations

import http.client
import json

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from serving_helpers import (
    predict_request,
    rpc_error,
    running_server,
    save_model,
    x_input,
)

from serving.auth import MISSING, WRONG, BearerTokens
from serving.client import ServingClient
from serving.errors import InvalidArgumentError, UnauthenticatedError
from serving.server import STARTUP_FAILURE_EXIT_CODE, main

pytestmark = pytest.mark.timeout(120)

TOKEN = "s3cret-token-0123456789"
OLD_TOKEN = "previous-token-9876543210"
MONITORING = 'prometheus_config { enable: true path: "/metrics" }'


def test_only_an_accepted_bearer_token_passes():
    tokens = BearerTokens([TOKEN, OLD_TOKEN])

    assert tokens.check(f"Bearer {TOKEN}") == ""
    assert tokens.check(f"bearer {OLD_TOKEN}") == ""  # the scheme is case-insensitive
    assert tokens.check(f"Bearer {TOKEN}x") == WRONG
    assert tokens.check(f"Bearer {TOKEN[:-1]}") == WRONG
    assert tokens.check(f"Basic {TOKEN}") == MISSING
    assert tokens.check("Bearer ") == MISSING
    assert tokens.check(None) == MISSING


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "holds no token"),
        ("\n  \n", "holds no token"),
        ("short\n", "token 1 must be at least 16 characters"),
        (f"{TOKEN}\nwith a space in it, long\n", "token 2 must be at least 16 characters"),
    ],
)
def test_an_unusable_token_file_is_refused_naming_it(tmp_path, content, message):
    path = tmp_path / "tokens"
    path.write_text(content)

    with pytest.raises(InvalidArgumentError, match=message) as error:
        BearerTokens.read(path)
    assert str(path) in error.value.message


def test_a_bad_token_file_is_a_startup_error(tmp_path, capsys):
    save_model(tmp_path / "m", 1, w=2.0)
    missing = tmp_path / "no-such-file"

    code = main(
        [
            "--port=0",
            "--grpc_bind_address=127.0.0.1",
            f"--model_base_path={tmp_path / 'm'}",
            f"--auth_token_file={missing}",
        ]
    )

    assert code == STARTUP_FAILURE_EXIT_CODE
    assert f"Could not read auth token file '{missing}'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Model "tiny" behind two accepted tokens (a rotation), REST and metrics on."""
    root = tmp_path_factory.mktemp("auth")
    save_model(root / "tiny", 1, w=2.0)
    tokens = root / "tokens"
    tokens.write_text(f"{TOKEN}\n{OLD_TOKEN}\n")
    monitoring = root / "monitoring.config"
    monitoring.write_text(MONITORING)
    with running_server(
        model_name="tiny",
        model_base_path=str(root / "tiny"),
        rest_api_port=-1,
        auth_token_file=str(tokens),
        monitoring_config_file=str(monitoring),
    ) as (server, stubs):
        yield server, stubs


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


@pytest.mark.parametrize(
    ("metadata", "message"),
    [(None, MISSING), (bearer("wrong-token-0123456789"), WRONG), (bearer(TOKEN[:-1]), WRONG)],
)
def test_grpc_calls_without_an_accepted_token_are_unauthenticated(served, metadata, message):
    stubs = served[1]
    request = predict_request("tiny", x_input(1.0))

    err = rpc_error(lambda: stubs.predictions.Predict(request, timeout=10, metadata=metadata))

    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert err.details() == message


def test_every_grpc_service_but_health_needs_the_token(served):
    stubs = served[1]
    status = rpc_error(lambda: stubs.status("tiny"))
    reflection = reflection_pb2_grpc.ServerReflectionStub(stubs.channel)
    listing = reflection_pb2.ServerReflectionRequest(list_services="")
    streamed = rpc_error(lambda: next(reflection.ServerReflectionInfo(iter([listing]), timeout=10)))
    health = health_pb2_grpc.HealthStub(stubs.channel)

    assert status.code() == streamed.code() == grpc.StatusCode.UNAUTHENTICATED
    for service in ("", "tiny"):  # Kubernetes' gRPC probe sends no token
        answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING


def test_grpc_calls_with_either_accepted_token_are_served(served):
    stubs = served[1]
    request = predict_request("tiny", x_input(1.0))

    for token in (TOKEN, OLD_TOKEN):
        response = stubs.predictions.Predict(request, timeout=10, metadata=bearer(token))
        assert response.outputs["y"].float_val == [3.0]


def test_the_client_sends_its_token(served):
    target = f"127.0.0.1:{served[0].port}"
    with ServingClient(target, timeout=10, token=TOKEN) as client:
        np.testing.assert_allclose(client.predict("tiny", x_input(1.0))["y"], [[3.0]])
    with ServingClient(target, timeout=10) as client, pytest.raises(UnauthenticatedError):
        client.predict("tiny", x_input(1.0))


def rest(
    port: int, method: str, path: str, body: bytes = b"", headers: dict | None = None
) -> tuple[int, bytes, http.client.HTTPResponse]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body=body or None, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read(), response
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/models/tiny:predict"),
        ("GET", "/v1/models/tiny"),
        ("GET", "/v1/models/tiny/metadata"),
        ("GET", "/metrics"),
        ("GET", "/v1/anything"),
    ],
)
def test_rest_without_the_token_is_401_with_a_challenge(served, method, path):
    status, body, response = rest(served[0].rest_port, method, path, b'{"instances": [[1.0]]}')

    assert status == 401
    assert response.getheader("WWW-Authenticate").startswith("Bearer")
    assert json.loads(body) == {"error": MISSING}


def test_rest_with_the_token_is_served_and_probes_stay_open(served):
    port = served[0].rest_port
    authorized = {"Authorization": f"Bearer {TOKEN}"}

    status, body, _ = rest(
        port, "POST", "/v1/models/tiny:predict", b'{"inputs": [[1.0]]}', authorized
    )
    assert (status, json.loads(body)) == (200, {"outputs": {"doubled": [[2.0]], "y": [[3.0]]}})
    assert rest(port, "GET", "/metrics", headers=authorized)[0] == 200
    assert rest(port, "GET", "/v1/health/live")[0] == 200
    assert rest(port, "GET", "/v1/health/ready")[0] == 200


def test_an_unauthenticated_body_is_never_read(served):
    """The answer comes before the (announced 1 GB, never sent) body: no buffering for
    strangers."""
    connection = http.client.HTTPConnection("127.0.0.1", served[0].rest_port, timeout=10)
    try:
        connection.putrequest("POST", "/v1/models/tiny:predict")
        connection.putheader("Content-Length", str(10**9))
        connection.endheaders()
        assert connection.getresponse().status == 401
    finally:
        connection.close()


def test_auth_is_off_by_default(tmp_path):
    save_model(tmp_path, 1, w=2.0)
    with running_server(model_name="tiny", model_base_path=str(tmp_path)) as (_, stubs):
        assert stubs.predict(predict_request("tiny", x_input(1.0))).outputs["y"].float_val == [3.0]
