"""Optional bearer-token authentication for gRPC and REST (`--auth_token_file`, tfstack).

TensorFlow Serving has none: it expects a proxy or a mesh in front of it. With
`--auth_token_file=PATH` every gRPC call and REST request must carry
`authorization: Bearer <token>` with one of the tokens in the file (one per line;
several allow rotating a token without downtime). A missing or wrong token is
UNAUTHENTICATED (HTTP 401 with `WWW-Authenticate: Bearer`), before the request body
is read or parsed. What stays open, so orchestration keeps working without the
secret: `grpc.health.v1.Health` (the Kubernetes gRPC startup probe) and the REST
probes `/v1/health/live` and `/v1/health/ready`. Tokens are compared with
`hmac.compare_digest` against every accepted token, so the time taken tells
nothing about how much of a token matched. The file is read once at start-up.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from serving.errors import InvalidArgumentError

AUTHORIZATION = "authorization"
BEARER = "bearer"
CHALLENGE = 'Bearer realm="tfstack-model-server"'
MISSING = "Missing bearer token: send the header 'authorization: Bearer <token>'"
WRONG = "Invalid bearer token"
OPEN_GRPC_SERVICES = frozenset({"grpc.health.v1.Health"})
MIN_TOKEN_CHARS = 16  # a short secret is guessable; refuse to start with one


class BearerTokens:
    """The accepted tokens; `check(header)` says why a request is refused, or ""."""

    def __init__(self, tokens: list[str]) -> None:
        self._tokens = [token.encode() for token in tokens]

    @classmethod
    def read(cls, path: str | os.PathLike) -> BearerTokens:
        """One token per non-empty line; InvalidArgumentError names the file if unusable."""
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise InvalidArgumentError(f"Could not read auth token file '{path}': {err}") from err
        tokens = [line.strip() for line in lines if line.strip()]
        if not tokens:
            raise InvalidArgumentError(f"Auth token file '{path}' holds no token")
        for number, token in enumerate(tokens, start=1):
            if len(token) < MIN_TOKEN_CHARS or any(char.isspace() for char in token):
                raise InvalidArgumentError(
                    f"Auth token file '{path}': token {number} must be at least "
                    f"{MIN_TOKEN_CHARS} characters without spaces"
                )
        return cls(tokens)

    def check(self, header: str | None) -> str:
        """Why `header` (an Authorization value) is refused; "" if it holds an accepted token."""
        scheme, _, presented = (header or "").strip().partition(" ")
        if scheme.lower() != BEARER or not presented.strip():
            return MISSING
        candidate = presented.strip().encode()
        matched = False
        for token in self._tokens:  # no early exit: every token costs the same time
            matched |= hmac.compare_digest(candidate, token)
        return "" if matched else WRONG


class TokenInterceptor(grpc.ServerInterceptor):
    """Refuses gRPC calls without an accepted token, except OPEN_GRPC_SERVICES."""

    def __init__(self, tokens: BearerTokens) -> None:
        self._tokens = tokens

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(details)
        service = details.method.lstrip("/").rpartition("/")[0]
        if handler is None or service in OPEN_GRPC_SERVICES:
            return handler
        metadata = dict(details.invocation_metadata or ())
        problem = self._tokens.check(metadata.get(AUTHORIZATION))
        return _refusing(handler, problem) if problem else handler


def _refusing(handler: grpc.RpcMethodHandler, problem: str) -> grpc.RpcMethodHandler:
    """A handler of the same kind as `handler` that answers UNAUTHENTICATED."""

    def refuse(_request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, problem)

    serializers = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(refuse, **serializers)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(refuse, **serializers)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(refuse, **serializers)
    return grpc.unary_unary_rpc_method_handler(refuse, **serializers)
