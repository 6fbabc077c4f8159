"""The whole chain for superres: CLI train -> evaluate -> export -> server process -> stubs."""

import io
import json
import shutil
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from models.superres import data as sr_data
from models.superres import evaluate as sr_evaluate
from tfstack.cli import main
from tfstack.server_process import ServerProcess

SCALE = 2


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def heldout_pair():
    """(low-res PNG bytes, high-res truth uint8) for the first held-out photo."""
    _, heldout = sr_data.split_photos(sr_data.discover_photos())
    truth = sr_data.load_rgb(heldout[0])
    truth = truth[: truth.shape[0] // SCALE * SCALE, : truth.shape[1] // SCALE * SCALE]
    low = sr_data.degrade(truth / 255.0, SCALE).numpy()
    low = np.clip(np.round(low * 255.0), 0, 255).astype(np.uint8)
    return _png(low), low, truth


@pytest.fixture(scope="module")
def served(superres_workdir, tmp_path_factory):
    """Evaluate and export through the CLI, then serve the repository from a real process."""
    repo = tmp_path_factory.mktemp("repo")
    assert (
        main(["export", "superres", "--workdir", str(superres_workdir), "--repo", str(repo)]) == 0
    )
    server = ServerProcess(
        [f"--model_config_file={repo / 'models.config'}", "--file_system_poll_wait_seconds=0.5"],
        log_path=repo.parent / "server.log",
    )
    server.start()
    channel = grpc.insecure_channel(server.target)
    yield server, channel, repo
    channel.close()
    assert server.stop() == 0, "server must drain and exit 0 on SIGTERM"


def _predict(channel, payload: list[bytes], model="superres", version=None):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    if version is not None:
        request.model_spec.version.value = version
    request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto(payload, dtype=tf.string))
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    return stub.Predict(request, timeout=60)


def test_cli_evaluate_reports_model_beating_bicubic(superres_workdir, tmp_path):
    report = tmp_path / "eval.json"
    assert (
        main(["evaluate", "superres", "--workdir", str(superres_workdir), "--json", str(report)])
        == 0
    )
    metrics = json.loads(report.read_text())["metrics"]
    assert metrics["model_psnr"] > metrics["bicubic_psnr"]


def test_served_model_beats_bicubic_over_grpc(served, heldout_pair):
    _, channel, _ = served
    request_png, low, truth = heldout_pair
    response = _predict(channel, [request_png])
    assert response.model_spec.name == "superres"
    assert response.model_spec.signature_name == "serving_default"
    assert response.model_spec.version.value == 1
    upscaled = np.asarray(Image.open(io.BytesIO(response.outputs["image_bytes"].string_val[0])))
    assert upscaled.shape == truth.shape
    bicubic = tf.image.resize(low[None].astype(np.float32) / 255.0, truth.shape[:2], "bicubic")
    bicubic = np.clip(bicubic[0].numpy(), 0.0, 1.0)
    model_psnr = sr_evaluate.psnr_y(upscaled / 255.0, truth / 255.0, SCALE)
    bicubic_psnr = sr_evaluate.psnr_y(bicubic, truth / 255.0, SCALE)
    assert float(model_psnr) > float(bicubic_psnr)


def test_metadata_and_status_with_official_stubs(served):
    _, channel, _ = served
    metadata_request = get_model_metadata_pb2.GetModelMetadataRequest()
    metadata_request.model_spec.name = "superres"
    metadata_request.metadata_field.append("signature_def")
    metadata = prediction_service_pb2_grpc.PredictionServiceStub(channel).GetModelMetadata(
        metadata_request, timeout=10
    )
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    metadata.metadata["signature_def"].Unpack(signature_map)
    signature = signature_map.signature_def["serving_default"]
    assert signature.inputs["image_bytes"].dtype == tf.string.as_datatype_enum
    assert signature.outputs["image_bytes"].dtype == tf.string.as_datatype_enum

    status_request = get_model_status_pb2.GetModelStatusRequest()
    status_request.model_spec.name = "superres"
    status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
        status_request, timeout=10
    )
    states = {s.version: s.state for s in status.model_version_status}
    assert states[1] == get_model_status_pb2.ModelVersionStatus.AVAILABLE


def test_error_codes(served):
    _, channel, _ = served
    with pytest.raises(grpc.RpcError) as unknown:
        _predict(channel, [b"x"], model="no-such-model")
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as garbage:
        _predict(channel, [b"definitely not an image"])
    assert garbage.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as empty:
        _predict(channel, [])
    assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_cli_predict_writes_upscaled_pngs(served, heldout_pair, tmp_path):
    server, _, _ = served
    request_png, low, _ = heldout_pair
    source = tmp_path / "photo.png"
    source.write_bytes(request_png)
    out = tmp_path / "out"
    argv = ["predict", "--server", server.target, "superres", str(source), "--output-dir", str(out)]
    assert main(argv) == 0
    written = Image.open(out / "photo_x2.png")
    assert written.size == (low.shape[1] * SCALE, low.shape[0] * SCALE)


def test_new_version_exported_while_serving_is_picked_up(served, superres_workdir, heldout_pair):
    """Runs last in this module: it changes which version is latest."""
    _, channel, repo = served
    assert (
        main(["export", "superres", "--workdir", str(superres_workdir), "--repo", str(repo)]) == 0
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if _predict(channel, [heldout_pair[0]]).model_spec.version.value == 2:
            break
        time.sleep(0.25)
    else:
        pytest.fail("version 2 was not served within 60 s")
    assert _predict(channel, [heldout_pair[0]], version=2).model_spec.version.value == 2


def test_demo_end_to_end_reusing_a_checkpoint(superres_workdir, tmp_path):
    from tfstack.demo import run_demo

    workdir = tmp_path / "demo"
    shutil.copytree(superres_workdir, workdir)
    assert run_demo(workdir, ["superres"], preset="tiny", compress=False) == 0
    report = json.loads((workdir / "demo_report.json").read_text())
    assert report["passed"] and report["server_exit_code"] == 0
    served = report["families"]["superres"]["served"]
    assert served["passed"] and served["report"]["gain_db"]["x2"] > 0
    assert served["report"]["gain_db"]["x4"] > 0
    photos = {photo["photo"] for photo in served["report"]["photos"]}
    assert {"astronaut", "chelsea", "coffee"} <= photos  # pinned held-out, + Debian ones
    assert (workdir / "superres_side_by_side.png").is_file()
    assert (workdir / "models" / "superres" / "1" / "saved_model.pb").is_file()
