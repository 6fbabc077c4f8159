"""The tumor model exported through the CLI: its SavedModel signatures, then the same
version served by tfstack-model-server and called with the official stubs."""

import io
import json

import grpc
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from models.tumor import data, family, scan, scorers, train
from models.tumor.signatures import TumorPatchModule
from serving.client import ServingClient
from tfstack.cli import main
from tfstack.server_process import ServerProcess

PATCHES = 12


def _encode(image: np.ndarray, image_format: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=image_format)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def trained(tumor_workdir):
    return train.load_trained(tumor_workdir)


@pytest.fixture(scope="module")
def heldout(tumor_workdir, trained):
    _, config = trained
    return train.slide_set(tumor_workdir, config, "heldout", progress=False)


@pytest.fixture(scope="module")
def patches(heldout, trained) -> np.ndarray:
    """Half tumor, half normal patches of held-out slides."""
    _, config = trained
    slides = [data.load_training_slide(r, config.patch_size, config.stride) for r in heldout]
    batch, _ = data.PatchSampler(slides, config.patch_size, seed=5).batch(PATCHES)
    return batch


@pytest.fixture(scope="module")
def repo(tumor_workdir, tmp_path_factory):
    repo = tmp_path_factory.mktemp("tumor-repo")
    assert main(["export", "tumor", "--workdir", str(tumor_workdir), "--repo", str(repo)]) == 0
    return repo


@pytest.fixture(scope="module")
def serve(repo):
    return tf.saved_model.load(str(repo / "tumor" / "1")).signatures["serving_default"]


@pytest.fixture(scope="module")
def server(repo):
    with ServerProcess([f"--model_config_file={repo / 'models.config'}"]) as process:
        process.start()
        yield process
    assert process.returncode == 0, "server must drain and exit 0 on SIGTERM"


def _local(model, patches: np.ndarray) -> np.ndarray:
    return model(patches.astype(np.float32) / 255.0, training=False).numpy()[:, 0]


def test_export_writes_a_warmup_request(repo):
    assert (repo / "tumor" / "1" / "assets.extra" / "tf_serving_warmup_requests").is_file()
    assert "tumor" in (repo / "models.config").read_text()


def test_signature_matches_the_keras_model(serve, trained, patches):
    model, _ = trained
    _, inputs = serve.structured_input_signature
    assert inputs == {"image_bytes": tf.TensorSpec([None], tf.string, name="image_bytes")}
    encoded = [_encode(p, "PNG") for p in patches]
    probability = serve(image_bytes=tf.constant(encoded))["probability"].numpy()
    assert probability.shape == (PATCHES,)
    np.testing.assert_allclose(probability, _local(model, patches), atol=1e-5)


def test_jpeg_gray_and_other_sizes_are_accepted(serve, patches):
    gray = np.asarray(Image.fromarray(patches[0]).convert("L"))
    larger = np.asarray(Image.fromarray(patches[1]).resize((128, 128), Image.NEAREST))
    batch = [_encode(patches[0], "JPEG"), _encode(gray, "PNG"), _encode(larger, "PNG")]
    probability = serve(image_bytes=tf.constant(batch))["probability"].numpy()
    assert probability.shape == (3,) and ((probability >= 0) & (probability <= 1)).all()


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        ([], "at least one patch"),
        ([b"definitely not an image"], "not a PNG or JPEG"),
        ([_encode(np.zeros((8, 8, 3), np.uint8), "GIF")], "not a PNG or JPEG"),
        ([_encode(np.zeros((8, 8, 3), np.uint8), "PNG")[:40]], "Invalid PNG"),  # truncated
        # A 26-byte file declaring 100000x100000: refused from the header, not decoded.
        (
            [b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x01\x86\xa0\x00\x01\x86\xa0\x08\x02"],
            "max_side=1024",
        ),
    ],
)
def test_bad_input_is_invalid_argument(serve, batch, message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        serve(image_bytes=tf.constant(batch, tf.string))


def test_module_limits_the_batch_and_checks_its_arguments(trained, patches):
    model, _ = trained
    module = TumorPatchModule(model, max_batch=2)
    encoded = tf.constant([_encode(p, "PNG") for p in patches[:3]])
    with pytest.raises(tf.errors.InvalidArgumentError, match="max_batch=2"):
        module.serving_default(encoded)
    with pytest.raises(ValueError, match="positive integer"):
        TumorPatchModule(model, max_side=0)


def test_official_stubs_get_the_local_probabilities(server, trained, patches):
    model, _ = trained
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "tumor"
    request.inputs["image_bytes"].CopyFrom(
        tf.make_tensor_proto([_encode(p, "PNG") for p in patches], dtype=tf.string)
    )
    with grpc.insecure_channel(server.target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.Predict(request, timeout=60)
    assert response.model_spec.version.value == 1
    probability = tf.make_ndarray(response.outputs["probability"])
    np.testing.assert_allclose(probability, _local(model, patches), atol=1e-5)


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        ([b"definitely not an image"], "not a PNG or JPEG"),
        ([_encode(np.zeros((8, 8, 3), np.uint8), "PNG")[:40]], "Invalid PNG"),
        ([], "at least one patch"),
    ],
)
def test_bad_input_over_grpc_is_invalid_argument(server, batch, message):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "tumor"
    request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto(batch, dtype=tf.string))
    with grpc.insecure_channel(server.target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            stub.Predict(request, timeout=60)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in raised.value.details()


def test_scan_through_the_server_equals_a_local_scan(server, trained, heldout):
    model, config = trained
    record = next(r for r in heldout if r.has_tumor)
    local = scan.scan(record.path, scorers.keras_scorer(model), config.patch_size, config.stride)
    with ServingClient(server.target) as client:
        served = scan.scan(
            record.path, scorers.served_scorer(client), config.patch_size, config.stride
        )
    np.testing.assert_allclose(served.heatmap.probabilities, local.heatmap.probabilities, atol=1e-5)
    assert [(d.x, d.y) for d in served.detections] == [(d.x, d.y) for d in local.detections]


def test_serve_demo_beats_the_baseline_over_grpc(server, tumor_workdir):
    with ServingClient(server.target) as client:
        result = family.serve_demo(client, tumor_workdir)
    assert result.passed, result.summary
    assert result.family == "tumor" and result.columns == ["metric", "served model", "baseline"]
    assert result.report["metrics"]["model_froc"] > result.report["metrics"]["baseline_froc"]
    assert result.images and all((tumor_workdir / name).is_file() for name in result.images)


def test_cli_scan_and_predict_through_the_server(server, tumor_workdir, heldout, patches, tmp_path):
    record = next(r for r in heldout if r.has_tumor)
    args = ["--server", server.target, "--workdir", str(tumor_workdir), "--output-dir"]
    assert main(["tumor", "scan", *args, str(tmp_path), "--no-progress", str(record.path)]) == 0
    report = json.loads((tmp_path / f"{record.name}_detections.json").read_text())
    assert report["ground_truth"]["lesions_found_at_0.5"] >= 1
    assert (tmp_path / f"{record.name}_heatmap.png").is_file()

    files = []
    for index in range(2):
        files.append(tmp_path / f"patch{index}.png")
        files[-1].write_bytes(_encode(patches[index], "PNG"))
    command = ["predict", "--server", server.target, "tumor", *map(str, files)]
    assert main([*command, "--output-dir", str(tmp_path)]) == 0
    written = json.loads((tmp_path / family.PROBABILITIES_FILE).read_text())
    assert list(written) == [str(f) for f in files]
    assert all(0.0 <= p <= 1.0 for p in written.values())
