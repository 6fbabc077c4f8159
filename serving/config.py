"""The model configuration: ModelServerConfig text protos, validation, version policies.

Validation follows TensorFlow Serving's ServerCore (server_core.cc): names are
unique, base paths absolute, the platform is "tensorflow"; the version policy
follows FileSystemStoragePathSource (latest N, default 1; all; specific).
Beyond TF Serving, a model name must be usable as one REST path segment and one
directory name: not empty, no `/`, `\\` or control characters, not `.` or `..`
(TF Serving accepts such names, but no REST client can address them, and a tool
that maps names to directories could be led out of the repository).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from tensorflow_serving.config import (
    file_system_storage_path_source_pb2,
    model_server_config_pb2,
)

from serving.errors import FailedPreconditionError, InvalidArgumentError
from serving.textproto import read_text_proto

ModelServerConfig = model_server_config_pb2.ModelServerConfig
ModelConfig = model_server_config_pb2.ModelConfig
VersionPolicy = (
    file_system_storage_path_source_pb2.FileSystemStoragePathSourceConfig.ServableVersionPolicy
)

TENSORFLOW_PLATFORM = "tensorflow"


def read_config_file(path: str | os.PathLike) -> ModelServerConfig:
    """Parse and validate a ModelServerConfig text proto; errors name the file (and the
    line, for syntax errors)."""
    config = read_text_proto(path, ModelServerConfig(), "model config")
    try:
        validate(config)
    except InvalidArgumentError as err:
        raise InvalidArgumentError(f"Invalid model config file '{path}': {err.message}") from err
    return config


def name_problem(name: str) -> str:
    """Why `name` cannot name a model (or a version label), or "" if it can."""
    if not name:
        return "it is empty"
    if name in (".", ".."):
        return f"{name!r} is a relative directory name"
    if "/" in name or "\\" in name:
        return "it contains a path separator"
    if any(ord(char) < 32 or ord(char) == 127 for char in name):
        return "it contains a control character"
    return ""


def single_model_config(name: str, base_path: str) -> ModelServerConfig:
    """The config --model_name/--model_base_path stand for (TF Serving's BuildSingleModelConfig)."""
    config = ModelServerConfig()
    entry = config.model_config_list.config.add()
    entry.name = name
    entry.base_path = base_path
    entry.model_platform = TENSORFLOW_PLATFORM
    return config


def validate(config: ModelServerConfig) -> None:
    """Reject configs TensorFlow Serving rejects, with its messages."""
    if config.WhichOneof("config") == "custom_model_config":
        raise InvalidArgumentError("ModelServer does not yet support custom model config.")
    seen: set[str] = set()
    for entry in config.model_config_list.config:
        if problem := name_problem(entry.name):
            raise InvalidArgumentError(f"Invalid model name {entry.name!r}: {problem}")
        if entry.name in seen:
            raise InvalidArgumentError(
                f"Illegal to list model {entry.name} multiple times in config list"
            )
        seen.add(entry.name)
        if not os.path.isabs(entry.base_path) and "://" not in entry.base_path:
            raise InvalidArgumentError(
                f"Expected model {entry.name} to have an absolute path or URI; "
                f"got base_path()={entry.base_path}"
            )
        if "://" in entry.base_path:
            raise InvalidArgumentError(
                f"Model {entry.name}: only local file system base paths are supported; "
                f"got base_path()={entry.base_path}"
            )
        _check_platform(entry)


def _check_platform(entry: ModelConfig) -> None:
    if entry.model_type != model_server_config_pb2.MODEL_TYPE_UNSPECIFIED:
        if entry.model_platform:
            raise InvalidArgumentError(
                "Illegal setting both ModelServerConfig::model_type (deprecated) "
                "and ModelServerConfig::model_platform."
            )
        if entry.model_type != model_server_config_pb2.TENSORFLOW:
            raise InvalidArgumentError(
                f"ModelServerConfig::model_type choice {entry.model_type} not supported."
            )
        return
    if not entry.model_platform:
        raise InvalidArgumentError(
            "Illegal setting neither ModelServerConfig::model_type (deprecated) "
            "nor ModelServerConfig::model_platform."
        )
    if entry.model_platform != TENSORFLOW_PLATFORM:
        raise InvalidArgumentError(
            f"Model {entry.name} requests unsupported platform {entry.model_platform}"
        )


def aspired_versions(policy: VersionPolicy, on_disk: Iterable[int]) -> set[int]:
    """The versions `policy` wants served, out of those on disk."""
    versions = sorted(set(on_disk))
    choice = policy.WhichOneof("policy_choice")
    if choice == "all":
        return set(versions)
    if choice == "specific":
        return set(versions) & set(policy.specific.versions)
    latest_n = max(policy.latest.num_versions, 1) if choice == "latest" else 1
    return set(versions[-latest_n:])


def check_version_labels(
    entry: ModelConfig,
    available: set[int],
    current_labels: dict[str, int],
    allow_unavailable: bool,
) -> None:
    """A label may only name an AVAILABLE version, as in TF Serving's ServerCore.

    With `allow_unavailable` (--allow_version_labels_for_unavailable_models) a
    new label may name any version, but an existing label may not be moved to
    a version that is not available.
    """
    for label, version in entry.version_labels.items():
        moved = label in current_labels and current_labels[label] != version
        if version in available or (allow_unavailable and not moved):
            continue
        raise FailedPreconditionError(
            f"Request to assign label to version {version} of model {entry.name}, "
            "which is not currently available for inference"
        )
