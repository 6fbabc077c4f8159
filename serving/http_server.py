"""The HTTP port: the REST API and the Prometheus page, as TF Serving's http_server.cc.

aiohttp's event loop runs in a thread of its own and only moves bytes; JSON
parsing, the model and JSON writing run on `num_threads` worker threads
(--rest_api_num_threads), so a slow model never stalls other connections.
Paths under /v1/ go to serving.rest_api; the Prometheus path (when enabled by
--monitoring_config_file) gets the metrics page; anything else is 404, as in
TF Serving. A request running longer than `timeout_ms` (--rest_api_timeout_in_ms,
<= 0: no limit) is answered DEADLINE_EXCEEDED (HTTP 504); Python cannot
interrupt the model, so that computation finishes in the background.
Before a body is read: with `tokens` (--auth_token_file) a request without an
accepted bearer token gets 401 (the probes stay open); a body declared or found
larger than `max_body_bytes` (--max_request_bytes) gets 413. The Content-Type is
not looked at, as in TF Serving (`curl -d` sends form-urlencoded): any body must
be JSON. CORS headers are only sent with --rest_api_enable_cors_support.
stop() closes the port, lets in-flight requests finish within the grace
period, then closes the remaining connections.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent import futures
from typing import Any

from aiohttp import web

from serving.auth import CHALLENGE, BearerTokens
from serving.errors import (
    DeadlineExceededError,
    NotFoundError,
    RequestTooLargeError,
    UnauthenticatedError,
    UnavailableError,
    to_http_status,
)
from serving.json_values import error_body
from serving.rest_api import API_PATH, JSON_CONTENT_TYPE, LIVE_PATH, READY_PATH, RestApi

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 2**31 - 1  # as the gRPC port: TF Serving sets no smaller limit
START_TIMEOUT_SECONDS = 30.0
CLOSE_SECONDS = 0.5  # after the drain: how long stragglers get before they are cancelled
# http_rest_api_util.cc's AddCORSHeaders (--rest_api_enable_cors_support).
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, GET",
    "Access-Control-Allow-Headers": "Content-Type",
}

MetricsPage = Callable[[], tuple[bytes, str]]


class HttpServer:
    """Serves `api` (and `metrics_page` at `metrics_path`) on host:port until stop()."""

    def __init__(
        self,
        api: RestApi,
        host: str,
        port: int,
        num_threads: int,
        timeout_ms: int,
        enable_cors: bool = False,
        metrics_path: str | None = None,
        metrics_page: MetricsPage | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
        tokens: BearerTokens | None = None,
    ) -> None:
        self._api = api
        self._max_body_bytes = max_body_bytes
        self._tokens = tokens
        self._host, self._port = host, port
        self._timeout = timeout_ms / 1000 if timeout_ms > 0 else None
        self._timeout_ms = timeout_ms
        self._cors = CORS_HEADERS if enable_cors else {}
        self._metrics_path, self._metrics_page = metrics_path, metrics_page
        self._executor = futures.ThreadPoolExecutor(
            max_workers=max(num_threads, 1), thread_name_prefix="rest"
        )
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="rest-loop", daemon=True
        )
        self._runner: web.AppRunner | None = None
        self._in_flight = 0  # touched on the loop thread only

    def start(self) -> int:
        """Bind and serve; returns the bound port. UNAVAILABLE if the port cannot be bound."""
        self._thread.start()
        try:
            return asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(
                START_TIMEOUT_SECONDS
            )
        except OSError as err:
            self._close()
            raise UnavailableError(
                f"Failed to start HTTP Server at {self._host}:{self._port}: {err}"
            ) from err

    def stop(self, grace: float) -> None:
        """Stop accepting, wait up to `grace` s for in-flight requests, close everything."""
        if not self._thread.is_alive():
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(grace), self._loop).result(
                grace + START_TIMEOUT_SECONDS
            )
        finally:
            self._close()

    async def _start(self) -> int:
        app = web.Application(client_max_size=self._max_body_bytes)
        # Every path is ours to answer (with JSON), even one with a %0A in it.
        app.router.add_route("*", r"/{tail:[\s\S]*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=CLOSE_SECONDS)
        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, self._port).start()
        return self._runner.addresses[0][1]

    async def _shutdown(self, grace: float) -> None:
        if self._runner is None:
            return
        for site in list(self._runner.sites):
            await site.stop()
        deadline = self._loop.time() + grace
        while self._in_flight and self._loop.time() < deadline:
            await asyncio.sleep(0.02)
        if self._in_flight:
            log.warning("REST: %d request(s) still running after %.1fs", self._in_flight, grace)
        await self._runner.cleanup()

    def _close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(START_TIMEOUT_SECONDS)
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _handle(self, request: web.Request) -> web.Response:
        self._in_flight += 1
        try:
            return await self._respond(request)
        finally:
            self._in_flight -= 1

    async def _respond(self, request: web.Request) -> web.Response:
        path = request.rel_url.raw_path
        is_api = bool(API_PATH.fullmatch(path))
        if is_api and request.method == "OPTIONS" and self._cors:  # a browser's preflight
            return web.Response(status=200, headers=self._cors)  # (sent without credentials)
        if self._tokens is not None and path not in (LIVE_PATH, READY_PATH):
            problem = self._tokens.check(request.headers.get("Authorization"))
            if problem:
                return self._error(UnauthenticatedError(problem), {"WWW-Authenticate": CHALLENGE})
        try:
            body = await self._read_body(request)
        except RequestTooLargeError as err:
            return self._error(err, {"Connection": "close"})  # the rest of it is not read
        if self._metrics_page is not None and path == self._metrics_path:
            page, content_type = await self._run(self._metrics_page)
            return web.Response(body=page, headers={"Content-Type": content_type})
        if not is_api:
            return self._error(NotFoundError(f"Not found: {request.method} {path}"))
        try:
            status, payload = await asyncio.wait_for(
                self._run(self._api.handle, request.method, path, body), self._timeout
            )
        except TimeoutError:
            return self._error(
                DeadlineExceededError(
                    f"Request did not complete within {self._timeout_ms} ms "
                    "(--rest_api_timeout_in_ms)"
                )
            )
        return web.Response(
            status=status,
            body=payload,
            headers={"Content-Type": JSON_CONTENT_TYPE, **self._cors},
        )

    async def _read_body(self, request: web.Request) -> bytes:
        """The body, refused before reading when its declared length is too large, and
        while reading once it grows too large (chunked, or decompressed)."""
        too_large = RequestTooLargeError(
            f"Request body is larger than {self._max_body_bytes} bytes (--max_request_bytes)"
        )
        if (request.content_length or 0) > self._max_body_bytes:
            raise too_large
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise too_large from None

    def _run(self, function: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        return self._loop.run_in_executor(self._executor, function, *args)

    def _error(self, err: Exception, headers: dict[str, str] | None = None) -> web.Response:
        status, message = to_http_status(err)
        return web.Response(
            status=status,
            body=error_body(message),
            headers={"Content-Type": JSON_CONTENT_TYPE, **self._cors, **(headers or {})},
        )
