"""speech through the whole chain: CLI train (fixture) -> evaluate -> export -> server process
-> the official TensorFlow Serving stubs; the model must beat its baseline on held-out voices."""

import json

import grpc
import jiwer
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from models.speech import evaluate as sp_evaluate
from models.speech import family, noise, recorded_noise
from models.speech import train as sp_train
from models.speech.audio import wav_bytes
from models.speech.recognize import Transcriber
from serving.client import ServingClient
from tfstack.cli import main
from tfstack.server_process import ServerProcess


@pytest.fixture(scope="module")
def evaluation(speech_workdir, tmp_path_factory):
    report = tmp_path_factory.mktemp("speech-eval") / "evaluation.json"
    args = ["evaluate", "speech", "--workdir", str(speech_workdir), "--json", str(report)]
    assert main(args) == 0
    return json.loads(report.read_text())


@pytest.fixture(scope="module")
def served(speech_workdir, tmp_path_factory):
    """Export through the CLI, then serve the repository from a real server process."""
    repo = tmp_path_factory.mktemp("speech-repo")
    assert main(["export", "speech", "--workdir", str(speech_workdir), "--repo", str(repo)]) == 0
    server = ServerProcess(
        [f"--model_config_file={repo / 'models.config'}"], log_path=repo.parent / "server.log"
    )
    server.start()
    channel = grpc.insecure_channel(server.target)
    yield server, channel
    channel.close()
    assert server.stop() == 0, "server must drain and exit 0 on SIGTERM"


@pytest.fixture(scope="module")
def clean_tests():
    """Held-out voices, clean: unseen and seen sentences."""
    return [test for test in sp_evaluate.test_set(progress=False) if test.condition == "clean"]


def _predict(channel, audio: list[bytes], signature: str = "") -> predict_pb2.PredictResponse:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "speech"
    request.model_spec.signature_name = signature
    request.inputs["audio_bytes"].CopyFrom(tf.make_tensor_proto(audio, dtype=tf.string))
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    return stub.Predict(request, timeout=120)


def test_trained_model_beats_the_baseline_on_heldout_voices(evaluation):
    metrics = evaluation["metrics"]
    assert metrics["cer"] < 0.6 * metrics["baseline_cer"]
    assert metrics["wer"] < metrics["baseline_wer"]
    for condition in ("clean", "20_dB", "10_dB", "5_dB", "0_dB", "unseen_sentences"):
        assert metrics[f"cer_{condition}"] < metrics[f"baseline_cer_{condition}"], condition
    assert metrics["cer_clean_beam_search"] < metrics["baseline_cer_clean"]
    kinds = evaluation["details"]["noise_kinds"]
    assert kinds["synthetic"] == list(noise.NOISE_TYPES)
    assert kinds["recorded"] == list(recorded_noise.split_files())  # every category installed
    for kind in (*kinds["synthetic"], *kinds["recorded"]):
        assert metrics[f"cer_noise_{kind}"] < metrics[f"baseline_cer_noise_{kind}"], kind
    for kind_class in (name for name, found in kinds.items() if found):
        assert metrics[f"cer_{kind_class}_noise"] < metrics[f"baseline_cer_{kind_class}_noise"]
        assert f"wer_{kind_class}_0_dB" in metrics
    assert evaluation["details"]["empty_answer"] == {"wer": 1.0, "cer": 1.0}
    labels = [row[0] for row in evaluation["rows"]]
    assert "WER 0 dB" in labels and "CER unseen sentences" in labels


def test_official_stubs_get_transcripts_that_beat_the_baseline(served, clean_tests, speech_workdir):
    _, channel = served
    audio = [wav_bytes(test.waveform) for test in clean_tests]
    response = _predict(channel, audio)
    transcripts = [text.decode() for text in response.outputs["transcript"].string_val]
    references = [test.reference for test in clean_tests]
    answer = sp_evaluate.most_frequent(sp_train.training_transcripts(speech_workdir))
    model = sp_evaluate.error_rates(references, transcripts)
    baseline = sp_evaluate.error_rates(references, [answer] * len(references))
    assert model["cer"] < 0.6 * baseline["cer"] and model["wer"] < baseline["wer"]
    # The served graph is the evaluated one: same transcripts as in process.
    keras_model, _ = sp_train.load_trained(speech_workdir)
    in_process = Transcriber(keras_model)([test.waveform for test in clean_tests])
    agree = sum(a == b for a, b in zip(transcripts, in_process, strict=True))
    assert agree >= 0.95 * len(transcripts)


def test_beam_search_signature_over_grpc(served, clean_tests):
    _, channel = served
    tests = clean_tests[::5]
    audio = [wav_bytes(test.waveform) for test in tests]
    beam = _predict(channel, audio, "beam_search").outputs
    greedy = _predict(channel, audio).outputs["transcript"].string_val
    assert all(p <= 0.0 for p in beam["log_probability"].float_val)
    references = [test.reference for test in tests]
    beam_scores = sp_evaluate.error_rates(
        references, [t.decode() for t in beam["transcript"].string_val]
    )
    greedy_scores = sp_evaluate.error_rates(references, [t.decode() for t in greedy])
    # Summing over alignments keeps doubled letters that the best path merges.
    assert beam_scores["cer"] <= greedy_scores["cer"] + 0.02


def test_metadata_names_audio_bytes_and_transcript(served):
    _, channel = served
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "speech"
    request.metadata_field.append("signature_def")
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    response = stub.GetModelMetadata(request, timeout=30)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    default = signatures.signature_def["serving_default"]
    assert list(default.inputs) == ["audio_bytes"] and list(default.outputs) == ["transcript"]
    assert "beam_search" in signatures.signature_def


@pytest.mark.parametrize(
    ("audio", "message"),
    [
        ([], "at least one WAV file"),
        ([b"not a wav file at all"], "Header mismatch"),
        ([wav_bytes([0.1] * 8000, sample_rate=8000)], "16000 Hz"),
    ],
)
def test_bad_audio_is_invalid_argument_over_grpc(served, audio, message):
    _, channel = served
    with pytest.raises(grpc.RpcError) as error:
        _predict(channel, audio)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in error.value.details()


def test_serve_demo_scores_every_condition_over_grpc(served, speech_workdir):
    server, _ = served
    with ServingClient(server.target, timeout=120) as client:
        result = family.serve_demo(client, speech_workdir)
    assert result.passed, result.summary
    conditions = [row[0] for row in result.rows]
    assert conditions[: len(sp_evaluate.CONDITIONS)] == list(sp_evaluate.CONDITIONS)
    for row in result.rows[: len(sp_evaluate.CONDITIONS)]:
        assert row[3] < row[4], row  # CER model < CER baseline, at every SNR


def test_cli_says_and_predicts_a_heldout_voice(served, speech_workdir, tmp_path):
    server, _ = served
    sentences = {"turn off the lamp": "clean.wav", "close the garage": "noisy.wav"}
    voice = ["--voice", "espeak-ng_en-gb+klatt2_p50_s1.1"]
    for sentence, name in sentences.items():
        noisy = ["--noise", "pink", "--snr", "10"] if name == "noisy.wav" else []
        args = ["speech", "say", sentence, "--out", str(tmp_path / name), *voice, *noisy]
        assert main(args) == 0
    wavs = [str(tmp_path / name) for name in sentences.values()]
    args = ["predict", "--server", server.target, "speech", *wavs]
    assert main([*args, "--output-dir", str(tmp_path / "out")]) == 0
    answer = sp_evaluate.most_frequent(sp_train.training_transcripts(speech_workdir))
    for sentence, name in sentences.items():
        transcript = (tmp_path / "out" / name.replace(".wav", ".txt")).read_text().strip()
        assert jiwer.cer(sentence, transcript) < jiwer.cer(sentence, answer), transcript
