"""colorize end to end: CLI export -> tfstack-model-server process -> official stubs, the
`tfstack colorize` command, and the demo's call through the server."""

import io

import grpc
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from models.colorize import data, evaluate, family, images
from models.colorize.lab import rgb_to_lab
from serving.client import ServingClient
from tfstack.cli import main
from tfstack.server_process import ServerProcess

needs_debian_photos = pytest.mark.skipif(
    not any(photo.origin != "skimage" for photo in data.photos.discover_photos()),
    reason="needs the Debian photo packages (make data) to learn colour",
)


@pytest.fixture(scope="module")
def served(colorize_workdir, tmp_path_factory):
    repo = tmp_path_factory.mktemp("colorize-repo")
    argv = ["export", "colorize", "--workdir", str(colorize_workdir), "--repo", str(repo)]
    assert main(argv) == 0
    server = ServerProcess(
        [f"--model_config_file={repo / 'models.config'}"], log_path=repo.parent / "server.log"
    )
    server.start()
    channel = grpc.insecure_channel(
        server.target, options=[("grpc.max_receive_message_length", 64 * 2**20)]
    )
    yield server, prediction_service_pb2_grpc.PredictionServiceStub(channel)
    channel.close()
    assert server.stop() == 0


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return data.photos.SKIMAGE_PHOTOS["astronaut"]()


def _request(inputs: dict, signature: str = "") -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "colorize"
    request.model_spec.signature_name = signature
    for alias, value in inputs.items():
        request.inputs[alias].CopyFrom(tf.make_tensor_proto(value))
    return request


def _decode(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)))


def test_serving_default_colours_a_gray_photo_over_grpc(served, astronaut):
    _, stub = served
    gray = images.gray_copy(astronaut)
    request = _request({"image_bytes": tf.constant([images.encode_png(gray)])})
    response = stub.Predict(request, timeout=60)
    assert response.model_spec.signature_name == "serving_default"
    assert response.model_spec.version.value == 1
    coloured = _decode(response.outputs["image_bytes"].string_val[0])
    assert coloured.shape == astronaut.shape
    assert evaluate.colourfulness(coloured / 255.0) > 5.0  # gray has ~0
    lightness_error = rgb_to_lab(coloured / 255.0)[..., 0] - rgb_to_lab(gray / 255.0)[..., 0]
    assert float(tf.reduce_mean(tf.abs(lightness_error))) < 1.0


def test_samples_signature_over_grpc(served, astronaut):
    _, stub = served
    request = _request(
        {
            "image_bytes": tf.constant([images.encode_png(astronaut[:128, :160])]),
            "num_samples": tf.constant(3),
            "temperature": tf.constant(1.0),
        },
        signature="samples",
    )
    output = stub.Predict(request, timeout=60).outputs["image_bytes"]
    assert [d.size for d in output.tensor_shape.dim] == [1, 3]
    drawn = [_decode(png).astype(float) for png in output.string_val]
    assert all(image.shape == (128, 160, 3) for image in drawn)
    assert np.abs(drawn[0] - drawn[1]).mean() > 0.5


def test_metadata_lists_both_signatures(served):
    _, stub = served
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "colorize"
    request.metadata_field.append("signature_def")
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    stub.GetModelMetadata(request, timeout=10).metadata["signature_def"].Unpack(signature_map)
    samples = signature_map.signature_def["samples"]
    assert set(samples.inputs) == {"image_bytes", "num_samples", "temperature"}
    assert samples.inputs["num_samples"].dtype == tf.int32.as_datatype_enum
    default = signature_map.signature_def["serving_default"]
    assert default.outputs["image_bytes"].dtype == tf.string.as_datatype_enum


@pytest.mark.parametrize(
    ("inputs", "signature"),
    [
        ({"image_bytes": tf.constant([b"definitely not an image"])}, ""),
        ({"image_bytes": tf.constant([], tf.string)}, ""),
        (
            {
                "image_bytes": tf.constant([b"definitely not an image"]),
                "num_samples": tf.constant(2),
                "temperature": tf.constant(1.0),
            },
            "samples",
        ),
        (
            {
                "image_bytes": tf.constant([b"x"]),
                "num_samples": tf.constant(0),
                "temperature": tf.constant(1.0),
            },
            "samples",
        ),
    ],
)
def test_bad_input_is_invalid_argument(served, inputs, signature):
    _, stub = served
    with pytest.raises(grpc.RpcError) as error:
        stub.Predict(_request(inputs, signature), timeout=60)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_cli_colorize_through_the_server_and_locally(served, colorize_workdir, astronaut, tmp_path):
    server, _ = served
    colour_file, gray_file = tmp_path / "astronaut.png", tmp_path / "gray.jpg"
    colour_file.write_bytes(images.encode_png(astronaut[:96, :128]))
    Image.fromarray(images.gray_copy(astronaut[100:196, :128])).save(gray_file)
    remote, local = tmp_path / "remote.png", tmp_path / "local.png"
    files = [str(colour_file), str(gray_file)]
    argv = ["colorize", *files, "--samples", "2", "--temperature", "0.8"]
    assert main([*argv, "--server", server.target, "--output", str(remote)]) == 0
    assert main([*argv, "--workdir", str(colorize_workdir), "--output", str(local)]) == 0
    for grid in (remote, local):
        with Image.open(grid) as picture:
            # Two rows of 160-pixel cells under a label line; columns: gray, colourized,
            # two samples and the truth (empty for the gray file).
            assert picture.height > 2 * 160
            assert picture.width > 5 * 160
    assert main(["colorize", files[0], "--samples", "9", "--output", str(remote)]) == 1


@needs_debian_photos
def test_serve_demo_beats_baselines_through_the_server(served, colorize_workdir):
    server, _ = served
    with ServingClient(server.target, timeout=120) as client:
        result = family.serve_demo(client, colorize_workdir)
    assert result.passed, result.summary
    assert result.report["model_psnr"] > result.report["mean_chroma_psnr"]
    assert len(result.rows) == len(result.report["photos"]) + 1
    with Image.open(result.images[0]) as grid:
        assert grid.width > 6 * 160  # gray, model, three samples, truth
