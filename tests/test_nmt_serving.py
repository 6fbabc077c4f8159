"""The trained `tiny` nmt model exported through the CLI and served by a real
tfstack-model-server process, called with the official TensorFlow Serving stubs."""

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from models.nmt import family
from serving.client import ServingClient
from tfstack.cli import main
from tfstack.server_process import ServerProcess

SENTENCES = ["Change password", "The file could not be opened.", ""]


@pytest.fixture(scope="module")
def served(nmt_workdir, tmp_path_factory):
    repo = tmp_path_factory.mktemp("nmt-repo")
    assert main(["export", "nmt", "--workdir", str(nmt_workdir), "--repo", str(repo)]) == 0
    server = ServerProcess(
        [f"--model_config_file={repo / 'models.config'}"], log_path=repo.parent / "server.log"
    )
    server.start()
    channel = grpc.insecure_channel(server.target)
    yield server, prediction_service_pb2_grpc.PredictionServiceStub(channel)
    channel.close()
    assert server.stop() == 0, "server must drain and exit 0 on SIGTERM"


@pytest.fixture(scope="module")
def in_process(nmt_workdir):
    """The signatures of the same checkpoint, called in this process."""
    _, signatures = family.serving_module(nmt_workdir)
    return signatures


def _request(signature: str, text: list[bytes], beam_size: int | None = None):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "nmt"
    request.model_spec.signature_name = signature
    request.inputs["text"].CopyFrom(tf.make_tensor_proto(text, dtype=tf.string))
    if beam_size is not None:
        request.inputs["beam_size"].CopyFrom(tf.make_tensor_proto(beam_size, dtype=tf.int32))
    return request


@pytest.mark.parametrize(
    ("signature", "beam_size"), [("serving_default", None), ("beam_search", 2), ("greedy", None)]
)
def test_strings_in_strings_out_with_official_stubs(served, in_process, signature, beam_size):
    _, stub = served
    text = [s.encode() for s in SENTENCES]
    response = stub.Predict(_request(signature, text, beam_size), timeout=60)
    assert response.model_spec.signature_name == signature
    output = response.outputs["translation"]
    assert output.dtype == tf.string.as_datatype_enum
    translations = list(output.string_val)
    assert len(translations) == len(SENTENCES) and translations[2] == b""
    arguments = {"text": tf.constant(text)}
    if beam_size is not None:
        arguments["beam_size"] = tf.constant(beam_size)
    expected = in_process[signature](**arguments)["translation"].numpy().tolist()
    assert translations == expected


@pytest.mark.parametrize(
    ("signature", "text", "beam_size", "message"),
    [
        ("serving_default", [], None, "text must hold at least one sentence"),
        ("serving_default", [b"\xff\xfe not text"], None, "Invalid formatting"),
        ("greedy", [b"x" * 5000], None, "max_input_bytes=4096"),
        ("beam_search", [b"Save"], 0, "beam_size must be from 1 to 16"),
    ],
)
def test_bad_input_is_invalid_argument(served, signature, text, beam_size, message):
    _, stub = served
    with pytest.raises(grpc.RpcError) as raised:
        stub.Predict(_request(signature, text, beam_size), timeout=60)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in raised.value.details()


def test_metadata_lists_the_three_signatures(served):
    _, stub = served
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "nmt"
    request.metadata_field.append("signature_def")
    response = stub.GetModelMetadata(request, timeout=10)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    assert {"serving_default", "beam_search", "greedy"} <= set(signatures.signature_def)
    beam = signatures.signature_def["beam_search"]
    assert beam.inputs["beam_size"].dtype == tf.int32.as_datatype_enum
    assert beam.outputs["translation"].dtype == tf.string.as_datatype_enum


def test_serve_demo_beats_copying_over_grpc(served, nmt_workdir):
    server, _ = served
    with ServingClient(server.target, timeout=120) as client:
        result = family.serve_demo(client, nmt_workdir)
    assert result.passed, result.summary
    assert result.report["model"]["bleu"] > result.report["copy_source"]["bleu"]
    assert [row[0] for row in result.rows[:2]] == ["sacreBLEU", "chrF"]
    assert len(result.rows) == 2 + family.SERVED_EXAMPLES
    assert all(len(row) == len(result.columns) for row in result.rows)


def test_cli_predict_writes_one_translation_per_line(served, tmp_path):
    server, _ = served
    source = tmp_path / "sentences.txt"
    source.write_text("Change password\nSave\n", encoding="utf-8")
    out = tmp_path / "out"
    assert (
        main(["predict", "--server", server.target, "nmt", str(source), "--output-dir", str(out)])
        == 0
    )
    lines = (out / "sentences.de.txt").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2 and all(lines)
    assert family.request_inputs([source])["text"].tolist() == [b"Change password", b"Save"]
    assert np.array_equal(family.warmup_inputs()["text"], [t.encode() for t in family.WARMUP_TEXT])


def test_cli_translate_through_the_server(served, capsys):
    server, _ = served
    arguments = ["nmt", "translate", "--server", server.target, "Change password", "Save"]
    assert main([*arguments, "--beam-size", "2"]) == 0
    assert main([*arguments, "--greedy"]) == 0
    printed = capsys.readouterr().out
    assert "nmt (beam_search)" in printed and "nmt (greedy)" in printed
    assert "Change password" in printed
