"""Malformed config files: a start-up error naming the file and the line, exit non-zero; on a
reload (file poll or HandleReloadConfigRequest) a bad config is rejected and what runs keeps
serving."""

from __future__ import annotations

import logging
import os
import time

import grpc
import pytest
from serving_helpers import (
    POLL_SECONDS,
    predict_request,
    rpc_error,
    running_server,
    save_model,
    wait_until,
    write_models_config,
    x_input,
)
from tensorflow_serving.apis import model_management_pb2

from serving.server import STARTUP_FAILURE_EXIT_CODE, main

pytestmark = pytest.mark.timeout(120)

TWO_LINES_THEN_A_TYPO = 'model_config_list {\n  config { name: "m"\n    base_pth: "/m" } }\n'


@pytest.mark.parametrize(
    ("flag", "content", "message"),
    [
        (
            "model_config_file",
            TWO_LINES_THEN_A_TYPO,
            'line 3, column 5: Message type "tensorflow.serving.ModelConfig" has no field '
            'named "base_pth"',
        ),
        ("model_config_file", "model_config_list {", "line 1, column 19: Expected"),
        ("model_config_file", b"model_config_list {\n}\n\xff\n", "line 3: not UTF-8 text"),
        (
            "batching_parameters_file",
            "max_batch_size { value: 8 }\nbatch_timeout_micros { value: 'soon' }\n",
            "line 2, column 31: 'batch_timeout_micros { value: 'soon' }': Couldn't parse integer",
        ),
        (
            "monitoring_config_file",
            "prometheus_config {\n  enable: maybe\n}\n",
            "line 2, column 11",
        ),
        ("ssl_config_file", "server_key: 'unterminated\n", "line 1, column 13"),
    ],
)
def test_a_malformed_file_is_a_startup_error_naming_the_file_and_line(
    tmp_path, capsys, flag, content, message
):
    path = tmp_path / "bad.config"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    flags = [f"--{flag}={path}", "--port=0", "--grpc_bind_address=127.0.0.1"]
    if flag != "model_config_file":
        flags.append(f"--model_base_path={tmp_path}/models")
    if flag == "batching_parameters_file":
        flags.append("--enable_batching")

    assert main(flags) == STARTUP_FAILURE_EXIT_CODE

    error = capsys.readouterr().err
    assert "Failed to start server. Error: INVALID_ARGUMENT: Invalid" in error
    assert str(path) in error
    assert message in error


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('config { name: "m" base_path: "models/m" model_platform: "tensorflow" }', "absolute"),
        ('config { name: "m" base_path: "/m" model_platform: "onnx" }', "unsupported platform"),
        ('config { name: "m" base_path: "/m" }', "neither ModelServerConfig::model_type"),
        ('config { name: "a/b" base_path: "/m" model_platform: "tensorflow" }', "path separator"),
    ],
)
def test_an_invalid_model_config_is_a_startup_error_naming_the_file(
    tmp_path, capsys, entry, message
):
    path = tmp_path / "models.config"
    path.write_text(f"model_config_list {{ {entry} }}")

    assert main([f"--model_config_file={path}", "--port=0"]) == STARTUP_FAILURE_EXIT_CODE

    error = capsys.readouterr().err
    assert f"Invalid model config file '{path}'" in error
    assert message in error


def test_a_missing_config_file_is_a_startup_error_naming_it(tmp_path, capsys):
    path = tmp_path / "nowhere.config"

    assert main([f"--model_config_file={path}", "--port=0"]) == STARTUP_FAILURE_EXIT_CODE
    assert f"Could not read model config file '{path}'" in capsys.readouterr().err


def replace_file(path, text: str) -> None:
    """Write `text` to `path` atomically, as a config management tool (or a ConfigMap) does."""
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(text)
    os.replace(temp, path)


def serves(stubs, model: str) -> bool:
    try:
        return stubs.predict(predict_request(model, x_input(1.0))).outputs["y"].float_val == [3.0]
    except grpc.RpcError:
        return False


def test_a_polled_config_that_turns_bad_is_rejected_once_and_the_old_one_serves(tmp_path, caplog):
    for name in ("a", "b"):
        save_model(tmp_path / name, 1, w=2.0)
    config = write_models_config(tmp_path / "models.config", {"a": tmp_path / "a"})
    with (
        caplog.at_level(logging.ERROR, logger="serving.server"),
        running_server(
            model_config_file=str(config), model_config_file_poll_wait_seconds=POLL_SECONDS
        ) as (_, stubs),
    ):
        replace_file(config, TWO_LINES_THEN_A_TYPO)
        wait_until(lambda: "line 3, column 5" in caplog.text, what="the parse error logged")
        replace_file(config, config.read_text())  # touched, still bad: no new error
        for _ in range(5):
            assert serves(stubs, "a")
            time.sleep(POLL_SECONDS)
        assert caplog.text.count("Failed to read ModelServerConfig file") == 1
        assert f"Invalid protobuf file: '{config}', line 3" in caplog.text

        bad_platform = config.read_text().replace("base_pth", "base_path") + "\n"
        replace_file(config, bad_platform)  # parses, but model "m" has no platform
        wait_until(lambda: "neither ModelServerConfig::model_type" in caplog.text)
        assert serves(stubs, "a")

        write_models_config(config, {"a": tmp_path / "a", "b": tmp_path / "b"})
        wait_until(lambda: serves(stubs, "b"), what="the repaired config applied")
        assert serves(stubs, "a")


@pytest.mark.parametrize(
    ("entries", "code", "message"),
    [
        (
            [("a", "/models/a", "tensorflow"), ("a", "/models/a2", "tensorflow")],
            grpc.StatusCode.INVALID_ARGUMENT,
            "Illegal to list model a multiple times",
        ),
        ([("b", "relative/b", "tensorflow")], grpc.StatusCode.INVALID_ARGUMENT, "absolute"),
        ([("b", "/models/b", "pytorch")], grpc.StatusCode.INVALID_ARGUMENT, "platform"),
        ([("..", "/models/b", "tensorflow")], grpc.StatusCode.INVALID_ARGUMENT, "model name"),
    ],
)
def test_a_bad_reload_request_is_rejected_and_changes_nothing(tmp_path, entries, code, message):
    save_model(tmp_path / "a", 1, w=2.0)
    config = write_models_config(tmp_path / "models.config", {"a": tmp_path / "a"})
    with running_server(model_config_file=str(config)) as (server, stubs):
        request = model_management_pb2.ReloadConfigRequest()
        for name, base_path, platform in entries:
            request.config.model_config_list.config.add(
                name=name, base_path=base_path, model_platform=platform
            )

        err = rpc_error(lambda: stubs.models.HandleReloadConfigRequest(request, timeout=10))

        assert err.code() == code
        assert message in err.details()
        assert server.manager.model_names() == ["a"]
        assert stubs.states("a") == {1: "AVAILABLE"}
        assert serves(stubs, "a")


def test_a_reload_naming_an_unavailable_label_is_rejected(tmp_path):
    save_model(tmp_path / "a", 1, w=2.0)
    config = write_models_config(tmp_path / "models.config", {"a": tmp_path / "a"})
    with running_server(model_config_file=str(config)) as (_, stubs):
        request = model_management_pb2.ReloadConfigRequest()
        entry = request.config.model_config_list.config.add(
            name="a", base_path=str(tmp_path / "a"), model_platform="tensorflow"
        )
        entry.version_labels["stable"] = 7

        err = rpc_error(lambda: stubs.models.HandleReloadConfigRequest(request, timeout=10))

        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "label to version 7 of model a" in err.details()
        assert serves(stubs, "a")
