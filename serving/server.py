"""The tfstack-model-server process: options, start-up, the gRPC server, shutdown.

Start-up follows TensorFlow Serving's Server::BuildAndStart: build the model
config (--model_config_file, or --model_name/--model_base_path), load every
model and wait until each serves, and only then open the gRPC port (and the
REST port, serving.http_server), so a client (or a Kubernetes probe) that can
connect finds the models loaded.

REST (--rest_api_port; 0 disables it as in TF Serving, -1 picks a free port,
a tfstack extension reported as `ModelServer.rest_port` and in the log):
TF Serving's /v1/models/... API (serving.rest_api), the Prometheus page at
the path --monitoring_config_file names, and tfstack's model-independent
probes GET /v1/health/live (200 while the process serves) and
GET /v1/health/ready (200 once every configured model has an AVAILABLE
version and until shutdown begins; 503 naming the models that have none).

tfstack's hardening (flags TF Serving does not have, off or at TF Serving's
limits by default): --max_request_bytes caps a gRPC message, a REST body and a
decoded request tensor; --rest_api_max_json_depth caps JSON nesting;
--auth_token_file requires a bearer token (serving.auth).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from concurrent import futures
from pathlib import Path
from typing import NoReturn

import grpc
import tensorflow as tf
from grpc_reflection.v1alpha import reflection

import tfstack
from serving import config as model_config
from serving import flags, memory, monitoring, tls
from serving.auth import BearerTokens, TokenInterceptor
from serving.batching import Batching
from serving.dataplane import DataPlane
from serving.errors import CancelledError, InvalidArgumentError, ServingError, UnavailableError
from serving.grpc_api import HealthReporter, add_services
from serving.http_server import HttpServer
from serving.manager import ModelManager
from serving.metrics import REST, ServingMetrics
from serving.rest_api import RestApi
from serving.servable import Servable, ServableId
from serving.warmup import run_warmup

log = logging.getLogger(__name__)

# TensorFlow Serving accepts messages up to INT_MAX bytes (SetMaxMessageSize(kint32max)).
MAX_MESSAGE_BYTES = 2**31 - 1
# How long SIGTERM lets in-flight requests finish (the Kubernetes manifests rely on 5 s).
DRAIN_GRACE_SECONDS = 5.0
STARTUP_FAILURE_EXIT_CODE = 255  # tensorflow_model_server's main() returns -1


@dataclasses.dataclass
class ServerOptions:
    """The implemented flags (see serving.flags), with tensorflow_model_server's defaults."""

    port: int = 8500
    grpc_bind_address: str = "0.0.0.0"
    grpc_socket_path: str = ""
    grpc_max_threads: int = 4 * flags.cpu_count()
    grpc_channel_arguments: str = ""
    model_name: str = "default"
    model_base_path: str = ""
    model_config_file: str = ""
    model_config_file_poll_wait_seconds: float = 0
    file_system_poll_wait_seconds: float = 1
    saved_model_tags: str = "serve"
    allow_version_labels_for_unavailable_models: bool = False
    tensorflow_session_parallelism: int = 0
    tensorflow_intra_op_parallelism: int = 0
    tensorflow_inter_op_parallelism: int = 0
    enable_serialization_as_tensor_content: bool = False
    enable_model_warmup: bool = True
    num_request_iterations_for_warmup: int = 0
    ssl_config_file: str = ""
    prefer_tflite_model: bool = False
    num_tflite_pools: int = flags.cpu_count()
    enable_batching: bool = False
    batching_parameters_file: str = ""
    enable_per_model_batching_parameters: bool = False
    max_num_load_retries: int = 5
    load_retry_interval_micros: int = 60_000_000
    enable_signature_method_name_check: bool = False
    rest_api_port: int = 0
    rest_api_bind_address: str = ""
    rest_api_num_threads: int = 4 * flags.cpu_count()
    rest_api_timeout_in_ms: int = 30000
    rest_api_enable_cors_support: bool = False
    monitoring_config_file: str = ""
    max_request_bytes: int = MAX_MESSAGE_BYTES
    rest_api_max_json_depth: int = 64
    auth_token_file: str = ""

    @classmethod
    def from_args(cls, args: object) -> ServerOptions:
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})


def parse_channel_arguments(text: str) -> list[tuple[str, int | str]]:
    """`--grpc_channel_arguments`: "k=v,k2=v2", integers passed as integers (as TF Serving)."""
    arguments: list[tuple[str, int | str]] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidArgumentError(
                f"Invalid --grpc_channel_arguments entry {item!r}: expected key=value"
            )
        try:
            arguments.append((key, int(value)))
        except ValueError:
            arguments.append((key, value))
    return arguments


def configure_tensorflow_threads(options: ServerOptions) -> None:
    """Apply the parallelism flags; they only take effect before TensorFlow's first op."""
    intra, inter = options.tensorflow_intra_op_parallelism, options.tensorflow_inter_op_parallelism
    session = options.tensorflow_session_parallelism
    if intra > 0 and inter > 0 and session > 0:
        raise InvalidArgumentError(
            "Either configure server_options.tensorflow_session_parallelism or "
            "(server_options.tensorflow_intra_op_parallelism, "
            "server_options.tensorflow_inter_op_parallelism) separately. "
            "You cannot configure all."
        )
    if intra <= 0 and inter <= 0:
        intra = inter = session
    try:
        if intra > 0:
            tf.config.threading.set_intra_op_parallelism_threads(intra)
        if inter > 0:
            tf.config.threading.set_inter_op_parallelism_threads(inter)
    except RuntimeError as err:  # the runtime is already initialized (embedded use)
        log.warning("TensorFlow parallelism flags not applied: %s", err)


class ModelServer:
    """tensorflow_model_server's equivalent, in-process: start(), then stop()."""

    def __init__(self, options: ServerOptions) -> None:
        self.options = options
        self._tags = [tag.strip() for tag in options.saved_model_tags.split(",") if tag.strip()]
        self.manager = ModelManager(
            self._load,
            poll_wait_seconds=options.file_system_poll_wait_seconds,
            allow_version_labels_for_unavailable_models=(
                options.allow_version_labels_for_unavailable_models
            ),
            max_num_load_retries=options.max_num_load_retries,
            load_retry_interval_seconds=options.load_retry_interval_micros / 1e6,
        )
        self.metrics = ServingMetrics()
        self.manager.add_state_listener(self.metrics.on_state_change)
        self.dataplane = DataPlane(
            self.manager,
            self.metrics,
            check_signature_method_name=options.enable_signature_method_name_check,
        )
        self._health = HealthReporter(self.manager)
        self._batching: Batching | None = None  # set by start(): its file may be bad
        self._grpc: grpc.Server | None = None
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._stop_lock = threading.Lock()
        self._config_poller: threading.Thread | None = None
        self._http: HttpServer | None = None
        self.port: int | None = None  # the bound TCP port, once started
        self.rest_port: int | None = None  # the bound REST port, if it serves REST

    def start(self) -> int:
        """Load the models, then serve gRPC; returns the bound TCP port.

        Raises a ServingError (bad config, a model that fails to load, a port
        that cannot be bound) or CancelledError when stopped while loading.
        """
        options = self.options
        channel_arguments = parse_channel_arguments(options.grpc_channel_arguments)
        credentials = self._credentials()  # before loading: a bad file fails fast
        metrics_path = self._prometheus_path()  # likewise
        tokens = self._tokens()  # likewise
        for limit in ("max_request_bytes", "rest_api_max_json_depth"):
            if getattr(options, limit) <= 0:
                raise InvalidArgumentError(
                    f"--{limit} must be positive, got {getattr(options, limit)}"
                )
        initial_config = self._initial_config()
        configure_tensorflow_threads(options)
        self._batching = Batching.from_flags(
            options.enable_batching,
            options.batching_parameters_file,
            options.enable_per_model_batching_parameters,
            self.metrics,
        )
        self.manager.start(initial_config)

        self._grpc = grpc.server(
            futures.ThreadPoolExecutor(
                max_workers=max(options.grpc_max_threads, 1), thread_name_prefix="grpc"
            ),
            options=[
                ("grpc.max_receive_message_length", options.max_request_bytes),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                *channel_arguments,
            ],
            interceptors=[TokenInterceptor(tokens)] if tokens is not None else None,
        )
        services = add_services(
            self._grpc,
            self.dataplane,
            self._health,
            as_tensor_content=options.enable_serialization_as_tensor_content,
            max_tensor_bytes=options.max_request_bytes,
        )
        reflection.enable_server_reflection([*services, reflection.SERVICE_NAME], self._grpc)
        port = self.port = self._bind(self._grpc, credentials)
        self._grpc.start()
        self._health.serving()
        self._start_http(metrics_path, tokens)
        self._start_config_poller(initial_config)
        log.info("Running gRPC ModelServer at %s ...", _address(options.grpc_bind_address, port))
        if options.grpc_socket_path:
            log.info("Running gRPC ModelServer at UNIX socket %s ...", options.grpc_socket_path)
        return port

    def request_stop(self) -> None:
        """Make a loading start() give up and wait_for_stop_request() return; signal-safe."""
        self._stopping.set()
        self.manager.request_stop()

    def wait_for_stop_request(self, timeout: float | None = None) -> bool:
        """Block until request_stop() was called; False if `timeout` passed first."""
        return self._stopping.wait(timeout)

    def stop(self, grace: float = DRAIN_GRACE_SECONDS) -> None:
        """Stop accepting RPCs, let in-flight ones finish (up to `grace` s), unload models."""
        with self._stop_lock:
            if self._stopped.is_set():
                return
            self.request_stop()
            self._health.shutting_down()
            grpc_stopped = self._grpc.stop(grace) if self._grpc is not None else None
            if self._http is not None:
                self._http.stop(grace)  # drains while gRPC drains
            if grpc_stopped is not None:
                grpc_stopped.wait()
            if self._config_poller is not None:
                self._config_poller.join()
            self.manager.stop()
            if self._batching is not None:
                self._batching.stop()
            self._stopped.set()
            log.info("tfstack-model-server stopped")

    def wait(self, timeout: float | None = None) -> bool:
        """Block until stop() completed; False if `timeout` passed first."""
        return self._stopped.wait(timeout)

    # -- internals ---------------------------------------------------------------------

    def _initial_config(self) -> model_config.ModelServerConfig:
        options = self.options
        if options.model_config_file:
            return model_config.read_config_file(options.model_config_file)
        if not options.model_base_path:
            raise InvalidArgumentError(
                "Both server_options.model_base_path and server_options.model_config_file "
                "are empty!"
            )
        log.info(
            "Building single TensorFlow model file config: model_name: %s model_base_path: %s",
            options.model_name,
            options.model_base_path,
        )
        return model_config.single_model_config(options.model_name, options.model_base_path)

    def _load_tflite(self, servable_id: ServableId, path: Path) -> Servable | None:
        """The version's model.tflite on LiteRT, None when it has none. Imported here so
        that LiteRT (~8 MB resident) costs memory only to servers that ask for it."""
        from serving import tflite_servable

        if not tflite_servable.has_tflite_model(path):
            return None
        return tflite_servable.TfLiteServable.load_tflite(
            servable_id, path, self.options.num_tflite_pools
        )

    def _load(self, servable_id: ServableId, path: Path) -> Servable:
        servable = (
            self._load_tflite(servable_id, path) if self.options.prefer_tflite_model else None
        )
        if servable is None:
            servable = Servable.load(servable_id, path, self._tags)
        try:
            if self._batching is not None:
                self._batching.attach(servable)  # warmup goes through the queues, as in TF Serving
            if self.options.enable_model_warmup:
                run_warmup(servable, self.options.num_request_iterations_for_warmup)
        except BaseException:
            servable.close()
            raise
        return servable

    def _prometheus_path(self) -> str | None:
        """--monitoring_config_file's Prometheus path (None: no metrics page)."""
        path = self.options.monitoring_config_file
        return monitoring.prometheus_path(monitoring.read_monitoring_config(path)) if path else None

    def _start_http(self, metrics_path: str | None, tokens: BearerTokens | None) -> None:
        """The REST API (and the metrics page) on --rest_api_port, unless it is 0 or the
        gRPC port (TF Serving logs that and serves gRPC only); -1 picks a free port."""
        options = self.options
        if options.rest_api_port == 0:
            return
        if options.rest_api_port == options.port:
            log.error(
                "server_options.http_port cannot be same as grpc_port. Please use a different "
                "port for HTTP/REST API. Skipped exporting HTTP/REST API."
            )
            return
        host = options.rest_api_bind_address or options.grpc_bind_address
        self._http = HttpServer(
            RestApi(
                self.dataplane.for_entrypoint(REST),
                self._stopping.is_set,
                max_json_depth=options.rest_api_max_json_depth,
            ),
            host,
            max(options.rest_api_port, 0),
            options.rest_api_num_threads,
            options.rest_api_timeout_in_ms,
            enable_cors=options.rest_api_enable_cors_support,
            metrics_path=metrics_path,
            metrics_page=self.metrics.render,
            max_body_bytes=options.max_request_bytes,
            tokens=tokens,
        )
        self.rest_port = self._http.start()
        log.info("Exporting HTTP/REST API at:%s ...", _address(host, self.rest_port))
        if metrics_path is not None:
            log.info(
                "Exporting Prometheus metrics at:%s%s", _address(host, self.rest_port), metrics_path
            )

    def _tokens(self) -> BearerTokens | None:
        """Accepted bearer tokens from --auth_token_file; None: no authentication."""
        path = self.options.auth_token_file
        return BearerTokens.read(path) if path else None

    def _credentials(self) -> grpc.ServerCredentials | None:
        """TLS credentials from --ssl_config_file; None serves plaintext."""
        path = self.options.ssl_config_file
        return tls.server_credentials(tls.read_ssl_config(path)) if path else None

    def _bind(self, server: grpc.Server, credentials: grpc.ServerCredentials | None) -> int:
        """The TCP port and the UNIX socket, both with `credentials` (as TF Serving)."""
        options = self.options
        address = _address(options.grpc_bind_address, options.port)

        def add_port(target: str) -> int:
            if credentials is None:
                return server.add_insecure_port(target)
            return server.add_secure_port(target, credentials)

        try:
            port = add_port(address)
            if options.grpc_socket_path:
                add_port(f"unix:{options.grpc_socket_path}")
        except RuntimeError as err:
            detail = str(err)
            if credentials is not None:  # gRPC rejects a key that does not match the cert here
                detail += f" (is server_key the key of server_cert in {options.ssl_config_file}?)"
            raise UnavailableError(f"Failed to BuildAndStart gRPC server: {detail}") from err
        if port == 0:
            raise UnavailableError(f"Failed to BuildAndStart gRPC server: cannot bind {address}")
        return port

    def _start_config_poller(self, applied: model_config.ModelServerConfig) -> None:
        wait = self.options.model_config_file_poll_wait_seconds
        if not self.options.model_config_file or wait <= 0:
            return
        self._config_poller = threading.Thread(
            target=self._poll_config_file,
            args=(applied, wait),
            name="config-file-poll",
            daemon=True,
        )
        self._config_poller.start()

    def _poll_config_file(self, applied: model_config.ModelServerConfig, wait: float) -> None:
        """Re-read --model_config_file every `wait` s and apply it when it changed. A file
        that cannot be read or is invalid changes nothing: what runs keeps serving, and the
        problem is logged once, not on every poll."""
        path = self.options.model_config_file
        unreadable, rejected = "", None
        while not self._stopping.wait(wait):
            try:
                current = model_config.read_config_file(path)
            except ServingError as err:
                if err.message != unreadable:
                    log.error("Failed to read ModelServerConfig file: %s", err.message)
                    unreadable = err.message
                continue
            unreadable = ""
            if current in (applied, rejected):
                continue
            try:
                self.manager.load_config(current)
                applied, rejected = current, None
                log.info("Reloaded model config from %s", path)
            except CancelledError:
                return
            except ServingError as err:
                rejected = current
                log.error("Failed to reload model config from %s: %s", path, err)


def _address(host: str, port: int) -> str:
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # IPv6
    return f"{host}:{port}"


def _setup_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s.%(msecs)03d: %(levelname).1s %(name)s] %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
    )


def _exit_at_once(code: int) -> NoReturn:
    """End the process once stop() has drained it. Python's own finalization would first
    run a full garbage collection of everything TensorFlow built (seconds, that Kubernetes'
    grace period counts) and wait for request threads that a model call stuck past the grace
    period still holds; nothing is left that needs it."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    """The tfstack-model-server console script."""
    args = flags.build_parser().parse_args(argv)
    _setup_logging()
    if args.version:
        print(f"TensorFlow ModelServer: tfstack-{tfstack.__version__}")
        print(f"TensorFlow Library: {tf.__version__}")
        return 0
    flags.warn_ignored(args)
    unsafe = [name for name in flags.ignored_flags(args) if name in flags.UNSAFE_TO_IGNORE]
    if unsafe:
        print(
            f"Failed to start server. Error: UNIMPLEMENTED: --{unsafe[0]} is not implemented "
            "yet; refusing to serve in plaintext what it asks to protect",
            file=sys.stderr,
        )
        return STARTUP_FAILURE_EXIT_CODE

    server = ModelServer(ServerOptions.from_args(args))
    memory.release_memory_of_unloaded_versions(server.manager)

    def on_signal(signum: int, _frame: object) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        server.request_stop()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        try:
            server.start()
        except CancelledError:
            server.stop(grace=0)
            return 0
        except ServingError as err:
            print(f"Failed to start server. Error: {err}", file=sys.stderr)
            server.stop(grace=0)
            return STARTUP_FAILURE_EXIT_CODE
        while not server.wait_for_stop_request(0.5):
            pass
        server.stop()
        _exit_at_once(0)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
