"""Client-visible errors: one exception class per canonical status code, mapped once.

Everything below the wire (manager, servable, data plane) raises these; the
gRPC front end turns any exception into a status with `to_grpc_status`, the REST
one into an HTTP status with `to_http_status`, so the status code a client sees is
decided in this module only.
TensorFlow's own `OpError`s carry the same canonical codes, so a model's graph
check (an assert, an undecodable image) keeps its code, e.g. INVALID_ARGUMENT.
"""

from __future__ import annotations

from typing import ClassVar

import grpc
import tensorflow as tf


class ServingError(Exception):
    """Base class: an error with the status code a client should receive."""

    code: ClassVar[grpc.StatusCode] = grpc.StatusCode.UNKNOWN
    http_status: ClassVar[int | None] = None  # None: HTTP_STATUS[code]

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"


class CancelledError(ServingError):
    code = grpc.StatusCode.CANCELLED


class UnknownError(ServingError):
    code = grpc.StatusCode.UNKNOWN


class InvalidArgumentError(ServingError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class DeadlineExceededError(ServingError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFoundError(ServingError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExistsError(ServingError):
    code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDeniedError(ServingError):
    code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhaustedError(ServingError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class RequestTooLargeError(ResourceExhaustedError):
    """A request body over --max_request_bytes: 413, the HTTP status that says so."""

    http_status = 413


class FailedPreconditionError(ServingError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class AbortedError(ServingError):
    code = grpc.StatusCode.ABORTED


class OutOfRangeError(ServingError):
    code = grpc.StatusCode.OUT_OF_RANGE


class UnimplementedError(ServingError):
    code = grpc.StatusCode.UNIMPLEMENTED


class InternalError(ServingError):
    code = grpc.StatusCode.INTERNAL


class UnavailableError(ServingError):
    code = grpc.StatusCode.UNAVAILABLE


class DataLossError(ServingError):
    code = grpc.StatusCode.DATA_LOSS


class UnauthenticatedError(ServingError):
    code = grpc.StatusCode.UNAUTHENTICATED


_BY_CODE: dict[grpc.StatusCode, type[ServingError]] = {
    cls.code: cls
    for cls in (
        CancelledError,
        UnknownError,
        InvalidArgumentError,
        DeadlineExceededError,
        NotFoundError,
        AlreadyExistsError,
        PermissionDeniedError,
        ResourceExhaustedError,
        FailedPreconditionError,
        AbortedError,
        OutOfRangeError,
        UnimplementedError,
        InternalError,
        UnavailableError,
        DataLossError,
        UnauthenticatedError,
    )
}
# TensorFlow's error codes are the canonical codes, numerically.
_BY_NUMBER: dict[int, grpc.StatusCode] = {code.value[0]: code for code in grpc.StatusCode}


def error_for_code(code: grpc.StatusCode, message: str) -> ServingError:
    """The exception for `code` (what a client raises for a failed RPC)."""
    return _BY_CODE.get(code, UnknownError)(message)


def as_serving_error(err: BaseException) -> ServingError:
    """Classify any exception: ours as is, TensorFlow's by its code, missing or unreadable
    files as TensorFlow's file system reports them, the rest INTERNAL."""
    if isinstance(err, ServingError):
        return err
    if isinstance(err, tf.errors.OpError):
        code = _BY_NUMBER.get(err.error_code, grpc.StatusCode.UNKNOWN)
        return error_for_code(code, err.message)
    if isinstance(err, FileNotFoundError):  # tf.saved_model.load turns NOT_FOUND into this
        return NotFoundError(str(err))
    if isinstance(err, PermissionError):
        return PermissionDeniedError(str(err))
    return InternalError(f"{type(err).__name__}: {err}")


def to_grpc_status(err: BaseException) -> tuple[grpc.StatusCode, str]:
    """The (code, message) a client receives for `err`."""
    serving_error = as_serving_error(err)
    return serving_error.code, serving_error.message


# TF Serving's ToHTTPStatusCode (model_servers/http_server.cc).
HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,  # nginx's "client closed request"
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}


def to_http_status(err: BaseException) -> tuple[int, str]:
    """The (HTTP status, message) a REST client receives for `err`."""
    serving_error = as_serving_error(err)
    status = serving_error.http_status or HTTP_STATUS.get(serving_error.code, 500)
    return status, serving_error.message
