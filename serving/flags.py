"""tensorflow_model_server's command-line flags: same names, meanings and defaults.

Every flag of TensorFlow Serving's main.cc is accepted, so an existing command
line (a Kubernetes manifest, a Dockerfile CMD) works unchanged. Flags not
implemented yet are ignored with a warning when set to a non-default value;
`UNSAFE_TO_IGNORE` lists those whose silent absence would be a security
problem (ALTS), which refuse to start instead. Like TensorFlow's flag
parser, values may be given as `--flag=value`; `--flag value` works too, bool
flags accept `--flag`, `--flag=true|false|1|0`. Unknown flags are an error.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


def cpu_count() -> int:
    """Schedulable CPUs, TF Serving's base for its thread-count defaults."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected true, false, 1 or 0, got {text!r}")


@dataclass(frozen=True)
class Flag:
    name: str
    type: Callable[[str], Any]
    default: Any
    help: str
    implemented: bool = False


# Implemented flags first, then the accepted-and-ignored rest, in main.cc's order.
FLAGS: tuple[Flag, ...] = (
    Flag("port", int, 8500, "TCP port for the gRPC API (0: pick a free port; tfstack)", True),
    Flag("grpc_bind_address", str, "0.0.0.0", "address to bind the gRPC port to (tfstack)", True),
    Flag("grpc_socket_path", str, "", "also serve gRPC on this UNIX socket", True),
    Flag("grpc_max_threads", int, 4 * cpu_count(), "max gRPC server threads", True),
    Flag("grpc_channel_arguments", str, "", "comma-separated gRPC server arguments k=v", True),
    Flag("model_name", str, "default", "model name (ignored with --model_config_file)", True),
    Flag("model_base_path", str, "", "model base path (ignored with --model_config_file)", True),
    Flag("model_config_file", str, "", "ModelServerConfig text proto listing the models", True),
    Flag(
        "model_config_file_poll_wait_seconds",
        float,
        0,
        "seconds between reloads of --model_config_file (0: read once)",
        True,
    ),
    Flag(
        "file_system_poll_wait_seconds",
        float,
        1,
        "seconds between polls for new versions (0: poll once; <0: never)",
        True,
    ),
    Flag("saved_model_tags", str, "serve", "comma-separated meta graph tags to load", True),
    Flag(
        "allow_version_labels_for_unavailable_models",
        parse_bool,
        False,
        "allow labels to name versions that are not available yet",
        True,
    ),
    Flag("tensorflow_session_parallelism", int, 0, "threads for intra- and inter-op", True),
    Flag("tensorflow_intra_op_parallelism", int, 0, "threads within one op (0: auto)", True),
    Flag("tensorflow_inter_op_parallelism", int, 0, "ops run in parallel (0: auto)", True),
    Flag(
        "enable_serialization_as_tensor_content",
        parse_bool,
        False,
        "write response tensors as tensor_content",
        True,
    ),
    Flag(
        "enable_grpc_healthcheck_service",
        parse_bool,
        False,
        "grpc.health.v1.Health (tfstack always serves it)",
        True,
    ),
    Flag("enable_model_warmup", parse_bool, True, "replay assets.extra warmup requests", True),
    Flag(
        "num_request_iterations_for_warmup",
        int,
        0,
        "times each warmup request runs (used if > 0)",
        True,
    ),
    Flag("ssl_config_file", str, "", "SSLConfig text proto: serve gRPC over TLS", True),
    Flag("prefer_tflite_model", parse_bool, False, "serve model.tflite when present", True),
    Flag("num_tflite_pools", int, cpu_count(), "TFLite interpreters per model version", True),
    Flag("max_num_load_retries", int, 5, "times a failed load is retried", True),
    Flag(
        "load_retry_interval_micros",
        int,
        60_000_000,
        "microseconds between load retries (<0: no wait)",
        True,
    ),
    Flag(
        "enable_signature_method_name_check",
        parse_bool,
        False,
        "Classify/Regress/Predict check a signature's method_name",
        True,
    ),
    Flag("enable_batching", parse_bool, False, "batch concurrent requests together", True),
    Flag("batching_parameters_file", str, "", "BatchingParameters text proto", True),
    Flag(
        "enable_per_model_batching_parameters",
        parse_bool,
        False,
        "read batching_params.pbtxt from each version directory (with --enable_batching)",
        True,
    ),
    Flag("version", parse_bool, False, "print the version and exit", True),
    Flag(
        "rest_api_port",
        int,
        0,
        "HTTP/REST API port (0: no REST API; -1: pick a free port, tfstack)",
        True,
    ),
    Flag(
        "rest_api_bind_address",
        str,
        "",
        "address to bind the REST port to (empty: --grpc_bind_address; tfstack)",
        True,
    ),
    Flag("rest_api_num_threads", int, 4 * cpu_count(), "HTTP/REST API worker threads", True),
    Flag(
        "rest_api_timeout_in_ms",
        int,
        30000,
        "HTTP/REST API call timeout (<= 0: none)",
        True,
    ),
    Flag(
        "rest_api_enable_cors_support",
        parse_bool,
        False,
        "CORS headers in REST responses",
        True,
    ),
    Flag(
        "monitoring_config_file",
        str,
        "",
        "MonitoringConfig text proto (Prometheus page on the REST port)",
        True,
    ),
    # tfstack's own: limits and authentication (serving.auth) that TF Serving leaves to a proxy.
    Flag(
        "max_request_bytes",
        int,
        2**31 - 1,
        "largest gRPC request message or REST body accepted, and largest decoded request "
        "tensor; larger requests get RESOURCE_EXHAUSTED (HTTP 413) (tfstack)",
        True,
    ),
    Flag(
        "rest_api_max_json_depth",
        int,
        64,
        "deepest nesting of arrays and objects accepted in a REST request body (tfstack)",
        True,
    ),
    Flag(
        "auth_token_file",
        str,
        "",
        "require 'authorization: Bearer <token>' (a token from this file, one per line) on "
        "gRPC and REST; health checks stay open (tfstack)",
        True,
    ),
    Flag("num_load_threads", int, 0, "threads loading servables"),
    Flag("num_unload_threads", int, 0, "threads unloading servables"),
    Flag("flush_filesystem_caches", parse_bool, True, "flush file system caches after loads"),
    Flag("tensorflow_session_config_file", str, "", "TensorFlow ConfigProto text proto"),
    Flag("use_alts_credentials", parse_bool, False, "use Google ALTS credentials"),
    Flag("platform_config_file", str, "", "PlatformConfigMap text proto"),
    Flag("per_process_gpu_memory_fraction", float, 0.0, "GPU memory fraction"),
    Flag("remove_unused_fields_from_bundle_metagraph", parse_bool, True, "trim the MetaGraphDef"),
    Flag("num_tflite_interpreters_per_pool", int, 1, "TFLite interpreters per pool"),
    Flag("xla_cpu_compilation_enabled", parse_bool, False, "XLA:CPU JIT"),
    Flag("xla_gpu_compilation_enabled", parse_bool, False, "XLA:CPU and XLA:GPU JIT"),
    Flag("enable_profiler", parse_bool, True, "profiler service"),
    Flag("thread_pool_factory_config_file", str, "", "ThreadPoolConfig text proto"),
    Flag("mixed_precision", str, "", "mixed precision mode"),
    Flag("skip_initialize_tpu", parse_bool, False, "skip TPU initialization"),
)

# Ignoring these would serve in plaintext what the operator asked to protect.
UNSAFE_TO_IGNORE = frozenset({"use_alts_credentials"})


def build_parser(prog: str = "tfstack-model-server") -> argparse.ArgumentParser:
    """The flag parser; other entry points may add their own arguments to it."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Drop-in replacement for TensorFlow Serving's tensorflow_model_server.",
        allow_abbrev=False,
    )
    for flag in FLAGS:
        if flag.type is parse_bool:
            parser.add_argument(
                f"--{flag.name}",
                type=parse_bool,
                nargs="?",
                const=True,
                default=flag.default,
                metavar="BOOL",
                help=f"{flag.help} (default: {str(flag.default).lower()})",
            )
        else:
            parser.add_argument(
                f"--{flag.name}",
                type=flag.type,
                default=flag.default,
                metavar="STRING" if flag.type is str else "NUMBER",
                help=f"{flag.help} (default: {flag.default!r})",
            )
    return parser


def ignored_flags(args: argparse.Namespace) -> list[str]:
    """Flags set to a non-default value that this server does not implement yet."""
    return [
        flag.name
        for flag in FLAGS
        if not flag.implemented and getattr(args, flag.name) != flag.default
    ]


def warn_ignored(args: argparse.Namespace) -> None:
    for name in ignored_flags(args):
        if name not in UNSAFE_TO_IGNORE:
            log.warning("flag --%s is accepted but not implemented yet; ignored", name)
